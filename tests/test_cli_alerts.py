"""`eit alerts` and `eit alert` on a data folder as `eit demo` leaves it (``--data-dir``, no
serve.yaml): text for people in the town's local time, JSON on request, a folder without alerts
refused and left as it was."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from alerts.state import open_alert_store
from eit.timeutil import parse_iso_ns
from server.cli import main

KEY = ("kaeng-khoi-biomass", "boiler-1", "so2", "limit")
OPENED = parse_iso_ns("2026-11-30T05:54:08Z")  # 12:54:08 in Bangkok
HOUR = parse_iso_ns("2026-11-30T05:00:00Z")


@dataclass(frozen=True, slots=True)
class Ran:
    returncode: int
    stdout: str
    stderr: str


Eit = Callable[..., Ran]


@pytest.fixture
def eit(capsys: pytest.CaptureFixture[str]) -> Eit:
    """`eit ARGS` run in this process, as the console entry point runs it."""

    def run(*args: str) -> Ran:
        code = main(list(args))
        out = capsys.readouterr()
        return Ran(code, out.out, out.err)

    return run


def demo_data(tmp_path: Path) -> Path:
    data_dir = tmp_path / "demo-data"
    data_dir.mkdir()
    store = open_alert_store(None, data_dir / "state.db")
    try:
        alert = store.open_alert(
            KEY, "critical", "so2 99.52 ppm above the standard limit 60 ppm", OPENED, 99.52, 60.0, "ppm"
        )
        assert alert is not None
        store.record_exceedance(
            KEY, "1h", HOUR, HOUR + 3600 * 10**9, 99.52, 60.0, "ppm", "corrected to 7 % O2",
            "minute_means/2", "preset th.stack.boiler.biomass", OPENED, provisional=True,
        )  # fmt: skip
        store.add_response(
            alert.id,
            KEY[0],
            "operator",
            "scrubber pump \x1b[2Jtripped",
            "pump restarted",
            OPENED + 60 * 10**9,
        )
        store.open_alert(
            ("siam-cassava-starch", "outfall-1", "cod", "stale"), "warning", "no data", OPENED + 10**9
        )
    finally:
        store.close()
    return data_dir


def test_alerts_lists_the_demo_data_for_people_in_bangkok_time(tmp_path: Path, eit: Eit) -> None:
    data_dir = demo_data(tmp_path)
    out = eit("alerts", "--data-dir", str(data_dir))
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "times in Asia/Bangkok (UTC+07:00)"
    assert lines[1].startswith("#2  open") and "siam-cassava-starch/outfall-1  cod  [stale]" in lines[1]
    first = lines.index(next(line for line in lines if line.startswith("#1 ")))
    assert "critical kaeng-khoi-biomass/boiler-1  so2 99.52 ppm (limit 60 ppm)  [limit]" in lines[first]
    assert "opened 2026-11-30 12:54:08" in lines[first + 1]
    assert lines[-1].startswith("2 alerts shown, newest first")
    as_json = json.loads(eit("alerts", "--data-dir", str(data_dir), "--json", "--state", "open").stdout)
    assert [a["id"] for a in as_json] == [2, 1] and as_json[1]["opened_at"] == "2026-11-30T05:54:08Z"


def test_alert_show_prints_the_case_its_exceedances_responses_and_audit(tmp_path: Path, eit: Eit) -> None:
    data_dir = demo_data(tmp_path)
    out = eit("alert", "show", "1", "--data-dir", str(data_dir))
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert text.startswith("Alert #1: kaeng-khoi-biomass/boiler-1 so2, rule limit\n")
    assert "  state         open (condition ongoing since 2026-11-30 12:54:08)\n" in text
    assert "  value         99.52 ppm against the limit 60 ppm\n" in text
    assert (
        "    1h   2026-11-30 12:00:00 to 2026-11-30 13:00:00: average 99.52 ppm above 60 ppm"
        " (corrected to 7 % O2; preset th.stack.boiler.biomass; minute_means/2, provisional, not decided yet)"
    ) in text
    # What the operator typed is shown escaped, never obeyed by the terminal.
    assert (
        "    2026-11-30 12:55:08 operator: cause: scrubber pump \\x1b[2Jtripped; action: pump restarted"
        in text
    )
    assert "\x1b" not in text
    assert "  audit trail (2):\n    2026-11-30 12:54:08 engine opened: so2 99.52 ppm" in text
    assert text.rstrip().endswith("times in Asia/Bangkok (UTC+07:00)")
    doc = json.loads(eit("alert", "show", "1", "--data-dir", str(data_dir), "--json").stdout)
    assert doc["id"] == 1 and len(doc["exceedances"]) == 1 and doc["responses"][0]["by"] == "operator"
    assert [e["action"] for e in doc["audit"]] == ["opened", "note"]

    missing = eit("alert", "show", "9", "--data-dir", str(data_dir))
    assert missing.returncode == 1 and f"no alert #9 in {data_dir / 'state.db'}" in missing.stderr
    acked = eit("alert", "ack", "1", "--data-dir", str(data_dir), "--by", "duty-rayong")
    assert acked.returncode == 0 and acked.stdout.startswith("#1 acknowledged"), acked.stderr


def test_a_folder_without_alert_state_is_refused_and_left_untouched(tmp_path: Path, eit: Eit) -> None:
    empty = tmp_path / "nothing-ran-here"
    empty.mkdir()
    for args in (("alerts",), ("alert", "show", "1")):
        out = eit(*args, "--data-dir", str(empty))
        assert out.returncode == 1
        assert f"no alerts in {empty}: {empty / 'state.db'} does not exist" in out.stderr
        assert "--data-dir demo-data" in out.stderr and "Traceback" not in out.stderr
    assert list(empty.iterdir()) == []
