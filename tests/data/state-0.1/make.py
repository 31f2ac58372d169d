"""Makes the state database of release 0.1 (commit c08a6e3) in this folder, with that release's
own code: run it with that commit's files first on the path (see tests/data/README.md).

    python make.py sqlite state.db
    python make.py postgresql postgresql://...      (then pg_dump the database)

Not imported by the tests: they read what it made (state.db, postgresql.sql, made.json).
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
S = 1_000_000_000
T0 = 1_795_752_000 * S  # 2026-11-27 04:00 UTC
YEARS_100_S = 100 * 365 * 86400
KK = "kaeng-khoi-biomass"
SC = "siam-cassava-starch"


def make(kind: str, target: str) -> dict[str, Any]:
    # The release's own modules, named at run time: this file is kept beside the data it made,
    # not run against the code of today.
    state = importlib.import_module("alerts.state")
    accounts_module = importlib.import_module("eit.api.accounts")
    url = target if kind == "postgresql" else None
    path = Path(target) if kind == "sqlite" else HERE / "unused.db"
    alerts = state.open_alert_store(url, path)
    accounts = accounts_module.open_accounts(url, path)

    # Alerts in every state, with notes, an assignee, a flap, parameters and claims.
    so2 = alerts.open_alert(
        (KK, "boiler-1", "so2", "limit"),
        "critical",
        "so2 75 ppm above 60 ppm",
        T0,
        75.0,
        60.0,
        "ppm",
        template="exceedance",
        params={"parameter": "so2", "value": "75"},
    )
    alerts.claim_notification(so2.id, 0, "email", "duty@example.org", T0 + 1 * S)
    alerts.claim_notification(so2.id, 0, "webhook", "*", T0 + 1 * S)
    alerts.assign(so2.id, "sam", "olivia", T0 + 10 * S)
    alerts.acknowledge(so2.id, "olivia", T0 + 20 * S, "calling the plant")
    alerts.add_note(so2.id, "olivia", "scrubber pump tripped", T0 + 30 * S)
    dust = alerts.open_alert(
        (KK, "boiler-1", "dust", "limit"),
        "warning",
        "dust provisional",
        T0 + 40 * S,
        130.0,
        120.0,
        "mg/m3",
        provisional=True,
        period_start_ns=T0,
    )
    alerts.update(dust.id, T0 + 50 * S, "confirmed", "hour valid", provisional=False, severity="critical")
    alerts.escalate(dust.id, 1, T0 + 60 * S)
    alerts.claim_notification(dust.id, 1, "email", "supervisor@example.org", T0 + 60 * S)
    alerts.resolve((KK, "boiler-1", "dust", "limit"), T0 + 70 * S)
    alerts.close_alert(dust.id, "sam", T0 + 80 * S, "reviewed")
    cod = alerts.open_alert(
        (SC, "outfall-1", "cod", "limit"), "critical", "cod high", T0 + 90 * S, 150.0, 120.0
    )
    alerts.resolve_id(cod.id, "engine", T0 + 100 * S, "back under the limit")
    alerts.reopen(cod.id, T0 + 110 * S, "condition back")

    # Accounts: officers, an operator, a disabled user; tokens live, expired and of the disabled.
    olivia = accounts.add_user("olivia", "officer", "olivia-old-pass", T0)
    accounts.add_user("sam", "supervisor", "sam-old-pass", T0)
    kk_op = accounts.add_user("kk-op", "operator", "kk-op-old-pass", T0, KK)
    gone = accounts.add_user("gone", "officer", "gone-old-pass", T0)
    live, _ = accounts.issue_token(olivia, T0, YEARS_100_S)
    operator_live, _ = accounts.issue_token(kk_op, T0, YEARS_100_S)
    expired, _ = accounts.issue_token(olivia, T0, 60)
    accounts.issue_token(gone, T0, YEARS_100_S)
    accounts.set_disabled("gone", True)
    response = accounts.add_response(
        so2.id, KK, "kk-op", "filter bag torn", "bags replaced, stack tested", T0 + 35 * S
    )
    alerts.add_note(so2.id, "kk-op", "operator response: filter bag torn", T0 + 35 * S)

    made: dict[str, Any] = {
        "alerts": {"so2": so2.id, "dust": dust.id, "cod": cod.id},
        "passwords": {"olivia": "olivia-old-pass", "sam": "sam-old-pass", "kk-op": "kk-op-old-pass"},
        "tokens": {"olivia": live, "kk-op": operator_live, "olivia-expired": expired},
        "response": response.id,
        "audit": {
            str(a): [[e.actor, e.action, e.detail] for e in alerts.audit(a)]
            for a in (so2.id, dust.id, cod.id)
        },
    }
    if kind == "sqlite":
        letters_module = importlib.import_module("ingest.deadletters")
        letters = letters_module.DeadLetterStore(path)
        letters.add(
            [
                letters_module.DeadLetter(
                    T0, f"eit/{KK}/boiler-1/data", "not_json", "the payload is not JSON", "", "so2=41"
                ),
                letters_module.DeadLetter(
                    T0 + S,
                    f"eit/{KK}/boiler-1/data",
                    "bad_value",
                    "'so2': expected a number, got text ('high')",
                    "scans[0].values.so2",
                    '{"so2": "high"}',
                ),
            ]
        )
        made["dead_letters"] = [[d.id, d.reason, d.location] for d in letters.recent()]
        letters.close()
    alerts.close()
    accounts.close()
    return made


if __name__ == "__main__":
    made = make(sys.argv[1], sys.argv[2])
    (HERE / f"made-{sys.argv[1]}.json").write_text(json.dumps(made, indent=1, sort_keys=True) + "\n")
