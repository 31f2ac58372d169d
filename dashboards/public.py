"""What the public dashboards may show: the factories the site registry marks ``public``.

Every query of a dashboard in the public folder carries the same tag filter, built from the
registry when the dashboards are built (``"factory" =~ /^(?:a|b)$/``). Panels that sum over the
town (energy used, the AQI trend) are filtered too, so a factory that is not public adds nothing to
any figure the public sees. Public dashboards hold no template variables: a variable's value comes
from the viewer (a URL sets it), and no value of it may widen this filter.

This keeps non-public factories off the public dashboards, not out of the data source: Grafana OSS
lets any Viewer query a data source directly (README, Dashboards).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from eit.registry import Registry

# RE2 (InfluxDB's Go regexp) metacharacters, and the slash that ends an InfluxQL regex literal.
_REGEX_SPECIAL = frozenset("\\.+*?()|[]{}^$/")

# When no factory is public: a condition no series meets. (`"factory" =~ /^$/` would not do:
# InfluxQL gives a series without the tag the empty value.)
NO_FACTORY = "(\"factory\" = '' AND \"factory\" != '')"


class PublicScopeError(ValueError):
    """A dashboard of the public folder would show more than the public factories."""


def regex_literal(text: str) -> str:
    """``text`` matched literally inside an InfluxQL ``/.../`` regex."""
    return "".join("\\" + c if c in _REGEX_SPECIAL else c for c in text)


def factory_filter(factory_ids: Iterable[str]) -> str:
    """An InfluxQL condition true for the series of exactly these factories (tag ``factory``)."""
    ids = sorted(set(factory_ids))
    if not ids:
        return NO_FACTORY
    return '"factory" =~ /^(?:' + "|".join(regex_literal(i) for i in ids) + ")$/"


def public_factories(registry: Registry) -> list[str]:
    return sorted(f.id for f in registry.factories.values() if f.public)


def public_filter(registry: Registry) -> str:
    """The condition every query of a public dashboard carries."""
    return factory_filter(public_factories(registry))


def check_public_dashboard(model: dict[str, Any], condition: str) -> None:
    """Raise :class:`PublicScopeError` when a public dashboard has a template variable or a query
    without ``condition``."""
    uid = model["uid"]
    if model.get("templating", {}).get("list"):
        raise PublicScopeError(f"public dashboard {uid}: a public dashboard takes no template variables")
    for panel in _panels(model.get("panels", [])):
        for target in panel.get("targets", []):
            if condition not in target.get("query", ""):
                raise PublicScopeError(
                    f"public dashboard {uid}: panel {panel.get('title')!r}, query {target.get('refId')}:"
                    f" does not keep to the public factories ({condition})"
                )


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every panel, those inside (collapsed) rows too."""
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))
