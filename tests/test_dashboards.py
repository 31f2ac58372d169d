"""The dashboards as code: every panel's InfluxQL, with its variables filled in as Grafana fills
them, runs against a real InfluxDB holding a day of the example town (testbed/town.py) and
returns the series the panel expects; the committed provisioning files are what
`eit dashboards build` writes."""

from __future__ import annotations

import copy
import dataclasses
import re
import uuid
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dashboards.build import (
    CHANNEL_VARIABLE_QUERY,
    DEVICE_VARIABLE_QUERY,
    FACTORY_VARIABLE_QUERY,
    OFFICERS_FOLDER_UID,
    PUBLIC_FOLDER_UID,
    DashboardSpec,
    build_dashboards,
)
from dashboards.indicators import TOWN_INDICATORS_UID
from dashboards.influxql import DATASOURCE_UID
from dashboards.public import PublicScopeError, check_public_dashboard, factory_filter, public_filter
from eit.confread import load_yaml
from eit.registry import Registry, load_registry
from eit.store import StoreError
from eit.storeschema import ChainEvents
from ingest.store.influx import InfluxStore, point_line
from ingest.verify import UNEXPLAINED_GAP
from ingest.verify import _Gap as _ChainGap
from server.cli import main
from testbed.services import REPO, InfluxDB
from testbed.town import (
    DAY,
    DAY_END_NS,
    DAY_START_NS,
    DEAD_LETTER_REASONS,
    O3_MAINTENANCE_HOURS,
    SO2_HIGH_HOURS,
    TownSpec,
    town_site,
    write_town_day,
)
from tests.test_storeschema import documented_schema

REGISTRY = load_registry(REPO / "examples" / "town" / "site.yaml")
SPECS = {s.uid: s for s in build_dashboards(REGISTRY)}
MS = 1_000_000

K, S, E = "kaeng-khoi-biomass", "siam-cassava-starch", "eastern-petrochem"
ALL_FACTORIES = {K, S, E}
INSTANCE = "eit-ingest"

Group = frozenset[tuple[str, str]]


def groups(*tag_sets: dict[str, str]) -> set[Group]:
    return {frozenset(t.items()) for t in tag_sets}


@dataclass(frozen=True)
class Expect:
    """The tag sets of the series a target must return, and the columns that must hold values."""

    series: set[Group]
    columns: tuple[str, ...]


def by_factory(*factories: str) -> set[Group]:
    return groups(*({"factory": f} for f in factories))


WHOLE = groups({})  # one series, no GROUP BY tag

