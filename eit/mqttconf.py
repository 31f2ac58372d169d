"""MQTT connection settings shared by the edge agent and the server.

A process may open several connections with one configuration: the agent one per device
(client id ``<client_id>-<device>``), the ingest three (``<client_id>``, ``-stats``,
``-alerts``). With a broker that binds each login to one client id (Mosquitto's dynamic
security, docs/broker.md), each connection logs in as itself: ``username: "{client_id}"``
stands for the connection's own client id, and all of a process's connections share its one
password.

An agent may name several brokers (``mqtt.hosts``, the nodes of a broker cluster) instead of one
(``mqtt.host``): each connection then moves to the next one when its broker fails
(:class:`eit.mqttclient.BrokerRotation`).
"""

from __future__ import annotations

import ipaddress
import re
import ssl
from dataclasses import dataclass
from pathlib import Path

from eit.confread import Section

PROTOCOLS = ("5", "3.1.1")
# In ``username``: the client id of the connection that logs in (one login per connection).
CLIENT_ID_PLACEHOLDER = "{client_id}"
# ``mqtt.hosts`` names the nodes of one broker cluster: a handful, not a directory of brokers.
MAX_BROKERS = 16
_HOST_NAME = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_.-]{0,252})")
_BRACKETED = re.compile(r"\[([^\]]*)\](?::(.*))?")


