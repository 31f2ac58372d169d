"""Broker logins with a real Mosquitto running the compose stack's own configuration
(deploy/mosquitto/mosquitto.conf: dynamic security, one login per connection bound to its client
id, agents over TLS), the logins made by `eit devices` against the running broker:

- a factory's login cannot publish under another factory's topic, and nothing of it is stored;
- no login can connect with another connection's client id (the ingest's, another factory's
  agent's, another device's of its own factory), and every scan the agent had acknowledged is
  stored while someone keeps trying;
- a factory is added, its password rotated and its logins revoked while the broker runs: the
  change applies at once, the old password is refused, revoked connections are closed;
- wrong passwords and untrusted certificates are refused; secrets never appear in a log.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from eit.confread import Section, load_yaml
from eit.mqttclient import make_client
from eit.mqttconf import MqttSettings, read_mqtt
from ingest.store.sqlite import SqliteStore
from server.brokerauth import PasswordHash, factory_role, verify_password
from testbed.services import (
    EIT,
    REPO,
    DynsecMosquitto,
    EitProcess,
    assert_each_scan_stored_once,
    free_port,
    outbox_state,
    wait_for,
    write_edge_config,
    write_serve_config,
)
from tests.tlscerts import Certs, make_certs

pytestmark = pytest.mark.integration

KK = "kaeng-khoi-biomass"
SC = "siam-cassava-starch"
NOT_AUTHORIZED = 135  # MQTT 5 reason code (CONNACK, PUBACK)


def devices(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """`eit devices ...` as a script runs it: no terminal, stdin closed (it must never ask)."""
    return subprocess.run(
        [*EIT, "devices", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=check,
        stdin=subprocess.DEVNULL,
    )


@dataclass
class SecureBroker:
    broker: DynsecMosquitto
    certs: Certs
    serve_cfg: Path  # names the broker's administrator (section broker) and the ingest's logins
    password_files: dict[str, Path]  # factory -> its agent's password file

    def password(self, factory: str) -> str:
        return self.password_files[factory].read_text().strip()


@pytest.fixture
def secure(tmp_path: Path) -> Iterator[SecureBroker]:
    certs = make_certs(tmp_path / "certs")
    broker = DynsecMosquitto(certs.server_cert, certs.server_key)
    try:
        broker.start()
        serve_cfg = write_serve_config(tmp_path / "serve", broker.port, client_id="eit-ingest")
        data = load_yaml(serve_cfg)
        data["mqtt"] = broker.ingest_mqtt()
        data["broker"] = broker.admin_section()
        serve_cfg.write_text(yaml.safe_dump(data))
        password_files: dict[str, Path] = {}
        for factory in (KK, SC):
            password_files[factory] = tmp_path / f"{factory}.password"
            out = devices(
                "add", factory, "--config", str(serve_cfg), "--password-out", str(password_files[factory])
            )
            assert "login(s) created" in out.stdout, out.stdout
        yield SecureBroker(broker, certs, serve_cfg, password_files)
    finally:
        broker.remove()


def agent_mqtt(secure: SecureBroker, factory: str, **tls: Any) -> dict[str, Any]:
    """An agent's mqtt section: the TLS listener, one login per device connection."""
    return {
        "host": "127.0.0.1",
        "port": secure.broker.tls_port,
        "username": "{client_id}",
        "password_file": str(secure.password_files[factory]),
        "tls": {"ca_file": str(secure.certs.ca)} | tls,
    }


def settings(section: dict[str, Any], client_id: str) -> MqttSettings:
    return read_mqtt(Section(section, "test.yaml", "mqtt"), Path("."), client_id)


def login_as(secure: SecureBroker, factory: str, login: str, client_id: str, protocol: str = "5") -> Any:
    """The broker's answer to the login ``login`` of ``factory`` connecting with ``client_id``."""
    section = agent_mqtt(secure, factory) | {"username": login, "protocol": protocol}
    probe = Probe(settings(section, client_id))
    try:
        return probe.connect()
    finally:
        probe.close()


