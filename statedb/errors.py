"""Errors of the state database. Each names the database (file or URL, never its password)."""

from __future__ import annotations

from eit.errors import EitError


class StateDbError(EitError):
    """The state database cannot do what was asked; the message says which database and why."""


class StateDbUnavailable(StateDbError):
    """The state database cannot be reached: the server is down or restarting, the network is
    cut, or the file stayed locked by another process past the busy timeout. Worth retrying."""


class SchemaVersionError(StateDbError):
    """The database was migrated by a newer release than this one: this code does not know its
    tables, so it refuses to use it rather than guess."""
