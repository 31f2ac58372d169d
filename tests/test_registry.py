"""The site registry and the configuration files: errors name the file, the key and the problem."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml

from eit.confread import load_yaml
from eit.errors import ConfigError
from eit.registry import load_registry
from ingest.store.influx import InfluxSettings
from ingest.store.sqlite import SqliteSettings
from server.config import load_serve_config
from tests.conftest import EXAMPLE_SITE


def _site(tmp_path: Path, mutate: Any = None) -> Path:
    data = load_yaml(EXAMPLE_SITE)
    if mutate is not None:
        mutate(data)
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    return path


def test_example_town_loads_with_its_limits() -> None:
    reg = load_registry(EXAMPLE_SITE)
    assert set(reg.factories) == {"kaeng-khoi-biomass", "siam-cassava-starch", "eastern-petrochem"}
    so2 = reg.channel("kaeng-khoi-biomass", "boiler-1", "so2")
    assert so2 is not None and so2.unit == "ppm" and so2.range_max == 500
    limits = so2.limits_on(date(2026, 11, 27))
    assert [(lim.max, lim.unit, lim.averaging) for lim in limits] == [(60.0, "ppm", "1h")]
    assert limits[0].source.startswith("Notification of the Ministry of Industry B.E. 2549")
    assert so2.o2_reference_percent == 7
    ph = reg.channel("siam-cassava-starch", "outfall-1", "ph")
    assert ph is not None
    assert [(lim.min, lim.max) for lim in ph.limits_on(date(2026, 1, 1))] == [(5.5, 9.0)]
    assert [o.id for o in reg.officers_for("eastern-petrochem")] == ["duty-rayong", "supervisor-rayong"]


def test_pm25_standard_follows_its_effective_date() -> None:
    reg = load_registry(EXAMPLE_SITE)
    pm25 = reg.channel("eastern-petrochem", "fenceline-1", "pm25")
    assert pm25 is not None
    daily = {
        d: [lim.max for lim in pm25.limits_on(d) if lim.averaging == "24h"]
        for d in (date(2023, 5, 31), date(2023, 6, 1))
    }
    assert daily == {date(2023, 5, 31): [50.0], date(2023, 6, 1): [37.5]}


def test_permit_limits_override_the_preset_from_their_effective_date(tmp_path: Path) -> None:
    def add_permit(data: dict[str, Any]) -> None:
        so2 = data["factories"][0]["devices"][0]["channels"][0]
        so2["permit"] = [
            {
                "permit_id": "EIA-2019-044",
                "max": 40,
                "unit": "ppm",
                "averaging": "1h",
                "effective_from": "2026-01-01",
                "source": "EIA approval letter 2019/044",
            }
        ]

    reg = load_registry(_site(tmp_path, add_permit))
    so2 = reg.channel("kaeng-khoi-biomass", "boiler-1", "so2")
    assert so2 is not None
    assert [(lim.max, lim.kind) for lim in so2.limits_on(date(2025, 12, 31))] == [(60.0, "standard")]
    assert [(lim.max, lim.kind, lim.origin) for lim in so2.limits_on(date(2026, 1, 1))] == [
        (40.0, "permit", "permit EIA-2019-044")
    ]


def _outfall(data: dict[str, Any]) -> dict[str, Any]:
    outfall: dict[str, Any] = data["factories"][1]["devices"][0]
    return outfall


def _to_the_sea(data: dict[str, Any]) -> None:
    _outfall(data)["receiving_water_tds_mg_l"] = 32000
    _outfall(data)["channels"].append({"id": "tds", "unit": "mg/L", "range": [0, 60000]})


def test_tds_to_brackish_water_or_the_sea_is_the_receiving_waters_plus_5000(tmp_path: Path) -> None:
    def fresh_water(data: dict[str, Any]) -> None:
        _outfall(data)["channels"].append({"id": "tds", "unit": "mg/L", "range": [0, 60000]})

    day = date(2026, 1, 1)
    sea = load_registry(_site(tmp_path, _to_the_sea)).channel("siam-cassava-starch", "outfall-1", "tds")
    assert sea is not None
    [limit] = sea.limits_on(day)
    assert (limit.max, limit.unit, limit.averaging) == (37000.0, "mg/L", "1h")
    assert limit.origin == "preset th.effluent.general, receiving_water_tds_mg_l 32000 + 5000"
    assert limit.source.startswith("MOI B.E. 2560 / MNRE B.E. 2559") and "5,000 mg/L" in limit.source
    fresh = load_registry(_site(tmp_path, fresh_water)).channel("siam-cassava-starch", "outfall-1", "tds")
    assert fresh is not None
    assert [(lim.max, lim.origin) for lim in fresh.limits_on(day)] == [(3000.0, "preset th.effluent.general")]
    # Other channels of the same outfall keep the preset's plain limits.
    cod = load_registry(_site(tmp_path, _to_the_sea)).channel("siam-cassava-starch", "outfall-1", "cod")
    assert cod is not None and [lim.max for lim in cod.limits_on(day)] == [120.0]


def _estate_values(data: dict[str, Any]) -> None:
    _outfall(data)["standard"] = "th.effluent.ieat_cwwtp"
    data["estates"] = [
        {
            "name": "Map Ta Phut Industrial Estate",
            "presets": {
                "th.effluent.ieat_cwwtp": {
                    "source": "Estate rules 2024, annex 2 (illustrative)",
                    "limits": [{"parameter": "cod", "max": 1000, "unit": "mg/L"}],
                }
            },
        }
    ]


def test_an_estates_values_replace_the_ieat_preset_for_factories_of_that_estate(tmp_path: Path) -> None:
    day = date(2026, 1, 1)
    reg = load_registry(_site(tmp_path, _estate_values))
    cod, bod = (reg.channel("siam-cassava-starch", "outfall-1", c) for c in ("cod", "bod"))
    assert cod is not None and bod is not None
    assert [(lim.max, lim.confirmed, lim.source, lim.origin) for lim in cod.limits_on(day)] == [
        (
            1000.0,
            True,
            "Estate rules 2024, annex 2 (illustrative)",
            "preset th.effluent.ieat_cwwtp, values of estate 'Map Ta Phut Industrial Estate'",
        )
    ]
    # BOD is not overridden: the preset's value, unconfirmed.
    assert [(lim.max, lim.confirmed) for lim in bod.limits_on(day)] == [(500.0, False)]

    def elsewhere(data: dict[str, Any]) -> None:
        _estate_values(data)
        data["factories"][1]["estate"] = "Another estate"

    other = load_registry(_site(tmp_path, elsewhere)).channel("siam-cassava-starch", "outfall-1", "cod")
    assert other is not None
    assert [(lim.max, lim.confirmed) for lim in other.limits_on(day)] == [(750.0, False)]


Mutation = Callable[[dict[str, Any]], object]


def _ieat_values(data: dict[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = data["estates"][0]["presets"]["th.effluent.ieat_cwwtp"]
    return values


def _after(first: Mutation, then: Mutation) -> Mutation:
    def both(data: dict[str, Any]) -> None:
        first(data)
        then(data)

    return both


def _estate_preset(data: dict[str, Any], preset: str) -> None:
    _estate_values(data)
    data["estates"][0]["presets"] = {preset: data["estates"][0]["presets"]["th.effluent.ieat_cwwtp"]}


@pytest.mark.parametrize(
    ("mutate", "key", "problem"),
    [
        (
            lambda d: _outfall(d).update(receiving_water_tds_mg_l=32000),
            "factories[siam-cassava-starch].devices[outfall-1].receiving_water_tds_mg_l",
            "no channel here has a limit made from it (only tds under th.effluent.general)",
        ),
        (
            _after(_to_the_sea, lambda d: _outfall(d).update(receiving_water_tds_mg_l=-1)),
            "factories[siam-cassava-starch].devices[outfall-1].receiving_water_tds_mg_l",
            "-1 is below the minimum 0",
        ),
        (
            lambda d: _estate_preset(d, "th.effluent.nowhere"),
            "estates[0].presets.th.effluent.nowhere",
            "unknown preset 'th.effluent.nowhere'",
        ),
        (
            _after(_estate_values, lambda d: d["estates"][0].update(name="Nowhere estate")),
            "estates[0].name",
            "no factory is in estate 'Nowhere estate'",
        ),
        (
            _after(_estate_values, lambda d: _ieat_values(d).pop("source")),
            "estates[0].presets.th.effluent.ieat_cwwtp.source",
            "required key is missing",
        ),
        (
            _after(
                _estate_values,
                lambda d: _ieat_values(d)["limits"][0].update(unit="ppm"),
            ),
            "estates[0].presets.th.effluent.ieat_cwwtp.limits[0].unit",
            "'ppm' is not a unit of cod",
        ),
    ],
)
def test_site_values_and_estate_values_errors_name_file_key_and_line(
    tmp_path: Path, mutate: Any, key: str, problem: str
) -> None:
    path = _site(tmp_path, mutate)
    with pytest.raises(ConfigError) as err:
        load_registry(path)
    assert (err.value.source, err.value.key) == (str(path), key)
    assert problem in err.value.problem
    assert err.value.line is not None


@pytest.mark.parametrize(
    ("mutate", "key", "problem"),
    [
        (
            lambda d: d["factories"][0]["devices"][0].update(kind="chimney"),
            "factories[kaeng-khoi-biomass].devices[boiler-1].kind",
            "'chimney' is not one of stack, effluent, ambient, energy",
        ),
        (
            lambda d: d["factories"][0]["devices"][0]["channels"][0].update(unit="mg/Nm3"),
            "factories[kaeng-khoi-biomass].devices[boiler-1].channels[so2].unit",
            "'mg/Nm3' is not a unit of so2",
        ),
        (
            lambda d: d["factories"][0]["devices"][0].update(standard="th.stack.boiler.wood"),
            "factories[kaeng-khoi-biomass].devices[boiler-1].standard",
            "unknown preset 'th.stack.boiler.wood'",
        ),
        (
            lambda d: d["factories"][0]["devices"][0].update(standard="th.ambient"),
            "factories[kaeng-khoi-biomass].devices[boiler-1].standard",
            "is for ambient devices, not stack",
        ),
        (lambda d: d["factories"][1].update(id="Siam Cassava"), "factories[1].id", "is not valid"),
        (
            lambda d: d["factories"][0]["devices"][0]["channels"][1].update(range=[100, 0]),
            "factories[kaeng-khoi-biomass].devices[boiler-1].channels[nox].range",
            "must be below max",
        ),
        (
            lambda d: d["factories"][0]["devices"][0]["channels"][1].update(range="0-100"),
            "factories[kaeng-khoi-biomass].devices[boiler-1].channels[nox].range",
            "must be [min, max]",
        ),
        (
            lambda d: d["factories"][0]["location"].pop("lat"),
            "factories[kaeng-khoi-biomass].location.lat",
            "required key is missing",
        ),
        (
            lambda d: d["factories"][0].update(dsitrict="x"),
            "factories[kaeng-khoi-biomass].dsitrict",
            "unknown key",
        ),
        (lambda d: d["factories"][2].update(id="kaeng-khoi-biomass"), "factories[2].id", "defined twice"),
        (
            lambda d: d["officers"][0].update(factories=["nowhere"]),
            "officers[duty-rayong].factories",
            "no factory 'nowhere'",
        ),
        (
            lambda d: d["factories"][0]["devices"][0]["channels"].append(
                {"id": "mystery", "unit": "x", "range": [0, 1]}
            ),
            "factories[kaeng-khoi-biomass].devices[boiler-1].channels[mystery].id",
            "unknown parameter 'mystery'",
        ),
    ],
)
def test_registry_errors_name_file_key_and_problem(
    tmp_path: Path, mutate: Any, key: str, problem: str
) -> None:
    path = _site(tmp_path, mutate)
    with pytest.raises(ConfigError) as err:
        load_registry(path)
    assert err.value.source == str(path)
    assert err.value.key == key
    assert problem in err.value.problem
    assert err.value.line is not None
    assert str(err.value).startswith(f"{path}:{err.value.line}: {key}: ")


def test_yaml_syntax_errors_give_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text("town:\n  id: x\n  name: [unclosed\n")
    with pytest.raises(ConfigError) as err:
        load_registry(path)
    assert err.value.source == str(path)
    assert err.value.line == 4 and "invalid YAML" in err.value.problem
    assert "flow sequence at line 3" in err.value.problem
    assert str(err.value).startswith(f"{path}:4: invalid YAML")


def test_missing_registry_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_registry(tmp_path / "absent.yaml")


def _serve_file(tmp_path: Path, body: str) -> Path:
    (tmp_path / "site.yaml").write_text(EXAMPLE_SITE.read_text())
    path = tmp_path / "serve.yaml"
    path.write_text("site: site.yaml\n" + body)
    return path


def test_serve_config_defaults_and_relative_paths(tmp_path: Path) -> None:
    config = load_serve_config(_serve_file(tmp_path, ""), environ={})
    assert config.site == tmp_path.resolve() / "site.yaml"
    assert isinstance(config.store, SqliteSettings) and config.store.kind == "sqlite"
    assert config.store.path == tmp_path.resolve() / "data" / "readings.db"
    assert (config.mqtt.host, config.mqtt.port, config.mqtt.protocol) == ("localhost", 1883, "5")


def test_environment_overrides_file_keys(tmp_path: Path) -> None:
    path = _serve_file(tmp_path, "mqtt: {port: 1883}\n")
    config = load_serve_config(
        path,
        environ={
            "EIT_MQTT__PORT": "1884",
            "EIT_STORE__KIND": "influxdb",
            "EIT_STORE__URL": "http://db:8086/",
        },
    )
    assert config.mqtt.port == 1884
    assert isinstance(config.store, InfluxSettings)
    assert (config.store.kind, config.store.url) == ("influxdb", "http://db:8086")


def test_a_bad_environment_value_names_the_variable(tmp_path: Path) -> None:
    path = _serve_file(tmp_path, "")
    with pytest.raises(ConfigError) as err:
        load_serve_config(path, environ={"EIT_MQTT__PORT": "eighteen"})
    assert err.value.source == "environment variable EIT_MQTT__PORT"
    assert err.value.key == "mqtt.port"
    assert "expected a whole number" in err.value.problem


@pytest.mark.parametrize(
    ("body", "key", "problem"),
    [
        ("store: {kind: postgres}\n", "store.kind", "'postgres' is not one of sqlite, influxdb"),
        ("mqtt: {hots: x}\n", "mqtt.hots", "unknown key"),
        ("mqtt: {port: 70000}\n", "mqtt.port", "above the maximum"),
        ("notifiers: [{kind: webhook, url: 'ftp://x'}]\n", "notifiers[0].url", "not an http(s) URL"),
        ("mqtt: {password: a, password_file: b}\n", "mqtt.password_file", "give only one of"),
        ("mqtt: {password_env: EIT_TEST_UNSET_VARIABLE}\n", "mqtt.password_env", "is not set"),
    ],
)
def test_serve_config_errors_name_file_key_and_problem(
    tmp_path: Path, body: str, key: str, problem: str
) -> None:
    path = _serve_file(tmp_path, body)
    with pytest.raises(ConfigError) as err:
        load_serve_config(path, environ={})
    assert (err.value.source, err.value.key) == (str(path), key)
    assert problem in err.value.problem


def test_passwords_are_read_from_files_and_never_printed(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("s3cret-value\n")
    config = load_serve_config(
        _serve_file(tmp_path, "mqtt: {username: u, password_file: secret}\n"), environ={}
    )
    assert config.mqtt.password == "s3cret-value"
    assert "s3cret" not in repr(config)
