"""`eit serve`: ingest, rules and the HTTP API in one process.

This module and :mod:`server.cli` are the composition root: they are the only modules of ``eit``
that import ``ingest`` and ``alerts`` (lazily, so ``eit edge`` runs where only the agent is
installed). Everything else in ``eit`` is the shared contract.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from eit.registry import Registry, load_registry
from eit.signals import stop_on_signals
from server.config import ServeConfig

if TYPE_CHECKING:
    from alerts.state import AlertStore
    from eit.store import Store
    from ingest.deadletters import DeadLetterStore
    from server.accounts import Accounts
    from server.api import ApiSources

log = logging.getLogger("server.serve")


class Server:
    def __init__(
        self,
        config: ServeConfig,
        *,
        extra_sinks: Sequence[Any] = (),
        on_alert: Callable[[Any], None] | None = None,
        registry: Registry | None = None,
    ) -> None:
        from alerts.effects import EffectWorker
        from alerts.engine import AlertEngine, StaleChecker
        from alerts.notifiers import NotifierContext, build_notifier
        from alerts.notifiers.dispatch import Dispatcher, Route
        from alerts.notifiers.routing import Router
        from alerts.pending import StatePendingWork
        from alerts.state import AlertStore
        from ingest.deadletters import DeadLetterStore
        from ingest.metrics import IngestMetrics
        from ingest.service import Ingest, MqttIngest
        from ingest.store import open_store
        from server.accounts import Accounts
        from statedb import open_state_db

        self.config = config
        self.registry = registry or load_registry(config.site)
        config.data_dir.mkdir(parents=True, exist_ok=True)
        self.store = open_store(config.store)
        # One state database (and its connections) for the alerts, the accounts and the dead letters.
        self.state_db = open_state_db(config.state_url, config.state_path)
        self.deadletters = DeadLetterStore(self.state_db, settings=config.ingest.dead_letters)
        self.alert_store = AlertStore(self.state_db)
        self.accounts = Accounts(self.state_db)
        context = NotifierContext(mqtt=config.mqtt)
        self.notifiers = [build_notifier(n, context) for n in config.notifiers]
        self.dispatcher = Dispatcher(
            self.notifiers,
            Router(self.registry),
            self.alert_store,
            [Route(n.factories, n.districts) for n in config.notifiers],
        )
        self.engine = AlertEngine(
            self.registry,
            self.alert_store,
            self.dispatcher,
            stale_after_s=config.rules.stale_after_s,
            on_event=on_alert,
            settings=config.rules,
            store=self.store,
            pending=StatePendingWork(self.state_db),
        )
        # The rules' effects (derived points, alert changes) are applied on a thread of their
        # own: a slow store or alert database delays alerts, never the ingest's acknowledgements.
        self.effects = EffectWorker(self.engine.applier, config.ingest.retry_max_s)
        self.engine.effects = self.effects
        self.metrics = IngestMetrics()
        from prometheus_client import Gauge

        alerts_open = Gauge("eit_alerts_open", "Alerts currently open", registry=self.metrics.registry)
        alerts_open.set_function(self.engine.open_count)
        self.ingest = Ingest(
            self.registry,
            self.store,
            self.deadletters,
            self.metrics,
            [self.engine, *extra_sinks],
            config.ingest,
        )
        self.mqtt = MqttIngest(self.ingest, config.mqtt)
        from ingest.selfstats import PlatformStats, StatusWatcher

        self.selfstats = PlatformStats(
            self.registry,
            self.store,
            self.metrics,
            config.mqtt.client_id,
            StatusWatcher(self.registry, config.mqtt),
            config.ingest.stats_interval_s,
        )
        self.stale = StaleChecker(self.engine, config.rules.check_interval_s)
        self.http_port: int | None = None
        self._http: HttpThread | None = None

    # -- health --------------------------------------------------------------------------------
    def health(self) -> tuple[bool, dict[str, Any]]:
        from eit.store import StoreUnavailable

        store_ok, store_detail = True, "ok"
        try:
            self.store.ping()
        except StoreUnavailable as exc:
            store_ok, store_detail = False, str(exc)
        broker_ok = self.mqtt.connected
        detail = {
            "broker": "connected" if broker_ok else "disconnected",
            "store": {"kind": self.store.kind, "status": store_detail},
            "alerts_open": self.engine.open_count(),
        }
        return broker_ok and store_ok, detail

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        import gc

        # What start-up built (the registry, the standards, the app) lives as long as the process:
        # out of the collector's sight, it no longer lengthens every full collection.
        gc.collect()
        gc.freeze()
        if self.config.http.enabled:
            self._start_http()
        self.dispatcher.start()
        self.effects.start()
        self.mqtt.start()
        self.stale.start()
        self.selfstats.start()
        log.info(
            "serving town %s: %d factories, %d devices; store %s; broker %s:%s; http %s",
            self.registry.town_id,
            len(self.registry.factories),
            self.registry.device_count,
            self.store.kind,
            self.config.mqtt.host,
            self.config.mqtt.port,
            f"{self.config.http.host}:{self.http_port}" if self.http_port else "off",
        )

    def _start_http(self) -> None:
        from server.api import ApiSettings, create_app

        sources = api_sources(
            self.config, self.registry, self.store, self.alert_store, self.deadletters, self.accounts
        )
        app = create_app(
            self.health, self.metrics.registry, sources, ApiSettings(token_ttl_s=self.config.http.token_ttl_s)
        )
        self._http = HttpThread(app, self.config.http.host, self.config.http.port)
        self.http_port = self._http.port
        self._http.start()

    def stop(self) -> None:
        log.info("stopping")
        if self._http is not None:
            self._http.should_exit()
        self.stale.stop()
        self.selfstats.stop()
        self.mqtt.stop()
        if not self.effects.drain(10.0):
            log.warning(
                "stopping with %d rule effects not applied (pending work redoes them)", self.effects.backlog
            )
        self.effects.stop()
        self.dispatcher.stop()
        for notifier in self.notifiers:
            if hasattr(notifier, "close"):
                notifier.close()
        if self._http is not None:
            self._http.join(5.0)
        self.store.close()
        self.state_db.close()


def run_serve(config: ServeConfig) -> int:
    stop = stop_on_signals()
    server = Server(config)
    server.start()
    try:
        while not stop.wait(1.0):
            pass
    finally:
        server.stop()
    return 0


class HttpThread:
    """The HTTP app served by uvicorn in a thread, on a socket bound before it starts (so the port
    is known at once, and connections wait in the backlog while uvicorn starts)."""

    def __init__(self, app: Any, host: str, port: int) -> None:
        import socket

        import uvicorn

        self.sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(128)
        self.host = host
        self.port: int = self.sock.getsockname()[1]
        cfg = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
        self._server = uvicorn.Server(cfg)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self.sock]}, name="http", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def should_exit(self) -> None:
        self._server.should_exit = True

    def join(self, timeout_s: float) -> None:
        self._thread.join(timeout_s)


def api_sources(
    config: ServeConfig,
    registry: Registry,
    store: Store,
    alert_store: AlertStore,
    deadletters: DeadLetterStore,
    accounts: Accounts,
) -> ApiSources:
    """What the HTTP API reads and changes, from the server's parts."""
    from datetime import date

    from alerts.messages import alert_text
    from alerts.report import compliance_report, render
    from server.api import ApiSources

    def report(first: date, last: date, factory: str | None) -> dict[str, Any]:
        # The same report as `eit report compliance`.
        return compliance_report(registry, store, first, last, factory, config.rules.completeness)

    return ApiSources(
        registry=registry,
        store=store,
        alerts=alert_store,
        accounts=accounts,
        report=report,
        render_report=render,
        alert_text=alert_text,
        deadletters=deadletters,
        stale_after_s=config.http.no_data_after_s,
    )


