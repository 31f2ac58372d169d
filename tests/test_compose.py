"""docker-compose.yml: it conforms to the Compose Specification, everything it mounts or builds
is in the repository, and the files it hands the platform parse with the platform's own loaders.

No Docker engine runs on this machine, so the compose file is checked at its contract: against
the specification's JSON Schema (vendored in tests/data, see its README), and for what Docker
would only find out at `docker compose up`. The Mosquitto configuration is checked for real with
the Mosquitto this test suite runs anyway.
"""

from __future__ import annotations

import copy
import json
import os
import re
import signal
import subprocess
import threading
import tomllib
import warnings
from collections.abc import Callable
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
from eit.confread import load_yaml
from eit.mqttclient import SESSION_EXPIRY_S
from ingest.store.influx import InfluxSettings
from server.config import parse_serve_config
from testbed.services import REPO, _binary, free_port, port_open, wait_for

COMPOSE_FILE = REPO / "docker-compose.yml"
COMPOSE_DIR = COMPOSE_FILE.parent
SCHEMA_FILE = Path(__file__).resolve().parent / "data" / "compose-spec.json"
EXAMPLE_AGENT = REPO / "examples" / "town" / "edge" / "kaeng-khoi-biomass.yaml"
MOSQUITTO_CONF_IN_CONTAINER = "/mosquitto/config/mosquitto.conf"
GRAFANA_PROVISIONING_IN_CONTAINER = "/etc/grafana/provisioning"
MOSQUITTO_DEFAULT_MAX_QUEUED = 1000  # mosquitto.conf(5), Mosquitto 2.0


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
    assert set(built) == {"eit-serve", "edge-sim", "grafana-setup"}
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
    # The broker login the ACL gives the ingest's rights to.
    assert config.mqtt.username == "eit-ingest"
    assert config.mqtt.password == compose_environment(doc, "eit-serve")["EIT_MQTT_INGEST_PASSWORD"]
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
    assert config.mqtt.username == config.factory, "the ACL lets a factory's login publish under its id"
    assert services(doc)["edge-sim"]["profiles"] == ["demo"]
    assert [n for n, svc in services(doc).items() if "profiles" in svc] == ["edge-sim"]
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
    assert "--url=http://grafana:3000" in setup["command"]
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


def test_broker_queue_holds_the_agents_messages_for_the_ingest_session_lifetime(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    doc = compose()
    for name, value in compose_environment(doc, "edge-sim").items():
        monkeypatch.setenv(name, value)
    conf = host_file_mounted_at(doc, "mosquitto", MOSQUITTO_CONF_IN_CONTAINER)
    options = mosquitto_options(conf.read_text())
    assert options["persistence"] == ["true"]
    max_queued = int(options["max_queued_messages"][-1])  # 0 is no limit
    agent = load_edge_config(config_file_of(doc, "edge-sim")[0], environ={})
    messages_per_s = sum(1 / d.scan_interval_s for d in agent.devices)  # one message a scan when live
    assert max_queued == 0 or max_queued >= SESSION_EXPIRY_S * messages_per_s


def local_broker_conf(text: str, ports: dict[int, int], files: dict[str, Path], data_dir: Path) -> str:
    """The compose broker's configuration on this machine: each listener's port mapped to a free
    one on the loopback, the files it names inside the container mapped to host files, its data in
    `data_dir`; nothing else changed."""
    lines: list[str] = []
    seen_ports: set[int] = set()
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key == "listener":
            port = int(value.split()[0])
            seen_ports.add(port)
            line = f"listener {ports[port]} 127.0.0.1"
        elif key == "persistence_location":
            line = f"persistence_location {data_dir}/"
        elif key in files:
            line = f"{key} {files[key]}"
        lines.append(line)
    assert seen_ports == set(ports), f"the compose broker listens on {sorted(seen_ports)}"
    if os.geteuid() == 0:
        # Mosquitto started as root drops to the mosquitto user, who cannot enter pytest's
        # private temporary folders.
        lines.append("user root")
    return "\n".join(lines) + "\n"


def start_broker(conf: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [_binary("mosquitto", "/usr/sbin"), "-c", str(conf)], stdout=out, stderr=subprocess.STDOUT
        )
    wait_for(lambda: port_open(port) or proc.poll() is not None, 10, f"mosquitto on port {port}")
    assert proc.poll() is None, f"mosquitto refused the configuration:\n{log.read_text()}"
    return proc


def stop_broker(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGTERM)  # a clean stop, as `docker compose stop` makes
    return proc.wait(10)


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


INGEST_LOGIN = ("eit-ingest", "ingest-secret")
FACTORY_LOGIN = ("f1", "f1-secret")  # a factory's agents log in with the factory id


@dataclass
class LocalBroker:
    conf: Path
    port: int
    health_port: int
    log: Path


def local_compose_broker(tmp_path: Path) -> LocalBroker:
    """The compose broker's configuration, ACL and password file (with two logins added as
    `eit devices add` / mosquitto_passwd would add them), run on this machine's loopback."""
    doc = compose()
    port, health_port, data_dir = free_port(), free_port(), tmp_path / "data"
    data_dir.mkdir()
    passwd = tmp_path / "passwd"
    passwd.write_text(host_file_mounted_at(doc, "mosquitto", "/mosquitto/config/passwd").read_text())
    for user, password in (INGEST_LOGIN, FACTORY_LOGIN):
        subprocess.run(
            [_binary("mosquitto_passwd", "/usr/bin"), "-b", str(passwd), user, password], check=True
        )
    acl = host_file_mounted_at(doc, "mosquitto", "/mosquitto/config/acl")
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(
        local_broker_conf(
            host_file_mounted_at(doc, "mosquitto", MOSQUITTO_CONF_IN_CONTAINER).read_text(),
            {1883: port, 1880: health_port},
            {"password_file": passwd, "acl_file": acl},
            data_dir,
        )
    )
    return LocalBroker(conf, port, health_port, tmp_path / "mosquitto.log")


def test_committed_broker_password_file_holds_no_login() -> None:
    doc = compose()
    passwd = host_file_mounted_at(doc, "mosquitto", "/mosquitto/config/passwd").read_text()
    assert [line for line in passwd.splitlines() if line.strip() and not line.startswith("#")] == []


def connack(port: int, login: tuple[str, str] | None) -> str:
    """The broker's answer to a connection with that login (or none)."""
    answers: list[str] = []
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"probe-{free_port()}", protocol=mqtt.MQTTv5)
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


