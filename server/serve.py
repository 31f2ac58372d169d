"""`eit serve`: ingest, rules and the HTTP API in one process.

This module and :mod:`server.cli` are the composition root: they are the only modules of ``eit``
that import ``ingest`` and ``alerts`` (lazily, so ``eit edge`` runs where only the agent is
installed). Everything else in ``eit`` is the shared contract.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from eit.registry import Registry, load_registry
from eit.signals import stop_on_signals
from server.config import ServeConfig

if TYPE_CHECKING:
    from alerts.duties import DutiesJob
    from alerts.state import AlertStore
    from eit.store import Store
    from eit.supervise import Stage, StageStatus, Supervisor
    from ingest.amqp import AmqpIngest
    from ingest.deadletters import DeadLetterStore
    from ingest.service import Ingest, StagedIngest
    from server.accounts import Accounts
    from server.api import ApiSettings, ApiSources
    from server.town_jobs import TownJobsLeader
    from statedb import StateDb

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
        from alerts.notifiers.dispatch import Channel, Dispatcher, Route
        from alerts.notifiers.metrics import NotificationMetrics
        from alerts.notifiers.routing import Router
        from alerts.notifiers.worker import DeliveryPolicy
        from alerts.pending import MemoryPendingWork, PendingWork, StatePendingWork
        from alerts.state import AlertStore
        from eit.supervise import RestartPolicy, Supervisor
        from ingest.deadletters import DeadLetterStore
        from ingest.metrics import IngestMetrics
        from ingest.service import Ingest, MqttIngest
        from ingest.store import open_store
        from server.accounts import Accounts
        from statedb import open_state_db

        self.config = config
        # Every worker thread runs under this supervisor: restarted when it fails, and when it
        # fails too often, the process exits for systemd or compose to start it afresh.
        self.failure: str | None = None
        self.failed = threading.Event()
        self.supervisor = Supervisor(
            RestartPolicy(max_restarts=config.health.max_restarts, window_s=config.health.restart_window_s),
            on_give_up=self._give_up,
        )
        self.registry = registry or load_registry(config.site)
        # A worker of a storage replica's queue set stores readings only (docs/scale-out.md).
        amqp_settings = config.ingest.amqp if config.ingest.transport == "amqp" else None
        self.replica = amqp_settings is not None and amqp_settings.replica
        config.data_dir.mkdir(parents=True, exist_ok=True)
        self.store = open_store(config.store)
        # One state database (and its connections) for the alerts, the accounts and the dead letters.
        self.state_db = open_state_db(config.state_url, config.state_path)
        self.deadletters = DeadLetterStore(self.state_db, settings=config.ingest.dead_letters)
        self.alert_store = AlertStore(self.state_db)
        self.accounts = Accounts(self.state_db)
        context = NotifierContext(mqtt=config.mqtt)
        self.notifiers = [build_notifier(n, context) for n in config.notifiers]
        # Each notifier sends from its own queue in the state database, on a thread of its own.
        self.dispatcher = Dispatcher(
            [
                Channel(
                    notifier,
                    n.queue_name,
                    Route(n.factories, n.districts),
                    DeliveryPolicy(n.expire_after_s, n.retry_after_s, n.retry_max_s),
                )
                for notifier, n in zip(self.notifiers, config.notifiers, strict=True)
            ],
            Router(self.registry),
            self.state_db,
        )
        # A replica's engine never runs: the primary set's pending work is not its to redo.
        pending: PendingWork = MemoryPendingWork() if self.replica else StatePendingWork(self.state_db)
        self.engine = AlertEngine(
            self.registry,
            self.alert_store,
            self.dispatcher,
            stale_after_s=config.rules.stale_after_s,
            on_event=on_alert,
            settings=config.rules,
            store=self.store,
            pending=pending,
        )
        # The rules' effects (derived points, alert changes) are applied on a thread of their
        # own: a slow store or alert database delays alerts, never the ingest's acknowledgements.
        self.effects = EffectWorker(self.engine.applier, config.ingest.retry_max_s, self.supervisor)
        self.engine.effects = self.effects
        # Duties of WPMS and CEMS monitors: the accepted shutdown windows the rules read, the
        # cases of missed deadlines, the monthly integrity run (alerts/duties/).
        from alerts.duties import DutiesTicker, build_duties_job

        self.duties = build_duties_job(
            self.registry, self.store, self.alert_store, emit=self.engine.applier.emit
        )
        self.duties.refresh_calendar()
        self.engine.shutdowns = self.duties.calendar
        self.metrics = IngestMetrics()
        from prometheus_client import Gauge

        alerts_open = Gauge("eit_alerts_open", "Alerts currently open", registry=self.metrics.registry)
        alerts_open.set_function(self.engine.open_count)
        self.metrics.registry.register(NotificationMetrics(self.dispatcher))
        from server.health import StageCollector

        self.metrics.registry.register(StageCollector(self.stage_report))
        from alerts.replica_derived import ReplicaDerivedJob, TouchedHours

        # A replica's derived points are recomputed from its own readings (alerts/replica_derived.py).
        touched = TouchedHours()
        self.ingest = Ingest(
            self.registry,
            self.store,
            self.deadletters,
            self.metrics,
            [touched if self.replica else self.engine, *extra_sinks],
            config.ingest,
            device_keys=config.device_keys_path,
        )
        # The transport: the MQTT broker, or the RabbitMQ cluster's partitions (docs/scale-out.md).
        self.mqtt: StagedIngest
        # On the cluster, one worker runs the town-wide jobs (the indicators, the duties): the
        # holder of their lease (server/town_jobs.py). On one machine, this one always.
        self.town_jobs: TownJobsLeader | None = None
        self.replica_derived: ReplicaDerivedJob | None = None
        leader: Callable[[], bool] | None = None
        if config.ingest.transport == "amqp":
            amqp = _amqp_ingest(self.ingest, config, self.state_db, self.supervisor)
            # The rules judge staleness and public state only for the partitions this worker holds.
            self.engine.ownership = amqp.owned_factories
            self.mqtt = amqp
            if self.replica:
                self.replica_derived = ReplicaDerivedJob(
                    self.registry,
                    self.store,
                    touched,
                    config.rules,
                    amqp.owned_factories,
                    config.rules.check_interval_s,
                    self.supervisor,
                )
                # A partition taken over: its recent hours, which its previous holder may not have
                # recomputed.
                amqp.on_partition_taken = self.replica_derived.taken_over
            else:
                # A partition taken over mid-hour: its open hours are read back for what it missed.
                amqp.on_partition_taken = self.engine.owned_from
                # The town-wide jobs' lease (a replica's workers run no town jobs).
                self.town_jobs = _town_jobs_leader(config, self.state_db, amqp.owner, self.supervisor)
                leader = holds = self.town_jobs.holds
                Gauge(
                    "eit_town_jobs_leader",
                    "1 while this worker holds the town-wide jobs' lease (runs the indicators and duties)",
                    registry=self.metrics.registry,
                ).set_function(lambda: float(holds()))
        else:
            self.mqtt = MqttIngest(self.ingest, config.mqtt, self.supervisor)
        from ingest.selfstats import PlatformStats, StatusWatcher

        self.selfstats = PlatformStats(
            self.registry,
            self.store,
            self.metrics,
            config.mqtt.client_id,
            # On the cluster, statuses flow through the partitions (retained messages are per node).
            StatusWatcher(self.registry, config.mqtt) if config.ingest.transport == "mqtt" else None,
            config.ingest.stats_interval_s,
            self.supervisor,
        )
        self.stale = StaleChecker(self.engine, config.rules.check_interval_s, self.supervisor)
        from alerts.indicators_job import IndicatorJob

        self.indicators = IndicatorJob(
            self.registry, self.store, config.rules.indicators_interval_s, self.supervisor, leader=leader
        )
        self.duties_ticker = (
            DutiesTicker(self.duties, config.rules.duties_interval_s, self.supervisor, leader=leader)
            if config.rules.duties_interval_s > 0
            else None
        )
        self.http_port: int | None = None
        self._http: HttpThread | None = None

    # -- health --------------------------------------------------------------------------------
    def stage_report(self) -> list[StageStatus]:
        return self.supervisor.report(self.config.health.stuck_after_s)

    def liveness(self) -> dict[str, bool]:
        """Each stage of this process and whether it is alive and not stuck (``/healthz``).
        Nothing here asks a dependency: a broker or store that is down is a readiness matter."""
        from server.health import liveness

        # Each notifier's delivery worker too: a dead one leaves its queue to grow unseen.
        workers = {f"notify-{name}": w.alive for name, w in self.dispatcher.workers.items()}
        return liveness(self.stage_report()) | workers

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """What this process depends on, each with whether it is usable and why not
        (``/readyz``): the broker, the store, the state database, the rules' effects; and the
        stages in detail."""
        from eit.errors import EitError
        from server.health import stage_detail

        checks: dict[str, dict[str, Any]] = {}
        connected = self.mqtt.connected
        checks["broker"] = {
            "ok": connected,
            "status": "connected" if connected else self.mqtt.last_broker_error or "not connected",
        }
        try:
            self.store.ping()
            checks["store"] = {"ok": True, "kind": self.store.kind, "status": "ok"}
        except EitError as exc:
            checks["store"] = {"ok": False, "kind": self.store.kind, "status": str(exc)}
        try:
            self.state_db.ping()
            checks["state_db"] = {"ok": True, "kind": self.state_db.kind, "status": "ok"}
        except EitError as exc:
            checks["state_db"] = {"ok": False, "kind": self.state_db.kind, "status": str(exc)}
        effects = self.effects.stage.status(self.config.health.stuck_after_s)
        checks["effects"] = {
            "ok": effects.ok,
            "backlog": effects.backlog,
            "retries": self.effects.state.retries,
            "given_up": self.effects.state.given_up,
            "last_error": self.effects.state.last_error,
        }
        notifiers = {
            name: {
                "alive": worker.alive,
                "undelivered": worker.stats.undelivered,
                "oldest_undelivered_s": round(worker.stats.oldest_undelivered_age_s(), 1),
            }
            for name, worker in self.dispatcher.workers.items()
        }
        stages = self.stage_report()
        ok = (
            all(c["ok"] for c in checks.values())
            and all(s.ok for s in stages)
            and all(n["alive"] for n in notifiers.values())
        )
        detail: dict[str, Any] = {
            **checks,
            "stages": {s.name: stage_detail(s) for s in stages},
            "alerts_open": self.engine.open_count(),
            "notifiers": notifiers,
        }
        if self.town_jobs is not None:
            lead = self.town_jobs.leadership()
            # Not a check: a standby worker is as ready as the leader.
            detail["town_jobs"] = {
                "leader": lead.leader,
                "owner": lead.owner,
                "token": lead.token,
                "taken": lead.taken,
                "lost": lead.lost,
            }
        if self.failure:
            detail["failure"] = self.failure
        return ok, detail

    def _give_up(self, stage: Stage, error: BaseException) -> None:
        self.failure = (
            f"{stage.name} failed more than {self.config.health.max_restarts} times within "
            f"{self.config.health.restart_window_s:g} s: {type(error).__name__}: {error}"
        )
        log.critical("%s; exiting for the service manager to start eit serve afresh", self.failure)
        self.failed.set()

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        import gc

        # What start-up built (the registry, the standards, the app) lives as long as the process:
        # out of the collector's sight, it no longer lengthens every full collection.
        gc.collect()
        gc.freeze()
        self.dispatcher.start()  # before /healthz answers: it reports the notifiers' workers
        if self.config.http.enabled:
            self._start_http()
        self.effects.start()
        self.mqtt.start()
        self.selfstats.start()
        if self.replica_derived is not None:
            self.replica_derived.start()
        if not self.replica:  # the rules' periodic work runs on the primary set's workers
            self.stale.start()
            if self.town_jobs is not None:
                self.town_jobs.start()
            self.indicators.start()
            if self.duties_ticker is not None:
                self.duties_ticker.start()
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
        from server.api import create_app

        sources = api_sources(
            self.config,
            self.registry,
            self.store,
            self.alert_store,
            self.deadletters,
            self.accounts,
            duties=self.duties,
        )
        app = create_app(
            self.readiness,
            self.metrics.registry,
            sources,
            api_settings(self.config),
            liveness=self.liveness,
        )
        self._http = HttpThread(
            app, self.config.http.host, self.config.http.port, self.config.http.trusted_proxies
        )
        self.http_port = self._http.port
        self._http.start()

    def stop(self) -> None:
        log.info("stopping")
        if self._http is not None:
            self._http.should_exit()
        self.stale.stop()
        if self.replica_derived is not None:
            self.replica_derived.stop()
        self.indicators.stop()
        self.selfstats.stop()
        if self.duties_ticker is not None:
            self.duties_ticker.stop()
        if self.town_jobs is not None:
            self.town_jobs.stop()  # after the jobs: a standby takes the lease at once
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


# The exit code when a worker failed too often (EX_SOFTWARE): systemd's Restart=on-failure and
# compose's restart policies start the process afresh.
EXIT_WORKER_FAILED = 70
# How long a stop after such a failure may take before the process exits regardless.
FAILED_STOP_S = 60.0


def run_serve(config: ServeConfig) -> int:
    stop = stop_on_signals()
    server = Server(config)
    server.start()
    try:
        while not stop.wait(0.5):
            if server.failed.is_set():
                break
    finally:
        if server.failed.is_set():
            # A stuck stage may keep the stop from finishing: exit regardless after a while.
            watchdog = threading.Timer(FAILED_STOP_S, os._exit, (EXIT_WORKER_FAILED,))
            watchdog.daemon = True
            watchdog.start()
        server.stop()
    if server.failed.is_set():
        log.critical("exiting with code %d: %s", EXIT_WORKER_FAILED, server.failure)
        return EXIT_WORKER_FAILED
    return 0


def api_settings(config: ServeConfig) -> ApiSettings:
    """The HTTP app's settings from the ``http`` section."""
    from server.api import ApiSettings
    from server.api.loginguard import LoginLimits

    http = config.http
    login = http.login
    return ApiSettings(
        token_ttl_s=http.token_ttl_s,
        metrics_token=http.metrics_token.get_secret_value() if http.metrics_token else None,
        metrics_public=http.metrics_public,
        trust_loopback=http.trust_loopback,
        login=LoginLimits(
            per_address=login.per_address,
            per_account_address=login.per_account_address,
            per_account=login.per_account,
            window_s=login.window_s,
            concurrent_hashes=login.concurrent_hashes,
            waiting_max=login.waiting_max,
        ),
        max_body_bytes=http.max_body_bytes,
    )


