"""Per-factory logins and TLS with a real Mosquitto started with the files `eit devices add` wrote:
a factory publishing under another factory's topic is refused by the broker and nothing of it
reaches the store; a wrong password is refused; secrets never appear in a log."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import uuid
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
from server.brokerauth import add_factory, parse_acl, verify_password
from testbed.services import (
    EIT,
    REPO,
    EitProcess,
    Mosquitto,
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


@dataclass
class SecureBroker:
    broker: Mosquitto
    certs: Certs
    passwd: Path
    acl: Path
    passwords: dict[str, str]
    password_files: dict[str, Path]
    cert_port: int  # a second listener that requires a client certificate


def devices_add(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*EIT, "devices", "add", *args], capture_output=True, text=True, cwd=REPO, timeout=30, check=True
    )


@pytest.fixture
def secure(tmp_path: Path) -> Iterator[SecureBroker]:
    certs = make_certs(tmp_path / "certs")
    passwd, acl = tmp_path / "broker" / "passwd", tmp_path / "broker" / "acl"
    files = ["--passwd-file", str(passwd), "--acl-file", str(acl)]
    password_files: dict[str, Path] = {}
    for user, extra in ((KK, []), ("eit-ingest", ["--ingest"])):
        password_files[user] = tmp_path / f"{user}.password"
        out = devices_add(user, *files, *extra, "--password-out", str(password_files[user]))
        assert "login created" in out.stdout
    # The second factory's password is printed once, for the operator to hand over.
    out = devices_add(SC, *files)
    printed = [line.split(":", 1)[1].strip() for line in out.stdout.splitlines() if "password:" in line]
    password_files[SC] = tmp_path / f"{SC}.password"
    password_files[SC].write_text(printed[0] + "\n")
    passwords = {u: p.read_text().strip() for u, p in password_files.items()}
    cert_port = free_port()
    tls = f"cafile {certs.ca}\ncertfile {certs.server_cert}\nkeyfile {certs.server_key}\n"
    conf = (
        "allow_anonymous false\n"
        f"password_file {passwd}\nacl_file {acl}\n"
        + tls
        + f"listener {cert_port} 127.0.0.1\n"
        + tls
        + "require_certificate true\n"
    )
    broker = Mosquitto(tmp_path / "mosquitto", extra_conf=conf).start()
    yield SecureBroker(broker, certs, passwd, acl, passwords, password_files, cert_port)
    broker.kill()


def mqtt_section(secure: SecureBroker, user: str, port: int | None = None, **tls: Any) -> dict[str, Any]:
    return {
        "host": "127.0.0.1",
        "port": port or secure.broker.port,
        "username": user,
        "password_file": str(secure.password_files[user]),
        "tls": {"ca_file": str(secure.certs.ca)} | tls,
    }


def settings(section: dict[str, Any], client_id: str) -> MqttSettings:
    return read_mqtt(Section(section, "test.yaml", "mqtt"), Path("."), client_id)


class Probe:
    """A paho client that records CONNACK, PUBACK reason codes and the disconnection."""

    def __init__(self, s: MqttSettings, protocol: str = "5") -> None:
        if protocol != s.protocol:
            s = MqttSettings(
                s.host, s.port, s.client_id, protocol, s.username, s.password, s.tls, s.keepalive_s
            )
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


def scan_payload(seq: int, ts: str, **values: float) -> bytes:
    return json.dumps({"v": 1, "scans": [{"seq": seq, "ts": ts, "values": values}]}).encode()


def test_factory_publishing_under_another_factorys_topic_is_refused_and_nothing_reaches_the_store(
    tmp_path: Path, secure: SecureBroker, report: Callable[[str], None]
) -> None:
    serve_cfg = write_serve_config(
        tmp_path / "serve", secure.broker.port, client_id=f"ingest-{uuid.uuid4().hex[:6]}"
    )
    data = load_yaml(serve_cfg)
    data["mqtt"] |= mqtt_section(secure, "eit-ingest")
    serve_cfg.write_text(yaml.safe_dump(data))
    edge_cfg = write_edge_config(tmp_path / "edge", secure.broker.port)
    edata = load_yaml(edge_cfg)
    edata["mqtt"] = mqtt_section(secure, KK)
    edge_cfg.write_text(yaml.safe_dump(edata))

    serve = EitProcess(["serve", "--config", str(serve_cfg)], tmp_path / "serve.log").start()
    agent = EitProcess(
        ["--log-level", "DEBUG", "edge", "run", "--config", str(edge_cfg)], tmp_path / "edge.log"
    )
    store = SqliteStore(tmp_path / "serve" / "data" / "readings.db")
    try:
        wait_for(lambda: "connected to broker" in serve.output(), 30, "eit serve to log in over TLS")
        agent.start()
        # The factory's own scans arrive, over TLS with its own login.
        wait_for(lambda: store.count(factory=KK) >= 16, 30, "the factory's own scans in the store")

        forbidden = scan_payload(777, "2026-01-01T00:00:00Z", ph=7.0, cod=80.0)
        topic = f"eit/{SC}/outfall-1/data"
        v5 = Probe(settings(mqtt_section(secure, KK), "kk-probe-5"))
        assert not v5.connect().is_failure
        puback = v5.publish(topic, forbidden)
        v5_refused = str(puback)
        assert puback is not None and puback.value == 135, f"MQTT 5 PUBACK: {puback}"  # Not authorized
        v5_dropped = v5.disconnected.wait(2)
        v5.close()
        v311 = Probe(settings(mqtt_section(secure, KK), "kk-probe-311"), protocol="3.1.1")
        assert not v311.connect().is_failure
        v311.publish(topic, forbidden)  # MQTT 3.1.1 has no reason codes: the broker drops it
        v311_dropped = v311.disconnected.wait(2)
        v311.close()

        # The rightful factory publishes after the forbidden messages: once its scan is stored,
        # anything the broker had let through before it would be stored too.
        own = Probe(settings(mqtt_section(secure, SC), "sc-probe"))
        assert not own.connect().is_failure
        assert not own.publish(topic, scan_payload(1, "2026-01-01T00:00:01Z", ph=7.2)).is_failure
        own.close()
        wait_for(lambda: store.count(factory=SC) == 1, 20, "the rightful factory's scan in the store")
        rows = store.latest(SC, "outfall-1")
        assert [(r.channel, r.value, r.seq) for r in rows] == [("ph", 7.2, 1)]
        assert store.count(factory=SC) == 1
    finally:
        store.close()
        if agent.alive():
            assert agent.terminate() == 0, agent.output()
        assert serve.terminate() == 0, serve.output()
    seqs, waiting = outbox_state(tmp_path / "edge" / f"outbox-{KK}.db")
    assert waiting == 0
    # Secrets are never logged, not even at DEBUG.
    for user, log in ((KK, agent.output()), ("eit-ingest", serve.output())):
        assert secure.passwords[user] not in log
    assert "(TLS)" in agent.output()
    report(
        f"cross-factory publish: MQTT 5 PUBACK '{v5_refused}'"
        f"{', then the connection dropped' if v5_dropped else ''}; MQTT 3.1.1 dropped"
        f"{', then the connection dropped' if v311_dropped else ''}; readings of {SC} stored: 1 "
        f"(its own), of the forbidden messages: 0; {KK} scans acked over TLS: {seqs}"
    )


def test_wrong_password_and_untrusted_certificates_are_refused(secure: SecureBroker) -> None:
    good = mqtt_section(secure, KK)
    wrong_pw = dict(good)
    wrong_pw.pop("password_file")
    wrong_pw["password"] = "not-the-password"
    probe = Probe(settings(wrong_pw, "wrong-pw"))
    rc = probe.connect()
    assert rc is not None and rc.is_failure and rc.value in (134, 135), rc  # bad password / not authorized
    probe.close()
    # A broker whose certificate the agent's CA file did not sign: the TLS handshake fails.
    other = good | {"tls": {"ca_file": str(secure.certs.other_ca)}}
    result = Probe(settings(other, "other-ca")).connect()
    assert isinstance(result, OSError) and "CERTIFICATE_VERIFY_FAILED" in str(result)
    # Right login, right CA: accepted.
    ok = Probe(settings(good, "good"))
    assert not ok.connect().is_failure
    ok.close()


def test_listener_requiring_a_client_certificate_accepts_only_the_agent_with_one(
    secure: SecureBroker,
) -> None:
    without = Probe(settings(mqtt_section(secure, KK, secure.cert_port), "no-cert"))
    result = without.connect()
    assert isinstance(result, OSError) or result is None or result.is_failure
    with_cert = mqtt_section(
        secure,
        KK,
        secure.cert_port,
        cert_file=str(secure.certs.client_cert),
        key_file=str(secure.certs.client_key),
    )
    probe = Probe(settings(with_cert, "with-cert"))
    assert not probe.connect().is_failure
    assert not probe.publish(f"eit/{KK}/boiler-1/status", b"online").is_failure
    probe.close()


def test_readding_a_factory_rotates_its_password_and_the_old_one_stops_working(
    secure: SecureBroker,
) -> None:
    old = secure.passwords[KK]
    out = devices_add(KK, "--passwd-file", str(secure.passwd), "--acl-file", str(secure.acl))
    assert "password rotated" in out.stdout
    new = next(line.split(":", 1)[1].strip() for line in out.stdout.splitlines() if "password:" in line)
    assert new != old
    assert secure.broker.proc is not None
    secure.broker.proc.send_signal(signal.SIGHUP)  # what `systemctl reload mosquitto` does

    def login(password: str, cid: str) -> Any:
        section = mqtt_section(secure, KK)
        section.pop("password_file")
        probe = Probe(settings(section | {"password": password}, cid))
        rc = probe.connect()
        probe.close()
        return rc

    # Mosquitto reloads between two rounds of its loop: the old password works until then.
    wait_for(lambda: login(old, "old").is_failure, 10, "the old password refused after the reload")
    assert not login(new, "new").is_failure
    # One login per factory, one ACL block per user, no duplicates after re-adding.
    users = [line.split(":", 1)[0] for line in secure.passwd.read_text().splitlines()]
    assert sorted(users) == sorted([KK, SC, "eit-ingest"])
    _, blocks = parse_acl(secure.acl.read_text())
    assert blocks[KK] == [f"topic write eit/{KK}/#"]
    assert blocks["eit-ingest"] == ["topic read eit/#", "topic write eit/alerts/#"]


def test_acl_keeps_other_users_blocks_and_password_hash_matches_mosquittos_format(tmp_path: Path) -> None:
    acl = tmp_path / "acl"
    acl.write_text("topic read $SYS/#\n\nuser grafana\ntopic read eit/+/+/status\n")
    result = add_factory(KK, tmp_path / "passwd", acl, "eit-ingest", password="s3cret")
    preamble, blocks = parse_acl(acl.read_text())
    assert preamble == ["topic read $SYS/#"]
    assert blocks == {
        "grafana": ["topic read eit/+/+/status"],
        KK: [f"topic write eit/{KK}/#"],
        "eit-ingest": ["topic read eit/#", "topic write eit/alerts/#"],
    }
    assert not result.rotated
    user, entry = (tmp_path / "passwd").read_text().strip().split(":", 1)
    assert user == KK and entry.startswith("$7$101$")
    assert verify_password("s3cret", entry) and not verify_password("s3cret!", entry)
    # The same check against what mosquitto_passwd itself writes.
    theirs = tmp_path / "theirs"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(theirs), "u", "s3cret"], check=True, timeout=10)
    assert verify_password("s3cret", theirs.read_text().strip().split(":", 1)[1])


def test_devices_add_refuses_a_factory_missing_from_the_site_registry(tmp_path: Path) -> None:
    serve_cfg = write_serve_config(tmp_path, 1883)
    data = load_yaml(serve_cfg)
    data["broker"] = {"passwd_file": "passwd", "acl_file": "acl"}
    serve_cfg.write_text(yaml.safe_dump(data))
    out = subprocess.run(
        [*EIT, "devices", "add", "no-such-factory", "--config", str(serve_cfg)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=30,
    )
    assert out.returncode == 2
    assert "factory 'no-such-factory' is not in the site registry" in out.stderr
    assert not (tmp_path / "passwd").exists()
    ok = subprocess.run(
        [*EIT, "devices", "add", KK, "--config", str(serve_cfg)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=30,
    )
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "passwd").read_text().startswith(f"{KK}:$7$")
    _, blocks = parse_acl((tmp_path / "acl").read_text())
    assert list(blocks) == [KK, "eit-ingest"]