class Probe:
    """A paho client that records CONNACK, PUBACK reason codes and the disconnection."""

    def __init__(self, s: MqttSettings) -> None:
        self.client = make_client(s)
        self.settings = s
        self.connack: Any = None
        self.pubacks: dict[int, Any] = {}
        self.disconnected = threading.Event()
        self.client.on_connect = lambda c, u, f, rc, p: setattr(self, "connack", rc)
        self.client.on_publish = lambda c, u, mid, rc, p: self.pubacks.__setitem__(mid, rc)
        self.client.on_disconnect = lambda c, u, f, rc, p: self.disconnected.set()

    def connect(self) -> Any:
        try:
            self.client.connect(self.settings.host, self.settings.port)
        except OSError as exc:  # TLS handshake refused
            return exc
        self.client.loop_start()
        wait_for(lambda: self.connack is not None or self.disconnected.is_set(), 10, "CONNACK")
        return self.connack

    def publish(self, topic: str, payload: bytes) -> Any:
        info = self.client.publish(topic, payload, qos=1)
        wait_for(lambda: info.mid in self.pubacks or self.disconnected.is_set(), 10, "PUBACK")
        return self.pubacks.get(info.mid)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def refused(answer: Any) -> bool:
    """A refused login: a failed CONNACK (MQTT 5 reason code or 3.1.1 return code)."""
    return answer is not None and not isinstance(answer, OSError) and answer.is_failure


def scan_payload(seq: int, ts: str, **values: float) -> bytes:
    return json.dumps({"v": 1, "scans": [{"seq": seq, "ts": ts, "values": values}]}).encode()


def start_agent(
    secure: SecureBroker, tmp_path: Path, factory: str, scan_interval_s: float = 1.0
) -> tuple[EitProcess, Path]:
    edge_cfg = write_edge_config(
        tmp_path / "edge", secure.broker.tls_port, factory=factory, scan_interval_s=scan_interval_s
    )
    edata = load_yaml(edge_cfg)
    edata["mqtt"] = agent_mqtt(secure, factory)
    edge_cfg.write_text(yaml.safe_dump(edata))
    agent = EitProcess(
        ["--log-level", "DEBUG", "edge", "run", "--config", str(edge_cfg)], tmp_path / "edge.log"
    )
    return agent.start(), tmp_path / "edge" / f"outbox-{factory}.db"


def test_factory_publishing_under_another_factorys_topic_is_refused_and_nothing_reaches_the_store(
    tmp_path: Path, secure: SecureBroker, report: Callable[[str], None]
) -> None:
    serve = EitProcess(["serve", "--config", str(secure.serve_cfg)], tmp_path / "serve.log").start()
    store = SqliteStore(tmp_path / "serve" / "data" / "readings.db")
    agent: EitProcess | None = None
    try:
        wait_for(lambda: "connected to broker" in serve.output(), 30, "eit serve to log in")
        agent, _ = start_agent(secure, tmp_path, KK)
        # The factory's own scans arrive, over TLS, each device with its own login.
        wait_for(lambda: store.count(factory=KK) >= 16, 30, "the factory's own scans in the store")

        forbidden = scan_payload(777, "2026-01-01T00:00:00Z", ph=7.0, cod=80.0)
        topic = f"eit/{SC}/outfall-1/data"
        kk_login = f"{KK}-meter-1"
        v5 = Probe(settings(agent_mqtt(secure, KK) | {"username": kk_login}, kk_login))
        assert not v5.connect().is_failure
        puback = v5.publish(topic, forbidden)
        v5_refused = str(puback)
        assert puback is not None and puback.value == NOT_AUTHORIZED, f"MQTT 5 PUBACK: {puback}"
        v5.close()
        v311 = Probe(settings(agent_mqtt(secure, KK) | {"username": kk_login, "protocol": "3.1.1"}, kk_login))
        assert not v311.connect().is_failure
        v311.publish(topic, forbidden)  # MQTT 3.1.1 has no reason codes: the broker drops it
        v311.close()

        # The rightful factory publishes after the forbidden messages: once its scan is stored,
        # anything the broker had let through before it would be stored too.
        sc_login = f"{SC}-outfall-1"
        own = Probe(settings(agent_mqtt(secure, SC) | {"username": sc_login}, sc_login))
        assert not own.connect().is_failure
        assert not own.publish(topic, scan_payload(1, "2026-01-01T00:00:01Z", ph=7.2)).is_failure
        own.close()
        wait_for(lambda: store.count(factory=SC) == 1, 20, "the rightful factory's scan in the store")
        rows = store.latest(SC, "outfall-1")
        assert [(r.channel, r.value, r.seq) for r in rows] == [("ph", 7.2, 1)]
        assert store.count(factory=SC) == 1
    finally:
        store.close()
        if agent is not None and agent.alive():
            assert agent.terminate() == 0, agent.output()
        assert serve.terminate() == 0, serve.output()
    assert agent is not None
    seqs, waiting = outbox_state(tmp_path / "edge" / f"outbox-{KK}.db")
    assert waiting == 0
    # Secrets are never logged, not even at DEBUG.
    assert secure.password(KK) not in agent.output()
    assert secure.broker.logins.ingest not in serve.output()
    assert "(TLS)" in agent.output()
    report(
        f"cross-factory publish: MQTT 5 PUBACK '{v5_refused}'; MQTT 3.1.1 dropped; readings of {SC} "
        f"stored: 1 (its own), of the forbidden messages: 0; {KK} scans acked over TLS: {seqs}"
    )


