"""Broker logins with Mosquitto's dynamic-security plugin: one login per connection, each bound
to its own client id, so that no login can take over another connection's session (docs/broker.md).

- A role per factory, ``eit-factory-<factory>``, may publish only under ``eit/<factory>/#``
  (docs/architecture.md, "Contracts"). Each device connection of the factory's agent has its own
  login, ``<factory>-<device>``, bound to the client id of the same name (the agent's
  ``mqtt.client_id`` is the factory id, its ``username`` is ``"{client_id}"``).
- The ingest's connections (``<client id>``, ``-stats``, ``-alerts``) have a login each, with
  the role ``eit-ingest``: subscribe to the readings and status messages, publish alert events.
- The health check of the compose stack logs in as ``eit-health`` (it may read
  ``$SYS/broker/uptime`` only), the administrator as ``eit-admin`` (the plugin's control topic
  only).

Two ways in, for two moments:

- :func:`initial_config` writes the plugin's first file, before the broker has ever run (the
  administrator, the ingest and the health check). The plugin reads its file at start only, not on
  SIGHUP (Mosquitto 2.0.11 and 2.1), and rewrites it itself after every change, so the file is
  the broker's once it runs.
- :class:`DynsecControl` changes the running broker through the plugin's control topic
  (``$CONTROL/dynamic-security/v1``, what ``mosquitto_ctrl dynsec`` sends): a new, rotated or
  revoked login applies at once, a revoked or rotated login's connections are closed at once, and
  nothing is reloaded. It speaks MQTT with paho, so `eit devices` needs no Mosquitto tools where it
  runs.

A process's connections share one password (the agent has one ``password_file``); passwords
made here are 32 random URL-safe characters (192 bits), so the plugin's iteration count (101) is
kept: the broker hashes on every connect, and no password of that length can be guessed whatever
the count.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import threading
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eit.model import ID_HINT, ID_PATTERN
from eit.mqttconf import MqttSettings
from eit.wire import TOPIC_ROOT

ITERATIONS = 101  # the plugin's default for PBKDF2-SHA512 (Mosquitto 2.0)
SALT_BYTES = 12  # as Mosquitto 2.0 makes them; 2.1 reads them as they are
RESERVED = {"alerts"}  # eit/alerts/<factory> carries alert events, not a factory's data
CONTROL_TOPIC = "$CONTROL/dynamic-security/v1"
RESPONSE_TOPIC = f"{CONTROL_TOPIC}/response"
ADMIN_LOGIN = "eit-admin"
HEALTH_LOGIN = "eit-health"
INGEST_ROLE = "eit-ingest"
ADMIN_ROLE = "eit-admin"
HEALTH_ROLE = "eit-health"
FACTORY_ROLE_PREFIX = "eit-factory-"
# The ingest's connections beside its main one (ingest/selfstats.py, alerts/notifiers/mqtt.py).
INGEST_CONNECTION_SUFFIXES = ("", "-stats", "-alerts")
HEALTH_TOPIC = "$SYS/broker/uptime"
# Mode of the files written here that the broker reads: its user (who owns them) and group may
# read, nobody else (Mosquitto 2.1 warns about files others can read).
BROKER_FILE_MODE = 0o640


class BrokerAuthError(ValueError):
    """A login cannot be made, changed or revoked. The message says what to fix."""


# -- passwords ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PasswordHash:
    """A password as the plugin's file keeps it: PBKDF2-SHA512, base64 hash and salt."""

    password: str
    salt: str
    iterations: int


