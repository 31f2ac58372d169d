"""The integrity section as JSON, CSV or HTML. The HTML escapes everything it prints; a CSV
cell of text that starts with = + - @ (or a tab or carriage return) is prefixed with a quote so
that no spreadsheet runs it as a formula (numbers are written as numbers)."""

from __future__ import annotations

import csv
import html
import io
import json
import math
from typing import Any

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
CSV_COLUMNS = (
    "id",
    "factory",
    "factory_name",
    "device",
    "channel",
    "month",
    "kind",
    "variant",
    "score",
    "evidence",
    "hours",
    "explanation_en",
    "explanation_th",
)


def neutralise(cell: object) -> str | float | int:
    """A CSV cell that no spreadsheet evaluates: numbers stay numbers, text starting like a
    formula gets a leading apostrophe."""
    if isinstance(cell, bool):
        return str(cell).lower()
    if isinstance(cell, int | float):
        return cell
    text = "" if cell is None else str(cell)
    if text.startswith(FORMULA_START):
        return "'" + text
    return text


def to_csv(report: dict[str, Any]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for f in report["findings"]:
        evidence = "; ".join(f"{k}={v}" for k, v in f["evidence"].items())
        row = [
            f["id"],
            f["factory"],
            f.get("factory_name", ""),
            f["device"],
            f["channel"] or "",
            f["month"],
            f["kind"],
            f["variant"],
            f["score"],
            evidence,
            " ".join(f["hours"]),
            f["explanation"]["en"],
            f["explanation"]["th"],
        ]
        writer.writerow([neutralise(cell) for cell in row])
    return out.getvalue()


def _number(value: object) -> str:
    if isinstance(value, float):
        return "-" if not math.isfinite(value) else f"{value:.4g}"
    return html.escape(str(value))


def to_html(report: dict[str, Any]) -> str:
    e = html.escape
    parts = [
        "<!doctype html><html lang='th'><head><meta charset='utf-8'>",
        f"<title>Integrity findings {e(report['town'])} {e(report['from'])} to {e(report['to'])}</title>",
        "<style>body{font-family:sans-serif}table{border-collapse:collapse;margin-bottom:1em}"
        "td,th{border:1px solid #999;padding:2px 6px;vertical-align:top}.note{background:#fff4d6;"
        "padding:6px}</style></head><body>",
        f"<h1>Integrity findings: {e(report['town'])}</h1>",
        f"<p>{e(report['from'])} to {e(report['to'])} ({e(report['timezone'])}); thresholds"
        f" {e(report['thresholds'])}</p>",
        f"<p class='note'>{e(report['notice']['en'])}<br>{e(report['notice']['th'])}</p>",
        "<h2>Device-months examined</h2><table><tr><th>factory</th><th>device</th><th>month</th>"
        "<th>running hours</th><th>running from</th><th>findings</th><th>not tested</th></tr>",
    ]
    for s in report["device_months"]:
        parts.append(
            f"<tr><td>{e(s['factory'])} {e(s.get('factory_name', ''))}</td><td>{e(s['device'])}</td>"
            f"<td>{e(s['month'])}</td><td>{_number(s['running_hours'])} / {_number(s['hours'])}</td>"
            f"<td>{e(s['running_from'])}</td><td>{_number(s['findings'])}</td>"
            f"<td>{'<br>'.join(e(n) for n in s.get('not_tested', []))}</td></tr>"
        )
    parts.append("</table><h2>Findings</h2>")
    if not report["findings"]:
        parts.append("<p>No finding.</p>")
    for f in report["findings"]:
        channel = f" {e(f['channel'])}" if f["channel"] else ""
        parts.append(
            f"<h3>{e(f['kind'])}: {e(f['factory'])}/{e(f['device'])}{channel} {e(f['month'])}"
            f" <small>score {_number(f['score'])}, id {e(f['id'])}</small></h3>"
        )
        parts.append(f"<p>{e(f['explanation']['en'])}</p><p lang='th'>{e(f['explanation']['th'])}</p>")
        parts.append("<table><tr><th>evidence</th><th>value</th></tr>")
        for key, value in f["evidence"].items():
            parts.append(f"<tr><td>{e(str(key))}</td><td>{_number(value)}</td></tr>")
        parts.append("</table>")
        if f["hours"]:
            shown = ", ".join(e(h) for h in f["hours"][:48])
            more = f" and {len(f['hours']) - 48} more" if len(f["hours"]) > 48 else ""
            parts.append(f"<p>Hours concerned (UTC): {shown}{e(more)}</p>")
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
