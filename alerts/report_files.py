"""The compliance report (alerts/report.py) for people: HTML and PDF (WeasyPrint) and XLSX
(XlsxWriter), in Thai or English, with the town's local times (Buddhist-era dates in Thai), the time
zone named, each invalid hour's reason, corrected and measured averages labelled with their basis,
and when the report was made. Words come from alerts/templates/report_words.yaml and
eit/glossary.yaml.

The PDF needs Pango (with libthai, which breaks Thai lines: Thai has no spaces between words) and a
Thai font (Debian's fonts-thai-tlwg); scripts/ensure-system-packages and the Dockerfile install them.
"""

from __future__ import annotations

import html
import io
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

from alerts.report import neutralise, sections_html
from eit.confread import load_yaml
from eit.glossary import Glossary, glossary

WORDS_PATH = Path(__file__).resolve().parent / "templates" / "report_words.yaml"
LANGUAGES = ("th", "en")
FILE_FORMATS = ("html", "pdf", "xlsx")
MEDIA_TYPES = {
    "html": "text/html; charset=utf-8",
    "pdf": "application/pdf",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


@cache
def words(lang: str) -> dict[str, str]:
    data = load_yaml(WORDS_PATH)
    return {str(k): str(v) for k, v in data[lang].items()}


def _check_lang(lang: str) -> None:
    if lang not in LANGUAGES:
        raise ValueError(f"unknown language {lang!r} (th or en)")


def _when(iso: str | None, report: dict[str, Any], lang: str, g: Glossary) -> str:
    if not iso:
        return ""
    return g.local_time(datetime.fromisoformat(iso.replace("Z", "+00:00")), report["timezone"], lang)


def _num(v: Any) -> str:
    return "" if v is None else f"{float(v):.4g}"


def _basis_text(ch: dict[str, Any], basis: str, lang: str, g: Glossary) -> str:
    return g.basis(ch["unit"], ch.get("o2_reference_percent") if basis == "corrected" else None, lang)


def hour_runs(invalid_hours: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Consecutive invalid hours with the same reason as one run (start, end, hours, reason): a month
    of a silent channel is one line, not 720."""
    runs: list[dict[str, Any]] = []
    for hour in invalid_hours:
        last = runs[-1] if runs else None
        if last is not None and last["end"] == hour["start"] and last["reason"] == hour["reason"]:
            last["end"] = hour["end"]
            last["hours"] += 1
        else:
            runs.append({"start": hour["start"], "end": hour["end"], "hours": 1, "reason": hour["reason"]})
    return runs


def _period(report: dict[str, Any], lang: str, g: Glossary) -> str:
    return (
        f"{_when(report['period_start'], report, lang, g)} – {_when(report['period_end'], report, lang, g)}"
    )


def to_html(report: dict[str, Any], lang: str = "en") -> str:
    """A whole HTML document: the report as an officer reads or prints it."""
    _check_lang(lang)
    w, g, e = words(lang), glossary(), html.escape
    tz_label = g.timezone_label(report["timezone"], lang)
    parts = [
        f"<!doctype html><html lang='{lang}'><head><meta charset='utf-8'>",
        f"<title>{e(w['title'])} {e(report['town'])} {e(report['from'])} – {e(report['to'])}</title>",
        "<style>@page{size:A4 landscape;margin:12mm}"
        "body{font-family:'Loma','Waree','Noto Sans Thai','DejaVu Sans',sans-serif;font-size:10pt}"
        "table{border-collapse:collapse;margin-bottom:1em}"
        "td,th{border:1px solid #999;padding:2px 6px;text-align:left;vertical-align:top}"
        ".bad{color:#b00;font-weight:bold}.hint{color:#555}</style></head><body>",
        f"<h1>{e(w['title'])}: {e(report['town'])}</h1>",
        "<table class='about'>",
        f"<tr><th>{e(w['period'])}</th><td>{e(_period(report, lang, g))}</td></tr>",
        f"<tr><th>{e(w['timezone'])}</th><td>{e(tz_label)}</td></tr>",
        f"<tr><th>{e(w['generated_at'])}</th>"
        f"<td>{e(_when(report['generated_at'], report, lang, g))}</td></tr>",
        f"<tr><th>{e(w['completeness_threshold'])}</th><td>{report['completeness_threshold']:.0%}</td></tr>",
        "</table>",
        f"<p class='hint'>{e(w['note_corrected'])}</p>",
    ]
    for f in report["factories"]:
        name, other = (
            (f["name_th"], f["name"]) if lang == "th" and f.get("name_th") else (f["name"], f["name_th"])
        )
        parts.append(
            f"<h2>{e(name)} <small>{e(other)} · {e(w['diw_registration'])}"
            f" {e(f['diw_registration'])}</small></h2>"
        )
        parts.append(
            f"<table><tr><th>{e(w['device'])}</th><th>{e(w['channel'])}</th><th>{e(w['parameter'])}</th>"
            f"<th>{e(w['basis'])}</th><th>{e(w['valid_hours'])}</th><th>{e(w['completeness'])}</th>"
            f"<th>{e(w['exceedances'])}</th><th>{e(w['invalid_hours'])}</th></tr>"
        )
        for ch in f["channels"]:
            cls = "" if ch["complete"] else " class='bad'"
            parts.append(
                f"<tr><td>{e(ch['device'])}</td><td>{e(ch['channel'])}</td>"
                f"<td>{e(g.parameter_name(ch['parameter'], lang))}"
                f" ({e(g.parameter_symbol(ch['parameter']))})</td>"
                f"<td>{e(_basis_text(ch, ch.get('basis', 'measured'), lang, g))}</td>"
                f"<td>{ch['valid_hours']} / {ch['expected_hours']}</td><td{cls}>{ch['completeness']:.1%}</td>"
                f"<td>{len(ch['exceedances'])}</td><td>{len(ch['invalid_hours'])}</td></tr>"
            )
        parts.append("</table>")
        for ch in f["channels"]:
            label = f"{e(ch['device'])} {e(g.parameter_name(ch['parameter'], lang))}"
            if ch["exceedances"]:
                parts.append(f"<h3>{e(w['exceedances'])}: {label}</h3><table>")
                parts.append(
                    f"<tr><th>{e(w['averaging'])}</th><th>{e(w['from'])}</th><th>{e(w['to'])}</th>"
                    f"<th>{e(w['average_corrected'])} / {e(w['average_measured'])}</th>"
                    f"<th>{e(w['limit'])}</th>"
                    f"<th>{e(w['retroactive'])}</th></tr>"
                )
                for x in ch["exceedances"]:
                    basis = x.get("average_basis", "measured")
                    unit = g.unit_symbol(x["unit"]) or x["unit"]
                    measured = e(_basis_text(ch, "measured", lang, g))
                    if basis == "corrected":
                        corrected = e(_basis_text(ch, "corrected", lang, g))
                        averages = (
                            f"<span class='bad'>{_num(x['average'])} {corrected}</span>"
                            f"<br>{_num(x['measured_average'])} {measured}"
                        )
                    else:
                        averages = f"<span class='bad'>{_num(x['average'])} {measured}</span>"
                    parts.append(
                        f"<tr><td>{e(x['averaging'])}</td><td>{e(_when(x['start'], report, lang, g))}</td>"
                        f"<td>{e(_when(x['end'], report, lang, g))}</td><td>{averages}</td>"
                        f"<td>{_num(x['limit'])} {e(unit)}</td>"
                        f"<td>{e(w['word_yes'] if x['retroactive'] else w['word_no'])}</td></tr>"
                    )
                parts.append("</table>")
            if ch["invalid_hours"]:
                parts.append(f"<h3>{e(w['invalid_hours'])}: {label}</h3><table>")
                parts.append(
                    f"<tr><th>{e(w['from'])}</th><th>{e(w['to'])}</th><th>{e(w['hours'])}</th>"
                    f"<th>{e(w['reason'])}</th></tr>"
                )
                for run in hour_runs(ch["invalid_hours"]):
                    parts.append(
                        f"<tr><td>{e(_when(run['start'], report, lang, g))}</td>"
                        f"<td>{e(_when(run['end'], report, lang, g))}</td><td>{run['hours']}</td>"
                        f"<td>{e(g.reason(run['reason'], lang))}</td></tr>"
                    )
                parts.append("</table>")
    parts += sections_html(report)
    parts.append("</body></html>")
    return "\n".join(parts)


def to_pdf(report: dict[str, Any], lang: str = "en") -> bytes:
    """The HTML report printed to PDF by WeasyPrint (Thai lines broken by Pango and libthai)."""
    import logging

    # WeasyPrint (from its import on) and fontTools log each step at INFO; a report run prints only
    # its own messages.
    for name in ("weasyprint", "weasyprint.progress", "fontTools"):
        logging.getLogger(name).setLevel(logging.WARNING)
    from weasyprint import HTML

    pdf = HTML(string=to_html(report, lang)).write_pdf()
    assert pdf is not None
    return bytes(pdf)


def to_xlsx(report: dict[str, Any], lang: str = "en") -> bytes:
    """A workbook: the report's facts, a summary per channel, the exceedances and the invalid hours.
    Times in UTC (ISO 8601) and in the town's time; headers carry unit and basis; text a
    spreadsheet would run as a formula is made inert."""
    import xlsxwriter

    _check_lang(lang)
    w, g = words(lang), glossary()
    out = io.BytesIO()
    # Strings are never turned into formulas, numbers or URLs by the writer.
    book = xlsxwriter.Workbook(
        out,
        {
            "in_memory": True,
            "strings_to_formulas": False,
            "strings_to_urls": False,
            "strings_to_numbers": False,
        },
    )
    bold = book.add_format({"bold": True})
    bad = book.add_format({"font_color": "#b00000", "bold": True})

    def put(sheet: Any, row: int, values: list[Any], fmt: Any = None) -> None:
        for col, v in enumerate(values):
            if isinstance(v, bool) or v is None:
                sheet.write_string(row, col, "" if v is None else (w["word_yes"] if v else w["word_no"]), fmt)
            elif isinstance(v, int | float):
                sheet.write_number(row, col, v, fmt)
            else:
                sheet.write_string(row, col, str(neutralise(v)), fmt)

    about = book.add_worksheet(w["about"][:31])
    facts = [
        [w["title"], report["town"]],
        [w["period"], _period(report, lang, g)],
        [f"{w['period']} (UTC)", f"{report['period_start']} – {report['period_end']}"],
        [w["timezone"], g.timezone_label(report["timezone"], lang)],
        [w["generated_at"], _when(report["generated_at"], report, lang, g)],
        [f"{w['generated_at']} (UTC)", report["generated_at"]],
        [w["completeness_threshold"], report["completeness_threshold"]],
        ["", w["note_corrected"]],
    ]
    for r, row in enumerate(facts):
        put(about, r, row, None)
        about.write_string(r, 0, row[0], bold)
    about.set_column(0, 0, 28)
    about.set_column(1, 1, 60)

    summary = book.add_worksheet(w["sheet_summary"][:31])
    put(
        summary,
        0,
        [w["factory"], w["device"], w["channel"], w["parameter"], w["basis"], w["valid_hours"],
         "expected_hours", w["completeness"], w["complete"], w["exceedances"], w["invalid_hours"]],
        bold,
    )  # fmt: skip
    exc = book.add_worksheet(w["sheet_exceedances"][:31])
    put(
        exc,
        0,
        [w["factory"], w["device"], w["channel"], w["parameter"], w["averaging"], w["from_utc"], w["from"],
         w["to_utc"], w["to"], w["average_corrected"], w["average_measured"], w["limit"], w["unit"],
         w["retroactive"]],
        bold,
    )  # fmt: skip
    inv = book.add_worksheet(w["sheet_invalid"][:31])
    put(
        inv,
        0,
        [w["factory"], w["device"], w["channel"], w["parameter"], w["from_utc"], w["from"], w["to_utc"],
         w["to"], w["reason"], w["reason_en"]],
        bold,
    )  # fmt: skip
    rows = {"s": 1, "e": 1, "i": 1}
    for f in report["factories"]:
        for ch in f["channels"]:
            pname = g.parameter_name(ch["parameter"], lang)
            put(
                summary,
                rows["s"],
                [f["id"], ch["device"], ch["channel"], pname,
                 _basis_text(ch, ch.get("basis", "measured"), lang, g), ch["valid_hours"],
                 ch["expected_hours"], ch["completeness"], ch["complete"],
                 len(ch["exceedances"]), len(ch["invalid_hours"])],
            )  # fmt: skip
            rows["s"] += 1
            for x in ch["exceedances"]:
                corrected = x.get("average_basis") == "corrected"
                put(
                    exc,
                    rows["e"],
                    [f["id"], ch["device"], ch["channel"], pname, x["averaging"], x["start"],
                     _when(x["start"], report, lang, g), x["end"], _when(x["end"], report, lang, g),
                     x["average"] if corrected else None, x["measured_average"], x["limit"],
                     _basis_text(ch, "corrected" if corrected else "measured", lang, g), x["retroactive"]],
                )  # fmt: skip
                exc.write_number(rows["e"], 9 if corrected else 10, float(x["average"]), bad)
                rows["e"] += 1
            for i in ch["invalid_hours"]:
                put(
                    inv,
                    rows["i"],
                    [f["id"], ch["device"], ch["channel"], pname, i["start"],
                     _when(i["start"], report, lang, g), i["end"], _when(i["end"], report, lang, g),
                     g.reason(i["reason"], lang), i["reason"]],
                )  # fmt: skip
                rows["i"] += 1
    for sheet in (summary, exc, inv):
        sheet.set_column(0, 13, 18)
        sheet.freeze_panes(1, 0)
    book.close()
    return out.getvalue()


def render_file(report: dict[str, Any], fmt: str, lang: str = "en") -> bytes:
    """The report as a file for people: html, pdf or xlsx, in ``lang``."""
    if fmt == "html":
        return to_html(report, lang).encode("utf-8")
    if fmt == "pdf":
        return to_pdf(report, lang)
    if fmt == "xlsx":
        return to_xlsx(report, lang)
    raise ValueError(f"unknown file format {fmt!r} (html, pdf or xlsx)")