def hash_password(password: str, salt: bytes | None = None, iterations: int = ITERATIONS) -> PasswordHash:
    salt = salt if salt is not None else secrets.token_bytes(SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return PasswordHash(base64.b64encode(digest).decode(), base64.b64encode(salt).decode(), iterations)


def verify_password(password: str, entry: PasswordHash) -> bool:
    mine = hash_password(password, base64.b64decode(entry.salt), entry.iterations)
    return secrets.compare_digest(mine.password, entry.password)


def generate_password() -> str:
    return secrets.token_urlsafe(24)


# -- roles and logins -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Role:
    name: str
    acls: tuple[tuple[str, str], ...]  # (acltype, topic), each allowed
    text: str

    def json(self) -> dict[str, Any]:
        return {
            "rolename": self.name,
            "textname": self.text,
            "acls": [{"acltype": t, "topic": topic, "allow": True} for t, topic in self.acls],
        }

    def allowed(self) -> str:
        return "; ".join(f"{t} {topic}" for t, topic in self.acls)


def factory_role(factory: str) -> Role:
    return Role(
        f"{FACTORY_ROLE_PREFIX}{factory}",
        (("publishClientSend", f"{TOPIC_ROOT}/{factory}/#"),),
        f"the agents of factory {factory}: publish under {TOPIC_ROOT}/{factory}/# only",
    )


def ingest_role() -> Role:
    return Role(
        INGEST_ROLE,
        (
            ("subscribePattern", f"{TOPIC_ROOT}/+/+/data"),
            ("subscribePattern", f"{TOPIC_ROOT}/+/+/status"),
            ("publishClientReceive", f"{TOPIC_ROOT}/#"),
            ("publishClientSend", f"{TOPIC_ROOT}/alerts/#"),
        ),
        "the ingest (eit serve): read readings and status, publish alert events",
    )


def admin_role() -> Role:
    return Role(
        ADMIN_ROLE,
        (
            ("publishClientSend", f"{CONTROL_TOPIC}"),
            ("subscribeLiteral", RESPONSE_TOPIC),
            ("publishClientReceive", RESPONSE_TOPIC),
        ),
        "eit devices: the dynamic-security control topic only",
    )


def health_role() -> Role:
    return Role(
        HEALTH_ROLE,
        (("subscribeLiteral", HEALTH_TOPIC), ("publishClientReceive", HEALTH_TOPIC)),
        "the broker's health check: read its uptime only",
    )


def factory_logins(client_id: str, devices: Iterable[str]) -> list[str]:
    """The logins of an agent's device connections: its client id, a dash, the device id
    (edge/publisher.py names its connections so)."""
    return [f"{client_id}-{device}" for device in devices]


def ingest_logins(client_id: str) -> list[str]:
    return [f"{client_id}{suffix}" for suffix in INGEST_CONNECTION_SUFFIXES]


def check_id(name: str, what: str) -> None:
    if not ID_PATTERN.fullmatch(name):
        raise BrokerAuthError(f"'{name}' is not a valid {what}: {ID_HINT}")


def check_factory(factory: str) -> None:
    check_id(factory, "factory id")
    if factory in RESERVED:
        raise BrokerAuthError(f"'{factory}' is reserved: {TOPIC_ROOT}/{factory}/# carries alert events")


# -- the plugin's first file ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InitialLogins:
    admin_password: str
    ingest_password: str
    health_password: str
    ingest_client_id: str = "eit-ingest"


def _client(username: str, password: str, role: Role, text: str) -> dict[str, Any]:
    pw = hash_password(password)
    return {
        "username": username,
        "clientid": username,  # bound: this login connects with this client id only
        "textname": text,
        "password": pw.password,
        "salt": pw.salt,
        "iterations": pw.iterations,
        "roles": [{"rolename": role.name}],
    }


def initial_config(logins: InitialLogins) -> dict[str, Any]:
    """The dynamic-security plugin's first file: the administrator, the ingest's connections
    and the health check, each bound to its client id; nothing allowed by default."""
    check_id(logins.ingest_client_id, "client id")
    ingest = ingest_role()
    clients = [
        _client(ADMIN_LOGIN, logins.admin_password, admin_role(), "eit devices (administrator)"),
        _client(HEALTH_LOGIN, logins.health_password, health_role(), "the broker's health check"),
    ]
    clients += [
        _client(name, logins.ingest_password, ingest, "the ingest (eit serve)")
        for name in ingest_logins(logins.ingest_client_id)
    ]
    return {
        "defaultACLAccess": {
            "publishClientSend": False,
            "publishClientReceive": False,
            "subscribe": False,
            "unsubscribe": True,
        },
        "clients": clients,
        "groups": [],
        "roles": [admin_role().json(), health_role().json(), ingest.json()],
    }


def write_initial_config(path: Path, config: dict[str, Any], owner: tuple[int, int] | None) -> None:
    """Write the plugin's first file, owned by ``owner`` (the broker's user and group) with mode
    0640, its folder 0750. Refused when the file exists: the running broker keeps it from then on,
    and `eit devices add` changes it through the broker."""
    if path.exists():
        raise BrokerAuthError(
            f"{path} exists: the broker keeps it once it has started; change logins with "
            "`eit devices add` and `eit devices revoke` (delete the file to start over)"
        )
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{path.name}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, BROKER_FILE_MODE)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(config, f, indent=2)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, BROKER_FILE_MODE)  # whatever the umask
        if owner is not None:
            os.chown(tmp, *owner)
            # The plugin writes its changes to a new file beside it and renames it (2.1), so its
            # user must be able to write the folder.
            os.chown(folder, *owner)
            os.chmod(folder, 0o750)
        os.replace(tmp, path)
    except PermissionError as exc:
        raise BrokerAuthError(
            f"cannot write {path} owned by {owner[0]}:{owner[1] if owner else ''}: {exc.strerror} "
            "(setting the owner needs root)"
            if owner
            else f"cannot write {path}: {exc.strerror}"
        ) from None
    except OSError as exc:
        raise BrokerAuthError(f"cannot write {path}: {exc.strerror}") from None


