"""The share of verified readings, per channel in the compliance report and per factory on the
public API and page, and the chain events for officers, on the example town's stores."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from alerts.report import compliance_report, render
from eit.model import Reading
from eit.signing import BAD_SIGNATURE, UNSIGNED, VERIFIED
from eit.store import Point
from eit.storeschema import ChainEvents
from eit.timeutil import NS_PER_S, now_ns, ns_to_datetime
from testbed.town import TownApp, build_town

FACTORY = "kaeng-khoi-biomass"
DEVICE = "boiler-1"


@pytest.fixture(scope="module")
def town_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TownApp]:
    app = TownApp(build_town(tmp_path_factory.mktemp("evidence")))
    t0 = (now_ns() - 7200 * NS_PER_S) // NS_PER_S * NS_PER_S
    results = [VERIFIED, VERIFIED, VERIFIED, BAD_SIGNATURE, UNSIGNED]
    app.store.write(
        [
            Reading(FACTORY, DEVICE, "so2", t0 + i * NS_PER_S + 123, 30.0, "N", 9000 + i, result)
            for i, result in enumerate(results)
        ]
    )
    gap = Point(
        ChainEvents.NAME,
        {"factory": FACTORY, "device": DEVICE},
        t0 + 10 * NS_PER_S,
        {"kind": "unexplained_gap", "first_seq": 9005, "last_seq": 9006, "missing": 2, "detail": "2 scan(s)"},
    )
    app.store.write_points(ChainEvents.NAME, [gap])
    yield app
    app.close()


def test_the_public_sees_the_share_of_verified_readings_per_factory_not_the_chain(town_app: TownApp) -> None:
    r = town_app.client.get(f"/api/v1/factories/{FACTORY}/verification?days=30")
    assert r.status_code == 200, r.text
    body = r.json()
    so2 = next(c for c in body["channels"] if (c["device"], c["channel"]) == (DEVICE, "so2"))
    total = town_app.store.count(FACTORY, DEVICE, "so2", now_ns() - 30 * 86400 * NS_PER_S, now_ns())
    assert (so2["readings"], so2["verified"]) == (total, 3)
    assert so2["verified_share"] == round(3 / total, 4)
    assert body["verified"] == 3 and body["readings"] >= total
    assert body["chain_events"] is None  # the chain is for officers and the factory's operator


def test_officers_see_the_chain_events(town_app: TownApp) -> None:
    r = town_app.client.get(f"/api/v1/factories/{FACTORY}/verification", headers=town_app.headers("olivia"))
    assert r.status_code == 200, r.text
    events = r.json()["chain_events"]
    assert [(e["kind"], e["first_seq"], e["last_seq"], e["missing"]) for e in events] == [
        ("unexplained_gap", 9005, 9006, 2)
    ]


def test_the_compliance_report_states_each_channels_verified_share(town_app: TownApp) -> None:
    today = ns_to_datetime(now_ns()).date()
    report = compliance_report(
        town_app.town.registry, town_app.store, today - timedelta(days=1), today + timedelta(days=1), FACTORY
    )
    (factory,) = report["factories"]
    so2 = next(c for c in factory["channels"] if (c["device"], c["channel"]) == (DEVICE, "so2"))
    assert so2["evidence"]["verified"] == 3
    assert so2["evidence"]["verified_share"] == round(3 / so2["evidence"]["readings"], 4)
    nox = next(c for c in factory["channels"] if c["channel"] == "nox")
    assert nox["evidence"]["verified"] == 0
    assert [e["kind"] for e in factory["chain_events"]] == ["unexplained_gap"]
    page = render(report, "html")
    assert "verified readings" in page and "unexplained_gap" in page
    assert "verified_share" in render(report, "csv").splitlines()[0]
