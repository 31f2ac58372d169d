"""Accounts of the HTTP API, in the server's state database (statedb) beside the alerts: users
and their roles, and bearer tokens.

- Passwords are hashed with Argon2id (argon2-cffi, RFC 9106 parameters); a hash made with older
  parameters is replaced at the next successful login.
- Bearer tokens are opaque random strings (256 bits); only their SHA-256 is stored, with an
  expiry. A token dies when it expires, when its user logs out, is disabled or changes password.
- Officers (officer, supervisor, admin) see every factory; an operator account belongs to one
  factory and sees only that one.
- An officer's account may name the site registry's officer it logs in as (``officer``: an id of
  the registry's ``officers:``), at most one account per registry officer: cases are assigned to
  the registry's duty officers through their accounts. The registry is checked by the callers
  that read it (`eit users`, the admin API).

SQLite (the default, the file of ``state.path``) or PostgreSQL (``state.url``), through one
implementation.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy.exc import IntegrityError

from eit.timeutil import NS_PER_S, ns_to_iso
from server.passwords import MAX_LENGTH, MIN_LENGTH, password_problem
from statedb import StateDb, open_state_db
from statedb.tables import api_tokens, api_users

OFFICER_ROLES = ("officer", "supervisor", "admin")
OPERATOR = "operator"
ROLES = (*OFFICER_ROLES, OPERATOR)
NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")
NAME_HINT = "use 1-63 lower-case letters, digits, '.', '-' or '_', starting with a letter or digit"
MIN_PASSWORD_LENGTH = MIN_LENGTH
MAX_PASSWORD_LENGTH = MAX_LENGTH


class AccountError(ValueError):
    """An account change that cannot be made; the message says why."""


@dataclass(frozen=True, slots=True)
class User:
    name: str
    role: str
    factory: str | None
    created_ns: int
    disabled: bool = False
    officer: str | None = None  # the site registry's officer this account logs in as

    @property
    def is_officer(self) -> bool:
        return self.role in OFFICER_ROLES

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "role": self.role,
            "factory": self.factory,
            "officer": self.officer,
            "disabled": self.disabled,
            "created_at": ns_to_iso(self.created_ns),
        }


def check_name(name: str) -> None:
    if not NAME_PATTERN.fullmatch(name):
        raise AccountError(f"user name {name!r} is not valid: {NAME_HINT}")


def check_password(password: str, role: str | None = None, name: str | None = None) -> None:
    """Refuse a password too short or too easy to guess for an account of ``role`` (zxcvbn score
    and the officers' length: server/passwords.py)."""
    problem = password_problem(password, role=role, user=name)
    if problem is not None:
        raise AccountError(problem)


def check_role(role: str, factory: str | None) -> None:
    if role not in ROLES:
        raise AccountError(f"unknown role {role!r} (use one of {', '.join(ROLES)})")
    if role == OPERATOR and not factory:
        raise AccountError("an operator account needs the factory it belongs to (--factory)")
    if role != OPERATOR and factory:
        raise AccountError(f"a {role} sees every factory: give --factory only for operators")


def check_officer_link(role: str, officer: str | None) -> None:
    if officer is not None and role not in OFFICER_ROLES:
        raise AccountError(f"a {role} account cannot be a registry officer: give --officer only to officers")


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


_u = api_users.c
_t = api_tokens.c
_USER_COLUMNS = (_u.name, _u.role, _u.factory, _u.created_ns, _u.disabled, _u.officer)


class Accounts:
    """Users and tokens in the state database ``db`` (shared with the alerts and the dead
    letters; closed here only when :func:`open_accounts` opened it for these accounts alone)."""

    def __init__(self, db: StateDb, *, owns_db: bool = False) -> None:
        self.db = db
        self._owns_db = owns_db
        self._hasher = PasswordHasher()
        # Verified against when the user does not exist, so that a login takes as long for an
        # unknown name as for a wrong password.
        self._dummy_hash = self._hasher.hash(secrets.token_urlsafe(16))

    @property
    def kind(self) -> str:
        return self.db.kind

    def close(self) -> None:
        if self._owns_db:
            self.db.close()

    # -- users ---------------------------------------------------------------------------------
    def add_user(
        self,
        name: str,
        role: str,
        password: str,
        now_ns: int,
        factory: str | None = None,
        officer: str | None = None,
    ) -> User:
        check_name(name)
        check_role(role, factory)
        check_officer_link(role, officer)
        check_password(password, role, name)
        digest = self._hasher.hash(password)
        try:
            with self.db.write() as conn:
                if officer is not None:
                    self._check_officer_free(conn, officer, name)
                conn.execute(
                    api_users.insert().values(
                        name=name,
                        role=role,
                        factory=factory,
                        password_hash=digest,
                        created_ns=now_ns,
                        disabled=0,
                        officer=officer,
                    )
                )
        except IntegrityError:
            raise AccountError(f"user '{name}' exists already") from None
        return User(name, role, factory, now_ns, officer=officer)

    def set_officer(self, name: str, officer: str | None) -> User:
        """Link the account ``name`` to the registry officer ``officer`` (None: unlink it)."""
        with self.db.write() as conn:
            row = conn.execute(sa.select(*_USER_COLUMNS).where(_u.name == name).with_for_update()).first()
            if row is None:
                raise AccountError(f"no user '{name}'")
            check_officer_link(str(row.role), officer)
            if officer is not None:
                self._check_officer_free(conn, officer, name)
            conn.execute(api_users.update().where(_u.name == name).values(officer=officer))
            return _user(conn.execute(sa.select(*_USER_COLUMNS).where(_u.name == name)).one())

    @staticmethod
    def _check_officer_free(conn: sa.Connection, officer: str, name: str) -> None:
        # The unique index keeps it so under a race; this names the account that has it.
        holder = conn.execute(
            sa.select(_u.name).where(_u.officer == officer, _u.name != name)
        ).scalar_one_or_none()
        if holder is not None:
            raise AccountError(f"registry officer '{officer}' is the account '{holder}' already")

    def account_of_officer(self, officer: str) -> User | None:
        with self.db.read() as conn:
            row = conn.execute(sa.select(*_USER_COLUMNS).where(_u.officer == officer)).first()
        return _user(row) if row else None

    def get_user(self, name: str) -> User | None:
        with self.db.read() as conn:
            row = conn.execute(sa.select(*_USER_COLUMNS).where(_u.name == name)).first()
        return _user(row) if row else None

    def list_users(self) -> list[User]:
        with self.db.read() as conn:
            rows = conn.execute(sa.select(*_USER_COLUMNS).order_by(_u.name)).all()
        return [_user(row) for row in rows]

    def set_password(self, name: str, password: str) -> None:
        user = self.get_user(name)
        if user is None:
            raise AccountError(f"no user '{name}'")
        check_password(password, user.role, name)
        digest = self._hasher.hash(password)
        with self.db.write() as conn:
            changed = conn.execute(api_users.update().where(_u.name == name).values(password_hash=digest))
            if changed.rowcount != 1:
                raise AccountError(f"no user '{name}'")
            conn.execute(api_tokens.delete().where(_t.user_name == name))

    def set_disabled(self, name: str, disabled: bool) -> User:
        with self.db.write() as conn:
            changed = conn.execute(api_users.update().where(_u.name == name).values(disabled=int(disabled)))
            if changed.rowcount != 1:
                raise AccountError(f"no user '{name}'")
            if disabled:
                conn.execute(api_tokens.delete().where(_t.user_name == name))
            return _user(conn.execute(sa.select(*_USER_COLUMNS).where(_u.name == name)).one())

    def authenticate(self, name: str, password: str) -> User | None:
        """The user when ``password`` is theirs and the account is enabled, else None."""
        with self.db.read() as conn:
            row = conn.execute(sa.select(*_USER_COLUMNS, _u.password_hash).where(_u.name == name)).first()
        if row is None:
            self._verify(self._dummy_hash, password)
            return None
        stored = str(row.password_hash)
        if not self._verify(stored, password) or bool(row.disabled):
            return None
        if self._hasher.check_needs_rehash(stored):
            with self.db.write() as conn:
                conn.execute(
                    api_users.update()
                    .where(_u.name == name)
                    .values(password_hash=self._hasher.hash(password))
                )
        return _user(row)

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
        with self.db.write() as conn:
            conn.execute(api_tokens.delete().where(_t.expires_ns <= now_ns))
            conn.execute(
                api_tokens.insert().values(
                    token_hash=token_digest(token), user_name=user.name, issued_ns=now_ns, expires_ns=expires
                )
            )
        return token, expires

    def user_for_token(self, token: str, now_ns: int) -> User | None:
        with self.db.read() as conn:
            row = conn.execute(
                sa.select(*_USER_COLUMNS)
                .join_from(api_tokens, api_users, _u.name == _t.user_name)
                .where(_t.token_hash == token_digest(token), _t.expires_ns > now_ns, _u.disabled == 0)
            ).first()
        return _user(row) if row else None

    def revoke_token(self, token: str) -> bool:
        with self.db.write() as conn:
            gone = conn.execute(api_tokens.delete().where(_t.token_hash == token_digest(token)))
            return bool(gone.rowcount == 1)


def _user(row: Sequence[Any]) -> User:
    name, role, factory, created, disabled, officer = row[:6]
    return User(
        str(name),
        str(role),
        None if factory is None else str(factory),
        int(created),
        bool(disabled),
        None if officer is None else str(officer),
    )


def open_accounts(url: str | None, path: Path) -> Accounts:
    """Accounts on a state database of their own: PostgreSQL when ``url`` is given, else the
    SQLite file ``path``. The server shares one database between its stores instead."""
    return Accounts(open_state_db(url, path), owns_db=True)