class HttpThread:
    """The HTTP app served by uvicorn in a thread, on a socket bound before it starts (so the port
    is known at once, and connections wait in the backlog while uvicorn starts)."""

    def __init__(self, app: Any, host: str, port: int, trusted_proxies: Sequence[str] = ()) -> None:
        import socket

        import uvicorn

        # IPPROTO_TCP named: asyncio sets TCP_NODELAY only on sockets that say they are TCP, and
        # without it each answer on a kept-alive connection waits ~40 ms for the client's delayed
        # ACK (Nagle's algorithm), the console's every request after its first.
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(128)
        self.host = host
        self.port: int = self.sock.getsockname()[1]
        # X-Forwarded-For is read from the listed proxies only (none: never); uvicorn's own default
        # (the FORWARDED_ALLOW_IPS variable, else 127.0.0.1) would not follow the configuration.
        cfg = uvicorn.Config(
            app,
            log_level="warning",
            lifespan="off",
            access_log=False,
            proxy_headers=bool(trusted_proxies),
            forwarded_allow_ips=list(trusted_proxies) or None,
        )
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
    *,
    duties: DutiesJob | None = None,
) -> ApiSources:
    """What the HTTP API reads and changes, from the server's parts."""
    from datetime import date

    from alerts.duties import build_duties_job
    from alerts.messages import alert_text
    from alerts.notifiers.queue import DeliveryQueue
    from alerts.report import compliance_report, render
    from alerts.report_files import render_file
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
        report_file=render_file,
        alert_text=alert_text,
        deadletters=deadletters,
        notifications=DeliveryQueue(alert_store.db),
        stale_after_s=config.http.no_data_after_s,
        notifier_kinds=tuple(n.kind for n in config.notifiers),
        duties=duties or build_duties_job(registry, store, alert_store),
    )