def parse_owner(text: str) -> tuple[int, int]:
    """``UID:GID`` (numbers: the broker's user usually exists only inside its container)."""
    uid, sep, gid = text.partition(":")
    if not (uid.isdigit() and (not sep or gid.isdigit())):
        raise BrokerAuthError(f"--owner {text!r}: expected UID:GID as numbers, e.g. 1883:1883")
    return int(uid), int(gid if sep else uid)


# -- the running broker ------------------------------------------------------------------------------


class DynsecControl:
    """A connection to the running broker's dynamic-security control topic, as its
    administrator. Commands are sent in one message and answered in one, in order."""

    def __init__(self, settings: MqttSettings, timeout_s: float = 10.0) -> None:
        from eit.mqttclient import make_client

        self.settings = settings
        self.timeout_s = timeout_s
        self._answers: dict[str, list[dict[str, Any]]] = {}
        self._answered = threading.Condition()
        self._connack: Any = None
        self._subscribed = threading.Event()
        self._closed: Any = None
        self.client = make_client(settings)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *_: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.on_disconnect = self._on_disconnect

    def __enter__(self) -> DynsecControl:
        where = f"{self.settings.host}:{self.settings.port}"
        try:
            self.client.connect(self.settings.host, self.settings.port, keepalive=self.settings.keepalive_s)
        except OSError as exc:
            raise BrokerAuthError(f"cannot reach the broker at {where}: {exc.strerror or exc}") from None
        self.client.loop_start()
        with self._answered:
            self._answered.wait_for(
                lambda: self._connack is not None or self._closed is not None, self.timeout_s
            )
        if self._connack is None or self._connack.is_failure:
            self.close()
            why = self._connack or self._closed or "no answer"
            raise BrokerAuthError(
                f"the broker at {where} refused the administrator's login "
                f"{self.settings.username_for(self.settings.client_id)!r}: {why} (check broker.username "
                "and broker.password: `eit devices init` made them)"
            )
        self.client.subscribe(RESPONSE_TOPIC, qos=1)
        if not self._subscribed.wait(self.timeout_s):
            self.close()
            raise BrokerAuthError(f"the broker at {where} did not answer subscribing to {RESPONSE_TOPIC}")
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        with self._answered:
            self._connack = reason
            self._answered.notify_all()

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        with self._answered:
            self._closed = reason
            self._answered.notify_all()

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        try:
            responses = json.loads(message.payload)["responses"]
        except (ValueError, KeyError, TypeError):
            return
        with self._answered:
            for response in responses:
                key = str(response.get("correlationData", ""))
                self._answers.setdefault(key, []).append(response)
            self._answered.notify_all()

    def run(self, *commands: dict[str, Any]) -> list[dict[str, Any]]:
        """Send the commands; their answers in the same order (``error`` set where one failed)."""
        if not commands:
            return []
        keys = [uuid.uuid4().hex for _ in commands]
        body = {"commands": [c | {"correlationData": k} for c, k in zip(commands, keys, strict=True)]}
        info = self.client.publish(CONTROL_TOPIC, json.dumps(body), qos=1)
        info.wait_for_publish(self.timeout_s)
        with self._answered:
            done = self._answered.wait_for(
                lambda: all(k in self._answers for k in keys) or self._closed is not None, self.timeout_s
            )
            if not done or not all(k in self._answers for k in keys):
                raise BrokerAuthError(
                    f"the broker did not answer {commands[0]['command']} within {self.timeout_s:g} s: is "
                    "the dynamic-security plugin loaded (mosquitto.conf `plugin`), and does the "
                    "administrator's role allow its control topic?"
                )
            return [self._answers.pop(k)[0] for k in keys]

    def client_info(self, username: str) -> dict[str, Any] | None:
        (answer,) = self.run({"command": "getClient", "username": username})
        if answer.get("error") == "Client not found":
            return None
        _raise_on_error(answer, username)
        client: dict[str, Any] = answer["data"]["client"]
        return client

    def clients_with_role(self, role: str) -> list[str]:
        (answer,) = self.run({"command": "listClients", "verbose": True, "count": -1, "offset": 0})
        _raise_on_error(answer, "listClients")
        return [
            str(c["username"])
            for c in answer["data"]["clients"]
            if any(r.get("rolename") == role for r in c.get("roles", []))
        ]


