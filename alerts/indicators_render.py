"""The town indicators' scoreboard (alerts/indicators.py) as JSON, CSV or an HTML page."""

from __future__ import annotations

import csv
import html
import io
import json
from typing import Any

CSV_COLUMNS = (
    "indicator",
    "owner",
    "unit",
    "direction",
    "kind",
    "period",
    "value",
    "numerator",
    "denominator",
    "factories",
    "factories_in_scope",
    "factories_total",
    "trajectory",
    "on_track",
    "target_illustrative",
)


def rows(board: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per indicator and period."""
    out = []
    for ind in board["indicators"]:
        target = ind["target"]
        for p in ind["periods"]:
            out.append(
                {
                    "indicator": ind["id"],
                    "owner": ind["owner"],
                    "unit": ind["unit"],
                    "direction": ind["direction"],
                    **{k: p[k] for k in CSV_COLUMNS if k in p},
                    "target_illustrative": None if target is None else target["illustrative"],
                }
            )
    return out


def to_csv(board: dict[str, Any]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows(board):
        writer.writerow({k: "" if row.get(k) is None else row[k] for k in CSV_COLUMNS})
    return buf.getvalue()


def to_html(board: dict[str, Any]) -> str:
    e = html.escape
    town = board["town"]
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>Town indicators: {e(town['name'])}</title></head><body>",
        f"<h1>Town indicators: {e(town['name'])}</h1>",
        f"<p>{e(board['from'])} to {e(board['to'])} ({e(town['timezone'])});"
        f" {board['factories_in_scope']} of {board['factories_total']} factories"
        f" ({'public factories' if board['scope'] == 'public' else 'the whole town'}).</p>",
    ]
    for ind in board["indicators"]:
        target = ind["target"]
        parts.append(f"<h2 id='{e(ind['id'])}'>{e(ind['name']['en'])} / {e(ind['name']['th'])}</h2>")
        parts.append(
            f"<p>{e(ind['owner_name']['en'])}; {e(ind['unit'])}, {e(ind['direction'])} is better."
            f" Source: {e(ind['source'])}</p>"
        )
        if target is not None:
            mark = " (illustrative)" if target["illustrative"] else ""
            parts.append(
                f"<p>Target{mark}: {target['target']['value']} by {target['target']['year']}"
                f" from {target['baseline']['value']} in {target['baseline']['year']}"
                f" ({e(target['period'])} values).</p>"
            )
        parts.append(
            "<table><thead><tr><th>period</th><th>value</th><th>factories</th><th>trajectory</th>"
            "<th>on track</th></tr></thead><tbody>"
        )
        for p in ind["periods"]:
            value = "no data" if p["value"] is None else f"{p['value']:g}"
            trajectory = "" if p["trajectory"] is None else f"{p['trajectory']:g}"
            on_track = "" if p["on_track"] is None else ("yes" if p["on_track"] else "no")
            parts.append(
                f"<tr><td>{e(p['period'])}</td><td>{e(value)}</td>"
                f"<td>{p['factories']} of {p['factories_total']}</td><td>{e(trajectory)}</td>"
                f"<td>{on_track}</td></tr>"
            )
        parts.append("</tbody></table>")
    parts.append("</body></html>")
    return "\n".join(parts)


def render(board: dict[str, Any], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(board, ensure_ascii=False, indent=2)
    if fmt == "csv":
        return to_csv(board)
    if fmt == "html":
        return to_html(board)
    raise ValueError(f"unknown format {fmt!r}")
