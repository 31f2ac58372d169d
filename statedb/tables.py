"""The tables of the server's state, as the code reads and writes them (SQLAlchemy Core).

This is the shape the numbered migrations (statedb/migrations/) leave a database in; a test
(tests/test_statedb.py) migrates an empty database of each kind and compares it with these
definitions. To change the schema, add a migration and change the table here to match.

Identifiers are 64-bit: an identity column on PostgreSQL, SQLite's INTEGER PRIMARY KEY with
AUTOINCREMENT (never reused). Times are integer nanoseconds since the epoch (UTC). Flags are
integers 0/1, as the first release made them.
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
    PrimaryKeyConstraint,
    Table,
    Text,
    text,
)

metadata = MetaData()

# INTEGER on SQLite: only "INTEGER PRIMARY KEY" is its rowid (and then AUTOINCREMENT applies).
Id = BigInteger().with_variant(Integer(), "sqlite")

# -- alerts (alerts/state.py) -----------------------------------------------------------------

alerts = Table(
    "alerts",
    metadata,
    Column("id", Id, Identity(always=True), primary_key=True),
    Column("factory", Text, nullable=False),
    Column("device", Text, nullable=False),
    Column("parameter", Text, nullable=False),
    Column("rule", Text, nullable=False),
    Column("severity", Text, nullable=False),
    Column("state", Text, nullable=False),
    Column("opened_ns", BigInteger, nullable=False),
    Column("updated_ns", BigInteger, nullable=False),
    Column("message", Text, nullable=False),
    Column("value", Double),
    Column("limit_value", Double),
    Column("unit", Text, nullable=False, server_default=text("''")),
    Column("resolved_ns", BigInteger),
    Column("provisional", Integer, nullable=False, server_default=text("0")),
    Column("retroactive", Integer, nullable=False, server_default=text("0")),
    Column("period_start_ns", BigInteger),
    Column("assignee", Text),
    Column("acknowledged_ns", BigInteger),
    Column("acknowledged_by", Text),
    Column("closed_ns", BigInteger),
    Column("escalation_step", Integer, nullable=False, server_default=text("0")),
    Column("flaps", Integer, nullable=False, server_default=text("0")),
    Column("template", Text, nullable=False, server_default=text("''")),
    Column("params", Text, nullable=False, server_default=text("'{}'")),
    # The case's condition, as the rules see it (ongoing, ended): officers' actions never change it.
    Column("condition", Text, nullable=False, server_default=text("'ended'")),
    Column("condition_since_ns", BigInteger),
    Column("ended_ns", BigInteger),
    Column("previous_id", BigInteger),  # the case of the key's previous episode
    Column("resolution", Text, nullable=False, server_default=text("''")),
    Column("current_value", Double),
    Column("current_ns", BigInteger),
    sqlite_autoincrement=True,
)
# The database itself keeps one case with an ongoing condition per (factory, device, parameter, rule).
Index(
    "alerts_one_ongoing",
    alerts.c.factory,
    alerts.c.device,
    alerts.c.parameter,
    alerts.c.rule,
    unique=True,
    sqlite_where=alerts.c.condition == "ongoing",
    postgresql_where=alerts.c.condition == "ongoing",
)
Index("alerts_state", alerts.c.state, alerts.c.id)
Index("alerts_condition", alerts.c.condition, alerts.c.id)
Index("alerts_factory", alerts.c.factory, alerts.c.id)
Index("alerts_key", alerts.c.factory, alerts.c.device, alerts.c.parameter, alerts.c.rule, alerts.c.id)
# The inbox's filters (0007), each ending in id: a filtered page is read newest first from the index.
Index("alerts_severity", alerts.c.severity, alerts.c.id)
Index("alerts_rule", alerts.c.rule, alerts.c.id)
Index("alerts_opened", alerts.c.opened_ns, alerts.c.id)
Index("alerts_factory_state", alerts.c.factory, alerts.c.state, alerts.c.id)

# Every change of an alert: who, when, what.
alert_audit = Table(
    "alert_audit",
    metadata,
    Column("alert_id", BigInteger, nullable=False),
    Column("seq", Id, Identity(always=True), primary_key=True),
    Column("ts_ns", BigInteger, nullable=False),
    Column("actor", Text, nullable=False),
    Column("action", Text, nullable=False),
    Column("detail", Text, nullable=False, server_default=text("''")),
    sqlite_autoincrement=True,
)
Index("alert_audit_alert", alert_audit.c.alert_id, alert_audit.c.seq)

# A notification is claimed before it is sent: once per (alert, escalation step, notifier,
# recipient), across restarts and processes.
alert_notifications = Table(
    "alert_notifications",
    metadata,
    Column("alert_id", BigInteger, primary_key=True),
    Column("step", Integer, primary_key=True),
    Column("notifier", Text, primary_key=True),
    Column("recipient", Text, primary_key=True),
    Column("ts_ns", BigInteger, nullable=False),
)

# What a factory's operator says about an alert of its factory.
alert_responses = Table(
    "alert_responses",
    metadata,
    Column("id", Id, Identity(always=True), primary_key=True),
    Column("alert_id", BigInteger, nullable=False),
    Column("factory", Text, nullable=False),
    Column("actor", Text, nullable=False),
    Column("ts_ns", BigInteger, nullable=False),
    Column("cause", Text, nullable=False),
    Column("corrective_action", Text, nullable=False),
    sqlite_autoincrement=True,
)
Index("alert_responses_alert", alert_responses.c.alert_id, alert_responses.c.id)

# -- accounts of the HTTP API (server/accounts.py) --------------------------------------------

api_users = Table(
    "api_users",
    metadata,
    Column("name", Text, primary_key=True),
    Column("role", Text, nullable=False),
    Column("factory", Text),
    Column("password_hash", Text, nullable=False),
    Column("created_ns", BigInteger, nullable=False),
    Column("disabled", Integer, nullable=False, server_default=text("0")),
    # 0007: the site registry's officer this account logs in as (officer roles only), once.
    Column("officer", Text),
)
Index("api_users_officer", api_users.c.officer, unique=True)

# Bearer tokens, by their SHA-256 only.
api_tokens = Table(
    "api_tokens",
    metadata,
    Column("token_hash", Text, primary_key=True),
    Column("user_name", Text, nullable=False),
    Column("issued_ns", BigInteger, nullable=False),
    Column("expires_ns", BigInteger, nullable=False),
)
Index("api_tokens_user", api_tokens.c.user_name)
Index("api_tokens_expires", api_tokens.c.expires_ns)

# -- dead letters of the ingest (ingest/deadletters.py) ---------------------------------------

dead_letters = Table(
    "dead_letters",
    metadata,
    Column("id", Id, Identity(always=True), primary_key=True),
    Column("received_ns", BigInteger, nullable=False),
    Column("topic", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("detail", Text, nullable=False),
    Column("location", Text, nullable=False),
    Column("payload", Text, nullable=False),
    # 0004: keyed (a repeat counts), and capped per factory and by age (ingest/deadletters.py).
    Column("factory", Text, nullable=False, server_default=text("''")),
    Column("letter_key", Text, nullable=False, server_default=text("''")),
    Column("last_ns", BigInteger, nullable=False, server_default=text("0")),
    Column("seen_count", BigInteger, nullable=False, server_default=text("1")),
    sqlite_autoincrement=True,
)
Index("dead_letters_reason", dead_letters.c.reason, dead_letters.c.id)
Index("dead_letters_key", dead_letters.c.letter_key, unique=True)
Index("dead_letters_factory", dead_letters.c.factory, dead_letters.c.last_ns, dead_letters.c.id)
Index("dead_letters_last", dead_letters.c.last_ns)

# -- what ran ---------------------------------------------------------------------------------

# One row per migration applied (statedb/migrations/).
schema_version = Table(
    "schema_version",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("name", Text, nullable=False),
    Column("applied_ns", BigInteger, nullable=False),
)

# -- the rules' pending work (alerts/pending.py) -------------------------------------------------

rules_pending = Table(
    "rules_pending",
    metadata,
    Column("kind", Text, primary_key=True),
    Column("factory", Text, primary_key=True),
    Column("device", Text, primary_key=True),
    Column("channel", Text, primary_key=True),
    Column("start_ns", BigInteger, primary_key=True),
    Column("seq", BigInteger, nullable=False),
)

# -- exceedances (alerts/state.py): immutable records of legal periods above a limit --------------

exceedances = Table(
    "exceedances",
    metadata,
    Column("id", Id, Identity(always=True), primary_key=True),
    Column("case_id", BigInteger),
    Column("factory", Text, nullable=False),
    Column("device", Text, nullable=False),
    Column("channel", Text, nullable=False),
    Column("rule", Text, nullable=False),
    Column("averaging", Text, nullable=False),
    Column("period_start_ns", BigInteger, nullable=False),
    Column("period_end_ns", BigInteger, nullable=False),
    Column("average", Double, nullable=False),
    Column("limit_value", Double, nullable=False),
    Column("unit", Text, nullable=False),
    Column("basis", Text, nullable=False),
    Column("method", Text, nullable=False),
    Column("origin", Text, nullable=False, server_default=text("''")),
    Column("retroactive", Integer, nullable=False, server_default=text("0")),
    Column("provisional", Integer, nullable=False, server_default=text("0")),
    Column("outcome", Text),
    Column("decided_ns", BigInteger),
    Column("recorded_ns", BigInteger, nullable=False),
    sqlite_autoincrement=True,
)
Index("exceedances_case", exceedances.c.case_id, exceedances.c.id)
Index("exceedances_period", exceedances.c.factory, exceedances.c.period_start_ns)
Index(
    "exceedances_series",
    exceedances.c.factory,
    exceedances.c.device,
    exceedances.c.channel,
    exceedances.c.rule,
    exceedances.c.period_start_ns,
)

# -- the notifiers' delivery queue (alerts/notifiers/queue.py) ----------------------------------

# One row per notification (notifier, recipient, alert event): what to send, rendered when the
# event was queued, and how its delivery goes. A notifier's worker sends its rows in order;
# ``state`` is pending, then delivered or expired.
notification_queue = Table(
    "notification_queue",
    metadata,
    Column("id", Id, Identity(always=True), primary_key=True),
    Column("notifier", Text, nullable=False),
    Column("alert_id", BigInteger, nullable=False),
    Column("step", Integer, nullable=False),
    Column("event", Text, nullable=False),
    Column("recipient", Text, nullable=False),
    Column("idempotency_key", Text, nullable=False),
    Column("event_json", Text, nullable=False),
    Column("parts", Text, nullable=False),
    Column("state", Text, nullable=False),
    Column("created_ns", BigInteger, nullable=False),
    Column("expires_ns", BigInteger, nullable=False),
    Column("next_attempt_ns", BigInteger, nullable=False),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("last_attempt_ns", BigInteger),
    Column("last_error", Text, nullable=False, server_default=text("''")),
    Column("delivered_ns", BigInteger),
    Column("lease_until_ns", BigInteger),
    sqlite_autoincrement=True,
)
# A notification is queued once per notifier, whatever submits it again.
Index(
    "notification_queue_key",
    notification_queue.c.notifier,
    notification_queue.c.idempotency_key,
    unique=True,
)
# A worker's next row: the oldest pending one of each recipient.
Index(
    "notification_queue_next",
    notification_queue.c.notifier,
    notification_queue.c.state,
    notification_queue.c.recipient,
    notification_queue.c.id,
)
Index("notification_queue_alert", notification_queue.c.alert_id, notification_queue.c.id)

# -- notification preferences of accounts (alerts/notifiers/preferences.py) -----------------

# 0009: what an account mutes and its language for notifications.
notification_preferences = Table(
    "notification_preferences",
    metadata,
    Column("user_name", Text, primary_key=True),
    Column("mute_non_critical", Integer, nullable=False, server_default=text("0")),
    Column("language", Text),
    Column("updated_ns", BigInteger, nullable=False),
)
# 0009: the channels an account added (kind: email or apprise).
notification_channels = Table(
    "notification_channels",
    metadata,
    Column("user_name", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("address", Text, nullable=False),
    Column("added_ns", BigInteger, nullable=False),
    PrimaryKeyConstraint("user_name", "kind", "address"),
)
# -- duties of WPMS and CEMS monitors, and integrity findings (alerts/duties/) -----------------

duty_notices = Table(
    "duty_notices",
    metadata,
    Column("id", Id, Identity(always=True), primary_key=True),
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
lab_checks = Table(
    "lab_checks",
    metadata,
    Column("id", Id, Identity(always=True), primary_key=True),
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
stack_tests = Table(
    "stack_tests",
    metadata,
    Column("id", Id, Identity(always=True), primary_key=True),
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
duty_attachments = Table(
    "duty_attachments",
    metadata,
    Column("id", Id, Identity(always=True), primary_key=True),
    Column("factory", Text, nullable=False),
    Column("filename", Text, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("sha256", Text, nullable=False),
    Column("content", LargeBinary, nullable=False),
    Column("uploaded_ns", BigInteger, nullable=False),
    Column("uploaded_by", Text, nullable=False),
    sqlite_autoincrement=True,
)
integrity_findings = Table(
    "integrity_findings",
    metadata,
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
duty_audit = Table(
    "duty_audit",
    metadata,
    Column("seq", Id, Identity(always=True), primary_key=True),
    Column("subject", Text, nullable=False),
    Column("ts_ns", BigInteger, nullable=False),
    Column("actor", Text, nullable=False),
    Column("action", Text, nullable=False),
    Column("detail", Text, nullable=False, server_default=text("''")),
    sqlite_autoincrement=True,
)
Index("duty_notices_device", duty_notices.c.factory, duty_notices.c.device, duty_notices.c.started_ns)
Index("duty_notices_state", duty_notices.c.state, duty_notices.c.id)
Index("lab_checks_device", lab_checks.c.factory, lab_checks.c.device, lab_checks.c.sampled_ns)
Index("stack_tests_notice", stack_tests.c.notice_id, stack_tests.c.id)
Index(
    "integrity_findings_month",
    integrity_findings.c.month,
    integrity_findings.c.factory,
    integrity_findings.c.device,
)
Index("duty_audit_subject", duty_audit.c.subject, duty_audit.c.seq)
# -- partition leases (ingest/leases.py): the RabbitMQ cluster's ingest workers --------------------

# Which worker may write a partition's readings, until when (wall clock, ns), and the token each
# new holder raises.
partition_leases = Table(
    "partition_leases",
    metadata,
    Column("queue_set", Text, primary_key=True),
    Column("partition", Integer, primary_key=True, autoincrement=False),
    Column("owner", Text, nullable=False),
    Column("token", BigInteger, nullable=False),
    Column("expires_ns", BigInteger, nullable=False),
)
