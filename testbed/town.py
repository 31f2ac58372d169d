"""The one town builder of the tests and the benchmark.

A town is a site registry and its meters, run on a virtual clock by server/history.py (what
`eit demo` builds its first-run history with), so every reading comes from an edge driver and
every hourly average, rolling average, AQI point and alert from the real compliance engine:

- :class:`TownSpec` says which town: the example town (``factories=0``, examples/town with its
  agents' simulated meters) or a generated one of ``factories`` x ``devices_per_factory`` stack
  CEMS; the period, scan interval and seed; the story (meters that start exceeding, fall silent,
  or whose scans arrive late); and the factories that are not public.
- :func:`town_site` writes its site registry, :func:`town_meters` makes its meters,
  :func:`load_town` stores and judges their history as `eit serve` would have.
- :func:`build_town` and :class:`TownApp`: the town as the API and browser tests use it (a
  serve.yaml, the data, one account per role, a dead letter), with the app in this process.
- :func:`write_town_day`: a scripted Bangkok day of the example town (:class:`DayMeter`) in an
  InfluxDB, judged as `eit import` judges data, with the platform's own health points, for the
  dashboard tests.

Generation is lazy and the site is written in one pass, so a large town (hundreds of factories
or devices, a month) costs what its readings cost: choose ``scan_s`` for the period.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import yaml

from edge.drivers.base import ScanValues
from edge.drivers.sim import SimChannel, SimDriver
from eit import wire
from eit.confread import load_yaml
from eit.model import Reading
from eit.registry import Registry, load_registry
from eit.store import Store
from eit.timeutil import NS_PER_S, now_ns
from server.history import History, Meter, Scan, edge_meters, judge_live, take_scans
from testbed.services import REPO, free_port

AccountsT = TypeVar("AccountsT")
EXAMPLE_DIR = REPO / "examples" / "town"
EDGE_DIR = EXAMPLE_DIR / "edge"
HOUR_NS = 3600 * NS_PER_S
MINUTE_NS = 60 * NS_PER_S


@dataclass(frozen=True, slots=True)
class TownSpec:
    """Which town, over which period, with which story."""

    factories: int = 0  # 0: the example town (examples/town); N: a generated town of N factories
    devices_per_factory: int = 1  # stack CEMS per factory of a generated town
    private: tuple[str, ...] = ()  # factories marked `public: false`
    hours: float = 30.0
    end_ns: int | None = None  # None: now
    scan_s: float = 60.0
    # None: the example town's meters keep their agents' seeds (a generated town uses 0); a number
    # reseeds every meter from it, its factory and its device.
    seed: int | None = None
    exceeding: int = 0  # of a generated town: factories whose first stack's SO2 climbs to 85 ppm
    exceed_hours: float | None = None  # exceeding meters start this long before the end (None: never)
    silent: tuple[tuple[str, float], ...] = ()  # (factory, minutes before the end it falls silent)
    late: tuple[tuple[str, float], ...] = ()  # (factory, seconds its scans arrive after they are taken)

    def at(self, end_ns: int | None = None) -> TownSpec:
        """The spec with its end fixed: ``end_ns``, its own, or now."""
        return replace(self, end_ns=end_ns if end_ns is not None else self.end_ns or now_ns())

    def period(self) -> tuple[int, int]:
        end = self.end_ns if self.end_ns is not None else now_ns()
        return end - int(self.hours * HOUR_NS), end


# The example town's story for the API and browser tests: the biomass boiler's SO2 climbs past
# its 60 ppm limit 5.5 h before the end (a critical clock-hour exceedance), the starch factory's
# effluent analyzer falls silent 20 minutes before the end (a stale-data warning), the fence-line
# station reports throughout (AQI).
EXAMPLE_STORY = TownSpec(exceed_hours=5.5, silent=(("siam-cassava-starch", 20.0),))


def generated_factory(i: int) -> str:
    return f"f{i + 1:03d}"


def generated_device(j: int) -> str:
    return f"stack-{j + 1:02d}"


def _typical_stack() -> tuple[dict[str, Any], dict[str, Any]]:
    """The example boiler's registry entry and its simulated meter: the template of a generated
    town's stacks."""
    site = load_yaml(EXAMPLE_DIR / "site.yaml")
    device = next(d for f in site["factories"] for d in f["devices"] if d["kind"] == "stack")
    agent = load_yaml(EDGE_DIR / "kaeng-khoi-biomass.yaml")
    sim = next(d["sim"] for d in agent["devices"] if d["id"] == device["id"])
    return device, sim


