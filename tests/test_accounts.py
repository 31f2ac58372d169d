"""Accounts of the HTTP API on both state databases (SQLite, PostgreSQL), and `eit users`."""

from __future__ import annotations

import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml
from argon2 import PasswordHasher

from eit.timeutil import NS_PER_S, now_ns
from server.accounts import AccountError, Accounts, open_accounts, token_digest
from statedb.tables import api_tokens, api_users
from testbed.services import EIT, REPO


# A fixture that starts its service itself marks its param: conftest sees only requested fixtures.
@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def accounts(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Accounts]:
    if request.param == "sqlite":
        store = open_accounts(None, tmp_path / "state.db")
    else:
        store = open_accounts(request.getfixturevalue("postgres_url"), tmp_path / "unused.db")
    assert store.kind == request.param
    yield store
    store.close()


def _stored_hash(store: Accounts, name: str) -> str:
    with store.db.read() as conn:
        return str(
            conn.execute(sa.select(api_users.c.password_hash).where(api_users.c.name == name)).scalar_one()
        )


def test_passwords_are_stored_as_argon2id_hashes_and_verified(accounts: Accounts) -> None:
    accounts.add_user("olivia", "officer", "correct horse battery", now_ns())
    stored = _stored_hash(accounts, "olivia")
    assert stored.startswith("$argon2id$") and "correct horse" not in stored
    assert accounts.authenticate("olivia", "correct horse battery") is not None
    assert accounts.authenticate("olivia", "Correct horse battery") is None
    assert accounts.authenticate("nobody", "correct horse battery") is None


def test_a_hash_with_old_parameters_is_replaced_at_login(accounts: Accounts) -> None:
    accounts.add_user("olivia", "officer", "correct horse battery", now_ns())
    weak = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash("correct horse battery")
    with accounts.db.write() as conn:
        conn.execute(api_users.update().where(api_users.c.name == "olivia").values(password_hash=weak))
    assert accounts.authenticate("olivia", "correct horse battery") is not None
    renewed = _stored_hash(accounts, "olivia")
    assert renewed != weak and not PasswordHasher().check_needs_rehash(renewed)


def test_tokens_are_stored_hashed_and_expire(accounts: Accounts) -> None:
    user = accounts.add_user("kk-op", "operator", "kk-operator-pass-7", now_ns(), "kaeng-khoi-biomass")
    now = now_ns()
    token, expires = accounts.issue_token(user, now, 3600)
    assert expires == now + 3600 * NS_PER_S
    with accounts.db.read() as conn:
        stored = [str(h) for h in conn.execute(sa.select(api_tokens.c.token_hash)).scalars()]
    assert stored == [token_digest(token)] and token not in stored
    seen = accounts.user_for_token(token, now + 3599 * NS_PER_S)
    assert seen is not None and seen.factory == "kaeng-khoi-biomass"
    assert accounts.user_for_token(token, now + 3600 * NS_PER_S) is None
    assert accounts.user_for_token(token + "x", now) is None


def test_logout_disable_and_a_new_password_end_the_tokens(accounts: Accounts) -> None:
    user = accounts.add_user("olivia", "officer", "first-password", now_ns())
    now = now_ns()
    a, _ = accounts.issue_token(user, now, 3600)
    b, _ = accounts.issue_token(user, now, 3600)
    assert accounts.revoke_token(a) and not accounts.revoke_token(a)
    assert accounts.user_for_token(a, now) is None and accounts.user_for_token(b, now) is not None
    accounts.set_password("olivia", "second-password")
    assert accounts.user_for_token(b, now) is None
    assert accounts.authenticate("olivia", "first-password") is None
    c, _ = accounts.issue_token(user, now, 3600)
    accounts.set_disabled("olivia", True)
    assert accounts.user_for_token(c, now) is None
    assert accounts.authenticate("olivia", "second-password") is None
    accounts.set_disabled("olivia", False)
    assert accounts.authenticate("olivia", "second-password") is not None


