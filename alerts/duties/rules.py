"""The duties' periods and settings, read from data (alerts/duties/duties.yaml): every number
with its source and whether the primary text confirms it.

Read with the platform's YAML loader: a wrong value is reported with the file, the line and the
key path, every problem at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TypeVar

from eit.confread import Problems, Section, read_yaml

SHIPPED = "alerts/duties/duties.yaml"
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Sourced:
    """A value with where it comes from."""

    value: object
    source: str
    confirmed: bool


@dataclass(frozen=True, slots=True)
class DutyRules:
    wpms_source: str
    wpms_report_within_days: int
    wpms_fix_within_days: int
    lab_check_months: tuple[int, ...]
    lab_report_within_days: int
    lab_remind_from_day: int
    lab_channels: tuple[str, ...]
    lab_decimals: dict[str, int]
    lab_new_monitor_days: int
    wpms_daily_share: float
    cems_source: str
    cems_report_within_days: int
    substitute_test_after_days: int
    substitute_test_due_days: int
    cems_daily_share: float
    attachment_max_bytes: int
    file: str
    sources: dict[str, Sourced]

    def to_json(self) -> dict[str, dict[str, object]]:
        """Every value with its source, for reports."""
        return {
            key: {"value": s.value, "source": s.source, "confirmed": s.confirmed}
            for key, s in sorted(self.sources.items())
        }


def _sourced(parent: Section, key: str, read: Callable[[Section], T], sources: dict[str, Sourced]) -> T:
    sec = parent.section(key, required=True)
    value = read(sec)
    sources[parent.key_path(key)] = Sourced(value, sec.text("source"), sec.boolean("confirmed"))
    sec.finish()
    return value


def _int(minimum: int, maximum: int) -> Callable[[Section], int]:
    return lambda s: s.integer("value", minimum=minimum, maximum=maximum)


def _share(s: Section) -> float:
    return s.number("value", minimum=0.01, maximum=1.0)


def _months(s: Section) -> tuple[int, ...]:
    raw = s.raw("value")
    if not isinstance(raw, list) or not raw or not all(isinstance(m, int) and 1 <= m <= 12 for m in raw):
        s.fail("value", f"months must be a list of numbers 1 to 12, got {raw!r}")
    return tuple(sorted(set(raw)))


def _names(s: Section) -> tuple[str, ...]:
    return tuple(s.str_list("value"))


def _decimals(s: Section) -> dict[str, int]:
    raw = s.raw("value")
    if not isinstance(raw, dict) or not all(
        isinstance(k, str) and isinstance(v, int) and 0 <= v <= 6 for k, v in raw.items()
    ):
        s.fail("value", f"decimals must map a channel to 0..6 digits, got {raw!r}")
    return dict(raw)


def load_duty_rules(path: Path | None = None) -> DutyRules:
    """The shipped duties file, or ``path``."""
    if path is None:
        with resources.as_file(resources.files("alerts").joinpath("duties/duties.yaml")) as real:
            return _read(real, SHIPPED)
    return _read(path, str(path))


@cache
def shipped_rules() -> DutyRules:
    return load_duty_rules()


def _read(path: Path, source: str) -> DutyRules:
    root = Section.of(read_yaml(path, source))
    problems = Problems()
    s: dict[str, Sourced] = {}
    with problems.gather():
        w = root.section("wpms", required=True)
        wm = w.section("malfunction", required=True)
        wl = w.section("lab_check", required=True)
        wi = w.section("inferred", required=True)
        c = root.section("cems", required=True)
        cm = c.section("malfunction", required=True)
        cs = c.section("substitute_test", required=True)
        ci = c.section("inferred", required=True)
        a = root.section("attachments", required=True)
        rules = DutyRules(
            wpms_source=w.text("source"),
            wpms_report_within_days=_sourced(wm, "report_within_days", _int(0, 30), s),
            wpms_fix_within_days=_sourced(wm, "fix_within_days", _int(0, 365), s),
            lab_check_months=_sourced(wl, "months", _months, s),
            lab_report_within_days=_sourced(wl, "report_within_days", _int(0, 365), s),
            lab_remind_from_day=_sourced(wl, "remind_from_day", _int(1, 28), s),
            lab_channels=_sourced(wl, "channels", _names, s),
            lab_decimals=_sourced(wl, "decimals", _decimals, s),
            lab_new_monitor_days=_sourced(wl, "new_monitor_days", _int(0, 28), s),
            wpms_daily_share=_sourced(wi, "daily_share", _share, s),
            cems_source=c.text("source"),
            cems_report_within_days=_sourced(cm, "report_within_days", _int(0, 30), s),
            substitute_test_after_days=_sourced(cs, "required_after_days", _int(1, 365), s),
            substitute_test_due_days=_sourced(cs, "due_within_days", _int(0, 365), s),
            cems_daily_share=_sourced(ci, "daily_share", _share, s),
            attachment_max_bytes=_sourced(a, "max_bytes", _int(1024, 100 * 1024 * 1024), s),
            file=source,
            sources=s,
        )
        w.integer("applies_above_m3_per_day", minimum=0)
        for sec in (wm, wl, wi, w, cm, cs, ci, c, a):
            sec.finish()
        root.finish()
    problems.check()
    return rules
