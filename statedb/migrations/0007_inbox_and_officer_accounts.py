"""The officers' inbox stays fast at tens of thousands of cases, and an account names its registry
officer.

- Indexes for the inbox's filters, each ending in ``id`` so that a filtered page is read newest
  first straight from the index (keyset paging: ``id < before_id ORDER BY id DESC``): severity,
  rule, the opened time (a date range), and a factory's cases by state (an operator's inbox, an
  officer's factory filter).
- ``api_users.officer``: the site registry's officer (``officers:`` of site.yaml) an account logs
  in as, at most one account per officer. Accounts made before have none.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

_STATEMENTS = (
    "CREATE INDEX alerts_severity ON alerts (severity, id)",
    "CREATE INDEX alerts_rule ON alerts (rule, id)",
    "CREATE INDEX alerts_opened ON alerts (opened_ns, id)",
    "CREATE INDEX alerts_factory_state ON alerts (factory, state, id)",
    "ALTER TABLE api_users ADD COLUMN officer TEXT",
    "CREATE UNIQUE INDEX api_users_officer ON api_users (officer)",
)


def upgrade(conn: Connection) -> None:
    for statement in _STATEMENTS:
        conn.execute(sa.text(statement))
