"""The example town as the API and browser tests use it: a serve.yaml in a folder of its own,
the town's data loaded through the stores and the compliance engine (tests/towndata.py), and one
account per role. `build_town` is what an operator would have after running `eit serve` for a
day and `eit users add` for each person."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from alerts.state import AlertStore
from eit.registry import Registry, load_registry
from eit.timeutil import now_ns
from ingest.deadletters import DeadLetter, DeadLetterStore
from ingest.store import open_store
from server.accounts import Accounts
from server.api import ApiSettings, create_app
from server.config import ServeConfig, load_serve_config
from server.serve import api_sources
from statedb import open_state_db
from testbed.services import REPO, free_port
from tests.towndata import TownData, load_example_town

# name: (role, factory)
USERS: dict[str, tuple[str, str | None]] = {
    "olivia": ("officer", None),
    "sam": ("supervisor", None),
    "ada": ("admin", None),
    "kk-op": ("operator", "kaeng-khoi-biomass"),
    "sc-op": ("operator", "siam-cassava-starch"),
}


def password_of(name: str) -> str:
    return f"{name}-pass-2026"


@dataclass(slots=True)
class Town:
    workdir: Path
    config_path: Path
    config: ServeConfig
    registry: Registry
    data: TownData


def build_town(
    workdir: Path,
    *,
    site: Path | None = None,
    state_url: str | None = None,
    store_config: dict[str, Any] | None = None,
    http_port: int | None = None,
) -> Town:
    workdir.mkdir(parents=True, exist_ok=True)
    config: dict[str, Any] = {
        "site": str(site or REPO / "examples" / "town" / "site.yaml"),
        "data_dir": str(workdir / "data"),
        "store": store_config or {"kind": "sqlite"},
        "rules": {"stale_after_s": 300, "check_interval_s": 60},
        "http": {"host": "127.0.0.1", "port": http_port or free_port(), "no_data_after_s": 3600},
    }
    if state_url:
        config["state"] = {"url": state_url}
    path = workdir / "serve.yaml"
    path.write_text(yaml.safe_dump(config))
    serve = load_serve_config(path)
    registry = load_registry(serve.site)
    serve.data_dir.mkdir(parents=True, exist_ok=True)
    store = open_store(serve.store)
    state_db = open_state_db(serve.state_url, serve.state_path)
    alerts = AlertStore(state_db)
    accounts = Accounts(state_db)
    letters = DeadLetterStore(state_db)
    try:
        data = load_example_town(registry, store, alerts)
        for name, (role, factory) in USERS.items():
            if factory is None or factory in registry.factories:
                accounts.add_user(name, role, password_of(name), now_ns(), factory)
        letters.add(
            [
                DeadLetter(
                    now_ns(),
                    "eit/kaeng-khoi-biomass/boiler-1/data",
                    "not_json",
                    "the payload is not JSON: Expecting value: line 1 column 1 (char 0)",
                    "",
                    "so2=41",
                )
            ]
        )
    finally:
        store.close()
        state_db.close()
    return Town(workdir, path, serve, registry, data)


class TownApp:
    """The app of a town in this process, on the town's own stores (as `eit api` builds it)."""

    def __init__(self, town: Town) -> None:
        self.town = town
        c = town.config
        self.store = open_store(c.store)
        self.state_db = open_state_db(c.state_url, c.state_path)
        self.alerts = AlertStore(self.state_db)
        self.accounts = Accounts(self.state_db)
        self.letters = DeadLetterStore(self.state_db)
        self.metrics = CollectorRegistry()
        sources = api_sources(c, town.registry, self.store, self.alerts, self.letters, self.accounts)
        self.app: FastAPI = create_app(
            lambda: (True, {"store": "ok"}),
            self.metrics,
            sources,
            ApiSettings(token_ttl_s=c.http.token_ttl_s),
        )
        self.client = TestClient(self.app)
        self._tokens: dict[str, str] = {}

    def token(self, name: str) -> str:
        if name not in self._tokens:
            r = self.client.post("/api/v1/token", data={"username": name, "password": password_of(name)})
            assert r.status_code == 200, r.text
            self._tokens[name] = r.json()["access_token"]
        return self._tokens[name]

    def headers(self, name: str | None) -> dict[str, str]:
        return {} if name is None else {"Authorization": f"Bearer {self.token(name)}"}

    def close(self) -> None:
        self.client.close()
        self.store.close()
        self.state_db.close()
