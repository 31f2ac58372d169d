"""docker-compose.yml: it conforms to the Compose Specification, everything it mounts or builds
is in the repository, and the files it hands the platform parse with the platform's own loaders.

No Docker engine runs on this machine, so the compose file is checked at its contract: against
the specification's JSON Schema (vendored in tests/data, see its README), and for what Docker
would only find out at `docker compose up`. The files it mounts are checked with the real
programs that can run here: the broker's configuration file itself with Debian's Mosquitto 2.0.11
(its logins, topics, queue and packet size; testbed.services.DynsecMosquitto), the proxy's with
Debian's Caddy (`caddy validate`), the broker's preflight script with the shell.
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import threading
import tomllib
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import paho.mqtt.client as mqtt
import pytest
from jsonschema.protocols import Validator
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge.config import load_edge_config
from eit.bounds import MAX_MESSAGE_BYTES
from eit.confread import load_yaml
from eit.mqttclient import SESSION_EXPIRY_S
from eit.mqttconf import MqttSettings
from ingest.store.influx import InfluxSettings
from server.brokerauth import DynsecControl, add_logins, factory_logins, factory_role
from server.config import parse_serve_config
from testbed.services import REPO, DynsecMosquitto, _binary, free_port, wait_for
from tests.tlscerts import make_certs

COMPOSE_FILE = REPO / "docker-compose.yml"
COMPOSE_DIR = COMPOSE_FILE.parent
SCHEMA_FILE = Path(__file__).resolve().parent / "data" / "compose-spec.json"
EXAMPLE_AGENT = REPO / "examples" / "town" / "edge" / "kaeng-khoi-biomass.yaml"
MOSQUITTO_CONF_IN_CONTAINER = "/mosquitto/config/mosquitto.conf"
GRAFANA_PROVISIONING_IN_CONTAINER = "/etc/grafana/provisioning"
MOSQUITTO_DEFAULT_MAX_QUEUED = 1000  # mosquitto.conf(5), Mosquitto 2.0
# The contract's largest message (decision 6 of the design: 1 MiB), which the broker's
# max_packet_size is set to.
CONTRACT_MAX_MESSAGE_BYTES = MAX_MESSAGE_BYTES  # the contract's (eit/bounds.py)


# -- reading the compose file ----------------------------------------------------------------


def load_yaml_mapping(path: Path) -> dict[str, Any]:
    data = load_yaml(path)
    assert isinstance(data, dict), f"{path}: expected a mapping at the top level"
    return data


def compose() -> dict[str, Any]:
    return load_yaml_mapping(COMPOSE_FILE)


def services(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = doc["services"]
    assert isinstance(found, dict)
    return found


@dataclass(frozen=True, slots=True)
class Mount:
    service: str
    kind: str  # "bind", "volume", "tmpfs", ...
    source: str | None  # host path of a bind, name of a volume, None for an anonymous volume
    target: str


def parse_mount(service: str, spec: str | dict[str, Any]) -> Mount:
    """One entry of a service's `volumes`, in the short ("SRC:DST[:MODE]") or the long syntax."""
    if isinstance(spec, dict):
        source = spec.get("source")
        return Mount(service, str(spec["type"]), None if source is None else str(source), str(spec["target"]))
    parts = spec.split(":")
    if len(parts) == 1:
        return Mount(service, "volume", None, parts[0])
    source, target = parts[0], parts[1]
    # A host path (a bind mount) is absolute, or relative starting with "." or ".."; anything else
    # names a volume.
    kind = "bind" if source.startswith((".", "/", "~")) else "volume"
    return Mount(service, kind, source, target)


def mounts(doc: dict[str, Any], service: str | None = None) -> list[Mount]:
    return [
        parse_mount(name, spec)
        for name, svc in services(doc).items()
        if service is None or name == service
        for spec in svc.get("volumes", [])
    ]


def host_path(source: str, base: Path = COMPOSE_DIR) -> Path:
    return (base / Path(source).expanduser()).resolve()


def missing_bind_sources(doc: dict[str, Any], base: Path) -> list[str]:
    return [
        f"{m.service}: {m.source}"
        for m in mounts(doc)
        if m.kind == "bind" and (m.source is None or not host_path(m.source, base).exists())
    ]


def host_file_mounted_at(doc: dict[str, Any], service: str, container_path: str) -> Path:
    """The host file that `service` sees at `container_path`, through a bind of it or of a
    folder above it."""
    wanted = PurePosixPath(container_path)
    for m in mounts(doc, service):
        target = PurePosixPath(m.target)
        if m.kind == "bind" and m.source is not None and (wanted == target or target in wanted.parents):
            return host_path(m.source) / wanted.relative_to(target)
    pytest.fail(f"service {service} mounts nothing from the host on {container_path}")


def on_named_volume(doc: dict[str, Any], service: str, container_path: str | Path) -> bool:
    path = PurePosixPath(container_path)
    return any(
        m.kind == "volume"
        and m.source is not None
        and (path == PurePosixPath(m.target) or PurePosixPath(m.target) in path.parents)
        for m in mounts(doc, service)
    )


def config_file_of(doc: dict[str, Any], service: str) -> tuple[Path, PurePosixPath]:
    """The `--config FILE` of an eit service's command: (host file, path in the container)."""
    command = services(doc)[service]["command"]
    assert isinstance(command, list) and "--config" in command, f"{service}: {command!r}"
    in_container = str(command[command.index("--config") + 1])
    return host_file_mounted_at(doc, service, in_container), PurePosixPath(in_container)


