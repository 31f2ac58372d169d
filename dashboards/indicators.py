"""The "Town indicators" dashboard (public folder): each indicator of the catalogue
(eit/indicators.yaml) month by month, made in the query from the public factories' contributions
(the ``indicator`` measurement, docs/store-schema.md), so every query keeps the public filter of
dashboards/public.py like the other public dashboards.

The town's value is the indicator's ``combine``: ``sum`` sums the contributions, ``mean`` takes
their mean, ``ratio`` the sum of numerators over the sum of denominators. An indicator whose
denominator counts every registered factory (factories publishing) divides by the registry's count,
written into the query when the dashboards are built.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import timeseries
from grafana_foundation_sdk.models import common

from dashboards.influxql import DATASOURCE, InfluxQL
from dashboards.public import public_factories, public_filter
from eit.indicators import MONTH, Indicator, load_catalogue
from eit.registry import Registry
from eit.storeschema import Indicator as IndicatorSchema

TOWN_INDICATORS_UID = "eit-town-indicators"
# Grafana units for the catalogue's units (others are shown as they are written).
UNITS = {"%": "percent", "kWh": "kwatth", "h": "h", "days": "d"}


def town_value_expression(indicator: Indicator, factories_total: int) -> str:
    """The InfluxQL select expression of the town's value from the contributions."""
    s = IndicatorSchema
    combine = indicator.formula.combine
    if combine == "sum":
        return f'sum("{s.VALUE}")'
    if combine == "mean":
        return f'mean("{s.VALUE}")'
    scale = " * 100" if indicator.percent else ""
    if indicator.public_denominator == "all_factories":
        return f'sum("{s.NUMERATOR}") / {max(factories_total, 1)}{scale}'
    return f'sum("{s.NUMERATOR}") / sum("{s.DENOMINATOR}"){scale}'


def indicator_query(indicator: Indicator, registry: Registry) -> str:
    s = IndicatorSchema
    expression = town_value_expression(indicator, len(registry.factories))
    return (
        f'SELECT {expression} AS "{indicator.name_en}" FROM "{s.NAME}"'
        f" WHERE \"{s.INDICATOR}\" = '{indicator.id}' AND \"{s.PERIOD}\" = '{MONTH}'"
        f" AND {public_filter(registry)} AND $timeFilter"
        f" GROUP BY time(1d) fill(none) tz('{registry.timezone}')"
    )


def town_indicators(registry: Registry) -> dash.Dashboard:
    catalogue = load_catalogue(registry.indicators.catalogue_files)
    shown = len(public_factories(registry))
    total = len(registry.factories)
    board = (
        dash.Dashboard(f"Town indicators · {registry.town_name}")
        .uid(TOWN_INDICATORS_UID)
        .description(
            "The eco-industrial town's shared indicators, month by month, from the public factories"
            f" ({shown} of {total} factories). Definitions, owners and sources: eit/indicators.yaml."
        )
        .tags(["eit"])
        .timezone(registry.timezone)
        .refresh("1h")
        .time("now-1y", "now")
        .readonly()
    )
    for indicator in catalogue.indicators.values():
        if MONTH not in indicator.periods:
            continue
        target = registry.indicators.targets.get(indicator.id)
        goal = ""
        if target is not None:
            mark = " (illustrative)" if target.illustrative else ""
            goal = (
                f" Target{mark}: {target.target_value:g} by {target.target_year}"
                f" ({target.period} value; baseline {target.baseline_value:g} in {target.baseline_year})."
            )
        panel = (
            timeseries.Panel()
            .title(f"{indicator.name_en} ({indicator.unit})")
            .description(
                f"{indicator.name_th}. Owner: {catalogue.agencies[indicator.owner].en}."
                f" {'Lower' if indicator.direction == 'lower' else 'Higher'} is better.{goal}"
                f" Public factories only: {shown} of {total}."
            )
            .datasource(DATASOURCE)
            .with_target(InfluxQL("A", indicator_query(indicator, registry)))
            .unit(UNITS.get(indicator.unit, indicator.unit))
            .draw_style(common.GraphDrawStyle.BARS)
            .fill_opacity(60)
            .min(0)
            .height(8)
            .span(12)
        )
        board = board.with_panel(panel)
    return board