# (dashboard uid, panel title, refId) -> what the panel is built to show, on the fixture day.
EXPECTED: dict[tuple[str, str, str], Expect] = {
    ("eit-town-overview", "Factories: hours above a limit in the time range", "A"): Expect(
        by_factory(*ALL_FACTORIES), ("lat", "lon", "name")
    ),
    ("eit-town-overview", "Factories: hours above a limit in the time range", "B"): Expect(
        by_factory(K), ("exceeded hours",)
    ),
    ("eit-town-overview", "Thai AQI now, by station", "A"): Expect(
        groups({"factory": E, "device": "fenceline-1"}), ("AQI", "band")
    ),
    ("eit-town-overview", "Thai AQI by station (the highest sub-index, refreshed hourly)", "A"): Expect(
        groups({"factory": E, "device": "fenceline-1"}), ("value",)
    ),
    ("eit-town-overview", "Compliance summary", "A"): Expect(by_factory(*ALL_FACTORIES), ("valid hours",)),
    ("eit-town-overview", "Compliance summary", "B"): Expect(by_factory(K), ("hours above a limit",)),
    ("eit-town-overview", "Compliance summary", "C"): Expect(
        by_factory(*ALL_FACTORIES), ("data completeness %",)
    ),
    ("eit-compliance", "Hours above a limit, by factory and month", "A"): Expect(
        by_factory(K), ("hours above a limit",)
    ),
    ("eit-compliance", "Hours above a limit per day", "A"): Expect(by_factory(K), ("count",)),
    ("eit-compliance", "Clock hours above a limit", "A"): Expect(
        groups({"factory": K, "device": "boiler-1", "channel": "so2"}),
        ("value", "corrected", "limit", "limit_unit", "retroactive"),
    ),
    ("eit-compliance", "Rolling averages above a limit (ambient air)", "A"): Expect(
        groups({"factory": E, "device": "fenceline-1", "channel": "o3", "window": "8h"}),
        ("windows above the limit", "highest average", "limit", "unit"),
    ),
    ("eit-compliance", "Days below the data-completeness threshold", "A"): Expect(
        groups({"factory": E, "device": "fenceline-1", "channel": "o3"}), ("incomplete days", "lowest")
    ),
    ("eit-energy", "Energy used", "A"): Expect(WHOLE, ("kWh",)),
    ("eit-energy", "CO2 from grid electricity", "A"): Expect(by_factory(K), ("t CO2e",)),
    ("eit-energy", "Grid emission factor in use (kg CO2e/kWh)", "A"): Expect(WHOLE, ("kg CO2e/kWh",)),
    ("eit-energy", "Energy per day (kWh)", "A"): Expect(by_factory(K), ("sum",)),
    ("eit-energy", "CO2 per day (kg CO2e)", "A"): Expect(by_factory(K), ("sum",)),
    ("eit-energy", "Energy per hour (kWh)", "A"): Expect(
        groups({"factory": K, "device": "meter-1"}), ("kwh",)
    ),
    ("eit-platform-health", "Ingest rate (readings stored per second)", "A"): Expect(
        groups({"instance": INSTANCE}), ("non_negative_derivative",)
    ),
    ("eit-platform-health", "MQTT messages per second", "A"): Expect(
        groups({"instance": INSTANCE}), ("non_negative_derivative",)
    ),
    ("eit-platform-health", "Dead letters by reason", "A"): Expect(
        groups(*({"reason": r} for r in DEAD_LETTER_REASONS)), ("non_negative_difference",)
    ),
    ("eit-platform-health", "Dead letters since the server started, by reason", "A"): Expect(
        groups(*({"instance": INSTANCE, "reason": r} for r in DEAD_LETTER_REASONS)), ("dead letters",)
    ),
    ("eit-platform-health", "Devices online and offline", "A"): Expect(
        groups({"instance": INSTANCE}), ("devices_online", "devices_offline")
    ),
    ("eit-platform-health", "Agents' outbox backlog (scans)", "A"): Expect(
        groups({"instance": INSTANCE}), ("outbox_pending",)
    ),
    ("eit-platform-health", "Devices online / offline now", "A"): Expect(
        groups({"instance": INSTANCE}), ("online", "offline")
    ),
    ("eit-platform-health", "Open alerts", "A"): Expect(groups({"instance": INSTANCE}), ("alerts_open",)),
}


def factory_detail_expected(registry: Registry, factory: str, device: str, channel: str) -> dict[str, Expect]:
    """The Factory detail dashboard's expectations for one choice of its variables."""
    dev = registry.factories[factory].devices[device]
    channels = groups(*({"channel": c} for c in dev.channels))
    has_hourly_limit = any(lim.averaging == "1h" for lim in dev.channels[channel].limits_on(DAY.date()))
    return {
        "Latest readings/A": Expect(channels, ("value", "flag")),
        "Data completeness per day (valid hours / expected hours)/A": Expect(channels, ("completeness",)),
        "$channel: readings, hourly averages and the limit/A": Expect(WHOLE, ("reading",)),
        "$channel: readings, hourly averages and the limit/B": Expect(
            WHOLE,
            ("hourly average", "hourly average at reference O2") + (("limit",) if has_hourly_limit else ()),
        ),
        "Hourly averages/A": Expect(
            channels,
            ("value", "corrected", "points", "quadrants", "valid", "reason", "exceeded", "retroactive"),
        ),
    }


# -- filling in the variables as Grafana does ---------------------------------------------------


def grafana_regex_value(value: str) -> str:
    """A variable's value inside /^$var$/: Grafana escapes regex characters (lodash escapeRegExp)."""
    return re.sub(r"[\\^$.*+?()[\]{}|/]", lambda m: "\\" + m.group(0), value)


