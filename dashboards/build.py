"""The town's Grafana dashboards, built with the Grafana Foundation SDK from the site registry.

Five dashboards in two folders:

- ``eit-public`` (anonymous viewers may read it): Town overview, Compliance, Energy and CO2;
- ``eit-officers`` (signed-in officers only): Factory detail, Platform health.

The public dashboards show only the factories the site registry marks ``public``: every one of
their queries carries the filter of dashboards/public.py, and building checks that it does.

Every panel reads the measurements of docs/store-schema.md with raw InfluxQL, which InfluxDB 1.x
serves natively and 2.x / 3.x serve through their v1 compatibility API. Limits, AQI bands and
compliance verdicts are read from the store (the compliance engine writes them, taking the numbers
from the standards data files); no regulatory number is written into a dashboard.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from statistics import fmean
from typing import Any, cast

from grafana_foundation_sdk.builders import barchart, geomap, stat, table, timeseries
from grafana_foundation_sdk.builders import common as common_builder
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models import geomap as geomap_model

from dashboards.indicators import town_indicators
from dashboards.influxql import DATASOURCE, InfluxQL
from dashboards.public import check_public_dashboard, public_filter
from eit.registry import Registry
from eit.storeschema import (
    Aqi,
    Daily,
    Energy,
    Hourly,
    Platform,
    PlatformDeadLetters,
    Readings,
    Rolling,
    Sites,
)

PUBLIC_FOLDER_UID = "eit-public"
OFFICERS_FOLDER_UID = "eit-officers"
FOLDER_TITLES = {PUBLIC_FOLDER_UID: "EIT Town (public)", OFFICERS_FOLDER_UID: "EIT Officers"}
TOWN_OVERVIEW_UID = "eit-town-overview"
TAGS = ["eit"]

# Presentation of the Thai AQI bands the compliance engine writes in the `band` field (its band
# limits come from the standards data, with their source); the colours are the PCD's.
AQI_BANDS = {
    "very_good": ("Very good", "blue"),
    "good": ("Good", "green"),
    "moderate": ("Moderate", "yellow"),
    "unhealthy_sensitive": ("Unhealthy for sensitive groups", "orange"),
    "unhealthy": ("Unhealthy", "red"),
}

# Tag filters on the Factory detail dashboard's variables (Grafana renders a multi-value
# variable as a regex alternation, so =~ /^$var$/ serves one, several or all values).
FACTORY_DEVICE = '"factory" =~ /^$factory$/ AND "device" =~ /^$device$/'
FACTORY_DEVICE_CHANNEL = FACTORY_DEVICE + ' AND "channel" =~ /^$channel$/'


@dataclass(frozen=True, slots=True)
class DashboardSpec:
    uid: str
    title: str
    folder_uid: str
    model: dict[str, Any]

    @property
    def public(self) -> bool:
        return self.folder_uid == PUBLIC_FOLDER_UID


def to_model(builder: cogbuilder.Builder[model.Dashboard]) -> dict[str, Any]:
    """The dashboard's JSON model as plain data."""
    data: dict[str, Any] = json.loads(json.dumps(builder.build(), cls=JSONEncoder))
    return data


def build_dashboards(registry: Registry) -> list[DashboardSpec]:
    builders = [
        (PUBLIC_FOLDER_UID, town_overview(registry)),
        (PUBLIC_FOLDER_UID, compliance(registry)),
        (PUBLIC_FOLDER_UID, energy(registry)),
        (OFFICERS_FOLDER_UID, factory_detail(registry)),
        (OFFICERS_FOLDER_UID, platform_health(registry)),
        (PUBLIC_FOLDER_UID, town_indicators(registry)),
    ]
    specs = []
    for folder, builder in builders:
        data = to_model(builder)
        if folder == PUBLIC_FOLDER_UID:
            check_public_dashboard(data, public_filter(registry))
        specs.append(DashboardSpec(str(data["uid"]), str(data["title"]), folder, data))
    return specs


# -- helpers -------------------------------------------------------------------------------------


def _dashboard(uid: str, title: str, registry: Registry, description: str) -> dash.Dashboard:
    return (
        dash.Dashboard(f"{title} · {registry.town_name}")
        .uid(uid)
        .description(description)
        .tags(TAGS)
        .timezone(registry.timezone)
        .refresh("1m")
        .time("now-24h", "now")
        .readonly()
    )


