"""MQTT connection settings shared by the edge agent and the server."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

from eit.confread import Section

PROTOCOLS = ("5", "3.1.1")


@dataclass(frozen=True, slots=True)
class TlsSettings:
    ca_file: Path | None
    cert_file: Path | None
    key_file: Path | None
    insecure: bool = False  # skip host-name check (test brokers with self-made certificates)

    def context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
        if self.cert_file is not None:
            ctx.load_cert_chain(str(self.cert_file), str(self.key_file) if self.key_file else None)
        if self.insecure:
            ctx.check_hostname = False
        return ctx


@dataclass(frozen=True, slots=True)
class MqttSettings:
    host: str
    port: int
    client_id: str
    protocol: str
    username: str | None
    password: str | None
    tls: TlsSettings | None
    keepalive_s: int

    def __repr__(self) -> str:  # never print the password
        return (
            f"MqttSettings(host={self.host!r}, port={self.port}, client_id={self.client_id!r}, "
            f"protocol={self.protocol}, username={self.username!r}, tls={self.tls is not None})"
        )


def read_mqtt(sec: Section, base_dir: Path, default_client_id: str) -> MqttSettings:
    tls: TlsSettings | None = None
    if sec.has("tls"):
        tsec = sec.section("tls")
        tls = TlsSettings(
            ca_file=_existing(tsec, "ca_file", base_dir),
            cert_file=_existing(tsec, "cert_file", base_dir),
            key_file=_existing(tsec, "key_file", base_dir),
            insecure=tsec.boolean("insecure", False),
        )
        tsec.finish()
    settings = MqttSettings(
        host=sec.text("host", "localhost"),
        port=sec.integer("port", 8883 if tls else 1883, minimum=1, maximum=65535),
        client_id=sec.text("client_id", default_client_id),
        protocol=str(sec.text("protocol", "5", choices=PROTOCOLS)),
        username=sec.text("username", None),
        password=sec.secret("password", base_dir),
        tls=tls,
        keepalive_s=sec.integer("keepalive_s", 30, minimum=5, maximum=3600),
    )
    sec.finish()
    return settings


def _existing(sec: Section, key: str, base_dir: Path) -> Path | None:
    path = sec.path_value(key, base_dir, None)
    if path is not None and not path.is_file():
        sec.fail(key, f"file {path} not found")
    return path
