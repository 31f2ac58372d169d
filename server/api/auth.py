"""Who is calling: bearer tokens (OAuth2 password flow), roles and factory scope.

- no token: the public; it sees the published data of factories marked ``public``;
- ``operator``: the published and the detailed data of its own factory, and that factory's
  alerts, to which it answers with the cause and the corrective action;
- ``officer``: every factory; acknowledges, assigns, comments on and resolves alerts;
- ``supervisor``: an officer who also closes alerts;
- ``admin``: a supervisor who also manages accounts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Depends, HTTPException
from fastapi.security import OAuth2PasswordBearer

from eit.registry import Factory
from server.accounts import OFFICER_ROLES, Accounts, User

TOKEN_URL = "/api/v1/token"
bearer = OAuth2PasswordBearer(tokenUrl=TOKEN_URL, auto_error=False)

SUPERVISOR_ROLES = ("supervisor", "admin")


@dataclass(frozen=True, slots=True)
class Principal:
    user: User | None = None
    token: str | None = None

    @property
    def name(self) -> str:
        return self.user.name if self.user else "public"

    @property
    def is_officer(self) -> bool:
        return self.user is not None and self.user.role in OFFICER_ROLES

    def sees(self, factory: Factory) -> bool:
        """Whether this caller may see ``factory`` at all."""
        if self.user is None:
            return factory.public
        if self.user.role in OFFICER_ROLES:
            return True
        return self.user.factory == factory.id

    def sees_details(self, factory: Factory) -> bool:
        """Whether this caller may see more than the published data of ``factory``."""
        return self.user is not None and self.sees(factory)


def unauthorized(detail: str) -> HTTPException:
    return HTTPException(401, detail, headers={"WWW-Authenticate": "Bearer"})


def forbidden(detail: str) -> HTTPException:
    return HTTPException(403, detail)


class Auth:
    """The FastAPI dependencies that say who calls and refuse who may not."""

    def __init__(self, accounts: Accounts, clock: Callable[[], int]) -> None:
        self.accounts = accounts
        self.clock = clock
        accounts_ = accounts
        clock_ = clock

        def principal(token: str | None = Depends(bearer)) -> Principal:
            if token is None:
                return Principal()
            if len(token) > 200:
                raise unauthorized("the bearer token is not one this server issued: log in again")
            user = accounts_.user_for_token(token, clock_())
            if user is None:
                raise unauthorized("the bearer token is unknown or has expired: log in again")
            return Principal(user, token)

        def logged_in(p: Principal = Depends(principal)) -> Principal:
            if p.user is None:
                raise unauthorized(
                    "this needs an account: log in (POST /api/v1/token) and send the bearer token"
                )
            return p

        def officer(p: Principal = Depends(logged_in)) -> Principal:
            if not p.is_officer:
                raise forbidden("only officers (officer, supervisor, admin) may do this")
            return p

        def supervisor(p: Principal = Depends(logged_in)) -> Principal:
            assert p.user is not None
            if p.user.role not in SUPERVISOR_ROLES:
                raise forbidden("only supervisors and admins may do this")
            return p

        def admin(p: Principal = Depends(logged_in)) -> Principal:
            assert p.user is not None
            if p.user.role != "admin":
                raise forbidden("only admins may manage accounts")
            return p

        def operator(p: Principal = Depends(logged_in)) -> Principal:
            assert p.user is not None
            if p.user.role != "operator":
                raise forbidden("only a factory operator account may do this")
            return p

        self.principal = principal
        self.logged_in = logged_in
        self.officer = officer
        self.supervisor = supervisor
        self.admin = admin
        self.operator = operator