def published_container_ports(service: dict[str, Any]) -> set[int]:
    ports: set[int] = set()
    for entry in service.get("ports", []):
        if isinstance(entry, dict):
            ports.add(int(entry["target"]))
        else:  # [[HOST_IP:]HOST_PORT:]CONTAINER_PORT[/PROTOCOL]
            ports.add(int(str(entry).rsplit(":", 1)[-1].split("/")[0]))
    return ports


# -- the schema --------------------------------------------------------------------------------


def compose_schema() -> dict[str, Any]:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    assert isinstance(schema, dict)
    return schema


def declared_validator(schema: dict[str, Any]) -> type[Validator]:
    """The validator of the draft that the schema names in `$schema`.

    The Compose Specification names draft 7 as https://json-schema.org/draft-07/schema, which
    jsonschema knows only in its canonical form, http://json-schema.org/draft-07/schema#; left
    as it is, jsonschema would warn and fall back to its latest draft.
    """
    declared = str(schema["$schema"])
    canonical = "http://" + re.sub(r"^https?://", "", declared).rstrip("#") + "#"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an unknown draft is an error, not a silent fallback
        return jsonschema.validators.validator_for({"$schema": canonical})


def schema_errors(doc: dict[str, Any]) -> list[str]:
    schema = compose_schema()
    validator = declared_validator(schema)(schema)
    return sorted(f"{e.json_path}: {e.message}" for e in validator.iter_errors(doc))


def test_vendored_compose_spec_is_a_valid_draft_07_schema() -> None:
    schema = compose_schema()
    cls = declared_validator(schema)
    assert cls is jsonschema.Draft7Validator
    cls.check_schema(schema)
    assert schema["title"] == "Compose Specification"


def test_compose_file_conforms_to_the_compose_specification() -> None:
    errors = schema_errors(compose())
    assert not errors, "docker-compose.yml does not conform:\n" + "\n".join(errors)


def _ports_not_a_list(doc: dict[str, Any]) -> None:
    doc["services"]["eit-serve"]["ports"] = "notalist"


def _unknown_top_level_key(doc: dict[str, Any]) -> None:
    doc["servics"] = doc["services"]


def _unknown_depends_on_condition(doc: dict[str, Any]) -> None:
    doc["services"]["edge-sim"]["depends_on"]["eit-serve"]["condition"] = "service_ready"


def _unknown_service_key(doc: dict[str, Any]) -> None:
    doc["services"]["mosquitto"]["healthchek"] = doc["services"]["mosquitto"]["healthcheck"]


@pytest.mark.parametrize(
    ("breakage", "reported"),
    [
        (_ports_not_a_list, "$.services['eit-serve'].ports: 'notalist' is not of type 'array'"),
        (_unknown_top_level_key, "$: 'servics' does not match any of the regexes"),
        (_unknown_depends_on_condition, "$.services['edge-sim'].depends_on: "),
        (_unknown_service_key, "$.services.mosquitto: 'healthchek' does not match any of the regexes"),
    ],
    ids=["ports-not-a-list", "unknown-top-level-key", "unknown-depends-on-condition", "misspelt-service-key"],
)
def test_schema_check_rejects_a_broken_compose_file(
    breakage: Callable[[dict[str, Any]], None], reported: str
) -> None:
    broken = copy.deepcopy(compose())
    breakage(broken)
    errors = schema_errors(broken)
    assert any(reported in e for e in errors), errors


# -- what the schema cannot see ------------------------------------------------------------------


def test_every_bind_mounted_host_path_exists() -> None:
    doc = compose()
    binds = [m for m in mounts(doc) if m.kind == "bind"]
    assert binds, "expected the config files to be bind-mounted"
    assert missing_bind_sources(doc, COMPOSE_DIR) == []


def test_bind_mount_check_finds_missing_sources_in_both_syntaxes(tmp_path: Path) -> None:
    (tmp_path / "present.conf").write_text("")
    doc: dict[str, Any] = {
        "services": {
            "a": {
                "image": "x",
                "volumes": [
                    "./present.conf:/etc/present.conf:ro",
                    "./missing.conf:/etc/missing.conf:ro",
                    "data:/var/lib/a",
                    "/anonymous",
                    {"type": "bind", "source": "./missing-dir", "target": "/srv"},
                    {"type": "bind", "source": "./present.conf", "target": "/etc/again.conf"},
                    {"type": "volume", "source": "data", "target": "/var/lib/b"},
                    {"type": "tmpfs", "target": "/tmp"},
                ],
            }
        },
        "volumes": {"data": None},
    }
    assert missing_bind_sources(doc, tmp_path) == ["a: ./missing.conf", "a: ./missing-dir"]


def test_named_volumes_are_declared_at_the_top_level() -> None:
    doc = compose()
    declared = set(doc.get("volumes") or {})
    used = {m.source for m in mounts(doc) if m.kind == "volume" and m.source is not None}
    assert used, "expected named volumes for the data"
    assert used <= declared, f"used but not declared: {sorted(used - declared)}"


