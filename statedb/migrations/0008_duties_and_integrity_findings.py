"""The duties of WPMS and CEMS monitors, and the officers' integrity findings.

- ``duty_notices``: malfunction and planned-shutdown notices of a monitor, filed by the factory
  or inferred from its data, with the deadlines set when the notice was recorded, an officer's
  acceptance of a shutdown window, and the repair;
- ``lab_checks``: an online BOD/COD value against a lab-analysed grab sample (E = M - T);
- ``stack_tests``: the substitute stack test of a CEMS that was down long enough;
- ``duty_attachments``: the lab and stack-test reports operators attach (PDF, size-limited);
- ``integrity_findings``: the integrity analytics' findings, one row per finding id, with an
  officer's disposition;
- ``duty_audit``: every change of the above, who made it, when and what.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Double,
    Identity,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    Text,
    text,
)
from sqlalchemy.engine import Connection

_Id = BigInteger().with_variant(Integer(), "sqlite")
_m = MetaData()

_notices = Table(
    "duty_notices",
    _m,
    Column("id", _Id, Identity(always=True), primary_key=True),
    Column("system", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("origin", Text, nullable=False),
    Column("factory", Text, nullable=False),
    Column("device", Text, nullable=False),
    Column("started_ns", BigInteger, nullable=False),
    Column("ended_ns", BigInteger),
    Column("state", Text, nullable=False),
    Column("cause", Text, nullable=False, server_default=text("''")),
    Column("filed_ns", BigInteger),
    Column("filed_by", Text),
    Column("recorded_ns", BigInteger, nullable=False),
    Column("report_due_ns", BigInteger),
    Column("fix_due_ns", BigInteger),
    Column("decided_ns", BigInteger),
    Column("decided_by", Text),
    Column("fixed_ns", BigInteger),
    sqlite_autoincrement=True,
)
_lab_checks = Table(
    "lab_checks",
    _m,
    Column("id", _Id, Identity(always=True), primary_key=True),
    Column("factory", Text, nullable=False),
    Column("device", Text, nullable=False),
    Column("channel", Text, nullable=False),
    Column("sampled_ns", BigInteger, nullable=False),
    Column("lab_value", Double, nullable=False),
    Column("online_value", Double),
    Column("deviation", Double),
    Column("unit", Text, nullable=False),
    Column("laboratory", Text, nullable=False, server_default=text("''")),
    Column("entered_ns", BigInteger, nullable=False),
    Column("entered_by", Text, nullable=False),
    Column("report_due_ns", BigInteger, nullable=False),
    Column("attachment_id", BigInteger),
    sqlite_autoincrement=True,
)
_stack_tests = Table(
    "stack_tests",
    _m,
    Column("id", _Id, Identity(always=True), primary_key=True),
    Column("notice_id", BigInteger, nullable=False),
    Column("factory", Text, nullable=False),
    Column("device", Text, nullable=False),
    Column("tested_ns", BigInteger, nullable=False),
    Column("results", Text, nullable=False),
    Column("laboratory", Text, nullable=False, server_default=text("''")),
    Column("entered_ns", BigInteger, nullable=False),
    Column("entered_by", Text, nullable=False),
    Column("attachment_id", BigInteger),
    sqlite_autoincrement=True,
)
_attachments = Table(
    "duty_attachments",
    _m,
    Column("id", _Id, Identity(always=True), primary_key=True),
    Column("factory", Text, nullable=False),
    Column("filename", Text, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("sha256", Text, nullable=False),
    Column("content", LargeBinary, nullable=False),
    Column("uploaded_ns", BigInteger, nullable=False),
    Column("uploaded_by", Text, nullable=False),
    sqlite_autoincrement=True,
)
_findings = Table(
    "integrity_findings",
    _m,
    Column("id", Text, primary_key=True),
    Column("factory", Text, nullable=False),
    Column("device", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("month", Text, nullable=False),
    Column("score", Double, nullable=False),
    Column("finding", Text, nullable=False),
    Column("found_ns", BigInteger, nullable=False),
    Column("updated_ns", BigInteger, nullable=False),
    Column("disposition", Text, nullable=False, server_default=text("''")),
    Column("disposed_by", Text),
    Column("disposed_ns", BigInteger),
    Column("note", Text, nullable=False, server_default=text("''")),
)
_audit = Table(
    "duty_audit",
    _m,
    Column("seq", _Id, Identity(always=True), primary_key=True),
    Column("subject", Text, nullable=False),
    Column("ts_ns", BigInteger, nullable=False),
    Column("actor", Text, nullable=False),
    Column("action", Text, nullable=False),
    Column("detail", Text, nullable=False, server_default=text("''")),
    sqlite_autoincrement=True,
)
_INDEXES = (  # bound to their tables: created with them
    Index("duty_notices_device", _notices.c.factory, _notices.c.device, _notices.c.started_ns),
    Index("duty_notices_state", _notices.c.state, _notices.c.id),
    Index("lab_checks_device", _lab_checks.c.factory, _lab_checks.c.device, _lab_checks.c.sampled_ns),
    Index("stack_tests_notice", _stack_tests.c.notice_id, _stack_tests.c.id),
    Index("integrity_findings_month", _findings.c.month, _findings.c.factory, _findings.c.device),
    Index("duty_audit_subject", _audit.c.subject, _audit.c.seq),
)


def upgrade(conn: Connection) -> None:
    _m.create_all(conn)
