"""The compliance report as files for people: PDF (read back with pdftotext) and XLSX (read back
with openpyxl) in Thai and English, local times with Buddhist-era dates in Thai, reasons for
invalid hours, corrected and measured averages labelled; the glossary behind the words; text that
a spreadsheet would run as a formula made inert in CSV and XLSX."""

from __future__ import annotations

import csv
import io
import re
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from alerts.report import to_csv
from alerts.report_files import to_xlsx
from eit.errors import ConfigError
from eit.glossary import glossary, read_glossary
from tests.test_report import SITE, run, write_history


def _flat(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def test_glossary_names_parameters_units_bases_reasons_and_buddhist_era_dates() -> None:
    g = glossary()
    assert g.parameter_name("so2", "th") == "ซัลเฟอร์ไดออกไซด์" and g.parameter_symbol("so2") == "SO₂"
    assert g.parameter_name("pm25", "en") == "Fine particles PM2.5"
    assert g.unit_symbol("ug/m3") == "µg/m³" and g.unit_symbol("m3/h") == "m³/h"
    assert g.basis("ppm", 7.0, "en") == "ppm at 7 % O₂" and g.basis("ppm", None, "en") == "ppm as measured"
    assert g.basis("mg/m3", 7.0, "th") == "mg/m³ ที่ O₂ 7 %"
    assert g.reason("no valid point (left out: 60 C calibration, 3 D fault)", "th") == (
        "ไม่มีค่าที่ใช้ได้ (ตัดออก: สอบเทียบ (C) 60 ค่า, เครื่องวัดขัดข้อง (D) 3 ค่า)"
    )
    assert g.reason("quadrants 3, 4 have no valid point", "th") == "ช่วง 15 นาทีที่ 3, 4 ไม่มีค่าที่ใช้ได้"
    assert g.reason("something new", "th") == "something new"  # shown as written, never lost
    moment = datetime(2026, 11, 30, 17, 5, tzinfo=UTC)
    assert g.local_time(moment, "Asia/Bangkok", "th") == "1 ธ.ค. 2569 00:05"
    assert g.local_time(moment, "Asia/Bangkok", "en") == "1 Dec 2026 00:05"
    assert g.timezone_label("Asia/Bangkok", "th") == "เวลาประเทศไทย (UTC+7)"
    # Every parameter of the standards has a glossary entry.
    from eit.standards import load_standards

    missing = set(load_standards().parameters) - set(g.parameters)
    assert missing == set()


def test_a_glossary_error_names_the_file_and_every_key(tmp_path: Path) -> None:
    bad = tmp_path / "glossary.yaml"
    bad.write_text(
        "sources: {pcd: {title: t}}\n"
        "buddhist_era_offset: 543\n"
        "parameters:\n  so2: {symbol: SO2, th: x, en: y, source: nowhere}\n  co: {symbol: CO}\n"
        "units: {ppm: {symbol: ppm, source: pcd}}\n"
        "bases: {corrected: {en: a, th: b}}\n"
        "reasons: [{pattern: '(', th: x}]\n"
    )
    with pytest.raises(ConfigError) as info:
        read_glossary(bad)
    keys = [p.key for p in info.value.problems]
    assert keys == ["parameters.so2.source", "parameters.co", "bases.measured", "reasons[0]"]
    assert all(p.source == str(bad) for p in info.value.problems)


def _report_with(text: str) -> dict[str, Any]:
    hour = {
        "start": "2026-11-28T03:00:00Z",
        "end": "2026-11-28T04:00:00Z",
        "local_start": "2026-11-28T10:00:00+07:00",
        "local_end": "2026-11-28T11:00:00+07:00",
    }
    return {
        "report": "compliance",
        "version": 2,
        "town": "t",
        "timezone": "Asia/Bangkok",
        "from": "2026-11-28",
        "to": "2026-11-28",
        "period_start": "2026-11-27T17:00:00Z",
        "period_end": "2026-11-28T17:00:00Z",
        "period_start_local": "2026-11-28T00:00:00+07:00",
        "period_end_local": "2026-11-29T00:00:00+07:00",
        "completeness_threshold": 0.8,
        "generated_at": "2026-11-29T01:00:00Z",
        "generated_at_local": "2026-11-29T08:00:00+07:00",
        "factories": [
            {
                "id": "f",
                "name": text,
                "name_th": text,
                "diw_registration": "1",
                "district": "d",
                "channels": [
                    {
                        "device": "b",
                        "device_kind": "stack",
                        "channel": "so2",
                        "parameter": "so2",
                        "unit": "ppm",
                        "basis": "measured",
                        "o2_reference_percent": None,
                        "standards": [],
                        "expected_hours": 24,
                        "valid_hours": 23,
                        "completeness": 0.9583,
                        "complete": True,
                        "exceedances": [
                            {
                                **hour,
                                "averaging": "1h",
                                "average": -3.0,
                                "average_basis": "measured",
                                "measured_average": -3.0,
                                "limit": 60.0,
                                "unit": "ppm",
                                "retroactive": False,
                            }
                        ],
                        "invalid_hours": [{**hour, "reason": text}],
                    }
                ],
            }
        ],
    }


@pytest.mark.parametrize("text", ['=HYPERLINK("http://x","y")', "+1+1", "-2+3", "@SUM(A1)"])
def test_text_a_spreadsheet_would_run_is_inert_in_csv_and_xlsx(text: str) -> None:
    from openpyxl import load_workbook

    report = _report_with(text)
    rows = list(csv.DictReader(io.StringIO(to_csv(report))))
    [invalid] = [r for r in rows if r["row"] == "invalid_hour"]
    assert invalid["reason"] == "'" + text
    [exceedance] = [r for r in rows if r["row"] == "exceedance"]
    assert exceedance["average"] == "-3.0"  # a number stays a number
    book = load_workbook(io.BytesIO(to_xlsx(report, "en")))
    cells = [c for ws in book.worksheets for row in ws.iter_rows() for c in row]
    assert not [c.coordinate for c in cells if c.data_type == "f"]
    assert not [
        c.value for c in cells if isinstance(c.value, str) and c.value.startswith(("=", "+", "-", "@"))
    ]
    assert any(c.value == "'" + text for c in cells)
    assert any(c.value == -3.0 for c in cells)


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("report-files")
    history = tmp / "history.csv"
    write_history(history)
    data = tmp / "data"
    done = run("import", "--site", str(SITE), "--data-dir", str(data), str(history))
    assert done.returncode == 0, done.stderr
    return data


def _report(data: Path, out: Path, fmt: str, lang: str) -> None:
    done = run(
        "report", "compliance", "--site", str(SITE), "--data-dir", str(data), "--from", "2026-11-28",
        "--to", "2026-11-28", "--factory", "biomass", "--format", fmt, "--lang", lang, "--output", str(out),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "INFO" not in done.stderr, done.stderr  # no library step logging in a report run


def _pdf_text(path: Path) -> str:
    assert shutil.which("pdftotext"), (
        "pdftotext (poppler-utils) is missing: run scripts/ensure-system-packages"
    )
    assert path.read_bytes().startswith(b"%PDF-")
    return _flat(
        subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True).stdout
    )


@pytest.mark.integration
def test_the_pdf_report_in_thai_reads_back_in_thai_with_buddhist_era_local_times(
    imported: Path, tmp_path: Path
) -> None:
    pdf = tmp_path / "r-th.pdf"
    _report(imported, pdf, "pdf", "th")
    text = _pdf_text(pdf)
    for words in (
        "รายงานการปฏิบัติตามมาตรฐาน",
        "ซัลเฟอร์ไดออกไซด์",
        "เวลาประเทศไทย (UTC+7)",
        "28 พ.ย. 2569 10:00",  # the exceeding hour, local, Buddhist era
        "ppm ที่ O₂ 7 %",  # the corrected average says its basis
        "ppm ตามที่วัดได้",  # and the measured one beside it
        "ไม่มีค่าที่ใช้ได้ (ตัดออก: สอบเทียบ (C) 60 ค่า)",  # the 14:00 hour's reason, in Thai
        "ไม่มีข้อมูล",  # the silent 20:00-22:59 hours
        "ออกรายงานเมื่อ",
    ):
        assert words in text, (words, text[:2000])
    assert "2026-11-28T03:00" not in text  # no UTC stamp under a local heading


@pytest.mark.integration
def test_the_pdf_and_xlsx_reports_in_english_label_local_times_and_averages(
    imported: Path, tmp_path: Path
) -> None:
    from openpyxl import load_workbook

    pdf = tmp_path / "r-en.pdf"
    _report(imported, pdf, "pdf", "en")
    text = _pdf_text(pdf)
    expected = [
        "Compliance report",
        "Bangkok time (UTC+7)",
        "28 Nov 2026 10:00",
        "80.29 ppm at 7 % O₂",
        "80 ppm as measured",
        "no valid point (left out: 60 C calibration)",
        "Generated at",
    ]
    for words in expected:
        assert words in text, (words, text[:2000])

    xlsx = tmp_path / "r-th.xlsx"
    _report(imported, xlsx, "xlsx", "th")
    book = load_workbook(xlsx)
    assert book.sheetnames == ["รายงาน", "สรุป", "เกินค่ามาตรฐาน", "ชั่วโมงที่ใช้ไม่ได้"]
    exc = [[c.value for c in row] for row in book["เกินค่ามาตรฐาน"].iter_rows()]
    assert exc[0][5:11] == ["ตั้งแต่ (UTC)", "ตั้งแต่", "ถึง (UTC)", "ถึง", "ค่าเฉลี่ยที่ปรับแก้แล้ว", "ค่าเฉลี่ยตามที่วัดได้"]
    [row] = exc[1:]
    assert row[3] == "ซัลเฟอร์ไดออกไซด์"
    assert (row[5], row[6]) == ("2026-11-28T03:00:00Z", "28 พ.ย. 2569 10:00")
    assert row[9] == pytest.approx(80.29, abs=0.01) and row[10] == 80.0 and row[11] == 60.0
    assert row[12] == "ppm ที่ O₂ 7 %"
    invalid = [[c.value for c in r] for r in book["ชั่วโมงที่ใช้ไม่ได้"].iter_rows()][1:]
    so2 = [r for r in invalid if r[2] == "so2"]
    silent = ("2026-11-28T13:00:00Z", "2026-11-28T14:00:00Z", "2026-11-28T15:00:00Z")
    assert [r[8] for r in so2 if r[4] in silent] == ["ไม่มีข้อมูล"] * 3
    about = {r[0].value: r[1].value for r in book["รายงาน"].iter_rows()}
    assert about["เวลาที่แสดง"] == "เวลาประเทศไทย (UTC+7)"
    assert about["ช่วงเวลา"] == "28 พ.ย. 2569 00:00 – 29 พ.ย. 2569 00:00"


def test_a_file_report_without_output_is_refused_with_the_reason(tmp_path: Path) -> None:
    done = run(
        "report", "compliance", "--site", str(SITE), "--data-dir", str(tmp_path / "d"),
        "--from", "2026-11-28", "--to", "2026-11-28", "--format", "pdf",
    )  # fmt: skip
    assert done.returncode == 2 and "--format pdf needs --output FILE" in done.stderr