def _thresholds(*steps: tuple[float | None, str]) -> dash.ThresholdsConfig:
    return (
        dash.ThresholdsConfig()
        .mode(model.ThresholdsMode.ABSOLUTE)
        .steps([model.Threshold(value=v, color=c) for v, c in steps])
    )


def _aqi_band_mappings() -> list[model.ValueMapping]:
    options = {
        band: model.ValueMappingResult(text=text, color=colour, index=i)
        for i, (band, (text, colour)) in enumerate(AQI_BANDS.items())
    }
    return [model.ValueMap(options=options)]


def _transformation(id_: str, options: dict[str, Any]) -> model.DataTransformerConfig:
    return model.DataTransformerConfig(id_val=id_, options=options)


def _join_on(field: str) -> model.DataTransformerConfig:
    return _transformation("joinByField", {"byField": field, "mode": "outer"})


def _hide_time() -> model.DataTransformerConfig:
    return _transformation("organize", {"excludeByName": {"Time": True}})


def _table(title: str, *targets: InfluxQL) -> table.Panel:
    panel = table.Panel().title(title).datasource(DATASOURCE)
    for target in targets:
        panel = panel.with_target(target.table())
    return panel


def _series(title: str, unit: str, *targets: InfluxQL) -> timeseries.Panel:
    panel = timeseries.Panel().title(title).datasource(DATASOURCE).unit(unit)
    for target in targets:
        panel = panel.with_target(target)
    return panel


# -- Town overview (public) ----------------------------------------------------------------------