def render(query: str, variables: dict[str, str], start_ns: int, end_ns: int, interval: str = "1m") -> str:
    q = query.replace("$timeFilter", f"time >= {start_ns // MS}ms and time <= {end_ns // MS}ms")
    q = q.replace("$__interval", interval)
    for name in sorted(variables, key=len, reverse=True):
        q = q.replace(f"${name}", grafana_regex_value(variables[name]))
    assert not re.search(r"\$\{?[A-Za-z_]", q), f"a variable is left in {q!r}"
    return q


def targets(spec: DashboardSpec) -> Iterator[tuple[str, str, str]]:
    """(panel title, refId, query) of every target of every panel."""
    for panel in spec.model["panels"]:
        for target in panel.get("targets", []):
            yield panel["title"], target["refId"], target.get("query", "")


def problems(series: list[dict[str, Any]], expect: Expect) -> list[str]:
    """What is wrong with a query's result for a panel (nothing: an empty list)."""
    if not series:
        return ["the query returned no series"]
    found = {frozenset((s.get("tags") or {}).items()) for s in series}
    out = []
    if found != expect.series:
        out.append(f"series {sorted(map(sorted, found))}, expected {sorted(map(sorted, expect.series))}")
    for column in expect.columns:
        if any(column not in s["columns"] for s in series):
            out.append(f"no column {column!r}")
            continue
        holding = [any(row[s["columns"].index(column)] is not None for row in s["values"]) for s in series]
        if not all(holding):
            out.append(f"column {column!r} holds no value in some series")
    return out


# -- the store with the example town's day ---------------------------------------------------------


@pytest.fixture(scope="module")
def town_store(influxdb: InfluxDB) -> Iterator[InfluxStore]:
    """The day of the whole town, filled once for this module's tests."""
    store = InfluxStore(influxdb.url, "t_town_day_" + uuid.uuid4().hex[:8])
    write_town_day(store, REGISTRY)
    # The example town's agents do not sign, so no chain event happens in its day: one as the
    # ingest's verifier writes it (a gap in a signed device's chain; tests/test_signing.py).
    gap = _ChainGap(DAY_START_NS + 3600 * 10**9, 41, 42, {41, 42}, UNEXPLAINED_GAP)
    store.write_points(ChainEvents.NAME, [gap.point("kaeng-khoi-biomass", "boiler-1")])
    # And one reading as a signed device's: the same point again, with its verification result.
    first = store.readings("kaeng-khoi-biomass", "boiler-1", "so2", DAY_START_NS, DAY_END_NS, limit=1)[0]
    store.write([dataclasses.replace(first, verified="verified")])
    yield store
    store.close()


# -- the panels --------------------------------------------------------------------------------

TOWN_TARGETS = [
    (uid, title, ref, query)
    for uid, spec in SPECS.items()
    # The town indicators' panels read monthly points: tests/test_indicators_dashboard.py.
    if uid not in ("eit-factory-detail", TOWN_INDICATORS_UID)
    for title, ref, query in targets(spec)
]


def test_every_panel_has_a_query_and_an_expectation() -> None:
    for spec in SPECS.values():
        for panel in spec.model["panels"]:
            assert panel.get("targets"), f"{spec.uid}: panel {panel['title']!r} has no query"
            assert panel["datasource"]["uid"] == DATASOURCE_UID
    listed = {(uid, title, ref) for uid, title, ref, _ in TOWN_TARGETS}
    assert listed == set(EXPECTED), f"panels without expectation: {listed - set(EXPECTED)}"
    detail = {f"{title}/{ref}" for title, ref, _ in targets(SPECS["eit-factory-detail"])}
    assert detail == set(factory_detail_expected(REGISTRY, K, "boiler-1", "so2"))


