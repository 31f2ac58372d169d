"""The duties in reports: a ``duties`` section (notices with their deadlines, lab checks with
E = M - T, substitute stack tests, months without a lab check, the hours of accepted shutdown
windows that leave the expected hours), for whoever sees the factory; and an ``integrity``
section (the findings with the officers' dispositions), for officers only."""

from __future__ import annotations

import html
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from alerts.duties.deadlines import (
    day_start_ns,
    lab_check_periods,
    needs_substitute_test,
    substitute_test_due_ns,
)
from alerts.duties.model import ACCEPTED, CEMS, MALFUNCTION, SHUTDOWN
from eit.store import Store
from eit.timeutil import NS_PER_S, ns_to_iso

if TYPE_CHECKING:
    from alerts.duties.job import DutiesJob

HOUR_NS = 3600 * NS_PER_S
MINUTE_NS = 60 * NS_PER_S


def online_value_at(store: Store, factory: str, device: str, channel: str, ts_ns: int) -> float | None:
    """The online value M at a grab sample's time: the mean of that clock minute's valid points
    (None when the minute holds none)."""
    start = ts_ns - ts_ns % MINUTE_NS
    buckets = store.aggregate(factory, device, channel, start, start + MINUTE_NS, 60, "mean", valid_only=True)
    return buckets[0].value if buckets else None


def months_between(first: date, last: date) -> list[str]:
    out, cur = [], first.replace(day=1)
    while cur <= last:
        out.append(f"{cur.year:04d}-{cur.month:02d}")
        cur = (cur + timedelta(days=32)).replace(day=1)
    return out


def duties_report(job: DutiesJob, first: date, last: date, factory: str | None, now: int) -> dict[str, Any]:
    from alerts.duties.job import duty_devices

    tz, d, rules = job.tz, job.duties, job.rules
    start, end = day_start_ns(first, tz), day_start_ns(last + timedelta(days=1), tz)
    periods = lab_check_periods(first, last, rules, tz)
    devices = []
    for dev in duty_devices(job.registry):
        if factory is not None and dev.factory != factory:
            continue
        notices = d.notices(dev.factory, dev.device, start_ns=start, end_ns=end, limit=10_000)
        tests = {t.notice_id: t for t in d.stack_tests([n.id for n in notices])}
        rows = []
        for n in reversed(notices):
            row = n.to_json()
            if n.system == CEMS and n.kind == MALFUNCTION:
                needed = needs_substitute_test(n.started_ns, n.ended_ns, now, rules)
                row["substitute_test_required"] = needed
                row["substitute_test_due"] = (
                    ns_to_iso(substitute_test_due_ns(n.started_ns, rules, tz)) if needed else None
                )
                row["substitute_test"] = tests[n.id].to_json() if n.id in tests else None
            if n.kind == MALFUNCTION and n.fix_due_ns is not None:
                # Fixed after the deadline, or not fixed and the deadline passed (None: not yet due).
                done_ns = n.fixed_ns if n.fixed_ns is not None else now
                late = done_ns >= n.fix_due_ns
                row["fixed_late"] = late if n.fixed_ns is not None or late else None
            rows.append(row)
        shut = sum(
            max(0, min(n.ended_ns or end, end) - max(n.started_ns, start))
            for n in notices
            if n.kind == SHUTDOWN and n.state == ACCEPTED
        )
        checks = d.lab_checks(dev.factory, dev.device, start, end)
        missing = []
        if dev.system == "wpms":
            for p in periods:
                month_start = day_start_ns(date(p.year, p.month, 1), tz)
                done = {c.channel for c in d.lab_checks(dev.factory, dev.device, month_start, p.sample_by_ns)}
                for ch in rules.lab_channels:
                    if ch in dev.channels and ch not in done:
                        missing.append(
                            {
                                "period": p.label,
                                "channel": ch,
                                "sample_by": ns_to_iso(p.sample_by_ns),
                                "due_passed": now >= p.sample_by_ns,
                            }
                        )
        devices.append(
            {
                "system": dev.system,
                "factory": dev.factory,
                "device": dev.device,
                "period_hours": (end - start) // HOUR_NS,
                "accepted_shutdown_hours": round(shut / HOUR_NS, 2),
                "expected_hours": round((end - start - shut) / HOUR_NS, 2),
                "notices": rows,
                "lab_checks": [c.to_json() for c in checks],
                "lab_checks_missing": missing,
            }
        )
    return {
        "report": "duties",
        "from": first.isoformat(),
        "to": last.isoformat(),
        "period_start": ns_to_iso(start),
        "period_end": ns_to_iso(end),
        "sources": {"wpms": rules.wpms_source, "cems": rules.cems_source, "values": rules.to_json()},
        "devices": devices,
    }


