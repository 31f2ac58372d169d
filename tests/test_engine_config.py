"""The engine's and notifiers' configuration: defaults, and errors that name the file and key;
`eit alert` acting on the lifecycle from the command line."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from alerts.notifiers.webhook import WebhookSettings
from alerts.state import open_alert_store
from eit.errors import ConfigError
from eit.registry import load_registry
from server.config import load_serve_config
from testbed.services import EIT, REPO

SITE = REPO / "examples" / "town" / "site.yaml"


def write(tmp: Path, **extra: Any) -> Path:
    path = tmp / "serve.yaml"
    path.write_text(yaml.safe_dump({"site": str(SITE), "data_dir": str(tmp / "data"), **extra}))
    return path


def test_rule_settings_have_the_documented_defaults(tmp_path: Path) -> None:
    rules = load_serve_config(write(tmp_path)).rules
    assert (rules.completeness, rules.early_warning_fraction, rules.escalate_after_s) == (0.8, 0.8, 1800.0)
    assert (rules.close_delay_s, rules.hysteresis, rules.open_after_hours) == (120.0, 0.05, 1)


@pytest.mark.parametrize(
    ("extra", "where"),
    [
        ({"rules": {"completeness": 1.5}}, "rules.completeness: 1.5 is above the maximum 1"),
        ({"rules": {"rate_of_change": {"so2": -1}}}, "rules.rate_of_change.so2: expected a positive number"),
        ({"rules": {"completness": 0.8}}, "rules.completness: unknown key"),
        ({"state": {"url": "mysql://x"}}, "state.url: expected a postgresql:// URL"),
        ({"notifiers": [{"kind": "apprise", "contacts": {"f/c": 5}}]}, "notifiers[0].contacts.f/c: "),
        ({"notifiers": [{"kind": "email", "host": "x"}]}, "notifiers[0].from: required key is missing"),
        (
            {"notifiers": [{"kind": "webhook", "url": "ftp://x"}]},
            "notifiers[0].url: 'ftp://x' is not an http(s) URL",
        ),
        (
            {"notifiers": [{"kind": "sms"}]},
            "notifiers[0].kind: 'sms' is not one of log, webhook, email, mqtt, apprise",
        ),
        (
            {"notifiers": [{"kind": "log", "expire_after_s": 0}]},
            "notifiers[0].expire_after_s: 0 must be greater than 0",
        ),
        (
            {"notifiers": [{"kind": "log", "name": "Duty Desk"}]},
            "notifiers[0].name: 'Duty Desk' is not a notifier name",
        ),
    ],
)
def test_bad_engine_and_notifier_settings_name_the_file_and_key(
    tmp_path: Path, extra: dict[str, Any], where: str
) -> None:
    path = write(tmp_path, **extra)
    with pytest.raises(ConfigError) as err:
        load_serve_config(path)
    assert str(err.value).startswith(str(path)) and where in str(err.value)


def test_notifier_routing_and_secrets_are_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOK_SECRET", "s3cret")
    path = write(
        tmp_path,
        notifiers=[
            {"kind": "webhook", "url": "https://x/h", "secret_env": "HOOK_SECRET", "districts": ["Ban Chang"]}
        ],
    )
    config = load_serve_config(path)
    [n] = config.notifiers
    assert isinstance(n, WebhookSettings) and n.secret is not None
    assert n.secret.get_secret_value() == "s3cret" and n.districts == ("Ban Chang",) and n.factories == ()
    assert "s3cret" not in repr(n) and "s3cret" not in repr(config)


def test_two_notifiers_of_one_kind_need_names_of_their_own_and_their_queue_settings_are_read(
    tmp_path: Path,
) -> None:
    path = tmp_path / "serve.yaml"
    path.write_text(
        f"site: {SITE}\n"
        "notifiers:\n"
        "  - {kind: webhook, url: 'https://a/h'}\n"
        "  - {kind: log}\n"
        "  - {kind: webhook, url: 'https://b/h'}\n"
    )
    with pytest.raises(ConfigError) as err:
        load_serve_config(path)
    assert str(err.value) == (
        f"{path}:5: notifiers[2].kind: notifiers[0] is named 'webhook' too:"
        " give each notifier of one kind a name of its own (name: ...)"
    )
    path.write_text(
        f"site: {SITE}\n"
        "notifiers:\n"
        "  - {kind: webhook, url: 'https://a/h', expire_after_s: 3600, retry_after_s: 5, retry_max_s: 300}\n"
        "  - {kind: webhook, name: ops-hook, url: 'https://b/h'}\n"
    )
    first, second = load_serve_config(path).notifiers
    assert (first.queue_name, first.expire_after_s, first.retry_after_s, first.retry_max_s) == (
        "webhook",
        3600,
        5,
        300,
    )
    assert (second.queue_name, second.expire_after_s, second.retry_after_s, second.retry_max_s) == (
        "ops-hook",
        86400.0,
        10.0,
        600.0,
    )


def test_eit_alert_acknowledges_notes_resolves_and_closes_with_an_audit_trail(tmp_path: Path) -> None:
    config = write(tmp_path)
    store = open_alert_store(None, tmp_path / "data" / "state.db")
    alert = store.open_alert(("kaeng-khoi-biomass", "boiler-1", "so2", "limit"), "critical", "so2 above", 1)
    store.close()
    assert alert is not None

    def eit(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*EIT, "alert", *args, "--config", str(config)],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=60,
        )

    assert eit("ack", str(alert.id), "--by", "duty-rayong", "--note", "calling the plant").returncode == 0
    assert (
        eit("note", str(alert.id), "--by", "duty-rayong", "--note", "scrubber pump tripped").returncode == 0
    )
    refused = eit("close", str(alert.id), "--by", "duty-rayong")
    assert refused.returncode == 1 and "is acknowledged: resolve it before closing it" in refused.stderr
    no_reason = eit("resolve", str(alert.id), "--by", "duty-rayong")
    assert no_reason.returncode == 1 and "resolving a case needs a reason" in no_reason.stderr
    assert eit("resolve", str(alert.id), "--by", "duty-rayong", "--note", "pump restarted").returncode == 0
    ongoing = eit("close", str(alert.id), "--by", "supervisor-rayong")
    assert ongoing.returncode == 1 and "still ongoing: it closes once its condition ends" in ongoing.stderr
    store = open_alert_store(None, tmp_path / "data" / "state.db")
    store.end_condition(alert.key, 2, "below the limit")  # the rules see it end
    store.close()
    closed = eit("close", str(alert.id), "--by", "supervisor-rayong", "--note", "reviewed")
    assert closed.returncode == 0 and closed.stdout.startswith(f"#{alert.id} closed")
    shown = json.loads(eit("show", str(alert.id), "--json").stdout)
    assert shown["state"] == "closed" and shown["assignee"] == "duty-rayong"
    assert [(e["actor"], e["action"]) for e in shown["audit"]] == [
        ("engine", "opened"),
        ("duty-rayong", "acknowledged"),
        ("duty-rayong", "note"),
        ("duty-rayong", "resolved"),
        ("engine", "condition ended"),
        ("supervisor-rayong", "closed"),
    ]
    missing_by = eit("ack", str(alert.id))
    assert missing_by.returncode == 2 and "--by WHO is required" in missing_by.stderr


def test_http_api_lists_alerts_and_shows_one_with_its_audit_trail(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient
    from prometheus_client import CollectorRegistry

    from server.accounts import open_accounts
    from server.api import ApiSources, create_app

    store = open_alert_store(None, tmp_path / "state.db")
    alert = store.open_alert(("kaeng-khoi-biomass", "boiler-1", "so2", "limit"), "critical", "so2 above", 1)
    assert alert is not None
    store.acknowledge(alert.id, "duty-rayong", 2, "on it")
    accounts = open_accounts(None, tmp_path / "state.db")
    accounts.add_user("duty-rayong", "officer", "officer-password", 1)
    sources = ApiSources(
        registry=load_registry(REPO / "examples" / "town" / "site.yaml"),
        store=None,  # type: ignore[arg-type]  # alerts only: no reading is asked for
        alerts=store,
        accounts=accounts,
        report=lambda first, last, factory: {},
        render_report=lambda report, fmt: "",
        alert_text=lambda a, lang: str(a.message),
    )
    client = TestClient(create_app(lambda: (True, {}), CollectorRegistry(), sources))
    token = client.post("/api/v1/token", data={"username": "duty-rayong", "password": "officer-password"})
    client.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
    assert [a["state"] for a in client.get("/api/v1/alerts", params={"state": "acknowledged"}).json()] == [
        "acknowledged"
    ]
    one = client.get(f"/api/v1/alerts/{alert.id}").json()
    assert [(e["actor"], e["action"], e["detail"]) for e in one["audit"]] == [
        ("engine", "opened", "so2 above"),
        ("duty-rayong", "acknowledged", "on it"),
    ]
    missing = client.get("/api/v1/alerts/999")
    assert missing.status_code == 404 and missing.json() == {"detail": "no alert #999"}
    accounts.close()
    store.close()
