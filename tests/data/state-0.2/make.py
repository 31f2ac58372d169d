"""Make the state database of the release before the duties (commit 51f4589), with that
release's own code, for tests/test_duties_upgrade.py (see tests/data/README.md).

    git -C REPO archive 51f4589 | tar -x -C /tmp/eit-0.2
    PYTHONPATH=/tmp/eit-0.2 python make.py sqlite state.db
    PYTHONPATH=/tmp/eit-0.2 python make.py postgresql URL   # then pg_dump (tests/data/README.md)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from alerts.state import AlertStore
from server.accounts import Accounts
from statedb import open_state_db

T0 = 1_795_752_000 * 1_000_000_000  # 2026-11-27T04:00:00Z


def main(kind: str, where: str) -> None:
    db = open_state_db(where, Path("unused.db")) if kind == "postgresql" else open_state_db(None, Path(where))
    alerts = AlertStore(db)
    so2 = alerts.open_alert(
        ("kaeng-khoi-biomass", "boiler-1", "so2", "limit"),
        "critical",
        "SO2 above its limit",
        T0,
        72.0,
        60.0,
        "ppm",
    )
    stale = alerts.open_alert(
        ("siam-cassava-starch", "outfall-1", "*", "stale"), "warning", "no data", T0 + 60
    )
    assert so2 is not None and stale is not None
    alerts.acknowledge(so2.id, "olivia", T0 + 120, "looking")
    alerts.add_response(so2.id, "kaeng-khoi-biomass", "kk-op", "soot blowing", "shortened", T0 + 180)
    Accounts(db).add_user("olivia", "officer", "olivia-pass-2026", T0)
    with db.read() as conn:
        versions = [v for (v,) in conn.exec_driver_sql("SELECT version FROM schema_version ORDER BY version")]
    db.close()
    made = {"so2_case": so2.id, "stale_case": stale.id, "versions": versions}
    Path(f"made-{kind}.json").write_text(json.dumps(made, indent=2) + "\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