def integrity_section(job: DutiesJob, months: list[str], factory: str | None = None) -> dict[str, Any]:
    """The officers' section: findings of ``months`` with dispositions (never for operators)."""
    from alerts.integrity.analyse import NOTICE_EN, NOTICE_TH

    found = job.duties.findings(months, factory)
    counts: dict[str, int] = {}
    for f in found:
        counts[f.disposition or "none"] = counts.get(f.disposition or "none", 0) + 1
    return {
        "audience": "officers",
        "notice": {"en": NOTICE_EN, "th": NOTICE_TH},
        "months": months,
        "dispositions": counts,
        "findings": [f.to_json() for f in found],
    }


def add_duty_sections(
    report: dict[str, Any],
    job: DutiesJob,
    first: date,
    last: date,
    factory: str | None,
    now: int,
    *,
    officers: bool,
) -> dict[str, Any]:
    """The compliance report with its duties section, and the integrity section for officers.
    The hours of accepted shutdown windows leave each channel's expected hours (an hour without
    valid data inside one is no invalid hour), so completeness counts the hours the monitor was
    due to run."""
    leave_shutdown_hours(report, job)
    report["duties"] = duties_report(job, first, last, factory, now)
    if officers:
        report["integrity"] = integrity_section(job, months_between(first, last), factory)
    return report


def leave_shutdown_hours(report: dict[str, Any], job: DutiesJob) -> None:
    from eit.timeutil import parse_iso_ns

    start, end = parse_iso_ns(report["period_start"]), parse_iso_ns(report["period_end"])
    threshold = float(report.get("completeness_threshold", 0.8))
    for f in report["factories"]:
        windows: dict[str, list[tuple[int, int]]] = {}
        for n in job.duties.notices(f["id"], kind=SHUTDOWN, state=ACCEPTED, start_ns=start, end_ns=end):
            if n.ended_ns is not None:
                windows.setdefault(n.device, []).append((n.started_ns, n.ended_ns))
        for ch in f["channels"]:
            spans = windows.get(ch["device"])
            if not spans:
                continue
            kept, left = [], 0
            for hour in ch["invalid_hours"]:
                h0, h1 = parse_iso_ns(hour["start"]), parse_iso_ns(hour["end"])
                if any(s0 <= h0 and h1 <= s1 for s0, s1 in spans):
                    left += 1
                else:
                    kept.append(hour)
            ch["invalid_hours"] = kept
            ch["shutdown_hours"] = left
            ch["expected_hours"] = int(ch["expected_hours"]) - left
            share = ch["valid_hours"] / ch["expected_hours"] if ch["expected_hours"] else 1.0
            ch["completeness"] = round(share, 4)
            ch["complete"] = share >= threshold - 1e-12


def duties_csv_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows of the compliance report's CSV (its columns) for the duties and integrity sections."""
    rows: list[dict[str, Any]] = []
    for dev in report.get("duties", {}).get("devices", []):
        base = {"factory": dev["factory"], "device": dev["device"]}
        for n in dev["notices"]:
            reason = f"{n['system']} {n['kind']} {n['state']} ({n['origin']}); report due {n['report_due']}"
            if n.get("fix_due"):
                reason += f"; fix due {n['fix_due']}"
            if n.get("substitute_test_due"):
                reason += f"; substitute stack test due {n['substitute_test_due']}"
            rows.append(base | {"row": "duty_notice", "start": n["start"], "end": n["end"], "reason": reason})
        for c in dev["lab_checks"]:
            rows.append(
                base
                | {
                    "row": "lab_check",
                    "channel": c["channel"],
                    "start": c["sampled_at"],
                    "average": c["deviation"],
                    "unit": c["unit"],
                    "reason": f"E = M - T: M {c['online_value']}, T {c['lab_value']}",
                }
            )
        for m in dev["lab_checks_missing"]:
            rows.append(
                base
                | {
                    "row": "lab_check_missing",
                    "channel": m["channel"],
                    "end": m["sample_by"],
                    "reason": m["period"],
                }
            )
        if dev["accepted_shutdown_hours"]:
            rows.append(
                base
                | {
                    "row": "accepted_shutdown",
                    "expected_hours": dev["expected_hours"],
                    "reason": f"{dev['accepted_shutdown_hours']} h",
                }
            )
    for f in report.get("integrity", {}).get("findings", []):
        rows.append(
            {
                "row": "integrity_finding",
                "factory": f["factory"],
                "device": f["device"],
                "channel": f.get("channel") or "",
                "start": f["month"],
                "reason": f"{f['kind']} score {f['score']}; disposition {f['disposition'] or 'none'}",
            }
        )
    return rows