def town_overview(registry: Registry) -> dash.Dashboard:
    public = public_filter(registry)
    shown = [f for f in registry.factories.values() if f.public] or list(registry.factories.values())
    lat = fmean(f.lat for f in shown)
    lon = fmean(f.lon for f in shown)
    factory_map = (
        geomap.Panel()
        .title("Factories: hours above a limit in the time range")
        .description(
            "Each factory at its registered location. Green: no valid hour above a limit; red: at"
            " least one (clock-hour averages of the compliance engine)."
        )
        .datasource(DATASOURCE)
        .with_target(
            InfluxQL(
                "A",
                'SELECT last("lat") AS "lat", last("lon") AS "lon", last("name") AS "name"'
                f' FROM "{Sites.NAME}" WHERE {public} AND "public" = true GROUP BY "factory"',
            ).table()
        )
        .with_target(
            InfluxQL(
                "B",
                f'SELECT count("value") AS "exceeded hours" FROM "{Hourly.NAME}"'
                f' WHERE {public} AND "exceeded" = true AND $timeFilter GROUP BY "factory"',
            ).table()
        )
        .with_transformation(_join_on("factory"))
        .view(
            geomap.MapViewConfig()
            .id("coords")
            # The SDK types these as int; Grafana stores any number.
            .lat(cast(int, round(lat, 4)))
            .lon(cast(int, round(lon, 4)))
            .zoom(12)
        )
        .basemap(common_builder.MapLayerOptions().type("osm-standard").name("Map"))
        .layers(
            [
                common_builder.MapLayerOptions()
                .type("markers")
                .name("Factories")
                .location(
                    common_builder.FrameGeometrySource()
                    .mode(common.FrameGeometrySourceMode.COORDS)
                    .latitude("lat")
                    .longitude("lon")
                )
                .config(
                    {
                        "showLegend": True,
                        "style": {
                            "color": {"field": "exceeded hours", "fixed": "green"},
                            "size": {"fixed": 12},
                            "symbol": {"fixed": "img/icons/marker/circle.svg", "mode": "fixed"},
                            "text": {"field": "name", "mode": "field"},
                            "textConfig": {"fontSize": 12, "offsetY": -16, "textAlign": "center"},
                        },
                    }
                )
            ]
        )
        .tooltip(geomap.TooltipOptions().mode(geomap_model.TooltipMode.DETAILS))
        .color_scheme(dash.FieldColor().mode(model.FieldColorModeId.THRESHOLDS))
        .thresholds(_thresholds((None, "green"), (1, "red")))
        .mappings(
            [
                model.SpecialValueMap(
                    options=model.DashboardSpecialValueMapOptions(
                        match=model.SpecialValueMatch.NULL,
                        result=model.ValueMappingResult(text="0", color="green", index=0),
                    )
                )
            ]
        )
        .height(12)
        .span(14)
    )
    aqi_now = (
        _table(
            "Thai AQI now, by station",
            InfluxQL(
                "A",
                f'SELECT last("value") AS "AQI", last("band") AS "band" FROM "{Aqi.NAME}"'
                f' WHERE {public} AND "parameter" = \'overall\' AND $timeFilter GROUP BY "factory", "device"',
            ),
        )
        .with_transformation(_hide_time())
        .override_by_name(
            "band",
            [
                model.DynamicConfigValue(id_val="mappings", value=_aqi_band_mappings()),
                model.DynamicConfigValue(id_val="custom.cellOptions", value={"type": "color-background"}),
            ],
        )
        .height(12)
        .span(10)
    )
    aqi_trend = (
        _series(
            "Thai AQI by station (the highest sub-index, refreshed hourly)",
            "none",
            InfluxQL(
                "A",
                f'SELECT "value" FROM "{Aqi.NAME}"'
                f" WHERE {public} AND \"parameter\" = 'overall' AND $timeFilter"
                ' GROUP BY "factory", "device"',
            ).alias("$tag_factory/$tag_device"),
        )
        .description(
            "Each pollutant's sub-index is computed over the averaging period the Thai AQI sets for it"
            " (eit/standards/th_aqi.yaml); the station's AQI is the highest of them."
        )
        .height(8)
    )
    summary = (
        _table(
            "Compliance summary",
            InfluxQL(
                "A",
                f'SELECT count("value") AS "valid hours" FROM "{Hourly.NAME}"'
                f' WHERE {public} AND "valid" = true AND $timeFilter GROUP BY "factory"',
            ),
            InfluxQL(
                "B",
                f'SELECT count("value") AS "hours above a limit" FROM "{Hourly.NAME}"'
                f' WHERE {public} AND "exceeded" = true AND $timeFilter GROUP BY "factory"',
            ),
            InfluxQL(
                "C",
                f'SELECT mean("completeness") * 100 AS "data completeness %" FROM "{Daily.NAME}"'
                f' WHERE {public} AND $timeFilter GROUP BY "factory"',
            ),
        )
        .with_transformation(_join_on("factory"))
        .with_transformation(
            _transformation(
                "organize", {"excludeByName": {"Time": True, "Time 1": True, "Time 2": True, "Time 3": True}}
            )
        )
        .height(8)
    )
    return (
        _dashboard(
            TOWN_OVERVIEW_UID,
            "Town overview",
            registry,
            "The town's factories, air quality and compliance, for the public.",
        )
        .with_panel(factory_map)
        .with_panel(aqi_now)
        .with_panel(aqi_trend.span(12))
        .with_panel(summary.span(12))
    )


# -- Factory detail (officers) -------------------------------------------------------------------


def _tag_variable(name: str, label: str, query: str, *, multi: bool = False) -> dash.QueryVariable:
    variable = (
        dash.QueryVariable(name)
        .label(label)
        .datasource(DATASOURCE)
        .query(query)
        .refresh(model.VariableRefresh.ON_DASHBOARD_LOAD)
        .sort(model.VariableSort.ALPHABETICAL_ASC)
    )
    if multi:
        variable = variable.multi(True).include_all(True)
    return variable


FACTORY_VARIABLE_QUERY = f'SHOW TAG VALUES FROM "{Readings.NAME}" WITH KEY = "factory"'
DEVICE_VARIABLE_QUERY = (
    f'SHOW TAG VALUES FROM "{Readings.NAME}" WITH KEY = "device" WHERE "factory" =~ /^$factory$/'
)
CHANNEL_VARIABLE_QUERY = f'SHOW TAG VALUES FROM "{Readings.NAME}" WITH KEY = "channel" WHERE {FACTORY_DEVICE}'


