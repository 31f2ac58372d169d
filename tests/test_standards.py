"""Golden values of the shipped standards data (eit/standards/*.yaml), each as the primary source
gives it: presets, dated limits, grid factors and method versions; and the errors a preset file
with a site limit gets."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from alerts.energy import factor_on
from eit.errors import ConfigError
from eit.standards import default_standards, load_standards, methods


def _limits(preset: str) -> dict[str, tuple[float | None, float | None, str, bool]]:
    return {
        lim.parameter: (lim.min, lim.max, lim.unit, lim.confirmed)
        for lim in default_standards().presets[preset].limits
    }


@pytest.mark.parametrize("fuel", ["oil", "coal", "biomass", "other"])
def test_boiler_presets_cover_boilers_or_heat_generating_sources(fuel: str) -> None:
    preset = default_standards().presets[f"th.stack.boiler.{fuel}"]
    assert preset.title_en.startswith("Boiler or heat-generating source, ")
    assert preset.title_th.startswith("หม้อไอน้ำหรือแหล่งกำเนิดความร้อน ")
    assert '"boilers or heat-generating sources"' in preset.source


def test_general_effluent_rests_on_moi_2560_and_adds_phenols_and_free_chlorine() -> None:
    preset = default_standards().presets["th.effluent.general"]
    assert preset.title_en == "Industrial effluent, general (MOI B.E. 2560)"
    assert preset.source.startswith("Notification of the Ministry of Industry B.E. 2560 (7 Jun 2017)")
    assert "29 Mar 2016 (B.E. 2559" in preset.source
    limits = _limits("th.effluent.general")
    assert limits["phenols"] == (None, 1.0, "mg/L", True)
    assert limits["free_chlorine"] == (None, 1.0, "mg/L", True)
    assert (limits["bod"], limits["cod"], limits["tds"]) == (
        (None, 20.0, "mg/L", True),
        (None, 120.0, "mg/L", True),
        (None, 3000.0, "mg/L", True),
    )
    params = default_standards().parameters
    assert (params["phenols"].name_th, params["free_chlorine"].name_th) == ("ฟีนอล", "คลอรีนอิสระ")
    [tds_rule] = preset.site_limits
    assert (tds_rule.parameter, tds_rule.site_value, tds_rule.max_above) == (
        "tds",
        "receiving_water_tds_mg_l",
        5000.0,
    )
    assert "brackish water (salinity above 2,000 mg/L) or to the sea" in tds_rule.applies_to


def test_power_plant_effluent_presets_hold_the_mnre_2565_values() -> None:
    assert _limits("th.effluent.power_plant") == {
        "ph": (5.5, 9.0, "pH", True),
        "tds": (None, 3000.0, "mg/L", True),
        "tss": (None, 50.0, "mg/L", True),
        "bod": (None, 20.0, "mg/L", True),
        "cod": (None, 120.0, "mg/L", True),
        "oil_grease": (None, 5.0, "mg/L", True),
        "nitrate": (None, 10.0, "mg/L", False),  # as N or as NO3: not in the sources
        "tkn": (None, 100.0, "mg/L", True),
    }
    assert _limits("th.effluent.power_plant_cooling") == {
        "temperature": (None, 40.0, "C", True),
        "free_chlorine": (None, 1.0, "mg/L", True),
    }
    assert (
        "Royal Gazette vol. 139, special part 238 ง"
        in default_standards().presets["th.effluent.power_plant"].source
    )


def test_every_ieat_central_plant_value_is_unconfirmed() -> None:
    limits = _limits("th.effluent.ieat_cwwtp")
    assert limits["cod"] == (None, 750.0, "mg/L", False)
    assert {confirmed for *_, confirmed in limits.values()} == {False}


def test_annual_pm25_is_15_from_about_9_july_2022_and_25_before() -> None:
    annual = [lim for lim in default_standards().presets["th.ambient"].limits if lim.averaging == "1y"]
    pm25 = [lim for lim in annual if lim.parameter == "pm25"]

    def in_force(day: date) -> list[float | None]:
        return [lim.max for lim in pm25 if lim.in_force(day)]

    assert in_force(date(2022, 7, 8)) == [25.0]
    assert in_force(date(2022, 7, 9)) == [15.0]
    assert in_force(date(2023, 6, 1)) == [15.0]
    assert {lim.dates_confirmed for lim in pm25} == {False}  # "about" 9 Jul 2022


def test_grid_factor_history_0_4999_before_2026_then_0_4750() -> None:
    before, new = factor_on(date(2025, 12, 31)), factor_on(date(2026, 1, 1))
    assert before is not None and new is not None
    assert (before.kg_co2e_per_kwh, before.confirmed, before.effective_from) == (0.4999, False, None)
    assert (new.kg_co2e_per_kwh, new.confirmed, new.effective_from) == (0.4750, True, date(2026, 1, 1))
    # The law still allows 0.4999 until 31 Mar 2026; the rules use 0.4750 from 1 Jan all the same.
    assert new.previous_allowed_until == date(2026, 3, 31)
    assert factor_on(date(2026, 3, 31)) == new
    assert factor_on(date(2015, 6, 1)) == before


def test_the_aqi_and_energy_methods_carry_new_versions() -> None:
    assert (methods()["aqi"].tag, methods()["energy"].tag) == ("pcd_bands/2", "counter_difference/2")


def _preset_file(tmp_path: Path, site_limit: str) -> Path:
    path = tmp_path / "extra.yaml"
    path.write_text(
        "presets:\n"
        "  local.effluent.coast:\n"
        "    title: {en: Coastal outfall, th: น้ำทิ้งชายฝั่ง}\n"
        "    kind: effluent\n"
        "    source: Local rules\n"
        "    limits:\n"
        "      - {parameter: tds, max: 3000, unit: mg/L}\n"
        "    site_limits:\n"
        f"      - {site_limit}\n"
    )
    return path


@pytest.mark.parametrize(
    ("site_limit", "key", "problem"),
    [
        (
            "{parameter: tds, unit: mg/L, site_value: sea_depth_m, max_above_site_value: 5000,"
            " applies_to: x}",
            "presets.local.effluent.coast.site_limits[0].site_value",
            "'sea_depth_m' is not one of receiving_water_tds_mg_l",
        ),
        (
            "{parameter: tds, unit: g/L, site_value: receiving_water_tds_mg_l, max_above_site_value: 5,"
            " applies_to: x}",
            "presets.local.effluent.coast.site_limits[0].unit",
            "receiving_water_tds_mg_l is given in mg/L, the limit is in g/L",
        ),
        (
            "{parameter: tds, unit: mg/L, site_value: receiving_water_tds_mg_l, applies_to: x}",
            "presets.local.effluent.coast.site_limits[0].max_above_site_value",
            "required key is missing",
        ),
    ],
)
def test_a_bad_site_limit_names_file_key_and_line(
    tmp_path: Path, site_limit: str, key: str, problem: str
) -> None:
    path = _preset_file(tmp_path, site_limit)
    with pytest.raises(ConfigError) as err:
        load_standards((path,))
    assert (err.value.source, err.value.key, err.value.line) == (str(path), key, 9)
    assert problem in err.value.problem