def _row(cells: list[str], cls: str = "") -> str:
    attr = f" class='{cls}'" if cls else ""
    return f"<tr{attr}>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>"


def _head(names: list[str]) -> str:
    return "<table><tr>" + "".join(f"<th>{html.escape(n)}</th>" for n in names) + "</tr>"


def evidence_chart(finding: dict[str, Any]) -> str:
    """An SVG strip of the finding's month, one column per day, a mark at each clock hour the
    evidence names (the hours concerned, in the month's UTC days): when it happened at a glance."""
    from datetime import datetime

    year, month = (int(x) for x in str(finding["month"]).split("-"))
    days = (
        ((date(year + month // 12, month % 12 + 1, 1) - date(year, month, 1)).days)
        if 1 <= month <= 12
        else 31
    )
    width, height, cell = days * 12, 24 * 3, 12
    marks = []
    for text in finding.get("hours", []):
        try:
            t = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
        except ValueError:
            continue
        if (t.year, t.month) != (year, month):
            continue
        marks.append(
            f"<rect class='mark' x='{(t.day - 1) * cell}' y='{t.hour * 3}' width='{cell - 1}' height='3'/>"
        )
    grid = "".join(
        f"<line x1='{d * cell}' y1='0' x2='{d * cell}' y2='{height}'/>" for d in range(0, days + 1, 7)
    )
    label = html.escape(
        f"{finding['kind']}: {len(marks)} hours of {finding['month']} (days across, hours down, UTC)"
    )
    return (
        f"<svg class='evidence' role='img' aria-label='{label}' width='{width}' height='{height}'"
        f" viewBox='0 0 {width} {height}'><title>{label}</title>"
        f"<rect width='{width}' height='{height}' fill='#f4f6f8'/><g stroke='#ccc'>{grid}</g>"
        f"<g fill='#b00'>{''.join(marks)}</g></svg>"
    )


def duties_html(report: dict[str, Any]) -> list[str]:
    e = html.escape
    parts: list[str] = []
    duties = report.get("duties")
    if duties:
        parts.append("<h2>Duties of WPMS and CEMS monitors</h2>")
        parts.append(f"<p>{e(duties['sources']['wpms'])}; {e(duties['sources']['cems'])}</p>")
        for dev in duties["devices"]:
            parts.append(
                f"<h3>{e(dev['system'].upper())} {e(dev['factory'])}/{e(dev['device'])}</h3>"
                f"<p>expected hours {dev['expected_hours']} of {dev['period_hours']}"
                f" (accepted shutdown {dev['accepted_shutdown_hours']} h)</p>"
            )
            if dev["notices"]:
                parts.append(
                    _head(["notice", "from", "to", "state", "report due", "late", "fix due", "stack test"])
                )
                for n in dev["notices"]:
                    test = n.get("substitute_test")
                    due = n.get("substitute_test_due")
                    test_text = test["tested_at"] if test else (f"due {due}" if due else "")
                    cells = [f"{n['kind']} ({n['origin']})", n["start"], n["end"] or "", n["state"]]
                    cells += [n["report_due"] or "", "yes" if n["reported_late"] else "", n["fix_due"] or ""]
                    parts.append(_row([*cells, test_text]))
                parts.append("</table>")
            if dev["lab_checks"] or dev["lab_checks_missing"]:
                parts.append(_head(["lab check", "sampled", "M online", "T lab", "E = M - T"]))
                for c in dev["lab_checks"]:
                    values = [c["online_value"], c["lab_value"], c["deviation"]]
                    parts.append(_row([c["channel"], c["sampled_at"], *(str(v) for v in values)]))
                for m in dev["lab_checks_missing"]:
                    parts.append(_row([m["channel"], f"no lab check in {m['period']}", "", "", ""], "bad"))
                parts.append("</table>")
    integrity = report.get("integrity")
    if integrity:
        parts.append("<h2>Data integrity (officers only)</h2>")
        parts.append(f"<p>{e(integrity['notice']['en'])}</p><p lang='th'>{e(integrity['notice']['th'])}</p>")
        parts.append(
            _head(["month", "device", "kind", "score", "disposition", "explanation", "hours concerned"])
        )
        for f in integrity["findings"]:
            device = f"{f['factory']}/{f['device']}"
            disposition = f["disposition"] or "none"
            cells = [f["month"], device, f["kind"], str(f["score"]), disposition, f["explanation"]["en"]]
            parts.append(_row(cells).removesuffix("</tr>") + f"<td>{evidence_chart(f)}</td></tr>")
        parts.append("</table>")
    return parts