@pytest.mark.integration
def test_compose_broker_needs_a_login_and_keeps_each_factory_to_its_own_topics(tmp_path: Path) -> None:
    broker = local_compose_broker(tmp_path)
    proc = start_broker(broker.conf, broker.port, broker.log)
    received: list[str] = []
    subscribed = threading.Event()
    try:
        assert connack(broker.port, None) == "Not authorized"
        assert connack(broker.port, ("f1", "wrong")) in ("Bad user name or password", "Not authorized")
        assert connack(broker.port, FACTORY_LOGIN) == "Success"
        # The health check's listener, inside the broker's container.
        health = subprocess.run(
            [
                _binary("mosquitto_sub", "/usr/bin"),
                "-h",
                "127.0.0.1",
                "-p",
                str(broker.health_port),
                "-t",
                "$SYS/broker/uptime",
                "-C",
                "1",
                "-W",
                "5",
            ],
            capture_output=True,
            text=True,
            timeout=10,
        )
        assert health.returncode == 0 and "seconds" in health.stdout

        ingest = mqtt5_client(
            "acl-ingest",
            broker.port,
            session=False,
            login=INGEST_LOGIN,
            on_message=lambda _c, _u, msg: received.append(msg.topic),
        )
        ingest.on_subscribe = lambda *_: subscribed.set()
        ingest.subscribe([("eit/+/+/data", 1), ("eit/+/+/status", 1)])
        assert subscribed.wait(10)
        agent = mqtt5_client("acl-agent", broker.port, session=False, login=FACTORY_LOGIN)
        for topic in ("eit/f2/d1/data", "eit/f1/d1/data", "eit/f1/d1/status"):
            agent.publish(topic, "x", qos=1).wait_for_publish(10)
        # The factory's own messages went out after the forbidden one, on the same connection: the
        # broker handles them in order, so once they are here a wrongly delivered one would be too.
        wait_for(lambda: len(received) >= 2, 10, "the factory's own messages")
        close(agent)
        close(ingest)
    finally:
        assert stop_broker(proc) == 0
    assert sorted(received) == ["eit/f1/d1/data", "eit/f1/d1/status"]


@pytest.mark.integration
def test_compose_broker_keeps_an_offline_sessions_whole_backlog_across_a_restart(tmp_path: Path) -> None:
    """A persistent session that is away while more than Mosquitto's default queue limit is
    published gets every message when it comes back, even after the broker was restarted."""
    broker = local_compose_broker(tmp_path)
    port, conf, log = broker.port, broker.conf, broker.log
    count = 3 * MOSQUITTO_DEFAULT_MAX_QUEUED
    received: set[str] = set()
    subscribed = threading.Event()

    proc = start_broker(conf, port, log)
    try:
        ingest = mqtt5_client("compose-backlog-ingest", port, session=True, login=INGEST_LOGIN)
        ingest.on_subscribe = lambda *_: subscribed.set()
        ingest.subscribe("eit/+/+/data", qos=1)
        assert subscribed.wait(10)
        close(ingest)

        agent = mqtt5_client("compose-backlog-agent", port, session=False, login=FACTORY_LOGIN)
        sent = [agent.publish("eit/f1/d1/data", str(i), qos=1) for i in range(count)]
        for info in sent:
            info.wait_for_publish(10)
        close(agent)
    finally:
        assert stop_broker(proc) == 0

    proc = start_broker(conf, port, log)
    try:
        ingest = mqtt5_client(
            "compose-backlog-ingest",
            port,
            session=True,
            on_message=lambda _c, _u, msg: received.add(msg.payload.decode()),
            login=INGEST_LOGIN,
        )
        try:
            wait_for(lambda: len(received) >= count, 30, f"{count} queued messages")
        except TimeoutError:
            pytest.fail(f"the returning session got {len(received)} of {count} messages")
        finally:
            close(ingest)
    finally:
        assert stop_broker(proc) == 0
    assert received == {str(i) for i in range(count)}
    assert "Error" not in log.read_text(), log.read_text()
