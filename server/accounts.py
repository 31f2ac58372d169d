"""Accounts of the HTTP API, in the server's state database beside the alert store: users and
their roles, bearer tokens, and the factory operators' responses to alerts.

- Passwords are hashed with Argon2id (argon2-cffi, RFC 9106 parameters); a hash made with older
  parameters is replaced at the next successful login.
- Bearer tokens are opaque random strings (256 bits); only their SHA-256 is stored, with an
  expiry. A token dies when it expires, when its user logs out, is disabled or changes password.
- Officers (officer, supervisor, admin) see every factory; an operator account belongs to one
  factory and sees only that one.

SQLite (the default, the file of ``state.path``) and PostgreSQL (``state.url``) run the same SQL.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from eit.errors import EitError
from eit.sqlitedb import immediate, open_durable
from eit.timeutil import NS_PER_S, ns_to_iso

OFFICER_ROLES = ("officer", "supervisor", "admin")
OPERATOR = "operator"
ROLES = (*OFFICER_ROLES, OPERATOR)
NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")
NAME_HINT = "use 1-63 lower-case letters, digits, '.', '-' or '_', starting with a letter or digit"
MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024
MAX_TEXT_LENGTH = 4000

_TABLES = """
CREATE TABLE IF NOT EXISTS api_users (
    name          TEXT   PRIMARY KEY,
    role          TEXT   NOT NULL,
    factory       TEXT,
    password_hash TEXT   NOT NULL,
    created_ns    BIGINT NOT NULL,
    disabled      INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS api_tokens (
    token_hash TEXT   PRIMARY KEY,
    user_name  TEXT   NOT NULL,
    issued_ns  BIGINT NOT NULL,
    expires_ns BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS api_tokens_user ON api_tokens (user_name);
CREATE TABLE IF NOT EXISTS alert_responses (
    id                {id_column},
    alert_id          BIGINT NOT NULL,
    factory           TEXT   NOT NULL,
    actor             TEXT   NOT NULL,
    ts_ns             BIGINT NOT NULL,
    cause             TEXT   NOT NULL,
    corrective_action TEXT   NOT NULL
);
CREATE INDEX IF NOT EXISTS alert_responses_alert ON alert_responses (alert_id, id);
"""


class AccountError(ValueError):
    """An account change that cannot be made; the message says why."""


class AccountStoreUnavailable(EitError):
    """The accounts database cannot be reached."""


@dataclass(frozen=True, slots=True)
class User:
    name: str
    role: str
    factory: str | None
    created_ns: int
    disabled: bool = False

    @property
    def is_officer(self) -> bool:
        return self.role in OFFICER_ROLES

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "role": self.role,
            "factory": self.factory,
            "disabled": self.disabled,
            "created_at": ns_to_iso(self.created_ns),
        }


@dataclass(frozen=True, slots=True)
class OperatorResponse:
    """What a factory operator says about an alert: its cause and the corrective action."""

    id: int
    alert_id: int
    factory: str
    actor: str
    ts_ns: int
    cause: str
    corrective_action: str

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "alert_id": self.alert_id,
            "factory": self.factory,
            "by": self.actor,
            "at": ns_to_iso(self.ts_ns),
            "cause": self.cause,
            "corrective_action": self.corrective_action,
        }


def check_name(name: str) -> None:
    if not NAME_PATTERN.fullmatch(name):
        raise AccountError(f"user name {name!r} is not valid: {NAME_HINT}")


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"the password is too short: at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise AccountError(f"the password is too long: at most {MAX_PASSWORD_LENGTH} characters")


def check_role(role: str, factory: str | None) -> None:
    if role not in ROLES:
        raise AccountError(f"unknown role {role!r} (use one of {', '.join(ROLES)})")
    if role == OPERATOR and not factory:
        raise AccountError("an operator account needs the factory it belongs to (--factory)")
    if role != OPERATOR and factory:
        raise AccountError(f"a {role} sees every factory: give --factory only for operators")


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class _SqlAccounts:
    """The accounts in SQL; subclasses provide the connection, transactions and dialect."""

    kind = "sql"
    _ph = "?"
    _integrity_errors: tuple[type[Exception], ...] = (sqlite3.IntegrityError,)

    def __init__(self) -> None:
        self._hasher = PasswordHasher()
        # Verified against when the user does not exist, so that a login takes as long for an
        # unknown name as for a wrong password.
        self._dummy_hash = self._hasher.hash(secrets.token_urlsafe(16))

    def _sql(self, sql: str) -> str:
        return sql if self._ph == "?" else sql.replace("?", self._ph)

    @contextmanager
    def _tx(self) -> Iterator[Any]:
        raise NotImplementedError
        yield

    # -- users ---------------------------------------------------------------------------------
    def add_user(self, name: str, role: str, password: str, now_ns: int, factory: str | None = None) -> User:
        check_name(name)
        check_role(role, factory)
        check_password(password)
        digest = self._hasher.hash(password)
        try:
            with self._tx() as cur:
                cur.execute(
                    self._sql(
                        "INSERT INTO api_users (name, role, factory, password_hash, created_ns, disabled)"
                        " VALUES (?, ?, ?, ?, ?, 0)"
                    ),
                    (name, role, factory, digest, now_ns),
                )
        except self._integrity_errors:
            raise AccountError(f"user '{name}' exists already") from None
        return User(name, role, factory, now_ns)

    def get_user(self, name: str) -> User | None:
        with self._tx() as cur:
            cur.execute(
                self._sql("SELECT name, role, factory, created_ns, disabled FROM api_users WHERE name=?"),
                (name,),
            )
            row = cur.fetchone()
        return _user(row) if row else None

    def list_users(self) -> list[User]:
        with self._tx() as cur:
            cur.execute("SELECT name, role, factory, created_ns, disabled FROM api_users ORDER BY name")
            rows = cur.fetchall()
        return [_user(row) for row in rows]

    def set_password(self, name: str, password: str) -> None:
        check_password(password)
        digest = self._hasher.hash(password)
        with self._tx() as cur:
            cur.execute(self._sql("UPDATE api_users SET password_hash=? WHERE name=?"), (digest, name))
            if cur.rowcount != 1:
                raise AccountError(f"no user '{name}'")
            cur.execute(self._sql("DELETE FROM api_tokens WHERE user_name=?"), (name,))

    def set_disabled(self, name: str, disabled: bool) -> User:
        with self._tx() as cur:
            cur.execute(self._sql("UPDATE api_users SET disabled=? WHERE name=?"), (int(disabled), name))
            if cur.rowcount != 1:
                raise AccountError(f"no user '{name}'")
            if disabled:
                cur.execute(self._sql("DELETE FROM api_tokens WHERE user_name=?"), (name,))
            cur.execute(
                self._sql("SELECT name, role, factory, created_ns, disabled FROM api_users WHERE name=?"),
                (name,),
            )
            return _user(cur.fetchone())

    def authenticate(self, name: str, password: str) -> User | None:
        """The user when ``password`` is theirs and the account is enabled, else None."""
        with self._tx() as cur:
            cur.execute(
                self._sql(
                    "SELECT name, role, factory, created_ns, disabled, password_hash FROM api_users"
                    " WHERE name=?"
                ),
                (name,),
            )
            row = cur.fetchone()
        if row is None:
            self._verify(self._dummy_hash, password)
            return None
        stored = str(row[5])
        if not self._verify(stored, password) or bool(row[4]):
            return None
        if self._hasher.check_needs_rehash(stored):
            with self._tx() as cur:
                cur.execute(
                    self._sql("UPDATE api_users SET password_hash=? WHERE name=?"),
                    (self._hasher.hash(password), name),
                )
        return _user(row[:5])

    def _verify(self, digest: str, password: str) -> bool:
        try:
            return self._hasher.verify(digest, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    # -- tokens --------------------------------------------------------------------------------
    def issue_token(self, user: User, now_ns: int, ttl_s: float) -> tuple[str, int]:
        """A new bearer token for ``user`` and its expiry (UTC ns). Expired tokens are swept."""
        token = "eit_" + secrets.token_urlsafe(32)
        expires = now_ns + int(ttl_s * NS_PER_S)
        with self._tx() as cur:
            cur.execute(self._sql("DELETE FROM api_tokens WHERE expires_ns<=?"), (now_ns,))
            cur.execute(
                self._sql(
                    "INSERT INTO api_tokens (token_hash, user_name, issued_ns, expires_ns)"
                    " VALUES (?, ?, ?, ?)"
                ),
                (token_digest(token), user.name, now_ns, expires),
            )
        return token, expires

    def user_for_token(self, token: str, now_ns: int) -> User | None:
        with self._tx() as cur:
            cur.execute(
                self._sql(
                    "SELECT u.name, u.role, u.factory, u.created_ns, u.disabled FROM api_tokens t"
                    " JOIN api_users u ON u.name=t.user_name"
                    " WHERE t.token_hash=? AND t.expires_ns>? AND u.disabled=0"
                ),
                (token_digest(token), now_ns),
            )
            row = cur.fetchone()
        return _user(row) if row else None

    def revoke_token(self, token: str) -> bool:
        with self._tx() as cur:
            cur.execute(self._sql("DELETE FROM api_tokens WHERE token_hash=?"), (token_digest(token),))
            return bool(cur.rowcount == 1)

    # -- operators' responses to alerts --------------------------------------------------------
    def add_response(
        self, alert_id: int, factory: str, actor: str, cause: str, corrective_action: str, now_ns: int
    ) -> OperatorResponse:
        cause, corrective_action = cause.strip(), corrective_action.strip()
        if not cause or not corrective_action:
            raise AccountError("give both the cause and the corrective action")
        if len(cause) > MAX_TEXT_LENGTH or len(corrective_action) > MAX_TEXT_LENGTH:
            raise AccountError(
                f"the cause and the corrective action are limited to {MAX_TEXT_LENGTH} characters"
            )
        with self._tx() as cur:
            cur.execute(
                self._sql(
                    "INSERT INTO alert_responses (alert_id, factory, actor, ts_ns, cause, corrective_action)"
                    " VALUES (?, ?, ?, ?, ?, ?) RETURNING id"
                ),
                (alert_id, factory, actor, now_ns, cause, corrective_action),
            )
            rid = int(cur.fetchone()[0])
        return OperatorResponse(rid, alert_id, factory, actor, now_ns, cause, corrective_action)

    def responses(self, alert_id: int) -> list[OperatorResponse]:
        with self._tx() as cur:
            cur.execute(
                self._sql(
                    "SELECT id, alert_id, factory, actor, ts_ns, cause, corrective_action"
                    " FROM alert_responses WHERE alert_id=? ORDER BY id"
                ),
                (alert_id,),
            )
            rows = cur.fetchall()
        return [
            OperatorResponse(int(i), int(a), str(f), str(who), int(t), str(c), str(x))
            for i, a, f, who, t, c, x in rows
        ]

    def close(self) -> None:
        raise NotImplementedError


def _user(row: Any) -> User:
    name, role, factory, created, disabled = row
    return User(str(name), str(role), None if factory is None else str(factory), int(created), bool(disabled))


class SqliteAccounts(_SqlAccounts):
    kind = "sqlite"

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        self._lock = threading.RLock()
        self._db = open_durable(path)
        self._db.executescript(_TABLES.format(id_column="INTEGER PRIMARY KEY AUTOINCREMENT"))

    @contextmanager
    def _tx(self) -> Iterator[Any]:
        with self._lock, immediate(self._db) as cur:
            yield cur

    def close(self) -> None:
        with self._lock:
            self._db.close()


class PostgresAccounts(_SqlAccounts):
    kind = "postgresql"
    _ph = "%s"

    def __init__(self, url: str, connect_timeout_s: int = 10) -> None:
        import psycopg

        super().__init__()
        self._psycopg = psycopg
        self._integrity_errors = (psycopg.errors.IntegrityError,)
        self._lock = threading.RLock()
        try:
            self._db = psycopg.connect(url, connect_timeout=connect_timeout_s, autocommit=False)
        except psycopg.OperationalError as exc:
            raise AccountStoreUnavailable(f"PostgreSQL accounts: {exc}".strip()) from exc
        with self._db.transaction(), self._db.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(4242002)")  # schema creation, one process at a time
            tables = _TABLES.format(id_column="BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY")
            for statement in tables.split(";"):
                if statement.strip():
                    cur.execute(statement)

    @contextmanager
    def _tx(self) -> Iterator[Any]:
        with self._lock:
            try:
                with self._db.transaction(), self._db.cursor() as cur:
                    yield cur
            except self._psycopg.OperationalError as exc:
                raise AccountStoreUnavailable(f"PostgreSQL accounts: {exc}".strip()) from exc

    def close(self) -> None:
        with self._lock:
            self._db.close()


Accounts = _SqlAccounts


def open_accounts(url: str | None, path: Path) -> _SqlAccounts:
    """The SQLite file ``path`` by default; PostgreSQL when ``url`` is a postgresql:// URL."""
    if url:
        return PostgresAccounts(url)
    return SqliteAccounts(path)