def factory_detail(registry: Registry) -> dash.Dashboard:
    readings_vs_limit = (
        _series(
            "$channel: readings, hourly averages and the limit",
            "none",
            InfluxQL(
                "A",
                f'SELECT mean("value") AS "reading" FROM "{Readings.NAME}" WHERE {FACTORY_DEVICE_CHANNEL}'
                " AND (\"flag\" = 'N' OR \"flag\" = 'S') AND $timeFilter"
                " GROUP BY time($__interval) fill(none)",
            ),
            InfluxQL(
                "B",
                f'SELECT "value" AS "hourly average", "corrected" AS "hourly average at reference O2",'
                f' "limit" FROM "{Hourly.NAME}" WHERE {FACTORY_DEVICE_CHANNEL} AND $timeFilter',
            ),
        )
        .description(
            "Valid readings (flags N and S), the clock-hour averages and the 1-hour limit in force."
            " The limit is in the limit's unit (see the hourly table)."
        )
        .repeat("channel")
        .repeat_direction("h")
        .max_per_row(2)
        .override_by_name(
            "limit",
            [
                model.DynamicConfigValue(id_val="color", value={"mode": "fixed", "fixedColor": "red"}),
                model.DynamicConfigValue(id_val="custom.lineStyle", value={"fill": "dash", "dash": [10, 10]}),
            ],
        )
        .height(9)
        .span(24)  # Grafana shares the row among the repeats, max_per_row to a row
    )
    latest = (
        _table(
            "Latest readings",
            InfluxQL(
                "A",
                f'SELECT last("value") AS "value", last("flag") AS "flag" FROM "{Readings.NAME}"'
                f' WHERE {FACTORY_DEVICE} AND $timeFilter GROUP BY "channel"',
            ),
        )
        .height(8)
        .span(8)
    )
    completeness = (
        barchart.Panel()
        .title("Data completeness per day (valid hours / expected hours)")
        .datasource(DATASOURCE)
        .with_target(
            InfluxQL(
                "A",
                f'SELECT "completeness" FROM "{Daily.NAME}" WHERE {FACTORY_DEVICE} AND $timeFilter'
                ' GROUP BY "channel"',
            ).alias("$tag_channel")
        )
        .unit("percentunit")
        .min(0)
        .max(1)
        .height(8)
        .span(16)
    )
    hourly = (
        _table(
            "Hourly averages",
            InfluxQL(
                "A",
                'SELECT "value", "corrected", "limit", "limit_unit", "points", "quadrants", "valid",'
                f' "reason", "exceeded", "retroactive" FROM "{Hourly.NAME}" WHERE {FACTORY_DEVICE}'
                ' AND $timeFilter GROUP BY "channel"',
            ),
        )
        .height(10)
        .span(24)
    )
    return (
        _dashboard(
            "eit-factory-detail",
            "Factory detail",
            registry,
            "One device of one factory: readings against limits, hourly averages, data completeness.",
        )
        .with_variable(_tag_variable("factory", "Factory", FACTORY_VARIABLE_QUERY))
        .with_variable(_tag_variable("device", "Device", DEVICE_VARIABLE_QUERY))
        .with_variable(_tag_variable("channel", "Channel", CHANNEL_VARIABLE_QUERY, multi=True))
        .with_panel(latest)
        .with_panel(completeness)
        .with_panel(readings_vs_limit)
        .with_panel(hourly)
    )


# -- Compliance (public) -------------------------------------------------------------------------