def test_dependencies_exist_and_awaited_health_is_checked() -> None:
    svcs = services(compose())
    for name, svc in svcs.items():
        depends = svc.get("depends_on", [])
        if not isinstance(depends, dict):  # the short syntax: a list of services
            depends = {d: {"condition": "service_started"} for d in depends}
        for dependency, how in depends.items():
            assert dependency in svcs, f"{name} depends on unknown service {dependency}"
            if how["condition"] == "service_healthy":
                assert "healthcheck" in svcs[dependency], f"{name} waits for {dependency} to be healthy"


def test_every_built_service_has_its_dockerfile_and_the_extras_it_installs() -> None:
    built = {name: svc["build"] for name, svc in services(compose()).items() if "build" in svc}
    assert set(built) == {"eit-serve", "edge-sim", "grafana-setup", "broker-admin"}
    extras = set(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"])
    for name, build in built.items():
        if isinstance(build, str):
            build = {"context": build}
        dockerfile = host_path(build.get("context", ".")) / build.get("dockerfile", "Dockerfile")
        assert dockerfile.is_file(), f"{name}: no {dockerfile}"
        installs = re.findall(r"pip install \"?\.\[([^\]]*)\]", dockerfile.read_text())
        assert installs, f"{dockerfile} does not install the project with extras"
        for wanted in installs:
            assert set(wanted.split(",")) <= extras, f"{dockerfile}: extras {wanted} vs {sorted(extras)}"


# -- the files handed to the platform -----------------------------------------------------------


def compose_environment(doc: dict[str, Any], service: str) -> dict[str, str]:
    """The variables the compose file passes to a service, with made-up values for its secrets
    (as `docker compose up` would pass them from .env)."""
    env = services(doc)[service].get("environment", {})
    return {k: ("secret-" + k.lower() if "${" in str(v) else str(v)) for k, v in env.items()}


def test_server_config_mounted_into_eit_serve_parses_and_names_compose_services(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    doc = compose()
    for name, value in compose_environment(doc, "eit-serve").items():
        monkeypatch.setenv(name, value)
    svcs = services(doc)
    host_file, in_container = config_file_of(doc, "eit-serve")
    data = load_yaml_mapping(host_file)
    # The site registry is checked to exist as the file parses: give it the host file that the
    # container sees at that path.
    data["site"] = str(host_file_mounted_at(doc, "eit-serve", str(data["site"])))
    config = parse_serve_config(data, str(host_file), Path(in_container.parent))

    assert config.mqtt.host in svcs
    store = config.store
    assert isinstance(store, InfluxSettings) and store.kind == "influxdb"
    assert urlsplit(store.url).hostname in svcs
    influx_env = svcs["influxdb"]["environment"]
    # The v1 database and login the InfluxDB init script makes (deploy/influxdb/init).
    assert store.database == influx_env["EIT_INFLUX_DATABASE"]
    assert store.username == influx_env["EIT_INFLUX_INGEST_USER"]
    assert store.password is not None
    assert (
        store.password.get_secret_value()
        == compose_environment(doc, "eit-serve")["EIT_INFLUX_INGEST_PASSWORD"]
    )
    assert (
        svcs["eit-serve"]["environment"]["EIT_INFLUX_INGEST_PASSWORD"]
        == influx_env["EIT_INFLUX_INGEST_PASSWORD"]
    )
    # One login per connection, each the connection's own client id: the logins `eit devices init`
    # makes for the ingest (server/brokerauth.py), with the password the broker's file got.
    assert config.mqtt.login_per_connection
    assert config.mqtt.username_for(config.mqtt.client_id) == config.mqtt.client_id == "eit-ingest"
    assert config.mqtt.port == 1883 and 1883 not in published_container_ports(svcs["mosquitto"])
    assert config.mqtt.password == compose_environment(doc, "eit-serve")["EIT_MQTT_INGEST_PASSWORD"]
    # The administrator's password is not given to the process that faces the public.
    assert not any("ADMIN" in name and "MQTT" in name for name in svcs["eit-serve"]["environment"])
    assert config.http.host == "0.0.0.0", "the API must listen beyond the container's loopback"
    assert config.http.port in published_container_ports(svcs["eit-serve"])
    assert on_named_volume(doc, "eit-serve", config.data_dir)
    assert on_named_volume(doc, "eit-serve", config.state_path)


def test_edge_config_mounted_into_edge_sim_parses_and_uses_the_compose_broker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    doc = compose()
    for name, value in compose_environment(doc, "edge-sim").items():
        monkeypatch.setenv(name, value)
    host_file, _ = config_file_of(doc, "edge-sim")
    config = load_edge_config(host_file, environ={})

    assert config.mqtt.host in services(doc)
    # Each device connection logs in as <factory>-<device>, the logins `eit devices add` makes.
    assert config.mqtt.client_id == config.factory
    assert [config.mqtt.username_for(f"{config.mqtt.client_id}-{d.id}") for d in config.devices] == (
        factory_logins(config.factory, [d.id for d in config.devices])
    )
    assert services(doc)["edge-sim"]["profiles"] == ["demo"]
    assert {n: svc["profiles"] for n, svc in services(doc).items() if "profiles" in svc} == {
        "edge-sim": ["demo"],
        "broker-admin": ["tools"],
    }
    assert on_named_volume(doc, "edge-sim", config.outbox_path), "the outbox must survive a restart"
    # It is the example town's agent, only pointed at the compose broker and outbox volume.
    assert load_yaml_mapping(host_file)["devices"] == load_yaml_mapping(EXAMPLE_AGENT)["devices"]


def test_grafana_datasource_queries_the_compose_influxdb_with_influxql() -> None:
    doc = compose()
    provisioning = host_file_mounted_at(doc, "grafana", GRAFANA_PROVISIONING_IN_CONTAINER)
    sources = load_yaml_mapping(provisioning / "datasources" / "influxdb.yaml")["datasources"]
    (influx,) = [s for s in sources if s["type"] == "influxdb"]
    influx_env = services(doc)["influxdb"]["environment"]
    assert urlsplit(influx["url"]).hostname in services(doc)
    assert influx["jsonData"]["version"] == "InfluxQL"
    assert influx["jsonData"]["dbName"] == influx_env["EIT_INFLUX_DATABASE"]
    # Grafana reads with the v1 login the init script makes; its password comes from Grafana's
    # environment, which gets the same variable as InfluxDB.
    assert influx["user"] == influx_env["EIT_INFLUX_GRAFANA_USER"]
    variable = influx["secureJsonData"]["password"].lstrip("$").strip("{}")
    grafana_env = services(doc)["grafana"]["environment"]
    assert grafana_env[variable] == influx_env["EIT_INFLUX_GRAFANA_PASSWORD"]


def test_grafana_gets_the_generated_dashboards_and_keeps_anonymous_access_off() -> None:
    doc = compose()
    grafana = services(doc)["grafana"]
    providers = load_yaml_mapping(
        host_file_mounted_at(doc, "grafana", GRAFANA_PROVISIONING_IN_CONTAINER) / "dashboards" / "eit.yaml"
    )["providers"]
    for provider in providers:
        folder = host_file_mounted_at(doc, "grafana", provider["options"]["path"])
        assert sorted(folder.glob("*.json")), f"no dashboards in {folder}"
    # An anonymous Viewer could query the data source directly, past the dashboards' public-factory
    # filters: the public comes in through public-dashboard links instead, which `eit dashboards
    # push` makes (tested against the contract in tests/test_dashboards_push.py), run by
    # grafana-setup once Grafana is healthy.
    assert grafana["environment"]["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert "GF_AUTH_ANONYMOUS_ORG_ROLE" not in grafana["environment"]
    setup = services(doc)["grafana-setup"]
    assert setup["command"][:2] == ["dashboards", "push"]
    # Grafana serves itself under /grafana/ of the public URL, behind the proxy; grafana-setup
    # reaches it inside the compose network and prints links under the public URL.
    root_url = grafana["environment"]["GF_SERVER_ROOT_URL"]
    assert root_url.startswith("${EIT_PUBLIC_URL:?") and root_url.endswith("}/grafana/")
    assert grafana["environment"]["GF_SERVER_SERVE_FROM_SUB_PATH"] == "true"
    assert "--url=http://grafana:3000/grafana" in setup["command"]
    (public,) = [a for a in setup["command"] if a.startswith("--public-url=")]
    assert public.startswith("--public-url=${EIT_PUBLIC_URL:?") and public.endswith("}/grafana")
    assert "http://localhost:3000/grafana/api/health" in grafana["healthcheck"]["test"]
    assert "ports" not in grafana, "Grafana is reached through the proxy only"
    for sub in ("plugins", "alerting"):  # Grafana logs an error for each missing one
        assert host_file_mounted_at(doc, "grafana", f"{GRAFANA_PROVISIONING_IN_CONTAINER}/{sub}").is_dir()
    assert setup["depends_on"]["grafana"]["condition"] == "service_healthy"
    site = next(a.split("=", 1)[1] for a in setup["command"] if a.startswith("--site="))
    assert host_file_mounted_at(doc, "grafana-setup", site) == host_file_mounted_at(
        doc, "eit-serve", "/etc/eit/site.yaml"
    )


def test_secrets_are_required_from_the_environment_never_defaulted() -> None:
    text = COMPOSE_FILE.read_text()
    for match in re.finditer(r"\$\{(\w*(?:PASSWORD|TOKEN)\w*)(:?[-?])?", text):
        name, how = match.group(1), match.group(2)
        if name == "EIT_DEMO_AGENT_PASSWORD":
            assert how == ":-", "the demo agent's password may be empty (the broker then refuses it)"
            continue
        assert how == ":?", f"{name} must be required (${{{name}:?...}}), not defaulted"
    example = REPO / "deploy" / "env.example"
    named = set(re.findall(r"^(\w+)=", example.read_text(), flags=re.M))
    used = set(re.findall(r"\$\{(\w+)", text))
    assert used <= named, f"not in deploy/env.example: {sorted(used - named)}"


def test_influxdb_init_script_maps_the_database_and_makes_the_v1_logins(tmp_path: Path) -> None:
    """The script the influxdb:2 image runs after its setup, run here with a stand-in `influx`
    that records its arguments (the InfluxDB 2.x CLI cannot run on this machine)."""
    doc = compose()
    script = host_file_mounted_at(doc, "influxdb", "/docker-entrypoint-initdb.d") / "10-eit-v1-compat.sh"
    assert os.access(script, os.X_OK), "the image runs only executable *.sh files"
    recorded = tmp_path / "calls"
    stand_in = tmp_path / "bin" / "influx"
    stand_in.parent.mkdir()
    stand_in.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> {recorded}\n')
    stand_in.chmod(0o755)
    env = compose_environment(doc, "influxdb")
    env |= {"PATH": f"{stand_in.parent}:/usr/bin:/bin", "DOCKER_INFLUXDB_INIT_BUCKET_ID": "0123456789abcdef"}
    subprocess.run(["bash", str(script)], env=env, check=True, timeout=30)
    calls = recorded.read_text().splitlines()
    org, bucket = env["DOCKER_INFLUXDB_INIT_ORG"], "0123456789abcdef"
    assert calls == [
        f"v1 dbrp create --org {org} --bucket-id {bucket} --db {env['EIT_INFLUX_DATABASE']}"
        " --rp autogen --default",
        f"v1 auth create --org {org} --username {env['EIT_INFLUX_INGEST_USER']}"
        f" --password {env['EIT_INFLUX_INGEST_PASSWORD']} --read-bucket {bucket} --write-bucket {bucket}",
        f"v1 auth create --org {org} --username {env['EIT_INFLUX_GRAFANA_USER']}"
        f" --password {env['EIT_INFLUX_GRAFANA_PASSWORD']} --read-bucket {bucket}",
    ]
    missing = {k: v for k, v in env.items() if k != "EIT_INFLUX_GRAFANA_PASSWORD"}
    failed = subprocess.run(["bash", str(script)], env=missing, capture_output=True, text=True, timeout=30)
    assert failed.returncode != 0 and "EIT_INFLUX_GRAFANA_PASSWORD" in failed.stderr


# -- Mosquitto -----------------------------------------------------------------------------------


def mosquitto_options(text: str) -> dict[str, list[str]]:
    options: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.strip().partition(" ")
            options.setdefault(key, []).append(value)
    return options


def broker_conf() -> Path:
    return host_file_mounted_at(compose(), "mosquitto", MOSQUITTO_CONF_IN_CONTAINER)


def test_broker_queue_holds_the_agents_messages_for_the_ingest_session_lifetime(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    doc = compose()
    for name, value in compose_environment(doc, "edge-sim").items():
        monkeypatch.setenv(name, value)
    options = mosquitto_options(broker_conf().read_text())
    assert options["persistence"] == ["true"]
    max_queued = int(options["max_queued_messages"][-1])  # 0 is no limit
    agent = load_edge_config(config_file_of(doc, "edge-sim")[0], environ={})
    messages_per_s = sum(1 / d.scan_interval_s for d in agent.devices)  # one message a scan when live
    assert max_queued == 0 or max_queued >= SESSION_EXPIRY_S * messages_per_s


def test_broker_configuration_means_the_same_on_mosquitto_2_0_and_2_1() -> None:
    doc = compose()
    mosquitto = services(doc)["mosquitto"]
    image, _, tag = mosquitto["image"].partition(":")
    assert image == "eclipse-mosquitto" and re.fullmatch(r"2\.1\.\d+(-alpine)?", tag), tag
    text = broker_conf().read_text()
    options = mosquitto_options(text)
    # Retired or release-dependent: the password and ACL files (dynamic security instead),
    # per-listener settings (deprecated in 2.1; on 2.0.12-2.0.22 it dropped an offline session's
    # queue), and any anonymous access.
    for retired in ("password_file", "acl_file", "per_listener_settings", "listener_allow_anonymous"):
        assert retired not in options, retired
    assert options["allow_anonymous"] == ["false"]
    lines = [line.split(" ", 1)[0] for line in text.splitlines() if line and not line.startswith("#")]
    assert lines.index("allow_anonymous") < lines.index("listener"), "set once, before the listeners"
    assert lines.index("plugin") < lines.index("listener")
    (plugin,) = options["plugin"]
    assert PurePosixPath(plugin).name == "mosquitto_dynamic_security.so"
    # The contract's largest message, set explicitly (the defaults differ: 256 MB on 2.0, 2 MB on
    # 2.1).
    assert options["max_packet_size"] == [str(CONTRACT_MAX_MESSAGE_BYTES)]
    # The agents' listener is TLS and published; the plain one stays inside the compose network.
    assert {int(v.split()[0]) for v in options["listener"]} == {1883, 8883}
    tls_block = text[text.index("listener 8883") :]
    tls_options = mosquitto_options(tls_block.split("\nlistener ")[0])
    for key in ("certfile", "keyfile"):
        (path,) = tls_options[key]
        assert host_file_mounted_at(doc, "mosquitto", path).parent == REPO / "deploy" / "mosquitto" / "certs"
    assert published_container_ports(mosquitto) == {8883}


def mounted_through_folder(doc: dict[str, Any], service: str, path: str) -> bool:
    """The file at ``path`` in the container comes from a writable bind mount of a folder above
    it, never from a mount of the file itself (a single-file bind mount keeps showing the old file
    once it is replaced by a rename, and cannot be replaced from inside the container)."""
    wanted = PurePosixPath(path)
    for m in mounts(doc, service):
        target = PurePosixPath(m.target)
        if target == wanted:
            return False
    for m in mounts(doc, service):
        target = PurePosixPath(m.target)
        if m.kind == "bind" and target in wanted.parents:
            spec = next(
                s for s in services(doc)[service]["volumes"] if parse_mount(service, s).target == m.target
            )
            read_only = spec.get("read_only", False) if isinstance(spec, dict) else spec.endswith(":ro")
            return not read_only
    return False


def test_files_eit_devices_rewrites_are_mounted_through_their_folder() -> None:
    """`eit devices init` writes the broker's dynamic-security file and the broker rewrites it
    with each change (a new file renamed over the old one): both see it through one folder."""
    doc = compose()
    (dynsec,) = mosquitto_options(broker_conf().read_text())["plugin_opt_config_file"]
    assert mounted_through_folder(doc, "mosquitto", dynsec)
    assert mounted_through_folder(doc, "broker-admin", dynsec), "`devices init --file` writes there"
    assert host_file_mounted_at(doc, "mosquitto", dynsec) == host_file_mounted_at(doc, "broker-admin", dynsec)
    # The check itself: a single-file mount, or the folder read-only, is caught.
    single = copy.deepcopy(doc)
    single["services"]["mosquitto"]["volumes"].append(f"./deploy/mosquitto/dynsec/x.json:{dynsec}")
    assert not mounted_through_folder(single, "mosquitto", dynsec)
    read_only = copy.deepcopy(doc)
    read_only["services"]["mosquitto"]["volumes"] = [
        v + ":ro" if isinstance(v, str) and v.startswith("./deploy/mosquitto/dynsec:") else v
        for v in doc["services"]["mosquitto"]["volumes"]
    ]
    assert not mounted_through_folder(read_only, "mosquitto", dynsec)


def test_no_mounted_file_is_a_symbolic_link() -> None:
    """Mosquitto 2.1 refuses to read its files through a symbolic link."""
    linked = []
    for m in mounts(compose()):
        if m.kind != "bind" or m.source is None:
            continue
        source = COMPOSE_DIR / m.source
        found = [source] + (sorted(source.rglob("*")) if source.is_dir() else [])
        linked += [str(p.relative_to(COMPOSE_DIR)) for p in found if p.is_symlink()]
    assert linked == []


def test_every_image_is_pinned_to_an_exact_release() -> None:
    for name, svc in services(compose()).items():
        if "image" in svc:
            image = svc["image"]
            assert re.fullmatch(r"[\w./-]+:\d+\.\d+\.\d+(-[a-z0-9]+)?", image), f"{name}: {image}"


def test_image_build_context_lets_in_every_package_the_wheel_ships() -> None:
    packages = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    shipped = {p.rstrip("*") for p in packages["find"]["include"]}
    allowed = {line[1:] for line in (REPO / ".dockerignore").read_text().splitlines() if line.startswith("!")}
    assert shipped <= allowed, f"not in the image: {sorted(shipped - allowed)}"


def test_admin_tool_reaches_the_broker_as_its_administrator(monkeypatch: pytest.MonkeyPatch) -> None:
    doc = compose()
    for name, value in compose_environment(doc, "broker-admin").items():
        monkeypatch.setenv(name, value)
    svc = services(doc)["broker-admin"]
    assert svc["profiles"] == ["tools"]
    config_file = host_file_mounted_at(doc, "broker-admin", "/etc/eit/devices.yaml")
    data = load_yaml_mapping(config_file)
    data["site"] = str(host_file_mounted_at(doc, "broker-admin", str(data["site"])))
    config = parse_serve_config(data, str(config_file), Path("/etc/eit"))
    admin = config.broker.settings(config.mqtt)
    assert admin.host in services(doc) and admin.port == 1883 and admin.tls is None
    assert admin.username == admin.client_id == "eit-admin"
    assert admin.password == compose_environment(doc, "broker-admin")["EIT_MQTT_ADMIN_PASSWORD"]
    serve = load_yaml_mapping(config_file_of(doc, "eit-serve")[0])
    assert config.mqtt.client_id == serve["mqtt"]["client_id"], "the ingest's logins are named after it"


# -- the broker's preflight ----------------------------------------------------------------------


PREFLIGHT_IN_CONTAINER = "/eit/preflight.sh"


@dataclass
class PreflightRun:
    code: int
    out: str


def run_preflight(dynsec_dir: Path, certs_dir: Path, broker_uid: int) -> PreflightRun:
    doc = compose()
    mosquitto = services(doc)["mosquitto"]
    assert mosquitto["entrypoint"][:3] == ["/bin/sh", PREFLIGHT_IN_CONTAINER, "/docker-entrypoint.sh"]
    script = host_file_mounted_at(doc, "mosquitto", PREFLIGHT_IN_CONTAINER)
    env = {
        "PATH": "/usr/bin:/bin",
        "EIT_BROKER_DYNSEC_DIR": str(dynsec_dir),
        "EIT_BROKER_CERTS_DIR": str(certs_dir),
        "EIT_BROKER_UID": str(broker_uid),
    }
    done = subprocess.run(
        ["/bin/sh", str(script), "echo", "mosquitto starts"],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )
    return PreflightRun(done.returncode, done.stdout + done.stderr)


def test_broker_preflight_explains_why_the_broker_cannot_start(tmp_path: Path) -> None:
    dynsec, certs = tmp_path / "dynsec", tmp_path / "certs"
    dynsec.mkdir()
    certs.mkdir()
    me = os.geteuid()
    missing = run_preflight(dynsec, certs, me)
    assert missing.code == 78 and "mosquitto starts" not in missing.out
    assert f"{dynsec}/dynamic-security.json is missing" in missing.out and "devices init" in missing.out
    assert f"{certs}/server.crt is missing" in missing.out and "3 problem(s)" in missing.out

    (dynsec / "dynamic-security.json").write_text("{}")
    for name in ("server.crt", "server.key"):
        (certs / name).write_text("pem")
    ok = run_preflight(dynsec, certs, me)
    assert ok.code == 0 and ok.out == "mosquitto starts\n"

    # Files the broker's user (another uid) does not own: named, with the command that fixes it.
    other = run_preflight(dynsec, certs, me + 1883)
    assert other.code == 78
    assert f"must belong to the broker's user (uid {me + 1883})" in other.out
    assert f"sudo chown -R {me + 1883}:{me + 1883} deploy/mosquitto/dynsec" in other.out

    (certs / "server.key").unlink()
    (certs / "server.key").symlink_to(certs / "server.crt")
    linked = run_preflight(dynsec, certs, me)
    assert linked.code == 78 and "server.key is a symbolic link" in linked.out


# -- the reverse proxy ---------------------------------------------------------------------------


CADDYFILE_IN_CONTAINER = "/etc/caddy/Caddyfile"


def caddy(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_binary("caddy", "/usr/bin"), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={"PATH": "/usr/bin:/bin", "HOME": str(cwd), "EIT_PUBLIC_URL": "https://eit.example.go.th"},
        timeout=60,
    )


def upstreams(node: Any) -> set[str]:
    """Every reverse-proxy upstream address in Caddy's JSON configuration."""
    found: set[str] = set()
    if isinstance(node, dict):
        if node.get("handler") == "reverse_proxy":
            found |= {str(u["dial"]) for u in node.get("upstreams", [])}
        for value in node.values():
            found |= upstreams(value)
    elif isinstance(node, list):
        for item in node:
            found |= upstreams(item)
    return found


@pytest.mark.integration
def test_proxy_configuration_is_valid_and_fronts_the_pages_the_api_and_grafana(tmp_path: Path) -> None:
    doc = compose()
    proxy = services(doc)["proxy"]
    assert published_container_ports(proxy) == {80, 443}
    caddyfile = host_file_mounted_at(doc, "proxy", CADDYFILE_IN_CONTAINER)
    valid = caddy("validate", "--config", str(caddyfile), "--adapter", "caddyfile", cwd=tmp_path)
    assert valid.returncode == 0, valid.stderr
    adapted = caddy("adapt", "--config", str(caddyfile), "--adapter", "caddyfile", cwd=tmp_path)
    assert adapted.returncode == 0, adapted.stderr
    config = json.loads(adapted.stdout)
    (server,) = config["apps"]["http"]["servers"].values()
    assert server["listen"] == [":443"]
    assert json.dumps(server).count("eit.example.go.th") >= 1, "the site is the public URL's host"
    serve_port = load_yaml_mapping(config_file_of(doc, "eit-serve")[0])["http"]["port"]
    assert upstreams(config) == {f"eit-serve:{serve_port}", "grafana:3000"}
    assert "/metrics" in adapted.stdout  # answered 404 at the proxy: scraped inside the network
    assert proxy["environment"]["EIT_PUBLIC_URL"].startswith("${EIT_PUBLIC_URL:?")


# -- the broker, run here ------------------------------------------------------------------------


def mqtt5_client(
    client_id: str,
    port: int,
    session: bool,
    on_message: Callable[..., None] | None = None,
    login: tuple[str, str] | None = None,
) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    if on_message is not None:
        client.on_message = on_message
    if login is not None:
        client.username_pw_set(*login)
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = 3600 if session else 0
    client.connect("127.0.0.1", port, clean_start=not session, properties=props)
    client.loop_start()
    wait_for(client.is_connected, 10, f"{client_id} connected")
    return client


def close(client: mqtt.Client) -> None:
    client.disconnect()
    client.loop_stop()


def connack(port: int, login: tuple[str, str] | None, client_id: str | None = None) -> str:
    """The broker's answer to a connection with that login (or none)."""
    answers: list[str] = []
    cid = client_id or (login[0] if login else f"probe-{free_port()}")
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=cid, protocol=mqtt.MQTTv5)
    if login is not None:
        client.username_pw_set(*login)
    client.on_connect = lambda _c, _u, _f, reason, _p: answers.append(str(reason))
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        wait_for(lambda: bool(answers), 10, "CONNACK")
    finally:
        client.disconnect()
        client.loop_stop()
    return answers[0]


AGENT_LOGIN = ("f1-d1", "f1-secret")  # factory f1's device d1: <factory>-<device>


@pytest.fixture
def compose_broker(tmp_path: Path) -> Iterator[DynsecMosquitto]:
    """The compose broker's configuration file run here, with the first file `eit devices init`
    writes and a factory's device login added through the running broker, as `eit devices add`
    adds it."""
    certs = make_certs(tmp_path / "certs")
    broker = DynsecMosquitto(certs.server_cert, certs.server_key, conf=broker_conf())
    try:
        broker.start()
        with DynsecControl(admin_settings(broker)) as control:
            add_logins(control, factory_role("f1"), [AGENT_LOGIN[0]], AGENT_LOGIN[1], rotate=False)
        yield broker
    finally:
        broker.remove()


def admin_settings(broker: DynsecMosquitto) -> MqttSettings:
    return MqttSettings(
        "127.0.0.1", broker.port, "eit-admin", "5", "eit-admin", broker.logins.admin, None, 30
    )


def healthcheck(broker: DynsecMosquitto, password: str) -> subprocess.CompletedProcess[str]:
    """The compose file's health check command, run as the container's shell runs it."""
    kind, command = services(compose())["mosquitto"]["healthcheck"]["test"]
    assert kind == "CMD-SHELL" and " -p 1883 " in command
    command = command.replace("$$", "$").replace(" -p 1883 ", f" -p {broker.port} ")
    return subprocess.run(
        ["/bin/sh", "-c", command],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "EIT_MQTT_HEALTH_PASSWORD": password},
        timeout=20,
    )


@pytest.mark.integration
def test_compose_broker_needs_a_login_and_keeps_each_factory_to_its_own_topics(
    compose_broker: DynsecMosquitto,
) -> None:
    broker = compose_broker
    ingest_login = ("eit-ingest", broker.logins.ingest)
    received: list[str] = []
    subscribed = threading.Event()
    assert connack(broker.port, None) == "Not authorized"
    assert connack(broker.port, ("f1-d1", "wrong")) in ("Bad user name or password", "Not authorized")
    assert connack(broker.port, AGENT_LOGIN) == "Success"
    assert connack(broker.port, AGENT_LOGIN, client_id="f1-d2") == "Not authorized", "bound client id"
    # The health check logs in as itself; with a wrong password the container turns unhealthy.
    assert healthcheck(broker, broker.logins.health).returncode == 0
    assert healthcheck(broker, "wrong").returncode != 0

    ingest = mqtt5_client(
        "eit-ingest",
        broker.port,
        session=False,
        login=ingest_login,
        on_message=lambda _c, _u, msg: received.append(msg.topic),
    )
    ingest.on_subscribe = lambda *_: subscribed.set()
    ingest.subscribe([("eit/+/+/data", 1), ("eit/+/+/status", 1)])
    assert subscribed.wait(10)
    agent = mqtt5_client("f1-d1", broker.port, session=False, login=AGENT_LOGIN)
    for topic in ("eit/f2/d1/data", "eit/f1/d1/data", "eit/f1/d1/status"):
        agent.publish(topic, "x", qos=1).wait_for_publish(10)
    wait_for(lambda: len(received) >= 2, 10, "the factory's own messages")
    # The ingest subscribed before the forbidden message was sent, which came before the allowed
    # ones: had it passed, it would have arrived before them.
    close(agent)
    close(ingest)
    assert broker.stop() == 0
    assert sorted(received) == ["eit/f1/d1/data", "eit/f1/d1/status"]


@pytest.mark.integration
def test_compose_broker_refuses_a_message_over_the_contracts_size(compose_broker: DynsecMosquitto) -> None:
    broker = compose_broker
    received: list[int] = []
    subscribed = threading.Event()
    ingest = mqtt5_client(
        "eit-ingest",
        broker.port,
        session=False,
        login=("eit-ingest", broker.logins.ingest),
        on_message=lambda _c, _u, msg: received.append(len(msg.payload)),
    )
    ingest.on_subscribe = lambda *_: subscribed.set()
    ingest.subscribe("eit/+/+/data", qos=1)
    assert subscribed.wait(10)
    agent = mqtt5_client("f1-d1", broker.port, session=False, login=AGENT_LOGIN)
    fits = CONTRACT_MAX_MESSAGE_BYTES - 1024  # room for the topic and the packet's header
    agent.publish("eit/f1/d1/data", b"x" * fits, qos=1).wait_for_publish(10)
    wait_for(lambda: received == [fits], 10, "the message that fits")
    dropped: list[str] = []
    agent.on_disconnect = lambda _c, _u, _f, reason, _p: dropped.append(str(reason))
    too_large = agent.publish("eit/f1/d1/data", b"x" * CONTRACT_MAX_MESSAGE_BYTES, qos=1)
    wait_for(lambda: bool(dropped), 10, "the broker to close the connection")
    assert not too_large.is_published()
    close(agent)
    close(ingest)
    assert received == [fits]


@pytest.mark.integration
def test_compose_broker_keeps_an_offline_sessions_whole_backlog_across_a_restart(
    compose_broker: DynsecMosquitto,
) -> None:
    """A persistent session that is away while more than Mosquitto's default queue limit is
    published gets every message when it comes back, even after the broker was restarted."""
    broker = compose_broker
    ingest_login = ("eit-ingest", broker.logins.ingest)
    count = 3 * MOSQUITTO_DEFAULT_MAX_QUEUED
    received: set[str] = set()
    subscribed = threading.Event()

    ingest = mqtt5_client("eit-ingest", broker.port, session=True, login=ingest_login)
    ingest.on_subscribe = lambda *_: subscribed.set()
    ingest.subscribe("eit/+/+/data", qos=1)
    assert subscribed.wait(10)
    close(ingest)
    agent = mqtt5_client("f1-d1", broker.port, session=False, login=AGENT_LOGIN)
    sent = [agent.publish("eit/f1/d1/data", str(i), qos=1) for i in range(count)]
    for info in sent:
        info.wait_for_publish(10)
    close(agent)
    assert broker.stop() == 0

    broker.start()
    ingest = mqtt5_client(
        "eit-ingest",
        broker.port,
        session=True,
        on_message=lambda _c, _u, msg: received.add(msg.payload.decode()),
        login=ingest_login,
    )
    try:
        wait_for(lambda: len(received) >= count, 30, f"{count} queued messages")
    except TimeoutError:
        pytest.fail(f"the returning session got {len(received)} of {count} messages")
    finally:
        close(ingest)
    assert broker.stop() == 0
    assert received == {str(i) for i in range(count)}
    assert "Error" not in broker.log(), broker.log()