def run_api(config: ServeConfig) -> int:
    """`eit api`: the HTTP API and pages alone, on the store and state `eit serve` writes."""
    from prometheus_client import CollectorRegistry

    from alerts.state import AlertStore
    from eit.errors import EitError
    from ingest.deadletters import DeadLetterStore
    from ingest.store import open_store
    from server.accounts import Accounts
    from server.api import create_app
    from statedb import open_state_db

    stop = stop_on_signals()
    registry = load_registry(config.site)
    config.data_dir.mkdir(parents=True, exist_ok=True)
    store = open_store(config.store)
    state_db = open_state_db(config.state_url, config.state_path)
    deadletters = DeadLetterStore(state_db, settings=config.ingest.dead_letters)
    alert_store = AlertStore(state_db)
    accounts = Accounts(state_db)

    def readiness() -> tuple[bool, dict[str, Any]]:
        checks: dict[str, dict[str, Any]] = {}
        try:
            store.ping()
            checks["store"] = {"ok": True, "kind": store.kind, "status": "ok"}
        except EitError as exc:
            checks["store"] = {"ok": False, "kind": store.kind, "status": str(exc)}
        try:
            state_db.ping()
            checks["state_db"] = {"ok": True, "kind": state_db.kind, "status": "ok"}
        except EitError as exc:
            checks["state_db"] = {"ok": False, "kind": state_db.kind, "status": str(exc)}
        return all(c["ok"] for c in checks.values()), {**checks, "role": "api"}

    sources = api_sources(config, registry, store, alert_store, deadletters, accounts)
    app = create_app(readiness, CollectorRegistry(), sources, api_settings(config))
    http = HttpThread(app, config.http.host, config.http.port, config.http.trusted_proxies)
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


