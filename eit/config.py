"""Configuration of the server process (`eit serve`): a YAML file plus EIT_* variables.

Environment variables override file keys, ``__`` separating levels: ``EIT_MQTT__PORT=1884``,
``EIT_STORE__KIND=influxdb``. Relative paths are taken from the configuration file's folder.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eit.confread import Section, apply_env_overrides, load_yaml
from eit.errors import ConfigError
from eit.mqttconf import MqttSettings, read_mqtt

STORE_KINDS = ("sqlite", "influxdb")
NOTIFIER_KINDS = ("log", "webhook")


@dataclass(frozen=True, slots=True)
class StoreSettings:
    kind: str
    path: Path | None = None  # sqlite
    url: str = "http://localhost:8086"  # influxdb
    database: str = "eit"
    username: str | None = None
    password: str | None = None
    retention_policy: str | None = None
    timeout_s: float = 10.0

    def __repr__(self) -> str:
        return (
            f"StoreSettings(kind={self.kind!r}, path={self.path}, url={self.url!r},"
            f" database={self.database!r})"
        )


@dataclass(frozen=True, slots=True)
class NotifierSettings:
    kind: str
    options: dict[str, Any]


@dataclass(frozen=True, slots=True)
class IngestSettings:
    batch_max_readings: int = 5000
    flush_interval_s: float = 0.1
    max_future_s: float = 300.0
    retry_max_s: float = 30.0


@dataclass(frozen=True, slots=True)
class RuleSettings:
    stale_after_s: float = 120.0
    check_interval_s: float = 5.0


@dataclass(frozen=True, slots=True)
class HttpSettings:
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 8080


@dataclass(frozen=True, slots=True)
class BrokerFiles:
    """Where `eit devices add` writes the broker's logins (Mosquitto password file and ACL)."""

    passwd_file: Path
    acl_file: Path


@dataclass(frozen=True, slots=True)
class ServeConfig:
    source: str
    site: Path
    data_dir: Path
    mqtt: MqttSettings
    store: StoreSettings
    state_path: Path
    ingest: IngestSettings
    rules: RuleSettings
    http: HttpSettings
    notifiers: tuple[NotifierSettings, ...] = field(default_factory=tuple)
    broker: BrokerFiles | None = None


def load_serve_config(path: Path | str, environ: dict[str, str] | None = None) -> ServeConfig:
    path = Path(path)
    data = load_yaml(path)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(str(path), "", "expected a mapping at the top level")
    origins = apply_env_overrides(data, environ)
    return parse_serve_config(data, str(path), path.parent.resolve(), origins)


def parse_serve_config(
    data: dict[str, Any], source: str, base_dir: Path, origins: dict[str, str] | None = None
) -> ServeConfig:
    root = Section(data, source, "", origins)
    site = root.path_value("site", base_dir)
    if not site.is_file():
        root.fail("site", f"site registry {site} not found")
    data_dir = root.path_value("data_dir", base_dir, base_dir / "data")

    mqtt = read_mqtt(root.section("mqtt"), base_dir, "eit-ingest")

    ssec = root.section("store")
    kind = ssec.text("kind", "sqlite", choices=STORE_KINDS)
    store = StoreSettings(
        kind=kind,
        path=ssec.path_value("path", base_dir, data_dir / "readings.db"),
        url=ssec.text("url", "http://localhost:8086").rstrip("/"),
        database=ssec.text("database", "eit"),
        username=ssec.text("username", None),
        password=ssec.secret("password", base_dir),
        retention_policy=ssec.text("retention_policy", None),
        timeout_s=ssec.number("timeout_s", 10.0, exclusive_minimum=0),
    )
    ssec.finish()

    state_sec = root.section("state")
    state_path = state_sec.path_value("path", base_dir, data_dir / "state.db")
    state_sec.finish()

    isec = root.section("ingest")
    ingest = IngestSettings(
        batch_max_readings=isec.integer("batch_max_readings", 5000, minimum=1),
        flush_interval_s=isec.number("flush_interval_s", 0.1, exclusive_minimum=0),
        max_future_s=isec.number("max_future_s", 300.0, minimum=0),
        retry_max_s=isec.number("retry_max_s", 30.0, exclusive_minimum=0),
    )
    isec.finish()

    rsec = root.section("rules")
    rules = RuleSettings(
        stale_after_s=rsec.number("stale_after_s", 120.0, exclusive_minimum=0),
        check_interval_s=rsec.number("check_interval_s", 5.0, exclusive_minimum=0),
    )
    rsec.finish()

    hsec = root.section("http")
    http = HttpSettings(
        enabled=hsec.boolean("enabled", True),
        host=hsec.text("host", "127.0.0.1"),
        port=hsec.integer("port", 8080, minimum=0, maximum=65535),
    )
    hsec.finish()

    notifiers = []
    for nsec in root.sections("notifiers"):
        nkind = nsec.text("kind", choices=NOTIFIER_KINDS)
        options: dict[str, Any] = {}
        if nkind == "webhook":
            url = nsec.text("url")
            if not url.startswith(("http://", "https://")):
                nsec.fail("url", f"'{url}' is not an http(s) URL")
            options["url"] = url
            options["timeout_s"] = nsec.number("timeout_s", 5.0, exclusive_minimum=0)
            options["retries"] = nsec.integer("retries", 5, minimum=0)
        nsec.finish()
        notifiers.append(NotifierSettings(nkind, options))
    if not notifiers:
        notifiers.append(NotifierSettings("log", {}))
    broker: BrokerFiles | None = None
    if root.has("broker"):
        bsec = root.section("broker")
        broker = BrokerFiles(bsec.path_value("passwd_file", base_dir), bsec.path_value("acl_file", base_dir))
        bsec.finish()
    root.finish()
    return ServeConfig(
        source=source,
        site=site,
        data_dir=data_dir,
        mqtt=mqtt,
        store=store,
        state_path=state_path,
        ingest=ingest,
        rules=rules,
        http=http,
        notifiers=tuple(notifiers),
        broker=broker,
    )
