"""The integrity findings inside the platform: the duties job runs the analytics once a month
over the previous month and keeps the findings for officers; an officer's disposition survives a
rerun, each change is in the audit trail, and the findings never become cases (nothing an
operator or the public reads)."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import yaml

from alerts.duties import DutiesJob, DutyStore, ShutdownCalendar
from alerts.duties.rules import load_duty_rules
from alerts.state import open_alert_store
from bench.integrity_town import Generated, generate, load_params, readings, site
from eit.registry import load_registry
from eit.timeutil import parse_iso_ns
from ingest.store.sqlite import SqliteStore

PARAMS = load_params()
DAYS = 8
FIRST_DAY = date.fromisoformat(PARAMS["town"]["month"] + "-01")


def _replayed(g: Generated) -> None:
    """Day 2 copied over day 5 on every channel."""
    for c in g.month.channels.values():
        for arr in (c.value, c.flag):
            arr[5 * 1440 : 6 * 1440] = arr[2 * 1440 : 3 * 1440]
    g.rebuild_hours()


def test_the_monthly_run_keeps_findings_for_officers_once_and_a_rerun_keeps_dispositions(
    tmp_path: Path,
) -> None:
    site_path = tmp_path / "site.yaml"
    site_path.write_text(yaml.safe_dump(site(PARAMS, 201, 2), allow_unicode=True, sort_keys=False))
    registry = load_registry(site_path)
    store = SqliteStore(tmp_path / "readings.db")
    towns = [generate(PARAMS, 201, i) for i in range(2)]
    _replayed(towns[0])
    for g in towns:
        store.write(list(readings(g, 0, DAYS * 1440)))
    alerts = open_alert_store(None, tmp_path / "state.db")
    tz = ZoneInfo(registry.timezone)
    duties = DutyStore(alerts.db, load_duty_rules(), tz)
    job = DutiesJob(registry, store, duties, alerts, ShutdownCalendar(registry), duties.rules)
    try:
        next_month = date(FIRST_DAY.year + FIRST_DAY.month // 12, FIRST_DAY.month % 12 + 1, 1)
        at = parse_iso_ns(f"{next_month.isoformat()}T01:00:00+07:00")
        first = job.run_once(at)
        label = PARAMS["town"]["month"]
        assert first.integrity_month == label and first.integrity_new >= 1
        found = duties.findings([label])
        assert "replay" in {f.kind for f in found if f.factory == "g0000"}
        assert all(f.disposition == "" for f in found)
        # Once a month: the next run does not analyse the month again.
        assert job.run_once(at + 3600 * 10**9).integrity_month is None
        [run] = duties.audit(f"integrity/{label}")
        assert run.actor == "duties" and run.action == "ran"

        replay = next(f for f in found if f.kind == "replay")
        duties.dispose(replay.id, "confirmed", "olivia", at + 10, "the logger replays a day")
        again = job.run_integrity(FIRST_DAY, date(FIRST_DAY.year, FIRST_DAY.month, DAYS), at + 20, "olivia")
        assert again == 0  # the same findings: none new
        kept = next(f for f in duties.findings([label]) if f.id == replay.id)
        assert (kept.disposition, kept.disposed_by, kept.note) == (
            "confirmed",
            "olivia",
            "the logger replays a day",
        )
        assert kept.finding["evidence"]["lag_minutes"] == 3 * 1440
        actions = [(a.actor, a.action) for a in duties.audit(f"finding/{replay.id}")]
        assert actions == [("integrity", "found"), ("olivia", "confirmed")]
        # The report's section draws the hours concerned: one mark per hour the evidence names.
        from alerts.duties.report import duties_html, evidence_chart, integrity_section

        page = "\n".join(duties_html({"integrity": integrity_section(job, [label])}))
        hours = [h for h in kept.finding["hours"] if h.startswith(label)]
        chart = evidence_chart(kept.to_json())
        assert hours and chart.count("<rect class='mark'") == len(hours) and chart in page
        assert "Data integrity (officers only)" in page and "hours concerned" in page
        # Findings are no cases: nothing reaches the inbox an operator reads.
        assert alerts.list(limit=100) == []
        assert not np.isnan(kept.score)
    finally:
        store.close()
        alerts.close()