def _amqp_ingest(
    ingest: Ingest, config: ServeConfig, state_db: StateDb, supervisor: Supervisor
) -> AmqpIngest:
    """A worker of the RabbitMQ cluster: its partitions over AMQP, leases in the state database."""
    try:
        from ingest import amqp as cluster_ingest
    except ImportError as exc:
        raise SystemExit(
            f"ingest.transport is amqp in {config.source}, but the `cluster` extra is not installed"
            f" (pip install 'eit-monitor[cluster]'): {exc}"
        ) from exc
    from ingest.leases import PartitionLeases

    amqp = config.ingest.amqp
    assert amqp is not None  # IngestSettings refuses transport amqp without it
    leases = PartitionLeases(state_db, amqp.queue_prefix, cluster_ingest.worker_id(), amqp.lease_s)
    return cluster_ingest.AmqpIngest(ingest, amqp, leases, supervisor)


def _town_jobs_leader(
    config: ServeConfig, state_db: StateDb, owner: str, supervisor: Supervisor
) -> TownJobsLeader:
    """The lease loop of the town-wide jobs, beside the partitions' (the same owner and lease)."""
    from server.town_jobs import TownJobsLeader

    amqp = config.ingest.amqp
    assert amqp is not None  # IngestSettings refuses transport amqp without it
    return TownJobsLeader.on(state_db, amqp.queue_prefix, owner, amqp.lease_s, supervisor)