def test_no_login_takes_over_another_connections_session_and_every_acked_scan_is_stored(
    tmp_path: Path, secure: SecureBroker, report: Callable[[str], None]
) -> None:
    """Another factory's login tries, again and again, to connect as the ingest (which would
    discard its persistent session and the readings queued for it) and as the agent's device
    connections; the agent's own other device tries to take over its sibling. Every try is
    refused, the ingest is never disconnected, and every scan the agent had acknowledged is
    stored once."""
    serve = EitProcess(["serve", "--config", str(secure.serve_cfg)], tmp_path / "serve.log").start()
    wait_for(lambda: "connected to broker" in serve.output(), 30, "eit serve to log in")
    agent, outbox = start_agent(secure, tmp_path, KK, scan_interval_s=0.2)
    store = SqliteStore(tmp_path / "serve" / "data" / "readings.db")
    targets = [
        (SC, f"{SC}-outfall-1", "eit-ingest"),
        (SC, f"{SC}-outfall-1", "eit-ingest-stats"),
        (SC, f"{SC}-outfall-1", f"{KK}-boiler-1"),
        (KK, f"{KK}-meter-1", f"{KK}-boiler-1"),
        (KK, f"{KK}-meter-1", "eit-ingest"),
    ]
    answers: list[tuple[str, str, str, Any]] = []
    try:
        wait_for(lambda: store.count(factory=KK) >= 8, 30, "the agent's first scans in the store")
        deadline = time.monotonic() + 6
        while time.monotonic() < deadline:
            for factory, login, client_id in targets:
                for protocol in ("5", "3.1.1"):
                    answers.append(
                        (login, client_id, protocol, login_as(secure, factory, login, client_id, protocol))
                    )
        wait_for(lambda: outbox_state(outbox)[1] == 0, 60, "the agent's outbox to drain")
    finally:
        if agent.alive():
            assert agent.terminate() == 0, agent.output()
    taken, waiting = outbox_state(outbox)
    try:
        assert waiting == 0
        assert_each_scan_stored_once(store, taken)
    finally:
        store.close()
        assert serve.terminate() == 0, serve.output()
    accepted = [(login, cid, proto, str(a)) for login, cid, proto, a in answers if not refused(a)]
    assert accepted == [], f"logins accepted with another connection's client id: {accepted}"
    assert "disconnected from broker" not in serve.output(), "the ingest lost its connection"
    # The rightful logins still work with their own client ids.
    assert not refused(login_as(secure, SC, f"{SC}-outfall-1", f"{SC}-outfall-1"))
    report(
        f"{len(answers)} takeover tries (MQTT 5 and 3.1.1, as the ingest's, another factory's and a "
        f"sibling device's client id): all refused; scans acked and stored once: {taken}"
    )


