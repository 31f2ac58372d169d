"""`eit report compliance`: per factory and channel, for a period of Asia/Bangkok days: valid
hours, completeness, each exceedance (period, average, limit, unit, retroactive or not) and each
invalid hour with its reason. Read from the derived data the engine stored (``hourly``,
``rolling``); an hour with no stored point is reported invalid with the reason ``no data``.
The JSON form is documented in README.md ("Compliance report").
"""

from __future__ import annotations

import csv
import html
import io
import json
from collections.abc import Mapping
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

from alerts.compliance import day_bounds
from alerts.duties.report import duties_csv_rows, duties_html
from alerts.evidence import chain_events, channel_share
from alerts.windows import HOUR_NS
from eit.glossary import glossary
from eit.registry import Registry
from eit.store import Store
from eit.storeschema import Hourly, Rolling, series_tags
from eit.timeutil import now_ns, ns_to_datetime, ns_to_iso

# 2: local times beside every UTC time (``local_start``, ``local_end``, ``period_start_local``,
# ``generated_at_local``), each channel's basis and reference O2, each exceedance's
# ``average_basis``; PDF and XLSX renderings (alerts/report_files.py).
REPORT_VERSION = 2


def _local(ts_ns: int, tz: ZoneInfo) -> str:
    return ns_to_datetime(ts_ns).astimezone(tz).isoformat()


