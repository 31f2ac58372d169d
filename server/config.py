"""Configuration of the server process (`eit serve`): a YAML file plus EIT_* variables.

Environment variables override file keys, ``__`` separating levels: ``EIT_MQTT__PORT=1884``,
``EIT_STORE__KIND=influxdb``. Relative paths are taken from the configuration file's folder.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from alerts.notifiers.settings import NOTIFIER_KINDS, NotifierSettings
from alerts.settings import RuleSettings
from eit.confread import Section, apply_env_overrides, load_yaml
from eit.errors import ConfigError
from eit.mqttconf import MqttSettings, read_mqtt
from ingest.settings import IngestSettings
from ingest.store.settings import STORE_KINDS, StoreSettings


@dataclass(frozen=True, slots=True)
class HttpSettings:
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 8080
    # Bearer tokens of the API expire after this long.
    token_ttl_s: float = 12 * 3600.0
    # A factory whose newest reading is older than this shows as "no data" on the pages.
    no_data_after_s: float = 900.0


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
    state_url: str | None = None  # PostgreSQL for the state database (default: the SQLite file state_path)
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
        org=ssec.text("org", None),
        bucket=ssec.text("bucket", None),
        token=ssec.secret("token", base_dir),
    )
    if kind == "influxdb2":
        for key in ("org", "bucket", "token"):
            if getattr(store, key) is None:
                ssec.fail(key, f"store kind influxdb2 needs {key} (token also as token_file or token_env)")
        if not ssec.has("database"):  # v1-compatible reads: the bucket's own DBRP name
            store = replace(store, database=str(store.bucket))
    ssec.finish()

    state_sec = root.section("state")
    state_path = state_sec.path_value("path", base_dir, data_dir / "state.db")
    state_url = state_sec.secret("url", base_dir)
    if state_url is not None and not state_url.startswith(("postgresql://", "postgres://")):
        state_sec.fail("url", "expected a postgresql:// URL (leave it out for the embedded database)")
    state_sec.finish()

    isec = root.section("ingest")
    ingest = IngestSettings(
        batch_max_readings=isec.integer("batch_max_readings", 5000, minimum=1),
        flush_interval_s=isec.number("flush_interval_s", 0.005, exclusive_minimum=0),
        max_future_s=isec.number("max_future_s", 300.0, minimum=0),
        retry_max_s=isec.number("retry_max_s", 30.0, exclusive_minimum=0),
        stats_interval_s=isec.number("stats_interval_s", 10.0, exclusive_minimum=0),
    )
    isec.finish()

    rsec = root.section("rules")
    rate: dict[str, float] = {}
    for param, value in (rsec.raw("rate_of_change", None) or {}).items():
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            rsec.fail(f"rate_of_change.{param}", "expected a positive number (change per minute)")
        rate[str(param)] = float(value)
    rules = RuleSettings(
        stale_after_s=rsec.number("stale_after_s", 120.0, exclusive_minimum=0),
        check_interval_s=rsec.number("check_interval_s", 5.0, exclusive_minimum=0),
        completeness=rsec.number("completeness", 0.8, minimum=0, maximum=1),
        early_warning_fraction=rsec.number("early_warning_fraction", 0.8, minimum=0, maximum=1),
        provisional_min_points=rsec.integer("provisional_min_points", 10, minimum=1),
        close_delay_s=rsec.number("close_delay_s", 120.0, minimum=0),
        hysteresis=rsec.number("hysteresis", 0.05, minimum=0, maximum=0.5),
        open_after_hours=rsec.integer("open_after_hours", 1, minimum=1),
        clear_after_hours=rsec.integer("clear_after_hours", 1, minimum=1),
        flap_window_s=rsec.number("flap_window_s", 3600.0, minimum=0),
        flatline_s=rsec.number("flatline_s", 1800.0, exclusive_minimum=0),
        flatline_tolerance=rsec.number("flatline_tolerance", 0.0, minimum=0),
        spike_z=rsec.number("spike_z", 8.0, exclusive_minimum=0),
        spike_window=rsec.integer("spike_window", 60, minimum=5),
        stuck_s=rsec.number("stuck_s", 600.0, exclusive_minimum=0),
        fault_clear_s=rsec.number("fault_clear_s", 600.0, exclusive_minimum=0),
        rate_of_change=rate,
        escalate_after_s=rsec.number("escalate_after_s", 1800.0, exclusive_minimum=0),
    )
    rsec.finish()

    hsec = root.section("http")
    http = HttpSettings(
        enabled=hsec.boolean("enabled", True),
        host=hsec.text("host", "127.0.0.1"),
        port=hsec.integer("port", 8080, minimum=0, maximum=65535),
        token_ttl_s=hsec.number("token_ttl_s", 12 * 3600.0, minimum=60, maximum=30 * 86400),
        no_data_after_s=hsec.number("no_data_after_s", 900.0, exclusive_minimum=0),
    )
    hsec.finish()

    notifiers = []
    for nsec in root.sections("notifiers"):
        nkind = nsec.text("kind", choices=NOTIFIER_KINDS)
        options = _notifier_options(nkind, nsec, base_dir)
        factories = tuple(nsec.str_list("factories", []))
        districts = tuple(nsec.str_list("districts", []))
        nsec.finish()
        notifiers.append(NotifierSettings(nkind, options, factories, districts))
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
        state_url=state_url,
        ingest=ingest,
        rules=rules,
        http=http,
        notifiers=tuple(notifiers),
        broker=broker,
    )


def _notifier_options(kind: str, nsec: Section, base_dir: Path) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if kind == "webhook":
        url = nsec.text("url")
        if not url.startswith(("http://", "https://")):
            nsec.fail("url", f"'{url}' is not an http(s) URL")
        options["url"] = url
        options["timeout_s"] = nsec.number("timeout_s", 5.0, exclusive_minimum=0)
        options["retries"] = nsec.integer("retries", 5, minimum=0)
        options["secret"] = nsec.secret("secret", base_dir)
    elif kind == "email":
        options["host"] = nsec.text("host", "localhost")
        options["port"] = nsec.integer("port", 25, minimum=1, maximum=65535)
        options["sender"] = nsec.text("from")
        options["starttls"] = nsec.boolean("starttls", False)
        options["ssl"] = nsec.boolean("ssl", False)
        options["username"] = nsec.text("username", None)
        options["password"] = nsec.secret("password", base_dir)
        options["timeout_s"] = nsec.number("timeout_s", 10.0, exclusive_minimum=0)
        options["retries"] = nsec.integer("retries", 3, minimum=0)
    elif kind == "mqtt":
        options["qos"] = nsec.integer("qos", 1, minimum=0, maximum=2)
    elif kind == "apprise":
        urls = nsec.str_list("urls", [])
        officers: dict[str, list[str]] = {}
        for officer, value in (nsec.raw("officers", None) or {}).items():
            if isinstance(value, str):
                value = [value]
            if not isinstance(value, list) or not all(isinstance(u, str) for u in value):
                nsec.fail(f"officers.{officer}", "expected a list of Apprise URLs")
            officers[str(officer)] = list(value)
        if not urls and not officers:
            nsec.fail("urls", "give Apprise URLs (urls: for everyone, officers: per officer)")
        options["urls"] = urls
        options["officers"] = officers
    return options