def test_logins_are_added_rotated_and_revoked_while_the_broker_runs(
    tmp_path: Path, secure: SecureBroker
) -> None:
    cfg = str(secure.serve_cfg)
    eastern = "eastern-petrochem"
    login = f"{eastern}-fenceline-1"
    out = devices("add", eastern, "--config", cfg)
    first = next(line.split(":", 1)[1].strip() for line in out.stdout.splitlines() if "password:" in line)
    assert f"  {login}" in out.stdout and 'username: "{client_id}"' in out.stdout
    holder = Probe(settings(_section(secure, login, first), login))
    assert not holder.connect().is_failure, "the new login works at once, without a reload"

    # Without --rotate an existing login keeps its password.
    again = devices("add", eastern, "--config", cfg, check=False)
    assert again.returncode == 2
    assert f"login {login} exists: give --rotate" in again.stderr and "nothing was changed" in again.stderr
    assert not refused(_login(secure, login, first))

    rotated = devices("add", eastern, "--config", cfg, "--rotate")
    second = next(
        line.split(":", 1)[1].strip() for line in rotated.stdout.splitlines() if "password:" in line
    )
    assert second != first and "new password for 1 login(s)" in rotated.stdout
    assert holder.disconnected.wait(10), "the rotated login's connection is closed at once"
    holder.close()
    assert refused(_login(secure, login, first)), "the old password is refused"
    assert not refused(_login(secure, login, second))

    # The broker keeps what it was told across a restart (its own file).
    assert secure.broker.stop() == 0
    secure.broker.start()
    assert refused(_login(secure, login, first)) and not refused(_login(secure, login, second))

    # Revoking one device, then the whole factory: connections closed, logins refused.
    kk_boiler, kk_meter = f"{KK}-boiler-1", f"{KK}-meter-1"
    meter = Probe(settings(agent_mqtt(secure, KK) | {"username": kk_meter}, kk_meter))
    assert not meter.connect().is_failure
    out = devices("revoke", KK, "--config", cfg, "--device", "meter-1")
    assert f"  {kk_meter}" in out.stdout and kk_boiler not in out.stdout
    assert meter.disconnected.wait(10), "the revoked login's connection is closed at once"
    meter.close()
    assert refused(_login(secure, kk_meter, secure.password(KK)))
    assert not refused(_login(secure, kk_boiler, secure.password(KK)))
    missing = devices("revoke", KK, "--config", cfg, "--device", "meter-1", check=False)
    assert missing.returncode == 2 and f"no login {kk_meter}" in missing.stderr
    devices("revoke", KK, "--config", cfg)
    assert refused(_login(secure, kk_boiler, secure.password(KK)))
    # The other factory is untouched.
    assert not refused(_login(secure, f"{SC}-outfall-1", secure.password(SC)))


def _section(secure: SecureBroker, login: str, password: str) -> dict[str, Any]:
    section = agent_mqtt(secure, KK) | {"username": login, "password": password}
    section.pop("password_file")
    return section


def _login(secure: SecureBroker, login: str, password: str) -> Any:
    probe = Probe(settings(_section(secure, login, password), login))
    try:
        return probe.connect()
    finally:
        probe.close()


def test_wrong_password_and_untrusted_certificates_are_refused(secure: SecureBroker) -> None:
    login = f"{KK}-boiler-1"
    rc = _login(secure, login, "not-the-password")
    assert refused(rc) and rc.value in (134, NOT_AUTHORIZED), rc  # bad password / not authorized
    # A broker whose certificate the agent's CA file did not sign: the TLS handshake fails.
    other = agent_mqtt(secure, KK) | {"username": login, "tls": {"ca_file": str(secure.certs.other_ca)}}
    result = Probe(settings(other, login)).connect()
    assert isinstance(result, OSError) and "CERTIFICATE_VERIFY_FAILED" in str(result)
    # Right login, right CA: accepted.
    assert not refused(_login(secure, login, secure.password(KK)))