@pytest.mark.integration
@pytest.mark.parametrize(
    ("uid", "title", "ref", "query"), TOWN_TARGETS, ids=[f"{t[0]}:{t[1]}:{t[2]}" for t in TOWN_TARGETS]
)
def test_panel_query_returns_the_series_the_panel_expects(
    town_store: InfluxStore, uid: str, title: str, ref: str, query: str
) -> None:
    q = render(query, {}, DAY_START_NS, DAY_END_NS)
    assert problems(town_store.query(q), EXPECTED[(uid, title, ref)]) == [], q


DEVICE_CHANNELS = [
    (f.id, d.id, c) for f in REGISTRY.factories.values() for d in f.devices.values() for c in d.channels
]


@pytest.mark.integration
@pytest.mark.parametrize(
    ("factory", "device", "channel"), DEVICE_CHANNELS, ids=["/".join(x) for x in DEVICE_CHANNELS]
)
def test_factory_detail_panels_return_their_series_for_every_channel_of_the_town(
    town_store: InfluxStore, factory: str, device: str, channel: str
) -> None:
    expected = factory_detail_expected(REGISTRY, factory, device, channel)
    variables = {"factory": factory, "device": device, "channel": channel}
    for title, ref, query in targets(SPECS["eit-factory-detail"]):
        q = render(query, variables, DAY_START_NS, DAY_END_NS)
        assert problems(town_store.query(q), expected[f"{title}/{ref}"]) == [], q


def tag_values(store: InfluxStore, query: str) -> set[str]:
    return {row[1] for s in store.query(query) for row in s["values"]}


@pytest.mark.integration
def test_factory_detail_variables_list_the_towns_factories_devices_and_channels(
    town_store: InfluxStore,
) -> None:
    variables = {v["name"]: v["query"] for v in SPECS["eit-factory-detail"].model["templating"]["list"]}
    assert variables == {
        "factory": FACTORY_VARIABLE_QUERY,
        "device": DEVICE_VARIABLE_QUERY,
        "channel": CHANNEL_VARIABLE_QUERY,
    }
    assert tag_values(town_store, render(variables["factory"], {}, 0, 0)) == ALL_FACTORIES
    for factory in REGISTRY.factories.values():
        devices = tag_values(town_store, render(variables["device"], {"factory": factory.id}, 0, 0))
        assert devices == set(factory.devices)
        for device in factory.devices.values():
            chosen = {"factory": factory.id, "device": device.id}
            assert tag_values(town_store, render(variables["channel"], chosen, 0, 0)) == set(device.channels)


@pytest.mark.integration
def test_a_broken_or_empty_panel_query_is_caught(town_store: InfluxStore) -> None:
    key = ("eit-compliance", "Clock hours above a limit", "A")
    (query,) = [q for uid, t, r, q in TOWN_TARGETS if (uid, t, r) == key]
    good = render(query, {}, DAY_START_NS, DAY_END_NS)
    assert problems(town_store.query(good), EXPECTED[key]) == []
    misspelt_measurement = good.replace('FROM "hourly"', 'FROM "hourlies"')
    assert problems(town_store.query(misspelt_measurement), EXPECTED[key]) == ["the query returned no series"]
    misspelt_field = good.replace('"corrected",', '"corected" AS "corrected",')
    assert problems(town_store.query(misspelt_field), EXPECTED[key]) == [
        "column 'corrected' holds no value in some series"
    ]
    wrong_grouping = good.replace(', "channel"', "")
    assert problems(town_store.query(wrong_grouping), EXPECTED[key])[0].startswith("series ")
    with pytest.raises(StoreError, match="error parsing query"):
        town_store.query(good.replace("SELECT", "SELEC"))


def panel_rows(store: InfluxStore, uid: str, title: str, ref: str) -> dict[str, list[Any]]:
    """A town panel's result on the fixture day: {"factory/device/...": first row without its time}."""
    (query,) = [q for u, t, r, q in TOWN_TARGETS if (u, t, r) == (uid, title, ref)]
    rows = {}
    for s in store.query(render(query, {}, DAY_START_NS, DAY_END_NS)):
        tags = s.get("tags") or {}
        rows["/".join(tags[k] for k in ("factory", "device", "channel", "window") if k in tags)] = s[
            "values"
        ][0][1:]
    return rows


