"""Display words in Thai and English from eit/glossary.yaml: parameter names and symbols, unit
symbols, the basis of a value ("ppm at 7 % O2" or "ppm as measured"), the reasons an hour is not
valid, the time-zone label and Buddhist-era dates. Display only: nothing stored or exchanged uses
these texts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from eit.confread import load_yaml
from eit.errors import ConfigError, Problem

GLOSSARY_PATH = Path(__file__).resolve().parent / "glossary.yaml"
LANGUAGES = ("th", "en")

THAI_MONTHS = (
    "ม.ค.", "ก.พ.", "มี.ค.", "เม.ย.", "พ.ค.", "มิ.ย.", "ก.ค.", "ส.ค.", "ก.ย.", "ต.ค.", "พ.ย.", "ธ.ค.",
)  # fmt: skip
_ENGLISH_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_LEFT_OUT = re.compile(r"^(?P<main>.*?) \(left out: (?P<parts>.*)\)$")


@dataclass(frozen=True, slots=True)
class ReasonRule:
    pattern: re.Pattern[str]
    th: str


@dataclass(frozen=True, slots=True)
class Glossary:
    parameters: dict[str, dict[str, str]]
    units: dict[str, str]
    bases: dict[str, dict[str, str]]
    reasons: tuple[ReasonRule, ...]
    timezones: dict[str, dict[str, str]]
    buddhist_era_offset: int
    sources: dict[str, dict[str, str]]
    o2_correctable_units: frozenset[str] = frozenset()

    def shown_o2_reference(self, unit: str, o2_reference_percent: float | None) -> float | None:
        """The reference O2 a channel's values are shown at: its own for a concentration, else None
        (shown as measured)."""
        return o2_reference_percent if unit in self.o2_correctable_units else None

    def parameter_name(self, parameter: str, lang: str) -> str:
        """The parameter's name in ``lang``, else its id."""
        entry = self.parameters.get(parameter)
        return entry[lang] if entry else parameter

    def parameter_symbol(self, parameter: str) -> str:
        entry = self.parameters.get(parameter)
        return entry["symbol"] if entry else parameter

    def unit_symbol(self, unit: str) -> str:
        return self.units.get(unit, unit)

    def basis(self, unit: str, o2_reference_percent: float | None, lang: str) -> str:
        """ "ppm at 7 % O2" for a value corrected to a reference O2, else "ppm as measured"."""
        symbol = self.unit_symbol(unit) or unit
        if o2_reference_percent is None:
            return self.bases["measured"][lang].format(unit=symbol)
        return self.bases["corrected"][lang].format(unit=symbol, o2=f"{o2_reference_percent:g}")

    def reason(self, reason: str, lang: str) -> str:
        """An invalid hour's reason in ``lang`` (the stored reason is English)."""
        if lang == "en" or not reason:
            return reason
        m = _LEFT_OUT.match(reason)
        if m is None:
            return self._reason_part(reason)
        parts = [self._reason_part(p.strip()) for p in m.group("parts").split(", ") if p.strip()]
        return f"{self._reason_part(m.group('main'))} (ตัดออก: {', '.join(parts)})"

    def _reason_part(self, part: str) -> str:
        for rule in self.reasons:
            m = rule.pattern.fullmatch(part)
            if m is not None:
                text = rule.th
                for i, g in enumerate(m.groups(), start=1):
                    text = text.replace("{" + str(i) + "}", g or "")
                return text
        return part

    def timezone_label(self, timezone: str, lang: str) -> str:
        entry = self.timezones.get(timezone)
        return entry[lang] if entry else timezone

    def local_time(self, moment: datetime, timezone: str, lang: str, seconds: bool = False) -> str:
        """A moment in the town's time: "30 พ.ย. 2569 14:00" (Buddhist era) or "30 Nov 2026 14:00"."""
        local = moment.astimezone(ZoneInfo(timezone))
        clock = local.strftime("%H:%M:%S" if seconds else "%H:%M")
        if lang == "th":
            year = local.year + self.buddhist_era_offset
            return f"{local.day} {THAI_MONTHS[local.month - 1]} {year} {clock}"
        return f"{local.day} {_ENGLISH_MONTHS[local.month - 1]} {local.year} {clock}"

    def for_pages(self) -> dict[str, Any]:
        """What the pages' scripts need (parameters, units, reasons, time zones, the era)."""
        return {
            "parameters": self.parameters,
            "units": self.units,
            "bases": self.bases,
            "reasons": [{"pattern": r.pattern.pattern, "th": r.th} for r in self.reasons],
            "timezones": self.timezones,
            "buddhist_era_offset": self.buddhist_era_offset,
            "o2_correctable_units": sorted(self.o2_correctable_units),
        }