def test_listener_requiring_a_client_certificate_accepts_only_the_agent_with_one(tmp_path: Path) -> None:
    """A broker that also wants a client certificate (an option the operator may add to the
    TLS listener): the agent presents one with mqtt.tls.cert_file and key_file."""
    certs = make_certs(tmp_path / "certs")
    conf = tmp_path / "mosquitto.conf"
    text = (REPO / "deploy" / "mosquitto" / "mosquitto.conf").read_text()
    conf.write_text(
        text.replace(
            "keyfile /mosquitto/certs/server.key",
            "keyfile /mosquitto/certs/server.key\ncafile /mosquitto/certs/ca.crt\nrequire_certificate true",
        )
    )
    broker = DynsecMosquitto(certs.server_cert, certs.server_key, conf=conf, ca_file=certs.ca)
    try:
        broker.start()
        admin_cfg = write_serve_config(tmp_path / "serve", broker.port)
        data = load_yaml(admin_cfg)
        data["mqtt"] = broker.ingest_mqtt()
        data["broker"] = broker.admin_section()
        admin_cfg.write_text(yaml.safe_dump(data))
        password = tmp_path / "kk.password"
        devices(
            "add", KK, "--config", str(admin_cfg), "--device", "boiler-1", "--password-out", str(password)
        )
        section = {
            "host": "127.0.0.1",
            "port": broker.tls_port,
            "username": "{client_id}",
            "password_file": str(password),
            "tls": {"ca_file": str(certs.ca)},
        }
        login = f"{KK}-boiler-1"
        result = Probe(settings(section, login)).connect()
        assert isinstance(result, OSError) or result is None or result.is_failure
        with_cert = section | {
            "tls": {
                "ca_file": str(certs.ca),
                "cert_file": str(certs.client_cert),
                "key_file": str(certs.client_key),
            }
        }
        probe = Probe(settings(with_cert, login))
        assert not probe.connect().is_failure
        assert not probe.publish(f"eit/{KK}/boiler-1/status", b"online").is_failure
        probe.close()
    finally:
        broker.remove()


def test_first_broker_file_is_what_mosquittos_own_tool_writes_with_every_login_bound(tmp_path: Path) -> None:
    """`eit devices init` writes the plugin's file as `mosquitto_ctrl dynsec init` does (the
    same password hashing), every login bound to a client id, nothing allowed by default; it
    refuses to overwrite a file the broker keeps."""
    path = tmp_path / "dynsec" / "dynamic-security.json"
    env_run = subprocess.run(
        [*EIT, "devices", "init", "--file", str(path), "--admin-password-env", "ADMIN_PW"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        stdin=subprocess.DEVNULL,
        env={"ADMIN_PW": "admin-secret", "PATH": "/usr/bin:/bin"},
    )
    assert env_run.returncode == 0, env_run.stderr
    assert "ingest password:" in env_run.stdout and "admin password" not in env_run.stdout
    doc = json.loads(path.read_text())
    assert path.stat().st_mode & 0o777 == 0o640
    clients = {c["username"]: c for c in doc["clients"]}
    assert set(clients) == {"eit-admin", "eit-health", "eit-ingest", "eit-ingest-stats", "eit-ingest-alerts"}
    assert all(c["clientid"] == name for name, c in clients.items())
    assert doc["defaultACLAccess"] == {
        "publishClientSend": False,
        "publishClientReceive": False,
        "subscribe": False,
        "unsubscribe": True,
    }
    admin = clients["eit-admin"]
    assert verify_password(
        "admin-secret", PasswordHash(admin["password"], admin["salt"], admin["iterations"])
    )
    # The same check against what Mosquitto's own tool writes.
    theirs = tmp_path / "theirs.json"
    subprocess.run(
        ["mosquitto_ctrl", "dynsec", "init", str(theirs), "u", "s3cret"],
        check=True,
        timeout=10,
        capture_output=True,
    )
    (entry,) = json.loads(theirs.read_text())["clients"]
    assert verify_password("s3cret", PasswordHash(entry["password"], entry["salt"], entry["iterations"]))
    assert not verify_password("s3cret!", PasswordHash(entry["password"], entry["salt"], entry["iterations"]))
    again = devices("init", "--file", str(path), check=False)
    assert again.returncode == 2 and "exists" in again.stderr


def test_devices_add_refuses_what_the_site_registry_does_not_list(tmp_path: Path) -> None:
    serve_cfg = write_serve_config(tmp_path, free_port())
    data = load_yaml(serve_cfg)
    data["broker"] = {"username": "eit-admin", "password": "unused"}
    serve_cfg.write_text(yaml.safe_dump(data))
    out = devices("add", "no-such-factory", "--config", str(serve_cfg), check=False)
    assert out.returncode == 2
    assert "factory 'no-such-factory' is not in the site registry" in out.stderr
    out = devices("add", KK, "--config", str(serve_cfg), "--device", "boiler-9", check=False)
    assert (
        out.returncode == 2 and "has no device boiler-9" in out.stderr and "boiler-1, meter-1" in out.stderr
    )
    out = devices("add", "alerts", "--config", str(serve_cfg), check=False)
    assert out.returncode == 2 and "reserved" in out.stderr
    # Nothing listens there: said in one line, no traceback.
    out = devices("add", KK, "--config", str(serve_cfg), check=False)
    assert out.returncode == 2 and "cannot reach the broker" in out.stderr and "Traceback" not in out.stderr
    assert factory_role(KK).acls == (("publishClientSend", f"eit/{KK}/#"),)
    # A configuration of the password-file days says what replaced it.
    data["broker"] = {"passwd_file": "passwd", "acl_file": "acl"}
    serve_cfg.write_text(yaml.safe_dump(data))
    out = devices("add", KK, "--config", str(serve_cfg), check=False)
    assert out.returncode == 2 and "broker: passwd_file and acl_file are retired" in out.stderr


def edge_check(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*EIT, "edge", "check", "--config", str(config)], capture_output=True, text=True, cwd=REPO, timeout=60
    )


