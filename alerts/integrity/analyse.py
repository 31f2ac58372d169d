"""Running the detectors: over one device-month (:func:`analyse_month`), and over a town's
period from the store (:func:`integrity_report`), device after device, then the comparison of
each device with its peers."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

from alerts.integrity import crosschannel, flags, hugging, o2, replay, smoothness
from alerts.integrity.findings import Finding
from alerts.integrity.load import device_months, month_spans
from alerts.integrity.month import DeviceMonth
from alerts.integrity.running import running_hours
from alerts.integrity.smoothness import Roughness
from alerts.integrity.thresholds import KINDS, Thresholds, load_thresholds
from eit.registry import Registry
from eit.store import Store
from eit.timeutil import now_ns, ns_to_iso

REPORT_VERSION = 1
NOTICE_EN = (
    "For pollution officers only. A finding is a reason to inspect, not proof of manipulation and"
    " not an exceedance: it changes no legal average, raises no alert and is not shown to"
    " operators or the public."
)
NOTICE_TH = (
    "สำหรับเจ้าหน้าที่ควบคุมมลพิษเท่านั้น ข้อสังเกตเป็นเหตุผลให้ตรวจสอบ ไม่ใช่หลักฐานการดัดแปลงข้อมูล"
    " และไม่ใช่การเกินค่ามาตรฐาน ไม่เปลี่ยนค่าเฉลี่ยตามกฎหมาย ไม่แจ้งเตือน และไม่แสดงต่อผู้ประกอบการหรือสาธารณะ"
)


@dataclass(slots=True)
class MonthResult:
    findings: list[Finding]
    roughness: list[Roughness]
    summary: dict[str, Any] = field(default_factory=dict)


def analyse_month(month: DeviceMonth, th: Thresholds) -> MonthResult:
    """Every detector over one device-month (the comparison with peers comes after)."""
    run = running_hours(month, th.running)
    found: list[Finding] = []
    notes: list[str] = []
    found += o2.detect(month, th, run, notes)
    found += hugging.detect(month, th, run, notes)
    smooth, roughness = smoothness.detect(month, th, run)
    found += smooth
    found += replay.detect(month, th, run)
    found += flags.detect(month, th, run, notes)
    found += crosschannel.detect(month, th, run, notes)
    summary = {
        "factory": month.factory,
        "device": month.device,
        "month": month.month,
        "start": ns_to_iso(month.first_ns),
        "end": ns_to_iso(month.end_ns),
        "hours": month.hours,
        "running_hours": int(run.running.sum()),
        "running_from": run.source,
        "hourly_averages_from": {p.channel: p.source for p in month.pollutants.values()},
        "not_tested": notes,
    }
    return MonthResult(found, roughness, summary)


def analyse(months: Iterable[DeviceMonth], th: Thresholds) -> tuple[list[Finding], list[dict[str, Any]]]:
    """Findings of a stream of device-months, then of their comparison with one another. Only
    one device-month is held at a time; the peers' comparison keeps a few numbers per channel."""
    findings: list[Finding] = []
    summaries: list[dict[str, Any]] = []
    roughness: list[Roughness] = []
    for month in months:
        result = analyse_month(month, th)
        findings += result.findings
        roughness += result.roughness
        summaries.append(result.summary)
    findings += smoothness.peer_findings(roughness, th)
    counts: dict[tuple[str, str, str], int] = {}
    for f in findings:
        key = (f.factory, f.device, f.month)
        counts[key] = counts.get(key, 0) + 1
    for s in summaries:
        s["findings"] = counts.get((s["factory"], s["device"], s["month"]), 0)
    findings.sort(key=lambda f: (f.factory, f.device, f.month, KINDS.index(f.kind), -f.score))
    return findings, summaries


def integrity_report(
    registry: Registry,
    store: Store,
    first_day: date,
    last_day: date,
    factory: str | None = None,
    thresholds: Thresholds | None = None,
) -> dict[str, Any]:
    """The integrity section for officers: findings per device and month of the period."""
    if last_day < first_day:
        raise ValueError(f"--to {last_day} is before --from {first_day}")
    if factory is not None and factory not in registry.factories:
        raise ValueError(f"factory '{factory}' is not in the site registry ({', '.join(registry.factories)})")
    th = thresholds or load_thresholds()
    tz = ZoneInfo(registry.timezone)
    spans = month_spans(first_day, last_day, tz)
    findings, summaries = analyse(device_months(registry, store, spans, factory), th)
    names = {f.id: f.name for f in registry.factories.values()}
    return {
        "report": "integrity",
        "version": REPORT_VERSION,
        "audience": "officers",
        "notice": {"en": NOTICE_EN, "th": NOTICE_TH},
        "town": registry.town_id,
        "timezone": registry.timezone,
        "from": first_day.isoformat(),
        "to": last_day.isoformat(),
        "period_start": ns_to_iso(spans[0].start_ns),
        "period_end": ns_to_iso(spans[-1].end_ns),
        "generated_at": ns_to_iso(now_ns()),
        "thresholds": th.source,
        "device_months": [s | {"factory_name": names.get(s["factory"], "")} for s in summaries],
        "findings": [f.to_json() | {"factory_name": names.get(f.factory, "")} for f in findings],
    }
