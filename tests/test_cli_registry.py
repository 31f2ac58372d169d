"""`eit registry check`: every problem of a site registry in one run, each named by the ids of
the items it is in and its line, in the order of the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.cli import main
from tests.conftest import EXAMPLE_SITE


def broken_site(tmp_path: Path) -> Path:
    text = EXAMPLE_SITE.read_text(encoding="utf-8")
    for old, new in (
        ("kind: stack", "kind: chimney"),  # a wrong kind does not hide its device's channels
        ("{id: nox, unit: ppm", "{id: nox, unit: kg"),
        ("{id: cod, unit: mg/L", "{id: cod, unit: ppm"),
        ("lat: 12.6905", "lat: 120.6905"),
        ("escalate_to: supervisor-rayong", "escalate_to: nobody"),
    ):
        assert old in text
        text = text.replace(old, new, 1)
    path = tmp_path / "site.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def line_of(path: Path, fragment: str) -> int:
    return next(n for n, text in enumerate(path.read_text().splitlines(), 1) if fragment in text)


def test_registry_check_reports_every_problem_by_id_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = broken_site(tmp_path)
    assert main(["registry", "check", str(site)]) == 2
    err = capsys.readouterr().err.splitlines()
    devices = "factories[kaeng-khoi-biomass].devices[boiler-1]"
    assert err == [
        f"eit: configuration error: {site}:{line_of(site, 'kind: chimney')}: {devices}.kind: 'chimney' is not"
        " one of stack, effluent, ambient, energy",
        f"eit: configuration error: {site}:{line_of(site, 'id: nox')}: {devices}.channels[nox].unit: 'kg' is"
        " not a unit of nox (ppm, mg/m3)",
        f"eit: configuration error: {site}:{line_of(site, 'id: cod')}: factories[siam-cassava-starch]"
        ".devices[outfall-1].channels[cod].unit: 'ppm' is not a unit of cod (mg/L)",
        f"eit: configuration error: {site}:{line_of(site, 'lat: 120.6905')}: factories[eastern-petrochem]"
        ".location.lat: 120.691 is above the maximum 90",
        f"eit: configuration error: {site}:{line_of(site, 'escalate_to: nobody')}: officers[duty-rayong]"
        ".escalate_to: no officer 'nobody'",
        f"{site}: 5 problems found",
    ]


def test_registry_check_of_a_good_registry_says_what_it_holds(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["registry", "check", str(EXAMPLE_SITE)]) == 0
    assert capsys.readouterr().out == (
        f"{EXAMPLE_SITE}: ok: town map-ta-phut, 3 factories, 4 devices, 16 channels, 2 officers,"
        " 1 factory contacts\n"
    )


def test_factory_contacts_are_checked_with_the_rest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = EXAMPLE_SITE.read_text(encoding="utf-8")
    contact = (
        "      - {id: env-manager, name: Environmental manager, email: env.manager@kaengkhoi.example,"
        " language: th}"
    )
    assert contact in text
    site = tmp_path / "site.yaml"
    site.write_text(
        text.replace(
            contact,
            "      - {id: env-manager, email: manager at kaengkhoi, language: th}\n"
            "      - {id: env-manager, email: second@kaengkhoi.example, phone: '038 000 000'}\n"
            "      - {id: night-shift, email: night@kaengkhoi.example, language: lo}",
        ),
        encoding="utf-8",
    )
    assert main(["registry", "check", str(site)]) == 2
    err = capsys.readouterr().err
    first = line_of(site, "manager at kaengkhoi")
    where = "factories[kaeng-khoi-biomass].contacts"
    assert f"{site}:{first}: {where}[0].email: 'manager at kaengkhoi' is not an e-mail address" in err
    assert f"{site}:{first + 1}: {where}[1].phone: unknown key" in err
    assert f"{site}:{first + 2}: {where}[night-shift].language: 'lo' is not one of th, en" in err
    assert f"{site}: 3 problems found" in err
