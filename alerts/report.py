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
from alerts.integrity.render import neutralise
from alerts.windows import HOUR_NS
from eit.registry import Registry
from eit.store import Store
from eit.storeschema import Hourly, Rolling, series_tags
from eit.timeutil import now_ns, ns_to_datetime, ns_to_iso

REPORT_VERSION = 1


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
                hourly = {p.ts_ns: p for p in store.query_points(Hourly.NAME, tags, start, end)}
                valid_hours = 0
                invalid = []
                exceedances = []
                for k in range(expected):
                    h = start + k * HOUR_NS
                    p = hourly.get(h)
                    if p is None:
                        invalid.append(
                            {"start": ns_to_iso(h), "end": ns_to_iso(h + HOUR_NS), "reason": "no data"}
                        )
                        continue
                    if p.fields.get(Hourly.VALID) is True:
                        valid_hours += 1
                    else:
                        invalid.append(
                            {
                                "start": ns_to_iso(h),
                                "end": ns_to_iso(h + HOUR_NS),
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
                                "average": p.fields.get(Hourly.CORRECTED),
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
                                    "average": p.fields.get(Rolling.VALUE),
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
                        "standards": standards,
                        "expected_hours": int(expected),
                        "valid_hours": valid_hours,
                        "completeness": round(share, 4),
                        "complete": share >= completeness - 1e-12,
                        "exceedances": exceedances,
                        "invalid_hours": invalid,
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
        "completeness_threshold": completeness,
        "generated_at": ns_to_iso(now_ns()),
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
)


class _FormulaSafeWriter(csv.DictWriter):  # type: ignore[type-arg]  # generic for mypy only
    """Cells that no spreadsheet runs as a formula (text starting with = + - @ gets an
    apostrophe; numbers stay numbers: alerts/integrity/render.py)."""

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
                    "unit": ch["unit"],
                    "valid_hours": ch["valid_hours"],
                    "expected_hours": ch["expected_hours"],
                    "completeness": ch["completeness"],
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
                    }
                )
            for i in ch["invalid_hours"]:
                writer.writerow(
                    {
                        **base,
                        "row": "invalid_hour",
                        "start": i["start"],
                        "end": i["end"],
                        "reason": i["reason"],
                    }
                )
    return out.getvalue()


def to_html(report: dict[str, Any]) -> str:
    e = html.escape
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>Compliance report {e(report['town'])} {e(report['from'])} to {e(report['to'])}</title>",
        "<style>body{font-family:sans-serif}table{border-collapse:collapse;margin-bottom:1em}"
        "td,th{border:1px solid #999;padding:2px 6px}.bad{color:#b00}</style></head><body>",
        f"<h1>Compliance report: {e(report['town'])}</h1>",
        f"<p>{e(report['from'])} to {e(report['to'])} ({e(report['timezone'])}); completeness threshold"
        f" {report['completeness_threshold']:.0%}</p>",
    ]
    for f in report["factories"]:
        parts.append(f"<h2>{e(f['name'])} <small>{e(f['name_th'])} {e(f['diw_registration'])}</small></h2>")
        parts.append(
            "<table><tr><th>device</th><th>channel</th><th>valid hours</th><th>completeness</th>"
            "<th>exceedances</th><th>invalid hours</th></tr>"
        )
        for ch in f["channels"]:
            cls = "" if ch["complete"] else " class='bad'"
            parts.append(
                f"<tr><td>{e(ch['device'])}</td><td>{e(ch['channel'])}</td>"
                f"<td>{ch['valid_hours']} / {ch['expected_hours']}</td><td{cls}>{ch['completeness']:.1%}</td>"
                f"<td>{len(ch['exceedances'])}</td><td>{len(ch['invalid_hours'])}</td></tr>"
            )
        parts.append("</table>")
        for ch in f["channels"]:
            if not ch["exceedances"]:
                continue
            parts.append(f"<h3>Exceedances: {e(ch['device'])} {e(ch['channel'])}</h3><table>")
            parts.append(
                "<tr><th>averaging</th><th>from</th><th>to</th><th>average</th><th>limit</th><th>retroactive</th></tr>"
            )
            for x in ch["exceedances"]:
                parts.append(
                    f"<tr><td>{e(x['averaging'])}</td><td>{e(x['start'])}</td><td>{e(x['end'])}</td>"
                    f"<td class='bad'>{x['average']:.4g} {e(x['unit'])}</td>"
                    f"<td>{x['limit']:g} {e(x['unit'])}</td>"
                    f"<td>{'yes' if x['retroactive'] else 'no'}</td></tr>"
                )
            parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts)


def render(report: dict[str, Any], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(report, ensure_ascii=False, indent=2)
    if fmt == "csv":
        return to_csv(report)
    if fmt == "html":
        return to_html(report)
    raise ValueError(f"unknown format {fmt!r}")
