"""A login flood against a real `eit serve` and Mosquitto (testbed/login_flood.py): 200
concurrent failed logins, from one address with forged X-Forwarded-For headers and from a botnet
behind the trusted proxy. The server's memory stays within 150 MB of what it held before, the
owner logs in from an address of their own during the flood, and no scan waits more than 5 s to
be stored (and so acknowledged) while it lasts.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from testbed.login_flood import ScanProbe, flood, flood_rig, owner_logs_in, post_login, proc_status_kb
from testbed.services import Mosquitto

pytestmark = [pytest.mark.integration, pytest.mark.serial]  # times and measures a process

DIRECT, BOTNET = 150, 50


def test_a_login_flood_keeps_memory_flat_ingest_moving_and_lets_the_owner_in(
    tmp_path: Path, broker: Mosquitto
) -> None:
    with flood_rig(tmp_path, broker.port) as rig:
        # The baseline after one good login: Argon2's first hash and the worker threads are made.
        assert post_login(rig.http_port, "olivia", rig.owner_password, source="127.0.0.3").status == 200
        baseline_kb = proc_status_kb(rig.pid, "VmRSS")
        owner: dict[str, object] = {}

        def owner_meanwhile() -> None:
            try:
                owner["result"] = owner_logs_in(rig.http_port, rig.owner_password, deadline_s=120)
            except AssertionError as exc:
                owner["error"] = str(exc)

        with ScanProbe(rig.broker_port, rig.readings_db) as probe:
            someone = threading.Timer(1.0, owner_meanwhile)
            someone.start()
            result = flood(rig.http_port, DIRECT, BOTNET)
            someone.join(150)
        peak_kb = proc_status_kb(rig.pid, "VmHWM")
        growth_mb = (peak_kb - baseline_kb) / 1024
        print(
            f"flood {result.seconds:.1f} s: attacker {result.attacker}, botnet {result.botnet}; peak RSS"
            f" +{growth_mb:.0f} MB over {baseline_kb // 1024} MB; owner {owner};"
            f" worst scan wait {probe.worst_wait_s():.2f} s"
        )

        assert "error" not in owner, owner["error"]
        assert "result" in owner, "the owner's login did not end"
        # Nothing but refusals, and no error of the server's.
        assert set(result.attacker) <= {401, 429} and set(result.botnet) <= {401, 429}, result
        # Straight from 127.0.0.1 the forged X-Forwarded-For is ignored: one address, whose
        # bucket (http.login.per_address, 20) lets at most 20 attempts reach a password check.
        assert result.attacker.get(401, 0) <= 20, result
        assert result.attacker[429] >= DIRECT - 20, result
        assert growth_mb <= 150, f"peak RSS {peak_kb / 1024:.0f} MB, {growth_mb:.0f} MB over the baseline"
        assert probe.missing() == [], "every published scan is stored"
        assert probe.worst_wait_s() <= 5.0, f"a scan waited {probe.worst_wait_s():.1f} s"
        assert rig.serve.alive()
