"""The agent's configuration file (YAML), checked with errors that name the file and the key.

factory: kaeng-khoi-biomass
mqtt: {host: broker.example, port: 8883, username: "{client_id}", password_file: ...}
outbox: {path: /var/lib/eit-edge/outbox.db, max_mb: 1024, max_age_days: 30}
clock: {min_year: 2020}
metrics: {host: 127.0.0.1, port: 9108}     # optional Prometheus endpoint (/metrics, /healthz)
signing: {keys: /var/lib/eit-edge/keys}    # optional: sign every scan (wire v2; edge/keys.py)
status_interval_s: 60
scan_interval_s: 1
devices:
  - id: boiler-1
    driver: sim
    sim: {profile: normal, channels: {so2: {mean: 30, sd: 3}}}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.drivers import build_driver, driver_names
from edge.drivers.base import Driver
from eit.confread import Loc, Problems, Section, apply_env_overrides, read_yaml
from eit.errors import ConfigError
from eit.model import ID_HINT, ID_PATTERN
from eit.mqttconf import MqttSettings, read_mqtt


@dataclass(slots=True)
class DeviceConfig:
    id: str
    driver_name: str
    driver: Driver
    scan_interval_s: float
    offline_after_failures: int

    @property
    def replays(self) -> bool:
        """The device replays recorded data (CSV) rather than reading a live meter."""
        return self.driver_name == "csv"


@dataclass(slots=True)
class EdgeConfig:
    source: str
    factory: str
    mqtt: MqttSettings
    outbox_path: Path
    devices: list[DeviceConfig]
    max_scans_per_message: int
    max_inflight: int
    outbox_max_bytes: int | None = None
    outbox_max_age_s: float | None = None
    clock_min_year: int = 2020
    status_interval_s: float = 60.0
    metrics: tuple[str, int] | None = None
    # The folder of the devices' signing keys (<device>.key), when the agent signs its scans.
    signing_keys: Path | None = None


def load_edge_config(path: Path | str, environ: dict[str, str] | None = None) -> EdgeConfig:
    path = Path(path)
    doc = read_yaml(path)
    if not isinstance(doc.data, dict):
        raise ConfigError(str(path), "", "expected a mapping at the top level", 1)
    origins = apply_env_overrides(doc.data, environ)
    return parse_edge_config(doc.data, str(path), path.parent.resolve(), origins, lines=doc.lines)


def parse_edge_config(
    data: dict[str, Any],
    source: str,
    base_dir: Path,
    origins: dict[str, str] | None = None,
    *,
    lines: Mapping[Loc, int] | None = None,
) -> EdgeConfig:
    """Check an agent's configuration; every problem found is reported at once."""
    root = Section(data, source, "", origins, lines=lines)
    problems = Problems()
    factory = root.text("factory", pattern=ID_PATTERN, hint=ID_HINT)
    mqtt: MqttSettings | None = None
    with problems.gather():
        # Each device's connection is <client_id>-<device> (edge/publisher.py): by default
        # <factory>-<device>, the login `eit devices add` makes for it.
        mqtt = read_mqtt(root.section("mqtt"), base_dir, factory)
    outbox_path, max_mb, max_age_days = base_dir / f"outbox-{factory}.db", 1024.0, 30.0
    with problems.gather():
        osec = root.section("outbox")
        outbox_path = osec.path_value("path", base_dir, outbox_path)
        max_mb = osec.number("max_mb", max_mb, minimum=0.1)
        max_age_days = osec.number("max_age_days", max_age_days, exclusive_minimum=0)
        osec.finish()
    min_year = 2020
    with problems.gather():
        csec = root.section("clock")
        min_year = csec.integer("min_year", min_year, minimum=1971, maximum=2100)
        csec.finish()
    metrics: tuple[str, int] | None = None
    with problems.gather():
        if root.has("metrics"):
            msec = root.section("metrics")
            metrics = (msec.text("host", "127.0.0.1"), msec.integer("port", 9108, minimum=0, maximum=65535))
            msec.finish()
    signing_keys: Path | None = None
    with problems.gather():
        if root.has("signing"):
            ssec = root.section("signing")
            signing_keys = ssec.path_value("keys", base_dir, base_dir / "keys")
            ssec.finish()
    default_interval = 1.0
    with problems.gather():
        default_interval = root.number("scan_interval_s", default_interval, exclusive_minimum=0)
    devices: list[DeviceConfig] = []
    seen: set[str] = set()
    device_sections: list[Section] = []
    with problems.gather():
        device_sections = list(root.sections("devices", required=True))
        if not device_sections:
            root.fail("devices", "the agent needs at least one device")
    for dsec in device_sections:
        with problems.gather():
            devices.append(_read_device(dsec, base_dir, default_interval, seen))
    max_scans, max_inflight, status_interval_s = 500, 20, 60.0
    with problems.gather():
        max_scans = root.integer("max_scans_per_message", max_scans, minimum=1, maximum=10000)
    with problems.gather():
        max_inflight = root.integer("max_inflight", max_inflight, minimum=1, maximum=1000)
    with problems.gather():
        status_interval_s = root.number("status_interval_s", status_interval_s, minimum=1)
    with problems.gather():
        root.finish()
    problems.check()
    assert mqtt is not None  # read, or a problem raised above
    return EdgeConfig(
        source=source,
        factory=factory,
        mqtt=mqtt,
        outbox_path=outbox_path,
        devices=devices,
        max_scans_per_message=max_scans,
        max_inflight=max_inflight,
        outbox_max_bytes=int(max_mb * 1_000_000),
        outbox_max_age_s=max_age_days * 86400,
        clock_min_year=min_year,
        status_interval_s=status_interval_s,
        metrics=metrics,
        signing_keys=signing_keys,
    )


def _read_device(dsec: Section, base_dir: Path, default_interval: float, seen: set[str]) -> DeviceConfig:
    did = dsec.text("id", pattern=ID_PATTERN, hint=ID_HINT)
    if did in seen:
        dsec.fail("id", f"device '{did}' is listed twice")
    seen.add(did)
    name = dsec.text("driver", choices=driver_names())
    driver = build_driver(name, dsec.section(name, required=True), base_dir, did)
    interval = dsec.number("scan_interval_s", default_interval, exclusive_minimum=0)
    max_read_s = getattr(driver, "max_read_s", None)
    if isinstance(max_read_s, float) and max_read_s >= interval:
        dsec.fail(
            f"{name}.timeout_s",
            f"a meter that does not answer takes up to {max_read_s:g} s to give up on "
            f"(timeout_s x (1 + retries)), not less than scan_interval_s "
            f"{interval:g}: lower timeout_s or retries, or scan less often",
        )
    device = DeviceConfig(
        id=did,
        driver_name=name,
        driver=driver,
        scan_interval_s=interval,
        offline_after_failures=dsec.integer("offline_after_failures", 3, minimum=1),
    )
    dsec.finish()
    return device