def test_edge_check_logs_in_as_each_device_connection(tmp_path: Path, secure: SecureBroker) -> None:
    edge_cfg = write_edge_config(tmp_path / "edge", secure.broker.tls_port)
    edata = load_yaml(edge_cfg)
    edata["mqtt"] = agent_mqtt(secure, KK)
    edge_cfg.write_text(yaml.safe_dump(edata))
    out = edge_check(edge_cfg)
    assert out.returncode == 0, out.stdout + out.stderr
    for device in ("boiler-1", "meter-1"):
        assert any(
            line.startswith("ok") and f"broker {device}" in line and f"as {KK}-{device}" in line
            for line in out.stdout.splitlines()
        ), out.stdout
    devices("revoke", KK, "--config", str(secure.serve_cfg), "--device", "meter-1")
    out = edge_check(edge_cfg)
    assert out.returncode != 0
    assert any(line.startswith("FAIL") and "broker meter-1" in line for line in out.stdout.splitlines()), (
        out.stdout
    )


def test_devices_add_says_what_is_wrong_with_the_administrators_login_or_the_password_given(
    secure: SecureBroker, tmp_path: Path
) -> None:
    data = load_yaml(secure.serve_cfg)
    data["broker"] = {"username": "eit-admin", "password": "not-the-password"}
    wrong = tmp_path / "wrong-admin.yaml"
    wrong.write_text(yaml.safe_dump(data))
    out = devices("add", "eastern-petrochem", "--config", str(wrong), check=False)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "refused the administrator's login 'eit-admin'" in out.stderr
    out = devices(
        "add",
        "eastern-petrochem",
        "--config",
        str(secure.serve_cfg),
        "--password-env",
        "NO_SUCH_VAR",
        check=False,
    )
    assert out.returncode == 2 and "variable NO_SUCH_VAR is not set" in out.stderr
    # Nothing was made on the way.
    assert refused(_login(secure, "eastern-petrochem-fenceline-1", ""))


def test_a_username_placeholder_other_than_the_client_id_is_a_configuration_error(tmp_path: Path) -> None:
    edge_cfg = write_edge_config(tmp_path / "edge", 8883)
    text = edge_cfg.read_text().replace(
        "  host: 127.0.0.1\n", '  host: 127.0.0.1\n  username: "{factory}-{device}"\n'
    )
    edge_cfg.write_text(text)
    line = next(i for i, ln in enumerate(text.splitlines(), 1) if "username:" in ln)
    # eit edge check reads the meters first and reports the unusable mqtt section as the broker's
    # failure, with file, line and key.
    out = edge_check(edge_cfg)
    assert out.returncode == 1 and "Traceback" not in out.stdout + out.stderr
    assert "ok    device boiler-1" in out.stdout
    assert f"{edge_cfg}:{line}: mqtt.username: only {{client_id}} may stand in braces" in out.stdout
    serve_cfg = write_serve_config(tmp_path / "serve", 8883)
    data = load_yaml(serve_cfg)
    data["mqtt"]["username"] = "{device}"
    serve_cfg.write_text(yaml.safe_dump(data))
    out = subprocess.run(
        [*EIT, "serve", "--config", str(serve_cfg)], capture_output=True, text=True, cwd=REPO, timeout=60
    )
    assert out.returncode == 2 and "mqtt.username" in out.stderr and "{client_id}" in out.stderr