@pytest.mark.integration
def test_the_public_panels_show_the_days_incidents_as_the_engine_judged_them(town_store: InfluxStore) -> None:
    summary = panel_rows(town_store, "eit-town-overview", "Compliance summary", "B")
    assert summary == {K: [len(SO2_HIGH_HOURS)]}  # the boiler's afternoon SO2 hours
    valid = panel_rows(town_store, "eit-town-overview", "Compliance summary", "A")
    # 16 channels x 24 h, less the ozone analyser's maintenance hours and the short COD hour
    assert {f: row[0] for f, row in valid.items()} == {K: 8 * 24, S: 5 * 24 - 1, E: 3 * 24 - 6}
    incomplete = panel_rows(town_store, "eit-compliance", "Days below the data-completeness threshold", "A")
    assert incomplete == {f"{E}/fenceline-1/o3": [1, (24 - len(O3_MAINTENANCE_HOURS)) / 24]}
    rolling = panel_rows(town_store, "eit-compliance", "Rolling averages above a limit (ambient air)", "A")
    assert list(rolling) == [f"{E}/fenceline-1/o3/8h"] and rolling[f"{E}/fenceline-1/o3/8h"][0] > 0


@pytest.mark.integration
def test_the_store_holds_the_tags_and_field_types_the_store_schema_documents(town_store: InfluxStore) -> None:
    """What the engine, the ingest and PlatformStats wrote for the day is what the dashboards were
    written against (docs/store-schema.md), measurement by measurement."""
    schema = documented_schema()
    assert set(schema) >= {"readings", "hourly", "rolling", "daily", "aqi", "energy", "platform", "sites"}
    stored_fields = {
        s["name"]: {str(k): str(v) for k, v in s["values"]} for s in town_store.query("SHOW FIELD KEYS")
    }
    stored_tags = {s["name"]: {str(v[0]) for v in s["values"]} for s in town_store.query("SHOW TAG KEYS")}
    assert set(stored_fields) == set(schema)
    for measurement, (tags, fields) in schema.items():
        assert stored_tags[measurement] == tags, measurement
        assert stored_fields[measurement] == fields, measurement


# -- only the public factories on the public dashboards ------------------------------------------


def registry_with(tmp_path: Path, private: Collection[str]) -> Registry:
    """The example town with ``public: false`` on the factories ``private``."""
    return load_registry(town_site(tmp_path / "site.yaml", TownSpec(private=tuple(sorted(private)))))


def public_targets(specs: Iterable[DashboardSpec]) -> Iterator[tuple[str, str, str, str]]:
    for spec in specs:
        if spec.public:
            for title, ref, query in targets(spec):
                yield spec.uid, title, ref, render(query, {}, DAY_START_NS, DAY_END_NS)


