"""`eit dashboards push` against a FAKE Grafana (tests/grafana_fake.py: a contract server for the
parts of Grafana's HTTP API the push uses; Grafana cannot run on this machine). The push goes
through grafana-client as it would against Grafana; the fake records every HTTP call."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from dashboards.build import (
    FOLDER_TITLES,
    OFFICERS_FOLDER_UID,
    PUBLIC_FOLDER_UID,
    TOWN_OVERVIEW_UID,
    build_dashboards,
)
from dashboards.datasource import InfluxSource
from dashboards.push import Pusher, connect
from eit.registry import load_registry
from server.cli import main
from testbed.services import REPO
from tests.grafana_fake import FakeGrafana

SITE = REPO / "examples" / "town" / "site.yaml"
SPECS = build_dashboards(load_registry(SITE))
SOURCE = InfluxSource("http://influxdb:8086", "eit", "grafana", "read-secret")


@pytest.fixture
def grafana() -> Iterator[FakeGrafana]:
    fake = FakeGrafana().start()
    yield fake
    fake.stop()


def push(grafana: FakeGrafana) -> list[str]:
    report = Pusher(connect(grafana.url, token=grafana.token)).push(SPECS, SOURCE)
    assert report.skipped == []
    return report.created + report.updated


def report_links(grafana: FakeGrafana) -> dict[str, str]:
    """The public links another push reports (it reads them back from Grafana)."""
    return Pusher(connect(grafana.url, token=grafana.token)).push(SPECS, SOURCE).public_links


def viewer_grants(grafana: FakeGrafana, folder: str) -> list[int]:
    return [g["permission"] for g in grafana.state.folder_grants[folder] if g.get("role") == "Viewer"]


def test_first_push_creates_folders_datasource_dashboards_and_public_access(grafana: FakeGrafana) -> None:
    changes = push(grafana)

    st = grafana.state
    assert {uid: f["title"] for uid, f in st.folders.items()} == FOLDER_TITLES
    ds = st.datasources["eit-influxdb"]
    assert (ds["type"], ds["url"], ds["jsonData"]["version"], ds["jsonData"]["dbName"]) == (
        "influxdb",
        "http://influxdb:8086",
        "InfluxQL",
        "eit",
    )
    assert st.datasource_secrets["eit-influxdb"] == {"password": "read-secret"}
    for spec in SPECS:
        stored = st.dashboards[spec.uid]
        assert stored["meta"]["folderUid"] == spec.folder_uid
        assert {k: v for k, v in stored["dashboard"].items() if k not in ("id", "version")} == spec.model
    # Anonymous visitors (the Viewer role) see the public folder, not the officers' folder.
    assert viewer_grants(grafana, PUBLIC_FOLDER_UID) == [1]
    assert viewer_grants(grafana, OFFICERS_FOLDER_UID) == []
    assert any(g.get("role") == "Editor" for g in st.folder_grants[OFFICERS_FOLDER_UID])
    # Every dashboard of the public folder gets a public link (the public's way in: anonymous
    # access is off), and no officers' dashboard does.
    public_uids = {s.uid for s in SPECS if s.folder_uid == PUBLIC_FOLDER_UID}
    assert public_uids == {"eit-town-overview", "eit-compliance", "eit-energy", "eit-town-indicators"}
    assert TOWN_OVERVIEW_UID in public_uids
    assert set(st.public_dashboards) == public_uids
    for uid in public_uids:
        public = st.public_dashboards[uid]
        assert public["isEnabled"] and public["share"] == "public"
    assert report_links(grafana) == {
        uid: f"/public-dashboards/{st.public_dashboards[uid]['accessToken']}" for uid in public_uids
    }
    assert len(changes) == 2 + 1 + len(SPECS) + 1 + len(
        public_uids
    )  # folders, datasource, dashboards, permissions, public


def test_second_push_sends_no_change(grafana: FakeGrafana) -> None:
    push(grafana)
    first_writes = len(grafana.writes())
    grafana.calls.clear()

    assert push(grafana) == []
    assert grafana.writes() == [], [f"{c.method} {c.path}" for c in grafana.writes()]
    assert grafana.calls, "the second push must still read what Grafana holds"
    assert first_writes > 0


def test_push_puts_back_what_was_changed_in_grafana_and_only_that(grafana: FakeGrafana) -> None:
    push(grafana)
    st = grafana.state
    st.dashboards["eit-energy"]["dashboard"]["title"] = "edited in the UI"
    st.folder_grants[OFFICERS_FOLDER_UID].append({"role": "Viewer", "permission": 1, "inherited": False})
    st.public_dashboards[TOWN_OVERVIEW_UID]["isEnabled"] = False
    grafana.calls.clear()

    changes = push(grafana)

    assert sorted(changes) == [
        "dashboard eit-energy",
        f"permissions of folder {OFFICERS_FOLDER_UID}",
        f"public dashboard of {TOWN_OVERVIEW_UID}",
    ]
    assert sorted(f"{c.method} {c.path}" for c in grafana.writes()) == [
        "PATCH /api/dashboards/uid/eit-town-overview/public-dashboards/"
        + st.public_dashboards[TOWN_OVERVIEW_UID]["uid"],
        "POST /api/dashboards/db",
        f"POST /api/folders/{OFFICERS_FOLDER_UID}/permissions",
    ]
    assert viewer_grants(grafana, OFFICERS_FOLDER_UID) == []
    assert st.public_dashboards[TOWN_OVERVIEW_UID]["isEnabled"] is True
    assert push(grafana) == []


def test_push_leaves_dashboards_grafana_holds_from_provisioning_files(grafana: FakeGrafana) -> None:
    """docker-compose.yml provisions the dashboards from files; the push then only adds the
    permissions and the public dashboard, and reports a provisioned dashboard that differs."""
    for spec in SPECS:
        grafana.provision_dashboard(spec.model, spec.folder_uid, FOLDER_TITLES[spec.folder_uid])
    changes = push(grafana)
    assert not any(c.startswith("dashboard ") for c in changes)
    assert not any(c.path == "/api/dashboards/db" for c in grafana.writes())

    grafana.state.dashboards["eit-energy"]["dashboard"]["title"] = "an older file"
    report = Pusher(connect(grafana.url, token=grafana.token)).push(SPECS, SOURCE)
    assert report.skipped == ["dashboard eit-energy"]
    assert not any(c.path == "/api/dashboards/db" for c in grafana.writes())


def test_push_command_reports_changes_and_refuses_a_bad_token(
    grafana: FakeGrafana, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["dashboards", "push", "--url", grafana.url, "--site", str(SITE)]
    assert main([*args, "--token", grafana.token]) == 0
    out = capsys.readouterr().out
    assert "created   dashboard eit-town-overview" in out
    assert main([*args, "--token", grafana.token]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("0 change(s)")

    assert main([*args, "--token", "wrong"]) == 1
    assert "answered 401" in capsys.readouterr().err
    assert main(["dashboards", "push", "--url", "http://127.0.0.1:1", "--token", "t"]) == 1
    assert "cannot be reached" in capsys.readouterr().err


def test_push_with_the_admin_login_as_compose_runs_it(
    grafana: FakeGrafana, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GRAFANA_PASSWORD", grafana.admin_password)
    monkeypatch.setenv("EIT_INFLUX_GRAFANA_PASSWORD", "from-env")
    args = ["dashboards", "push", "--url", grafana.url, "--user", "admin"]
    assert main([*args, "--influx-password-env", "EIT_INFLUX_GRAFANA_PASSWORD"]) == 0
    assert grafana.state.datasource_secrets["eit-influxdb"] == {"password": "from-env"}


def test_printed_public_links_start_with_the_public_address_not_the_one_pushed_to(
    grafana: FakeGrafana, capsys: pytest.CaptureFixture[str]
) -> None:
    public = "https://eit.example.go.th/grafana"
    args = ["dashboards", "push", "--url", grafana.url, "--site", str(SITE), "--token", grafana.token]
    assert main([*args, "--public-url", public + "/"]) == 0
    links = [line for line in capsys.readouterr().out.splitlines() if line.startswith("public ")]
    tokens = {uid: p["accessToken"] for uid, p in grafana.state.public_dashboards.items()}
    assert sorted(links) == sorted(
        f"public    {uid}: {public}/public-dashboards/{token}" for uid, token in tokens.items()
    )
    # Without it, the links start with the address pushed to (a Grafana reached directly).
    assert main(args) == 0
    links = [line for line in capsys.readouterr().out.splitlines() if line.startswith("public ")]
    assert links and all(f" {grafana.url}/public-dashboards/" in line for line in links)