def compliance_report(
    registry: Registry,
    store: Store,
    first_day: date,
    last_day: date,
    factory: str | None = None,
    completeness: float = 0.8,
) -> dict[str, Any]:
    if last_day < first_day:
        raise ValueError(f"--to {last_day} is before --from {first_day}")
    if factory is not None and factory not in registry.factories:
        raise ValueError(f"factory '{factory}' is not in the site registry ({', '.join(registry.factories)})")
    tz = ZoneInfo(registry.timezone)
    start, _ = day_bounds(first_day, tz)
    _, end = day_bounds(last_day, tz)
    expected = (end - start) // HOUR_NS
    generated = now_ns()
    factories = []
    for f in registry.factories.values():
        if factory is not None and f.id != factory:
            continue
        channels = []
        for d in f.devices.values():
            if d.kind == "energy":
                continue
            for ch in d.channels.values():
                tags = series_tags((f.id, d.id, ch.id))
                # The hourly average is corrected to the reference O2 where the standard has one.
                shown_o2 = glossary().shown_o2_reference(ch.unit, ch.o2_reference_percent)
                basis = "corrected" if shown_o2 is not None else "measured"
                hourly = {p.ts_ns: p for p in store.query_points(Hourly.NAME, tags, start, end)}
                valid_hours = 0
                invalid = []
                exceedances = []
                for k in range(expected):
                    h = start + k * HOUR_NS
                    p = hourly.get(h)
                    if p is None:
                        invalid.append(
                            {
                                "start": ns_to_iso(h),
                                "end": ns_to_iso(h + HOUR_NS),
                                "local_start": _local(h, tz),
                                "local_end": _local(h + HOUR_NS, tz),
                                "reason": "no data",
                            }
                        )
                        continue
                    if p.fields.get(Hourly.VALID) is True:
                        valid_hours += 1
                    else:
                        invalid.append(
                            {
                                "start": ns_to_iso(h),
                                "end": ns_to_iso(h + HOUR_NS),
                                "local_start": _local(h, tz),
                                "local_end": _local(h + HOUR_NS, tz),
                                "reason": str(p.fields.get(Hourly.REASON, "")),
                            }
                        )
                    if p.fields.get(Hourly.EXCEEDED) is True:
                        exceedances.append(
                            {
                                "averaging": "1h",
                                "start": ns_to_iso(h),
                                "end": ns_to_iso(h + HOUR_NS),
                                "local_start": _local(h, tz),
                                "local_end": _local(h + HOUR_NS, tz),
                                "average": p.fields.get(Hourly.CORRECTED),
                                "average_basis": basis,
                                "measured_average": p.fields.get(Hourly.VALUE),
                                "limit": p.fields.get(Hourly.LIMIT),
                                "unit": p.fields.get(Hourly.LIMIT_UNIT, ch.unit),
                                "retroactive": p.fields.get(Hourly.RETROACTIVE) is True,
                            }
                        )
                for window in ("8h", "24h"):
                    hours = 8 if window == "8h" else 24
                    for p in store.query_points(
                        Rolling.NAME, {**tags, Rolling.WINDOW: window}, start + HOUR_NS, end + 1
                    ):
                        if p.fields.get(Rolling.EXCEEDED) is True:
                            exceedances.append(
                                {
                                    "averaging": window,
                                    "start": ns_to_iso(p.ts_ns - hours * HOUR_NS),
                                    "end": ns_to_iso(p.ts_ns),
                                    "local_start": _local(p.ts_ns - hours * HOUR_NS, tz),
                                    "local_end": _local(p.ts_ns, tz),
                                    "average": p.fields.get(Rolling.VALUE),
                                    "average_basis": "measured",
                                    "measured_average": p.fields.get(Rolling.VALUE),
                                    "limit": p.fields.get(Rolling.LIMIT),
                                    "unit": p.fields.get(Rolling.LIMIT_UNIT, ch.unit),
                                    "retroactive": False,
                                }
                            )
                exceedances.sort(key=lambda e: (e["end"], e["averaging"]))
                share = valid_hours / expected if expected else 0.0
                standards = sorted({lim.origin for lim in (*ch.preset_limits, *ch.permit_limits)})
                channels.append(
                    {
                        "device": d.id,
                        "device_kind": d.kind,
                        "channel": ch.id,
                        "parameter": ch.parameter,
                        "unit": ch.unit,
                        "basis": basis,
                        "o2_reference_percent": shown_o2,
                        "standards": standards,
                        "expected_hours": int(expected),
                        "valid_hours": valid_hours,
                        "completeness": round(share, 4),
                        "complete": share >= completeness - 1e-12,
                        "exceedances": exceedances,
                        "invalid_hours": invalid,
                        # Signed scans: the share of the readings whose signature was verified.
                        "evidence": channel_share(store, f.id, d.id, ch.id, start, end),
                    }
                )
        factories.append(
            {
                "id": f.id,
                "name": f.name,
                "name_th": f.name_th,
                "diw_registration": f.diw_registration,
                "district": f.district,
                "channels": channels,
                # Gaps, reported drops, reorders and conflicts in the devices' chains of signed scans.
                "chain_events": chain_events(store, f.id, f.devices, start, end),
            }
        )
    return {
        "report": "compliance",
        "version": REPORT_VERSION,
        "town": registry.town_id,
        "timezone": registry.timezone,
        "from": first_day.isoformat(),
        "to": last_day.isoformat(),
        "period_start": ns_to_iso(start),
        "period_end": ns_to_iso(end),
        "period_start_local": _local(start, tz),
        "period_end_local": _local(end, tz),
        "completeness_threshold": completeness,
        "generated_at": ns_to_iso(generated),
        "generated_at_local": _local(generated, tz),
        "factories": factories,
    }


CSV_COLUMNS = (
    "row",
    "factory",
    "device",
    "channel",
    "averaging",
    "start",
    "end",
    "average",
    "limit",
    "unit",
    "retroactive",
    "reason",
    "valid_hours",
    "expected_hours",
    "completeness",
    "verified_share",
    # Version 2: the town's local times, the basis of `average` and the measured average.
    "local_start",
    "local_end",
    "average_basis",
    "measured_average",
)