def shown(series: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """A query's result, comparable across databases (floats to 9 significant digits)."""

    def cell(v: Any) -> Any:
        return float(f"{v:.9g}") if isinstance(v, float) else v

    return sorted(
        (
            s.get("name"),
            tuple(sorted((s.get("tags") or {}).items())),
            tuple(s["columns"]),
            tuple(tuple(cell(v) for v in row) for row in s["values"]),
        )
        for s in series
    )


@pytest.mark.integration
@pytest.mark.parametrize("private", sorted(ALL_FACTORIES))
def test_public_dashboards_show_nothing_of_a_factory_that_is_not_public(
    town_store: InfluxStore, influxdb: InfluxDB, tmp_path: Path, private: str
) -> None:
    # town_store holds the factory's data, and its `sites` point still says public (written by a
    # server started before the registry changed): the dashboards must not rely on that field.
    without = InfluxStore(influxdb.url, "t_town_without_" + uuid.uuid4().hex[:8])
    try:
        write_town_day(without, REGISTRY, ALL_FACTORIES - {private}, platform=False)
        check_only_public_factories_shown(town_store, without, tmp_path, private)
    finally:
        without.close()


def check_only_public_factories_shown(
    town_store: InfluxStore, without: InfluxStore, tmp_path: Path, private: str
) -> None:
    # While it is public, the factory is on the public dashboards (so the check below can fail).
    assert [
        (uid, title, ref)
        for uid, title, ref, q in public_targets(SPECS.values())
        if shown(town_store.query(q)) != shown(without.query(q))
    ], f"{private} shows on no public panel of the example town"

    registry = registry_with(tmp_path, {private})
    specs = {s.uid: s for s in build_dashboards(registry)}
    for uid, title, ref, q in public_targets(specs.values()):
        got = town_store.query(q)
        assert not [s for s in got if (s.get("tags") or {}).get("factory") == private], (uid, title, ref, q)
        # Exactly what the panel shows when the store holds nothing of the factory: it adds
        # nothing to the town's totals either.
        assert shown(got) == shown(without.query(q)), f"{uid}: {title}/{ref} shows some of {private}: {q}"

    # The officers still see everything of it.
    detail = specs["eit-factory-detail"]
    variables = {v["name"]: v["query"] for v in detail.model["templating"]["list"]}
    assert private in tag_values(town_store, render(variables["factory"], {}, 0, 0))
    for device in registry.factories[private].devices.values():
        for channel in device.channels:
            chosen = {"factory": private, "device": device.id, "channel": channel}
            expected = factory_detail_expected(registry, private, device.id, channel)
            for title, ref, query in targets(detail):
                q = render(query, chosen, DAY_START_NS, DAY_END_NS)
                assert problems(town_store.query(q), expected[f"{title}/{ref}"]) == [], q
    assert specs["eit-platform-health"].model == SPECS["eit-platform-health"].model


@pytest.mark.integration
def test_with_no_public_factory_the_public_dashboards_show_nothing(
    town_store: InfluxStore, tmp_path: Path
) -> None:
    registry = registry_with(tmp_path, ALL_FACTORIES)
    specs = build_dashboards(registry)
    checked = 0
    for uid, title, ref, q in public_targets(specs):
        assert town_store.query(q) == [], f"{uid}: {title}/{ref}: {q}"
        checked += 1
    assert checked == len(
        [k for k in EXPECTED if k[0] in {"eit-town-overview", "eit-compliance", "eit-energy"}]
    ) + len(list(targets(SPECS[TOWN_INDICATORS_UID])))
    officers = {s.uid: s for s in specs if not s.public}
    assert officers["eit-factory-detail"].model == SPECS["eit-factory-detail"].model


@pytest.mark.integration
def test_the_factory_filter_matches_exactly_its_ids_in_influxdb(influxdb: InfluxDB) -> None:
    # Ids with regex and InfluxQL characters (the registry allows only [a-z0-9_-]; the filter
    # must not depend on that).
    chosen = ["a.b", "c/d", "e|f", "(g)", "h\\i", "j$", "k-l", "m*"]
    others = ["axb", "c", "d", "e", "f", "g", "(g", "h", "hxi", "j", "kxl", "mm", "k"]
    store = InfluxStore(influxdb.url, "t_filter_" + uuid.uuid4().hex[:8])
    try:
        store.write_lines(
            [point_line("m", {"factory": f}, {"v": 1.0}, 1) for f in chosen + others]
            + [point_line("m", {}, {"v": 1.0}, 1)]  # a series without the tag
        )

        def matched(condition: str) -> set[str]:
            found = store.query(f'SELECT "v" FROM "m" WHERE {condition} GROUP BY "factory"')
            return {s["tags"]["factory"] for s in found}

        assert matched(factory_filter(chosen)) == set(chosen)
        assert matched(factory_filter(["k-l"])) == {"k-l"}
        assert matched(factory_filter([])) == set()
    finally:
        store.close()


def test_every_query_of_a_public_dashboard_keeps_to_the_public_factories() -> None:
    condition = public_filter(REGISTRY)
    assert condition == f'"factory" =~ /^(?:{E}|{K}|{S})$/'
    for spec in SPECS.values():
        if spec.public:
            assert not spec.model.get("templating", {}).get("list"), f"{spec.uid} has template variables"
            for title, ref, query in targets(spec):
                assert condition in query, f"{spec.uid}: {title}/{ref}"


def test_building_refuses_a_public_dashboard_that_could_show_more() -> None:
    condition = public_filter(REGISTRY)
    model = copy.deepcopy(SPECS["eit-energy"].model)
    check_public_dashboard(model, condition)
    model["panels"][0]["targets"][0]["query"] = 'SELECT sum("kwh") FROM "energy" WHERE $timeFilter'
    with pytest.raises(PublicScopeError, match="panel 'Energy used', query A: does not keep to the public"):
        check_public_dashboard(model, condition)
    model = copy.deepcopy(SPECS["eit-energy"].model)
    model["templating"] = {"list": [{"name": "factory", "query": FACTORY_VARIABLE_QUERY}]}
    with pytest.raises(PublicScopeError, match="takes no template variables"):
        check_public_dashboard(model, condition)


# -- what the public sees, and the files Grafana reads ----------------------------------------------


def test_every_panel_fits_grafanas_24_column_grid() -> None:
    for spec in SPECS.values():
        for panel in spec.model["panels"]:
            grid = panel["gridPos"]
            assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, f"{spec.uid}: {panel['title']}: {grid}"
            assert grid["h"] > 0


def test_public_folder_holds_the_town_views_and_officers_the_rest() -> None:
    public = {uid for uid, s in SPECS.items() if s.folder_uid == PUBLIC_FOLDER_UID}
    officers = {uid for uid, s in SPECS.items() if s.folder_uid == OFFICERS_FOLDER_UID}
    assert public == {"eit-town-overview", "eit-compliance", "eit-energy", "eit-town-indicators"}
    assert officers == {"eit-factory-detail", "eit-platform-health"}


def test_every_measurement_a_dashboard_reads_is_in_the_store_schema() -> None:
    schema = (REPO / "docs" / "store-schema.md").read_text()
    documented = set(re.findall(r"^## `(\w+)`", schema, flags=re.M)) | set(
        re.findall(r"^`(\w+)` \(tag", schema, flags=re.M)
    )
    used = {
        m
        for spec in SPECS.values()
        for _, _, query in targets(spec)
        for m in re.findall(r'FROM "(\w+)"', query)
    }
    assert used <= documented, f"not in docs/store-schema.md: {used - documented}"


def tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): p.read_text(encoding="utf-8")
        for sub in ("dashboards", "provisioning")
        for p in sorted((root / sub).rglob("*"))
        if p.is_file()
    }