def run_api(config: ServeConfig) -> int:
    """`eit api`: the HTTP API and pages alone, on the store and state `eit serve` writes."""
    from prometheus_client import CollectorRegistry

    from alerts.state import AlertStore
    from ingest.deadletters import DeadLetterStore
    from ingest.store import StoreUnavailable, open_store
    from server.accounts import Accounts
    from server.api import ApiSettings, create_app
    from statedb import open_state_db

    stop = stop_on_signals()
    registry = load_registry(config.site)
    config.data_dir.mkdir(parents=True, exist_ok=True)
    store = open_store(config.store)
    state_db = open_state_db(config.state_url, config.state_path)
    deadletters = DeadLetterStore(state_db, settings=config.ingest.dead_letters)
    alert_store = AlertStore(state_db)
    accounts = Accounts(state_db)

    def health() -> tuple[bool, dict[str, Any]]:
        ok, status = True, "ok"
        try:
            store.ping()
        except StoreUnavailable as exc:
            ok, status = False, str(exc)
        return ok, {"store": {"kind": store.kind, "status": status}, "role": "api"}

    sources = api_sources(config, registry, store, alert_store, deadletters, accounts)
    app = create_app(health, CollectorRegistry(), sources, ApiSettings(token_ttl_s=config.http.token_ttl_s))
    http = HttpThread(app, config.http.host, config.http.port)
    http.start()
    log.info("HTTP API of town %s on http://%s:%d/", registry.town_id, config.http.host, http.port)
    print(f"eit api: http://{config.http.host}:{http.port}/  (API explorer: /docs)", flush=True)
    try:
        while not stop.wait(1.0):
            pass
    finally:
        http.should_exit()
        http.join(5.0)
        store.close()
        state_db.close()
    return 0