# A cell that starts with one of these is a formula to a spreadsheet (CSV injection): such text is
# written with a leading apostrophe.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value: Any) -> Any:
    """Text a spreadsheet would run as a formula, made inert; numbers pass unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


class _FormulaSafeWriter(csv.DictWriter):  # type: ignore[type-arg]  # generic for mypy only
    """Cells that no spreadsheet runs as a formula (text starting with = + - @ gets an
    apostrophe; numbers stay numbers)."""

    def writerow(self, rowdict: Mapping[str, Any]) -> Any:
        return super().writerow({k: neutralise(v) for k, v in rowdict.items()})


def to_csv(report: dict[str, Any]) -> str:
    out = io.StringIO()
    writer = _FormulaSafeWriter(out, CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for f in report["factories"]:
        for ch in f["channels"]:
            base = {"factory": f["id"], "device": ch["device"], "channel": ch["channel"]}
            writer.writerow(
                {
                    **base,
                    "row": "summary",
                    "start": report["period_start"],
                    "end": report["period_end"],
                    "local_start": report.get("period_start_local", ""),
                    "local_end": report.get("period_end_local", ""),
                    "average_basis": ch.get("basis", ""),
                    "unit": ch["unit"],
                    "valid_hours": ch["valid_hours"],
                    "expected_hours": ch["expected_hours"],
                    "completeness": ch["completeness"],
                    "verified_share": (ch.get("evidence") or {}).get("verified_share"),
                }
            )
            for e in ch["exceedances"]:
                writer.writerow(
                    {
                        **base,
                        "row": "exceedance",
                        "averaging": e["averaging"],
                        "start": e["start"],
                        "end": e["end"],
                        "average": e["average"],
                        "limit": e["limit"],
                        "unit": e["unit"],
                        "retroactive": "yes" if e["retroactive"] else "no",
                        "local_start": e.get("local_start", ""),
                        "local_end": e.get("local_end", ""),
                        "average_basis": e.get("average_basis", ""),
                        "measured_average": e.get("measured_average"),
                    }
                )
            for i in ch["invalid_hours"]:
                writer.writerow(
                    {
                        **base,
                        "row": "invalid_hour",
                        "start": i["start"],
                        "end": i["end"],
                        "local_start": i.get("local_start", ""),
                        "local_end": i.get("local_end", ""),
                        "reason": i["reason"],
                    }
                )
    # The duties and, for officers, the integrity sections (alerts/duties/report.py).
    for row in duties_csv_rows(report):
        writer.writerow(row)
    return out.getvalue()


def sections_html(report: dict[str, Any]) -> list[str]:
    """The report's sections beside the compliance tables (alerts/report_files.py renders those):
    per factory the share of verified readings by channel and the chain of signed scans, then the
    duties of WPMS and CEMS monitors and, for officers, the integrity findings."""
    e = html.escape
    parts: list[str] = []
    for f in report["factories"]:
        parts.append(f"<h2>{e(f['name'])}: verified readings</h2>")
        parts.append("<table><tr><th>device</th><th>channel</th><th>verified readings</th></tr>")
        for ch in f["channels"]:
            parts.append(
                f"<tr><td>{e(ch['device'])}</td><td>{e(ch['channel'])}</td><td>{_share(ch['evidence'])}</td></tr>"
            )
        parts.append("</table>")
        if f["chain_events"]:
            parts.append("<h3>Chain of signed scans</h3><table>")
            parts.append("<tr><th>device</th><th>seen at</th><th>what</th><th>seq</th><th>detail</th></tr>")
            for ev in f["chain_events"]:
                cls = " class='bad'" if ev["kind"] in ("unexplained_gap", "chain_break", "conflict") else ""
                parts.append(
                    f"<tr><td>{e(ev['device'])}</td><td>{e(ev['time'])}</td><td{cls}>{e(str(ev['kind']))}</td>"
                    f"<td>{ev['first_seq']}–{ev['last_seq']}</td><td>{e(str(ev['detail']))}</td></tr>"
                )
            parts.append("</table>")
    parts += duties_html(report)  # the duties and, for officers, the integrity sections
    return parts


def _share(evidence: dict[str, Any]) -> str:
    share = evidence["verified_share"]
    if share is None:
        return "no readings"
    return f"{share:.1%} ({evidence['verified']} of {evidence['readings']})"


def render(report: dict[str, Any], fmt: str, lang: str = "en") -> str:
    """The report as text: json, csv or html (html in ``lang``, th or en)."""
    if fmt == "json":
        return json.dumps(report, ensure_ascii=False, indent=2)
    if fmt == "csv":
        return to_csv(report)
    if fmt == "html":
        from alerts.report_files import to_html as to_html_v2

        return to_html_v2(report, lang)
    raise ValueError(f"unknown format {fmt!r}")