@dataclass(frozen=True, slots=True)
class Broker:
    """One broker's address: a host name or IP address, and a TCP port."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


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
    # The agent's own list of brokers (``mqtt.hosts``), tried in turn; empty: the one broker
    # ``host``:``port``. With a list, ``host`` and ``port`` are its first entry's.
    hosts: tuple[Broker, ...] = ()

    @property
    def brokers(self) -> tuple[Broker, ...]:
        """Every broker a connection may go to, in the configured order (at least one)."""
        return self.hosts or (Broker(self.host, self.port),)

    @property
    def login_per_connection(self) -> bool:
        return self.username is not None and CLIENT_ID_PLACEHOLDER in self.username

    def username_for(self, client_id: str) -> str | None:
        """The user name the connection with this client id logs in with."""
        if self.username is None:
            return None
        return self.username.replace(CLIENT_ID_PLACEHOLDER, client_id)

    def __repr__(self) -> str:  # never print the password
        where = (
            f"hosts={[str(b) for b in self.hosts]!r}"
            if self.hosts
            else f"host={self.host!r}, port={self.port}"
        )
        return (
            f"MqttSettings({where}, client_id={self.client_id!r}, "
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
        _check_tls_files(tsec, tls)
    port = sec.integer("port", 8883 if tls else 1883, minimum=1, maximum=65535)
    hosts: tuple[Broker, ...] = ()
    if sec.has("hosts"):
        if sec.has("host"):
            sec.fail(
                "hosts",
                "give mqtt.host (one broker) or mqtt.hosts (a list of brokers), not both",
            )
        hosts = _read_hosts(sec, port)
    host = sec.text("host", "localhost")
    settings = MqttSettings(
        host=hosts[0].host if hosts else host,
        port=hosts[0].port if hosts else port,
        client_id=sec.text("client_id", default_client_id),
        protocol=str(sec.text("protocol", "5", choices=PROTOCOLS)),
        username=_username(sec),
        password=sec.secret("password", base_dir),
        tls=tls,
        keepalive_s=sec.integer("keepalive_s", 30, minimum=5, maximum=3600),
        hosts=hosts,
    )
    sec.finish()
    return settings


def _read_hosts(sec: Section, default_port: int) -> tuple[Broker, ...]:
    """``mqtt.hosts``: one broker per entry, ``host`` or ``host:port`` (``[v6 address]:port``),
    each once; an entry without a port uses ``default_port`` (``mqtt.port``)."""
    entries = sec.str_list("hosts")
    if not entries:
        sec.fail("hosts", "the list is empty: name at least one broker (host or host:port)")
    if len(entries) > MAX_BROKERS:
        sec.fail("hosts", f"{len(entries)} brokers listed, at most {MAX_BROKERS}")
    brokers: list[Broker] = []
    for index, entry in enumerate(entries):
        try:
            broker = parse_broker(entry, default_port)
        except ValueError as exc:
            sec.fail_item("hosts", index, str(exc))
        same = [
            i for i, b in enumerate(brokers) if (b.host.lower(), b.port) == (broker.host.lower(), broker.port)
        ]
        if same:
            sec.fail_item("hosts", index, f"{broker} is listed twice (entry {same[0]} is {brokers[same[0]]})")
        brokers.append(broker)
    return tuple(brokers)


def parse_broker(entry: str, default_port: int) -> Broker:
    """One ``mqtt.hosts`` entry; ValueError says what is wrong with it."""
    text = entry.strip()
    if not text:
        raise ValueError("an empty entry: give host or host:port")
    if "/" in text or any(c.isspace() for c in text):
        raise ValueError(
            f"'{text}' is not host or host:port (a host name or IP address, no scheme, path or spaces)"
        )
    bracketed = _BRACKETED.fullmatch(text)
    if bracketed is not None:
        host, port_text = bracketed.group(1), bracketed.group(2)
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"'{text}': [{host}] is not an IPv6 address") from None
    elif text.count(":") > 1:
        raise ValueError(f"'{text}': write an IPv6 address in brackets, [address] or [address]:port")
    else:
        host, _, port_text = text.partition(":")
        port_text = port_text if ":" in text else None
        if not _HOST_NAME.fullmatch(host):
            raise ValueError(
                f"'{text}' is not host or host:port (a host name or IP address, no scheme, path or spaces)"
            )
    if port_text is None:
        return Broker(host, default_port)
    if not re.fullmatch(r"[0-9]{1,5}", port_text) or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"'{text}': the port '{port_text}' is not a whole number from 1 to 65535")
    return Broker(host, int(port_text))


def _check_tls_files(tsec: Section, tls: TlsSettings) -> None:
    """Refuse, by key, a TLS file the TLS library cannot load (text that is no certificate, a key
    that does not fit its certificate), so that it is a configuration error, not a failure at the
    first connection."""
    try:
        ctx = ssl.create_default_context(cafile=str(tls.ca_file) if tls.ca_file else None)
    except (ssl.SSLError, OSError) as exc:
        tsec.fail("ca_file", f"{tls.ca_file} holds no CA certificate in PEM form ({_ssl_reason(exc)})")
    if tls.cert_file is not None:
        try:
            ctx.load_cert_chain(str(tls.cert_file), str(tls.key_file) if tls.key_file else None)
        except (ssl.SSLError, OSError) as exc:
            tsec.fail(
                "cert_file",
                f"{tls.cert_file} with key {tls.key_file or '(in the same file)'} cannot be loaded: "
                f"{_ssl_reason(exc)} (a PEM certificate, and the key that belongs to it)",
            )


def _ssl_reason(exc: Exception) -> str:
    reason = getattr(exc, "reason", None)
    return str(reason) if reason else str(exc)


def check_username(username: str) -> str | None:
    """Why a configured user name cannot be used (None when it can): braces only as the
    ``{client_id}`` placeholder."""
    if "{" in username.replace(CLIENT_ID_PLACEHOLDER, "") or "}" in username.replace(
        CLIENT_ID_PLACEHOLDER, ""
    ):
        return (
            f"only {CLIENT_ID_PLACEHOLDER} may stand in braces (each connection's own client id, "
            "for a broker with one login per connection)"
        )
    return None


def _username(sec: Section) -> str | None:
    username = sec.text("username", None)
    if username is not None and (problem := check_username(username)) is not None:
        sec.fail("username", problem)
    return username


def _existing(sec: Section, key: str, base_dir: Path) -> Path | None:
    path = sec.path_value(key, base_dir, None)
    if path is not None and not path.is_file():
        sec.fail(key, f"file {path} not found")
    return path