@pytest.mark.parametrize(
    ("name", "role", "password", "factory", "problem"),
    [
        ("Olivia", "officer", "long-enough-for-all", None, "is not valid"),
        ("olivia", "king", "long-enough-for-all", None, "unknown role 'king'"),
        ("olivia", "officer", "short", None, "too short: at least 12"),
        ("olivia", "operator", "short", "kaeng-khoi-biomass", "too short: at least 8"),
        ("olivia", "officer", "password1234", None, "too easy to guess"),
        ("olivia", "admin", "qwertyuiop12", None, "too easy to guess"),
        ("olivia", "operator", "long-enough-for-all", None, "needs the factory"),
        ("olivia", "officer", "long-enough-for-all", "kaeng-khoi-biomass", "--factory only for operators"),
    ],
)
def test_bad_accounts_are_refused_with_the_reason(
    accounts: Accounts, name: str, role: str, password: str, factory: str | None, problem: str
) -> None:
    with pytest.raises(AccountError, match=problem):
        accounts.add_user(name, role, password, now_ns(), factory)
    assert accounts.list_users() == []


def test_an_account_name_is_taken_once(accounts: Accounts) -> None:
    accounts.add_user("olivia", "officer", "long-enough-for-all", now_ns())
    with pytest.raises(AccountError, match="exists already"):
        accounts.add_user("olivia", "admin", "long-enough-for-all", now_ns())


# -- `eit users` -----------------------------------------------------------------------------------


@pytest.fixture
def serve_yaml(tmp_path: Path) -> Path:
    path = tmp_path / "serve.yaml"
    path.write_text(
        yaml.safe_dump(
            {"site": str(REPO / "examples" / "town" / "site.yaml"), "data_dir": str(tmp_path / "data")}
        )
    )
    return path


def eit(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*EIT, *args], capture_output=True, text=True, cwd=REPO, timeout=60, env={**os.environ, **(env or {})}
    )


def test_users_add_makes_a_password_and_shows_it_once(serve_yaml: Path, tmp_path: Path) -> None:
    out = eit("users", "add", "--config", str(serve_yaml), "--role", "officer", "olivia")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "olivia: officer added"
    password = lines[1].removeprefix("password: ")
    assert len(password) >= 16 and password not in out.stderr
    with sqlite3.connect(tmp_path / "data" / "state.db") as db:
        stored = db.execute("SELECT password_hash FROM api_users WHERE name='olivia'").fetchone()[0]
    assert PasswordHasher().verify(stored, password)
    listed = eit("users", "list", "--config", str(serve_yaml))
    assert listed.stdout.split() == ["olivia", "officer"] and password not in listed.stdout


def test_users_add_reads_the_password_from_a_file_or_a_variable(serve_yaml: Path, tmp_path: Path) -> None:
    secret = tmp_path / "kk.secret"
    secret.write_text("from-a-file-123\n")
    out = eit(
        "users", "add", "--config", str(serve_yaml), "--role", "operator", "--factory", "kaeng-khoi-biomass",
        "--password-file", str(secret), "kk-op",
    )  # fmt: skip
    assert out.returncode == 0 and out.stdout == "kk-op: operator of factory kaeng-khoi-biomass added\n"
    env = {"SAM_PASSWORD": "from-a-variable-1"}
    out = eit(
        "users", "add", "--config", str(serve_yaml), "--role", "supervisor",
        "--password-env", "SAM_PASSWORD", "sam", env=env,
    )  # fmt: skip
    assert out.returncode == 0 and "from-a-variable" not in out.stdout + out.stderr
    accounts = open_accounts(None, tmp_path / "data" / "state.db")
    try:
        assert accounts.authenticate("kk-op", "from-a-file-123") is not None
        assert accounts.authenticate("sam", "from-a-variable-1") is not None
    finally:
        accounts.close()
    out = eit("users", "disable", "--config", str(serve_yaml), "sam")
    assert out.stdout == "sam: disabled\n"


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["--role", "operator", "op"], "needs the factory it belongs to"),
        (["--role", "operator", "--factory", "nowhere", "op"], "--factory: no factory 'nowhere'"),
        (["--role", "officer", "--password-env", "EIT_TEST_UNSET_VARIABLE", "x"], "is not set"),
        (["--role", "officer", "Bad Name"], "is not valid"),
    ],
)
def test_users_add_explains_what_is_wrong(serve_yaml: Path, args: list[str], problem: str) -> None:
    out = eit("users", "add", "--config", str(serve_yaml), *args)
    assert out.returncode == 2 and problem in out.stderr and "Traceback" not in out.stderr
