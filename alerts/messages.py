"""Alert texts in Thai and English, rendered from alerts/templates/messages.yaml."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

from alerts.model import Alert, AlertEvent
from eit.confread import load_yaml
from eit.errors import ConfigError
from eit.glossary import THAI_MONTHS, glossary

TEMPLATES = Path(__file__).resolve().parent / "templates" / "messages.yaml"
LANGUAGES = ("en", "th")


@cache
def _templates() -> dict[str, Any]:
    data = load_yaml(TEMPLATES, "alerts/templates/messages.yaml")
    if not isinstance(data, dict):
        raise ConfigError("alerts/templates/messages.yaml", "", "expected a mapping at the top level", 1)
    return data


def fragment(name: str, language: str, **params: str) -> str:
    return str(_templates()["fragments"][name][language]).format(**params)


def render(template: str, params: dict[str, str], language: str = "en") -> str:
    """The text of template ``template`` in ``language``; unknown templates give the params."""
    data = _templates()
    entry = data["messages"].get(template)
    if entry is None:
        return ", ".join(f"{k}={v}" for k, v in sorted(params.items()))
    words = data["words"].get(language, {})
    local = {k: words.get(v, v) for k, v in _in_language(params, language, data).items()}
    # Fragments are stored in English; swap them for the language's own.
    for name in ("correction", "screening"):
        if local.get(name):
            local[name] = fragment(name, language, **_fragment_params(params, name))
    text = str(entry[language]).format_map(_Defaults(local))
    if params.get("retroactive") == "yes":
        text = fragment("retroactive", language) + text
    return text


_PERIOD = re.compile(r"^(\d{4})-(\d{2})-(\d{2}) (.*)$")


def _in_language(params: dict[str, str], language: str, data: dict[str, Any]) -> dict[str, str]:
    """Thai display of the stored (English, ASCII) parameters: the parameter's symbol for the
    channel id, unit symbols, Buddhist-era dates in the period, the limit's origin in Thai words
    (eit/glossary.yaml, the `origin_words` of messages.yaml). English texts keep the stored values."""
    if language != "th":
        return params
    g = glossary()
    out = dict(params)
    if "channel" in out:
        out["channel"] = g.parameter_symbol(out["channel"])
    if "unit" in out:
        out["unit"] = g.unit_symbol(out["unit"]) or out["unit"]
    m = _PERIOD.match(out.get("period", ""))
    if m is not None:
        year, month, day, rest = int(m.group(1)), int(m.group(2)), int(m.group(3)), m.group(4)
        out["period"] = f"{day} {THAI_MONTHS[month - 1]} {year + g.buddhist_era_offset} {rest}"
    if "origin" in out:
        for english, thai in (data.get("origin_words") or {}).items():
            out["origin"] = out["origin"].replace(str(english), str(thai))
    return out


def _fragment_params(params: dict[str, str], name: str) -> dict[str, str]:
    return {"o2": params.get("o2", "")} if name == "correction" else {}


class _Defaults(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return ""


def alert_text(alert: Alert, language: str) -> str:
    if alert.template:
        return render(alert.template, alert.params, language)
    return alert.message


def headline(event: AlertEvent, language: str) -> str:
    data = _templates()
    kind = event.kind if event.kind in data["events"] else "other"
    a = event.alert
    return str(data["events"][kind][language]).format(
        severity_word=data["severity"][language].get(a.severity, a.severity),
        factory=a.factory,
        device=a.device,
        parameter=a.parameter,
        rule=a.rule,
        event=event.kind,
    )


def footer(alert: Alert, language: str, role: str = "officer") -> str:
    """The last line of a notification: how an officer acknowledges it; for a factory's own
    people (``role`` factory or operator), where the factory answers it."""
    key = "footer_factory" if role in FACTORY_ROLES else "footer"
    return str(_templates()[key][language]).format(id=alert.id)


# Recipients who are the factory's own people, not officers (alerts/notifiers/preferences.py).
FACTORY_ROLES = frozenset({"factory", "operator"})