def town_site(path: Path, spec: TownSpec) -> Path:
    """Write the town's site registry to ``path``."""
    if spec.factories == 0:
        data = load_yaml(EXAMPLE_DIR / "site.yaml")
    else:
        stack, _ = _typical_stack()
        factories = []
        for i in range(spec.factories):
            devices = [
                {**stack, "id": generated_device(j), "name": f"Stack {j + 1} (CEMS)"}
                for j in range(spec.devices_per_factory)
            ]
            factories.append(
                {
                    "id": generated_factory(i),
                    "name": f"Generated factory {i + 1}",
                    "location": {"lat": 12.6 + (i % 100) * 0.002, "lon": 101.0 + (i // 100) * 0.002},
                    "district": "Generated",
                    "devices": devices,
                }
            )
        data = {
            "town": {"id": "generated-town", "name": "Generated town (tests)", "timezone": "Asia/Bangkok"},
            "factories": factories,
            "officers": [
                {
                    "id": "duty",
                    "name": "Duty officer",
                    "email": "duty@example.org",
                    "role": "officer",
                    "language": "en",
                    "districts": ["Generated"],
                }
            ],
        }
    ids = {f["id"] for f in data["factories"]}
    for name, chosen in (
        ("private", spec.private),
        ("silent", [f for f, _ in spec.silent]),
        ("late", [f for f, _ in spec.late]),
    ):
        unknown = sorted(set(chosen) - ids)
        if unknown:
            raise ValueError(f"TownSpec.{name}: no factory {', '.join(unknown)} in this town")
    for f in data["factories"]:
        if f["id"] in spec.private:
            f["public"] = False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def town_meters(registry: Registry, spec: TownSpec) -> list[Meter]:
    """The town's meters with the spec's story, for the period ``spec.period()`` (give a spec
    with its end fixed, :meth:`TownSpec.at`)."""
    _, end = spec.period()
    if spec.factories == 0:
        meters = [m for m in edge_meters(EDGE_DIR) if m.factory in registry.factories]
    else:
        _, sim = _typical_stack()
        channels = [
            SimChannel(cid, float(c["mean"]), float(c["sd"]), 0.0, float(c["max"]), c.get("high"))
            for cid, c in sim["channels"].items()
        ]
        meters = []
        for i, factory in enumerate(registry.factories.values()):
            for j, device in enumerate(factory.devices.values()):
                profile = "exceeding" if i < spec.exceeding and j == 0 else "normal"
                driver = SimDriver(device.id, channels, profile=profile, seed=0, ramp_s=float(sim["ramp_s"]))
                meters.append(Meter(factory.id, device.id, driver))
    silent = dict(spec.silent)
    late = dict(spec.late)
    for meter in meters:
        assert isinstance(meter.driver, SimDriver)
        if spec.seed is not None or spec.factories:
            meter.driver = _reseeded(meter.driver, f"{spec.seed or 0}/{meter.factory}/{meter.device}")
        if spec.exceed_hours is not None:
            meter.exceed_from_ns = end - int(spec.exceed_hours * HOUR_NS)
        if meter.factory in silent:
            meter.silent_from_ns = end - int(silent[meter.factory] * MINUTE_NS)
        meter.late_s = late.get(meter.factory, 0.0)
    return meters


def _reseeded(driver: SimDriver, text: str) -> SimDriver:
    d = driver
    seed = random.Random(text).getrandbits(32)
    return SimDriver(d.device_id, d.channels, d.profile, seed, d.ramp_s, d.after_s, d.period_s, d.off_s)


def town_scans(registry: Registry, spec: TownSpec) -> Iterable[Scan]:
    """The town's scans over the spec's period, lazily, in the order they are taken."""
    spec = spec.at()
    start, end = spec.period()
    return take_scans(registry, town_meters(registry, spec), start, end, spec.scan_s)


def load_town(registry: Registry, store: Store, alerts: Any, spec: TownSpec = EXAMPLE_STORY) -> History:
    """The town's history stored in ``store`` and judged by the compliance engine as `eit serve`
    would have (alerts into ``alerts``)."""
    from alerts.settings import RuleSettings

    spec = spec.at()
    start, end = spec.period()
    return judge_live(
        registry,
        store,
        alerts,
        town_scans(registry, spec),
        end,
        settings=RuleSettings(stale_after_s=300, check_interval_s=60),
        start_ns=start - start % int(spec.scan_s * NS_PER_S),
    )


def message(scan: Scan) -> tuple[str, bytes]:
    """A scan as its agent publishes it: (topic, wire payload)."""
    first = scan.readings[0]
    values = {r.channel: r.value for r in scan.readings}
    flags = {r.channel: r.flag for r in scan.readings if r.flag != "N"}
    payload = wire.encode([wire.Scan(first.ts_ns, values, flags, first.seq)])
    return wire.data_topic(first.factory, first.device), payload


def event_kinds(events: Sequence[Any]) -> list[tuple[str, str, str, str]]:
    return [(e.kind, e.alert.factory, e.alert.parameter, e.alert.rule) for e in events]


# -- the town in the API and browser tests -----------------------------------------------------------

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


def cheap_hashing(accounts: AccountsT) -> AccountsT:
    """``accounts`` hashing with argon2-cffi's CHEAPEST profile, the library's own profile for
    tests: the API tests log in and out over a hundred times, at 0.2 s of CPU each with the
    production parameters. Argon2id with those parameters is tested in tests/test_accounts.py;
    a login through `eit api` (the browser tests) rehashes to them, as after any change of
    parameters."""
    from argon2 import PasswordHasher
    from argon2.profiles import CHEAPEST

    accounts._hasher = PasswordHasher.from_parameters(CHEAPEST)  # type: ignore[attr-defined]
    return accounts


@dataclass(slots=True)
class Town:
    workdir: Path
    config_path: Path
    config: Any  # server.config.ServeConfig
    registry: Registry
    data: History


def compute_town_indicators(registry: Registry, store: Store, spec: TownSpec) -> None:
    """The town indicators of the spec's months and years, as `eit serve` computes them at start."""
    from alerts.compliance import local_day
    from alerts.indicators import compute_indicators

    tz = ZoneInfo(registry.timezone)
    start, end = spec.at().period()
    compute_indicators(registry, store, local_day(start, tz), local_day(end, tz))


def build_town(
    workdir: Path,
    spec: TownSpec = EXAMPLE_STORY,
    *,
    site: Path | None = None,
    state_url: str | None = None,
    store_config: dict[str, Any] | None = None,
    http_port: int | None = None,
) -> Town:
    """What an operator would have after running `eit serve` for the spec's period and `eit users
    add` for each person: a serve.yaml in ``workdir``, the town's data in its stores, one account
    per role (operators of the town's factories only) and a dead letter. ``site`` replaces the
    spec's site registry (a variant of the example town)."""
    from alerts.state import AlertStore
    from ingest.deadletters import DeadLetter, DeadLetterStore
    from ingest.store import open_store
    from server.accounts import Accounts
    from server.config import load_serve_config
    from statedb import open_state_db

    workdir.mkdir(parents=True, exist_ok=True)
    config: dict[str, Any] = {
        "site": str(site or town_site(workdir / "site.yaml", spec)),
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
    accounts = cheap_hashing(Accounts(state_db))
    letters = DeadLetterStore(state_db)
    try:
        data = load_town(registry, store, alerts, spec)
        compute_town_indicators(registry, store, spec)
        for name, (role, factory) in USERS.items():
            if factory is None or factory in registry.factories:
                accounts.add_user(name, role, password_of(name), now_ns(), factory)
        first = next(iter(registry.factories.values()))
        letters.add(
            [
                DeadLetter(
                    now_ns(),
                    wire.data_topic(first.id, next(iter(first.devices))),
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

    def __init__(self, town: Town, clock: Callable[[], int] | None = None) -> None:
        """``clock``: the app's now (default: the real time)."""
        from fastapi.testclient import TestClient
        from prometheus_client import CollectorRegistry

        from alerts.state import AlertStore
        from ingest.deadletters import DeadLetterStore
        from ingest.store import open_store
        from server.accounts import Accounts
        from server.api import ApiSettings, create_app
        from server.serve import api_sources
        from statedb import open_state_db

        self.town = town
        c = town.config
        self.store = open_store(c.store)
        self.state_db = open_state_db(c.state_url, c.state_path)
        self.alerts = AlertStore(self.state_db)
        self.accounts = cheap_hashing(Accounts(self.state_db))
        self.letters = DeadLetterStore(self.state_db)
        self.metrics = CollectorRegistry()
        sources = api_sources(c, town.registry, self.store, self.alerts, self.letters, self.accounts)
        self.sources = sources
        if clock is not None:
            sources.clock = clock
        self.app = create_app(
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


# -- a scripted day of the example town, for the dashboard tests -------------------------------------
#
# What the dashboards must show, on one Bangkok day: Kaeng Khoi's boiler SO2 above its 1-hour limit
# in the afternoon, an invalid hour of the outfall's COD (two quadrants without data), the
# fence-line station's ozone analyser in maintenance for six hours (an incomplete day) and above
# its 8-hour limit in the afternoon, the outfall's agent offline for an hour that drains its
# backlog when it is back, a server restart (counters start again) and dead letters of two
# reasons. The values are fixture values (typical levels of each channel), not measurements of
# any real plant.

BANGKOK = ZoneInfo("Asia/Bangkok")
DAY = datetime(2026, 11, 26, tzinfo=BANGKOK)  # a Bangkok day: 2026-11-25T17:00Z to 2026-11-26T17:00Z
DAY_START_NS = int(DAY.astimezone(UTC).timestamp()) * NS_PER_S
DAY_END_NS = DAY_START_NS + 24 * HOUR_NS

TYPICAL = {
    "so2": 40.0,
    "nox": 120.0,
    "pm": 95.0,
    "o2": 9.5,
    "flow": 52000.0,
    "temperature": 165.0,
    "power": 4200.0,
    "ph": 7.2,
    "cod": 80.0,
    "bod": 15.0,
    "tss": 30.0,
    "pm25": 28.0,
    "pm10": 55.0,
    "o3": 0.04,
}
OUTFALL_FLOW_M3_PER_H = 300.0
ENERGY_START_KWH = 1_250_000.0

SO2_HIGH_HOURS = range(13, 17)  # local hours when the boiler's SO2 is above its limit
COD_SHORT_HOUR = 10  # local hour whose COD readings stop after 30 minutes
O3_MAINTENANCE_HOURS = range(0, 6)  # flag M
O3_HIGH_HOURS = range(11, 19)
OFFLINE_AGENT = ("siam-cassava-starch", "outfall-1")  # offline for this local hour, then drains
AGENT_OFFLINE_HOUR = 20
SERVER_RESTART_HOUR = 12
DEAD_LETTER_REASONS = ("not_json", "unknown_device")
INSTANCE = "eit-ingest"


def local_hour(ts_ns: int) -> int:
    return (ts_ns - DAY_START_NS) // HOUR_NS


class DayMeter:
    """A meter of the example town that reads the scripted day's values (a driver on a clock)."""

    def __init__(self, device: str, channels: Sequence[str]) -> None:
        self.device = device
        self.channels = list(channels)
        self.clock: Any = lambda: 0.0

    def connect(self) -> None:
        pass

    def close(self) -> None:
        pass

    def read(self) -> ScanValues:
        ts = round(self.clock()) * NS_PER_S  # the day's scans fall on whole seconds
        minute = (ts - DAY_START_NS) // MINUTE_NS
        hour = local_hour(ts)
        values: dict[str, float] = {}
        flags: dict[str, str] = {}
        cod_short = hour == COD_SHORT_HOUR and (ts - DAY_START_NS) % HOUR_NS >= 30 * MINUTE_NS
        wobble = math.sin(minute / 17.0)
        for channel in self.channels:
            if channel == "cod" and cod_short:
                continue
            if channel == "energy":
                values[channel] = ENERGY_START_KWH + TYPICAL["power"] * minute / 60.0
                continue
            outfall_flow = (self.device, channel) == ("outfall-1", "flow")
            base = OUTFALL_FLOW_M3_PER_H if outfall_flow else TYPICAL[channel]
            value = base * (1 + 0.03 * wobble)
            if channel == "so2" and hour in SO2_HIGH_HOURS:
                value = 85.0 + 2 * wobble
            if channel == "o3":
                if hour in O3_MAINTENANCE_HOURS:
                    flags[channel] = "M"
                elif hour in O3_HIGH_HOURS:
                    value = 0.09 + 0.002 * wobble
            values[channel] = round(value, 4)
        return ScanValues(values, flags)


def day_readings(registry: Registry, factories: Collection[str] | None = None) -> list[Reading]:
    """The scripted day's readings (of ``factories`` only, when given), in time order."""
    meters = [
        Meter(f.id, d.id, DayMeter(d.id, list(d.channels)))
        for f in registry.factories.values()
        if factories is None or f.id in factories
        for d in f.devices.values()
    ]
    return [r for scan in take_scans(registry, meters, DAY_START_NS, DAY_END_NS) for r in scan.readings]


def platform_lines(registry: Registry, instance: str = INSTANCE) -> list[str]:
    """``platform`` and ``platform_dead_letters`` once a minute, written by PlatformStats as
    `eit serve` writes them (every 10 s there; a minute keeps the fill quick, and every per-minute
    bucket of the Platform health panels still holds a point)."""
    import paho.mqtt.client as mqtt
    from prometheus_client import Gauge

    from eit.mqttconf import MqttSettings
    from ingest.metrics import IngestMetrics
    from ingest.selfstats import PlatformStats, StatusWatcher

    class Server:
        """What one run of `eit serve` counts: its ingest metrics, the open-alerts gauge (which
        follows the SO2 exceedance hours here), the stats."""

        def __init__(self) -> None:
            self.metrics = IngestMetrics()
            self.alerts_open = Gauge(
                "eit_alerts_open", "Alerts currently open", registry=self.metrics.registry
            )
            self.stats = PlatformStats(registry, None, self.metrics, instance, watcher)

        def message(self, readings: int) -> None:
            self.metrics.messages.labels("data").inc()
            self.metrics.readings_stored.inc(readings)

        def dead_letter(self, reason: str) -> None:
            self.metrics.messages.labels("data").inc()
            self.metrics.dead_letters.labels(reason).inc()

    def status(factory: str, device: str, payload: str) -> None:
        """A retained status message reaching the watcher, as paho hands it over."""
        msg = mqtt.MQTTMessage(topic=wire.status_topic(factory, device).encode())
        msg.payload = payload.encode()
        watcher._on_message(watcher.client, None, msg)

    settings = MqttSettings("127.0.0.1", 1883, instance, "5", None, None, None, 60)
    watcher = StatusWatcher(registry, settings)  # never connected: it is handed the messages
    devices = [(f.id, d.id, len(d.channels)) for f in registry.factories.values() for d in f.devices.values()]
    for factory, device, _ in devices:
        status(factory, device, '{"state": "online", "outbox_pending": 0}')
    server = Server()
    backlog = 0
    lines: list[str] = []
    for minute, ts in enumerate(range(DAY_START_NS, DAY_END_NS, MINUTE_NS)):
        hour = local_hour(ts)
        if ts == DAY_START_NS + SERVER_RESTART_HOUR * HOUR_NS:
            server = Server()  # a restart: the counters start again
        for factory, device, channels in devices:
            if (factory, device) != OFFLINE_AGENT:
                server.message(channels)
            elif hour == AGENT_OFFLINE_HOUR:
                if backlog == 0:
                    status(factory, device, wire.STATUS_OFFLINE)  # the last will
                backlog += 1
            elif backlog:
                # Back: the agent's birth message reports its outbox, then the backlog drains in
                # one message with this minute's scan.
                status(factory, device, f'{{"state": "online", "outbox_pending": {backlog}}}')
                server.message(channels * (backlog + 1))
                backlog = 0
            else:
                server.message(channels)
        for i, reason in enumerate(DEAD_LETTER_REASONS):
            if minute % (7 + i) == 0:
                server.dead_letter(reason)
        server.alerts_open.set(1 if hour in SO2_HIGH_HOURS else 0)
        lines += server.stats.snapshot(ts)
    return lines


def write_town_day(
    store: Any,
    registry: Registry,
    factories: Collection[str] | None = None,
    *,
    platform: bool = True,
) -> None:
    """Fill ``store`` (an InfluxStore) with the scripted day: raw readings, the derived
    measurements the engine computes when the day is imported (`eit import`), and the ``sites``
    points; of ``factories`` only when given, and the platform's own points only with
    ``platform``."""
    from alerts.recompute import recompute
    from alerts.settings import RuleSettings
    from ingest.selfstats import site_lines

    readings = day_readings(registry, factories)
    store.write(readings)
    # hourly, rolling, daily, aqi, energy, as `eit import` and `eit recompute` make them
    first, last = min(r.ts_ns for r in readings), max(r.ts_ns for r in readings)
    recompute(registry, store, first, last + 1, settings=RuleSettings())
    # the town indicators of the day's month and year, as `eit import` makes them too
    from alerts.indicators import compute_indicators

    compute_indicators(registry, store, DAY.date(), DAY.date())
    chosen = {f.id: f for f in registry.factories.values() if factories is None or f.id in factories}
    lines = site_lines(replace(registry, factories=chosen), DAY_START_NS)
    if platform:
        lines += platform_lines(registry)
    store.write_lines(lines)