def compliance(registry: Registry) -> dash.Dashboard:
    public = public_filter(registry)
    by_month = (
        _table(
            "Hours above a limit, by factory and month",
            InfluxQL(
                "A",
                f'SELECT count("value") AS "hours above a limit" FROM "{Hourly.NAME}"'
                f' WHERE {public} AND "exceeded" = true AND $timeFilter'
                f" GROUP BY time(1d), \"factory\" fill(none) tz('{registry.timezone}')",
            ),
        )
        .with_transformation(_transformation("formatTime", {"timeField": "Time", "outputFormat": "YYYY-MM"}))
        .with_transformation(
            _transformation(
                "groupBy",
                {
                    "fields": {
                        "Time": {"operation": "groupby"},
                        "factory": {"operation": "groupby"},
                        "hours above a limit": {"operation": "aggregate", "aggregations": ["sum"]},
                    }
                },
            )
        )
        .with_transformation(
            _transformation(
                "organize",
                {"renameByName": {"Time": "month", "hours above a limit (sum)": "hours above a limit"}},
            )
        )
        .height(9)
        .span(10)
    )
    per_day = (
        barchart.Panel()
        .title("Hours above a limit per day")
        .datasource(DATASOURCE)
        .with_target(
            InfluxQL(
                "A",
                f'SELECT count("value") FROM "{Hourly.NAME}"'
                f' WHERE {public} AND "exceeded" = true AND $timeFilter'
                f" GROUP BY time(1d), \"factory\" fill(0) tz('{registry.timezone}')",
            ).alias("$tag_factory")
        )
        .stacking(common.StackingMode.NORMAL)
        .height(9)
        .span(14)
    )
    exceedances = _table(
        "Clock hours above a limit",
        InfluxQL(
            "A",
            f'SELECT "value", "corrected", "limit", "limit_unit", "retroactive" FROM "{Hourly.NAME}"'
            f' WHERE {public} AND "exceeded" = true AND $timeFilter GROUP BY "factory", "device", "channel"',
        ),
    ).height(9)
    rolling = (
        _table(
            "Rolling averages above a limit (ambient air)",
            InfluxQL(
                "A",
                'SELECT count("value") AS "windows above the limit", max("value") AS "highest average",'
                f' last("limit") AS "limit", last("limit_unit") AS "unit" FROM "{Rolling.NAME}"'
                f' WHERE {public} AND "exceeded" = true AND $timeFilter'
                ' GROUP BY "factory", "device", "channel", "window"',
            ),
        )
        .with_transformation(_hide_time())
        .height(8)
        .span(12)
    )
    incomplete = (
        _table(
            "Days below the data-completeness threshold",
            InfluxQL(
                "A",
                'SELECT count("completeness") AS "incomplete days", min("completeness") AS "lowest"'
                f' FROM "{Daily.NAME}" WHERE {public} AND "complete" = false AND $timeFilter'
                ' GROUP BY "factory", "device", "channel"',
            ),
        )
        .with_transformation(_hide_time())
        .height(8)
        .span(12)
    )
    return (
        _dashboard(
            "eit-compliance",
            "Compliance",
            registry,
            "Valid clock hours and rolling averages above their limits, and data completeness.",
        )
        .time("now-90d", "now")
        .with_panel(by_month)
        .with_panel(per_day)
        .with_panel(exceedances.span(24))
        .with_panel(rolling)
        .with_panel(incomplete)
    )


# -- Energy and CO2 (public) ---------------------------------------------------------------------


def energy(registry: Registry) -> dash.Dashboard:
    tz = registry.timezone
    public = public_filter(registry)
    kwh_total = (
        stat.Panel()
        .title("Energy used")
        .datasource(DATASOURCE)
        .with_target(
            InfluxQL("A", f'SELECT sum("kwh") AS "kWh" FROM "{Energy.NAME}" WHERE {public} AND $timeFilter')
        )
        .unit("kwatth")
        .height(5)
        .span(8)
    )
    co2_total = (
        stat.Panel()
        .title("CO2 from grid electricity")
        .datasource(DATASOURCE)
        .with_target(
            InfluxQL(
                "A",
                f'SELECT sum("co2_kg") / 1000 AS "t CO2e" FROM "{Energy.NAME}"'
                f' WHERE {public} AND $timeFilter GROUP BY "factory"',
            ).alias("$tag_factory")
        )
        .unit("t CO2e")
        .height(5)
        .span(8)
    )
    factor = (
        stat.Panel()
        .title("Grid emission factor in use (kg CO2e/kWh)")
        .datasource(DATASOURCE)
        .with_target(
            InfluxQL(
                "A",
                f'SELECT last("grid_factor") AS "kg CO2e/kWh" FROM "{Energy.NAME}"'
                f" WHERE {public} AND $timeFilter",
            )
        )
        .decimals(4)
        .height(5)
        .span(8)
    )
    kwh_daily = (
        barchart.Panel()
        .title("Energy per day (kWh)")
        .datasource(DATASOURCE)
        .with_target(
            InfluxQL(
                "A",
                f'SELECT sum("kwh") FROM "{Energy.NAME}" WHERE {public} AND $timeFilter'
                f" GROUP BY time(1d), \"factory\" fill(0) tz('{tz}')",
            ).alias("$tag_factory")
        )
        .stacking(common.StackingMode.NORMAL)
        .height(9)
        .span(12)
    )
    co2_daily = (
        barchart.Panel()
        .title("CO2 per day (kg CO2e)")
        .datasource(DATASOURCE)
        .with_target(
            InfluxQL(
                "A",
                f'SELECT sum("co2_kg") FROM "{Energy.NAME}" WHERE {public} AND $timeFilter'
                f" GROUP BY time(1d), \"factory\" fill(0) tz('{tz}')",
            ).alias("$tag_factory")
        )
        .stacking(common.StackingMode.NORMAL)
        .height(9)
        .span(12)
    )
    hourly_kwh = _series(
        "Energy per hour (kWh)",
        "kwatth",
        InfluxQL(
            "A",
            f'SELECT "kwh" FROM "{Energy.NAME}" WHERE {public} AND $timeFilter GROUP BY "factory", "device"',
        ).alias("$tag_factory/$tag_device"),
    ).height(8)
    return (
        _dashboard(
            "eit-energy",
            "Energy and CO2",
            registry,
            "Electricity the factories use and its CO2 at the grid emission factor in force.",
        )
        .time("now-7d", "now")
        .with_panel(kwh_total)
        .with_panel(co2_total)
        .with_panel(factor)
        .with_panel(kwh_daily)
        .with_panel(co2_daily)
        .with_panel(hourly_kwh.span(24))
    )