def _raise_on_error(answer: dict[str, Any], what: str) -> None:
    if "error" in answer:
        raise BrokerAuthError(f"the broker refused {answer.get('command')} of {what}: {answer['error']}")


def _roles_of(client: dict[str, Any]) -> list[str]:
    return [str(r.get("rolename")) for r in client.get("roles", [])]


@dataclass(frozen=True, slots=True)
class AddResult:
    role: Role
    created: list[str]
    rotated: list[str]
    password: str


def add_logins(
    control: DynsecControl, role: Role, usernames: Sequence[str], password: str, *, rotate: bool
) -> AddResult:
    """Create a login per name, bound to the client id of the same name, with ``role``; an
    existing one gets the new password only with ``rotate``. Every name is checked before
    anything changes: a name that belongs to another role, or exists without ``rotate``, is
    refused with all the others untouched."""
    existing: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    for name in usernames:
        info = control.client_info(name)
        if info is None:
            continue
        roles = _roles_of(info)
        if roles != [role.name]:
            problems.append(f"login {name} exists with role(s) {', '.join(roles) or 'none'}, not {role.name}")
        elif not rotate:
            problems.append(f"login {name} exists: give --rotate to replace its password")
        existing[name] = info
    if problems:
        raise BrokerAuthError("; ".join(problems) + " (nothing was changed)")
    (answer,) = control.run({"command": "createRole", **role.json()})
    if answer.get("error") not in (None, "Role already exists"):
        _raise_on_error(answer, role.name)
    commands: list[dict[str, Any]] = []
    for name in usernames:
        if name in existing:
            # Closes the login's connections at once: they come back with the new password.
            commands.append({"command": "setClientPassword", "username": name, "password": password})
            if existing[name].get("clientid") != name:
                commands.append({"command": "setClientId", "username": name, "clientid": name})
        else:
            commands.append(
                {
                    "command": "createClient",
                    "username": name,
                    "password": password,
                    "clientid": name,
                    "textname": role.text,
                    "roles": [{"rolename": role.name}],
                }
            )
    for answer in control.run(*commands):
        _raise_on_error(answer, str(answer.get("command")))
    return AddResult(
        role,
        [n for n in usernames if n not in existing],
        [n for n in usernames if n in existing],
        password,
    )


def revoke_logins(control: DynsecControl, role: Role, usernames: Sequence[str] | None) -> list[str]:
    """Delete the logins named (every login with ``role`` and then the role when None); the
    broker closes their connections at once. Names that are no login of the role are refused
    before anything is deleted."""
    if usernames is None:
        names = control.clients_with_role(role.name)
        if not names:
            raise BrokerAuthError(f"no broker login has the role {role.name}: nothing to revoke")
    else:
        names = list(usernames)
        problems = []
        for name in names:
            info = control.client_info(name)
            if info is None:
                problems.append(f"no login {name}")
            elif role.name not in _roles_of(info):
                problems.append(f"login {name} does not have the role {role.name}")
        if problems:
            raise BrokerAuthError("; ".join(problems) + " (nothing was revoked)")
    for answer in control.run(*({"command": "deleteClient", "username": n} for n in names)):
        _raise_on_error(answer, str(answer.get("command")))
    if usernames is None:
        (answer,) = control.run({"command": "deleteRole", "rolename": role.name})
        if answer.get("error") not in (None, "Role not found"):
            _raise_on_error(answer, role.name)
    return names
