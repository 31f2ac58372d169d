"""Each account's notification preferences (alerts/notifiers/preferences.py): whether it mutes
non-critical items, its language for notifications (accounts that are no registry officer), and
the channels it added (e-mail addresses, Apprise URLs). Who is on duty stays the site
registry's: these tables add deliveries and mute items, never route."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Integer, MetaData, PrimaryKeyConstraint, Table, Text, text
from sqlalchemy.engine import Connection

_m = MetaData()

Table(
    "notification_preferences",
    _m,
    Column("user_name", Text, primary_key=True),
    Column("mute_non_critical", Integer, nullable=False, server_default=text("0")),
    Column("language", Text),
    Column("updated_ns", BigInteger, nullable=False),
)
Table(
    "notification_channels",
    _m,
    Column("user_name", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("address", Text, nullable=False),
    Column("added_ns", BigInteger, nullable=False),
    PrimaryKeyConstraint("user_name", "kind", "address"),
)


def upgrade(conn: Connection) -> None:
    _m.create_all(conn, checkfirst=True)