def test_committed_grafana_files_are_what_eit_dashboards_build_writes(tmp_path: Path) -> None:
    assert (
        main(["dashboards", "build", "--out", str(tmp_path), "--site", str(REPO / "examples/town/site.yaml")])
        == 0
    )
    generated, committed = tree(tmp_path), tree(REPO / "deploy" / "grafana")
    stale = sorted(k for k in generated.keys() & committed.keys() if generated[k] != committed[k])
    assert set(generated) == set(committed), "run `eit dashboards build` and commit deploy/grafana"
    assert stale == [], f"out of date (run `eit dashboards build`): {stale}"


def test_the_up_to_date_check_notices_a_hand_edit(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert main(["dashboards", "build", "--out", str(out)]) == 0
    before = tree(out)
    edited = out / "dashboards" / PUBLIC_FOLDER_UID / "eit-town-overview.json"
    edited.write_text(edited.read_text().replace("Town overview", "Town overveiw"))
    assert tree(out) != before
    assert main(["dashboards", "build", "--out", str(out)]) == 0
    assert tree(out) == before


def test_provisioning_points_grafana_at_the_generated_dashboards() -> None:
    providers = load_yaml(REPO / "deploy/grafana/provisioning/dashboards/eit.yaml")["providers"]
    assert {p["folderUid"] for p in providers} == {PUBLIC_FOLDER_UID, OFFICERS_FOLDER_UID}
    for p in providers:
        folder = REPO / "deploy/grafana/dashboards" / p["folderUid"]
        assert p["options"]["path"].endswith(f"/dashboards/{p['folderUid']}")
        assert {f.stem for f in folder.glob("*.json")} == {
            s.uid for s in SPECS.values() if s.folder_uid == p["folderUid"]
        }