def _fail(path: Path, key: str, detail: str) -> ConfigError:
    return ConfigError(str(path), key, detail)


def read_glossary(path: Path = GLOSSARY_PATH) -> Glossary:
    """Read and check a glossary file; every problem names the file and key."""
    data = load_yaml(path)
    if not isinstance(data, dict):
        raise _fail(path, "(top)", "expected a mapping")
    sources = data.get("sources")
    if not isinstance(sources, dict) or not sources:
        raise _fail(path, "sources", "expected a mapping of source ids")
    errors: list[tuple[str, str]] = []
    parameters: dict[str, dict[str, str]] = {}
    for pid, entry in (data.get("parameters") or {}).items():
        named = isinstance(entry, dict) and all(isinstance(entry.get(k), str) for k in ("symbol", "th", "en"))
        if not named:
            errors.append((f"parameters.{pid}", "needs symbol, th and en"))
            continue
        if entry.get("source") not in sources:
            errors.append((f"parameters.{pid}.source", f"{entry.get('source')!r} is not in sources"))
        parameters[str(pid)] = {k: str(entry[k]) for k in ("symbol", "th", "en")}
    units: dict[str, str] = {}
    for uid, entry in (data.get("units") or {}).items():
        if not isinstance(entry, dict) or not isinstance(entry.get("symbol"), str):
            errors.append((f"units.{uid}", "needs a symbol"))
            continue
        if entry.get("source") not in sources:
            errors.append((f"units.{uid}.source", f"{entry.get('source')!r} is not in sources"))
        units[str(uid)] = str(entry["symbol"])
    bases = data.get("bases") or {}
    for kind in ("corrected", "measured"):
        if not isinstance(bases.get(kind), dict) or any(lang not in bases[kind] for lang in LANGUAGES):
            errors.append((f"bases.{kind}", "needs th and en"))
    reasons: list[ReasonRule] = []
    for i, entry in enumerate(data.get("reasons") or []):
        try:
            reasons.append(ReasonRule(re.compile(str(entry["pattern"])), str(entry["th"])))
        except (KeyError, TypeError, re.error) as exc:
            errors.append((f"reasons[{i}]", str(exc)))
    timezones = data.get("timezones") or {}
    offset = data.get("buddhist_era_offset")
    if not isinstance(offset, int):
        errors.append(("buddhist_era_offset", "expected an integer"))
    if errors:
        raise ConfigError.of(Problem(str(path), key, detail) for key, detail in errors)
    assert isinstance(offset, int)
    return Glossary(
        parameters=parameters,
        units=units,
        bases={k: {lang: str(bases[k][lang]) for lang in LANGUAGES} for k in ("corrected", "measured")},
        reasons=tuple(reasons),
        timezones={str(k): {lang: str(v[lang]) for lang in LANGUAGES} for k, v in timezones.items()},
        buddhist_era_offset=offset,
        sources={str(k): {kk: str(vv) for kk, vv in v.items()} for k, v in sources.items()},
        o2_correctable_units=frozenset(str(u) for u in data.get("o2_correctable_units") or ()),
    )


@cache
def glossary() -> Glossary:
    """The platform's glossary (eit/glossary.yaml), read once."""
    return read_glossary()
