"""`eit serve`: ingest, rules and the HTTP API in one process.

This module and :mod:`eit.cli` are the composition root: they are the only modules of ``eit``
that import ``ingest`` and ``alerts`` (lazily, so ``eit edge`` runs where only the agent is
installed). Everything else in ``eit`` is the shared contract.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Sequence
from typing import Any

from eit.config import ServeConfig
from eit.registry import Registry, load_registry

log = logging.getLogger("eit.serve")


class Server:
    def __init__(
        self,
        config: ServeConfig,
        *,
        extra_sinks: Sequence[Any] = (),
        on_alert: Callable[[Any], None] | None = None,
        registry: Registry | None = None,
    ) -> None:
        from alerts.engine import AlertEngine, StaleChecker
        from alerts.notifiers import build_notifier
        from alerts.notifiers.dispatch import Dispatcher, Route
        from alerts.notifiers.routing import Router
        from alerts.state import open_alert_store
        from ingest.deadletters import DeadLetterStore
        from ingest.metrics import IngestMetrics
        from ingest.service import Ingest, MqttIngest
        from ingest.store import open_store

        self.config = config
        self.registry = registry or load_registry(config.site)
        config.data_dir.mkdir(parents=True, exist_ok=True)
        self.store = open_store(config.store)
        self.deadletters = DeadLetterStore(config.state_path)
        self.alert_store = open_alert_store(config.state_url, config.state_path)
        self.notifiers = [build_notifier(n, config.mqtt) for n in config.notifiers]
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
        )
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
        self._http: Any = None
        self._http_thread: threading.Thread | None = None

    # -- health --------------------------------------------------------------------------------
    def health(self) -> tuple[bool, dict[str, Any]]:
        from ingest.store.base import StoreUnavailable

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

    def list_json(self, state: str | None, factory: str | None, limit: int) -> list[dict[str, Any]]:
        return [a.to_json() for a in self.alert_store.list(state=state, factory=factory, limit=limit)]

    def alert_json(self, alert_id: int) -> dict[str, Any] | None:
        alert = self.alert_store.get(alert_id)
        if alert is None:
            return None
        return alert.to_json() | {"audit": [e.to_json() for e in self.alert_store.audit(alert_id)]}

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        if self.config.http.enabled:
            self._start_http()
        self.dispatcher.start()
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
        import socket

        import uvicorn

        from eit.api import create_app

        app = create_app(self.health, self.metrics.registry, latest=self.store, alerts=self)
        sock = socket.socket(socket.AF_INET6 if ":" in self.config.http.host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.config.http.host, self.config.http.port))
        sock.listen(128)  # accept connections into the backlog while uvicorn starts
        self.http_port = sock.getsockname()[1]
        cfg = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
        self._http = uvicorn.Server(cfg)
        self._http_thread = threading.Thread(
            target=self._http.run, kwargs={"sockets": [sock]}, name="http", daemon=True
        )
        self._http_thread.start()

    def stop(self) -> None:
        log.info("stopping")
        if self._http is not None:
            self._http.should_exit = True
        self.stale.stop()
        self.selfstats.stop()
        self.mqtt.stop()
        self.dispatcher.stop()
        for notifier in self.notifiers:
            if hasattr(notifier, "close"):
                notifier.close()
        if self._http_thread is not None:
            self._http_thread.join(5.0)
        self.store.close()
        self.deadletters.close()
        self.alert_store.close()


def stop_on_signals() -> threading.Event:
    """An event set by SIGINT or SIGTERM. Install it before starting anything, so a signal that
    arrives during start-up still stops the process cleanly."""
    stop = threading.Event()

    def handler(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    return stop


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
