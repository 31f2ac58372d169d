"""An integrity finding: what an officer reads. Never an alert, never an exceedance.

A finding names its kind, the device and the month, a score (1 at the threshold, higher the
further past it), the evidence (numbers, and the clock hours concerned as UTC ISO times), and an
explanation in English and Thai (alerts/integrity/explanations.yaml). Its ``id`` is stable for
the same kind, device, month and channel, so an officer's disposition recorded against it
survives a rerun.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

from eit.confread import Section, read_yaml
from eit.timeutil import ns_to_iso

EvidenceValue = float | int | str | bool | None


@dataclass(frozen=True, slots=True)
class Finding:
    kind: str
    variant: str  # the explanation's template: o2_step, o2_floor, smooth_days, ...
    factory: str
    device: str
    channel: str | None
    month: str
    score: float
    evidence: Mapping[str, EvidenceValue]
    hours: tuple[str, ...]
    explanation_en: str
    explanation_th: str
    id: str = field(default="")

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "variant": self.variant,
            "factory": self.factory,
            "device": self.device,
            "channel": self.channel,
            "month": self.month,
            "score": round(self.score, 3),
            "evidence": dict(self.evidence),
            "hours": list(self.hours),
            "explanation": {"en": self.explanation_en, "th": self.explanation_th},
        }


@cache
def explanations() -> dict[str, tuple[str, str]]:
    source = "alerts/integrity/explanations.yaml"
    with resources.as_file(resources.files("alerts").joinpath("integrity/explanations.yaml")) as real:
        root = Section.of(read_yaml(real, source))
    texts: dict[str, tuple[str, str]] = {}
    for name, sec in root.mapping_sections("explanations", required=True):
        texts[name] = (" ".join(sec.text("en").split()), " ".join(sec.text("th").split()))
        sec.finish()
    root.finish()
    return texts


def shown(value: EvidenceValue) -> str:
    """A number as an explanation shows it: 3 significant digits, shares as percentages."""
    if isinstance(value, float):
        if not math.isfinite(value):
            return "-"
        if value != 0 and abs(value) < 1e-3:
            return f"{value:.1e}"
        return f"{value:.3g}"
    return str(value)


def finding(
    kind: str,
    variant: str,
    factory: str,
    device: str,
    channel: str | None,
    month: str,
    score: float,
    evidence: Mapping[str, EvidenceValue],
    hour_starts_ns: Sequence[int],
) -> Finding:
    """A finding with its explanation filled from the evidence (and the device and channel)."""
    en, th = explanations()[variant]
    words: dict[str, str] = {k: shown(v) for k, v in evidence.items()}
    for key, value in evidence.items():
        if key in ("share", "expected") and isinstance(value, float):
            words[key] = f"{value:.1%}"
        if key == "p_value" and value == 0.0:
            words[key] = "< 1e-300"  # below what a double holds
    words |= {"device": f"{factory}/{device}", "channel": channel or ""}
    key = "/".join((kind, variant, factory, device, channel or "", month))
    return Finding(
        kind=kind,
        variant=variant,
        factory=factory,
        device=device,
        channel=channel,
        month=month,
        score=float(score),
        evidence=dict(evidence),
        hours=tuple(ns_to_iso(h) for h in hour_starts_ns),
        explanation_en=en.format(**words),
        explanation_th=th.format(**words),
        id=hashlib.sha256(key.encode()).hexdigest()[:16],
    )


def p_score(p_value: float, alpha: float) -> float:
    """A test's score: log(p) / log(alpha), 1 at the significance level, 2 at its square."""
    return math.log(max(p_value, 1e-300)) / math.log(alpha)