# -- Platform health (officers) ------------------------------------------------------------------


def platform_health(registry: Registry) -> dash.Dashboard:
    def rate(title: str, field: str, unit: str) -> timeseries.Panel:
        return _series(
            title,
            unit,
            InfluxQL(
                "A",
                f'SELECT non_negative_derivative(last("{field}"), 1s) FROM "{Platform.NAME}"'
                f" WHERE $timeFilter"
                ' GROUP BY time($__interval), "instance" fill(none)',
            ).alias("$tag_instance"),
        )

    def gauge(title: str, *fields: str) -> timeseries.Panel:
        selected = ", ".join(f'last("{f}") AS "{f}"' for f in fields)
        return _series(
            title,
            "none",
            InfluxQL(
                "A",
                f'SELECT {selected} FROM "{Platform.NAME}" WHERE $timeFilter'
                ' GROUP BY time($__interval), "instance" fill(none)',
            ).alias("$tag_instance $col"),
        )

    dead_rate = _series(
        "Dead letters by reason",
        "none",
        InfluxQL(
            "A",
            f'SELECT non_negative_difference(last("count")) FROM "{PlatformDeadLetters.NAME}"'
            f" WHERE $timeFilter"
            ' GROUP BY time($__interval), "reason" fill(none)',
        ).alias("$tag_reason"),
    ).draw_style(common.GraphDrawStyle.BARS)
    dead_total = (
        _table(
            "Dead letters since the server started, by reason",
            InfluxQL(
                "A",
                f'SELECT last("count") AS "dead letters" FROM "{PlatformDeadLetters.NAME}" WHERE $timeFilter'
                ' GROUP BY "instance", "reason"',
            ),
        )
        .with_transformation(_hide_time())
        .height(8)
        .span(8)
    )
    online_now = (
        stat.Panel()
        .title("Devices online / offline now")
        .datasource(DATASOURCE)
        .with_target(
            InfluxQL(
                "A",
                'SELECT last("devices_online") AS "online", last("devices_offline") AS "offline"'
                f' FROM "{Platform.NAME}" WHERE $timeFilter GROUP BY "instance"',
            )
        )
        .height(8)
        .span(8)
    )
    return (
        _dashboard(
            "eit-platform-health",
            "Platform health",
            registry,
            "The server's own counters (`eit serve` writes them every 10 s).",
        )
        .time("now-6h", "now")
        .refresh("30s")
        .with_panel(
            rate("Ingest rate (readings stored per second)", "readings_stored", "none").height(8).span(12)
        )
        .with_panel(rate("MQTT messages per second", "messages", "none").height(8).span(12))
        .with_panel(dead_rate.height(8).span(16))
        .with_panel(dead_total)
        .with_panel(
            gauge("Devices online and offline", "devices_online", "devices_offline").height(8).span(8)
        )
        .with_panel(gauge("Agents' outbox backlog (scans)", "outbox_pending").height(8).span(8))
        .with_panel(online_now)
        .with_panel(gauge("Open alerts", "alerts_open").height(8).span(24))
    )
