"""`eit edge check --config FILE`: what works and what does not, in words an operator can act on.

It checks the configuration (errors name the key and the problem), the clock, the outbox, reads
every meter once, and logs in to the broker (to each of ``mqtt.hosts``): the meters first, so
that a broker setting or a credential that is wrong (a missing password file, a CA file that
holds no certificate) is one failed item of the report, not the end of it. Nothing is written:
the outbox is read read-only and not created when it does not exist yet. For a Modbus meter it
prints, for every channel, the raw registers, the value they decode to with the configured map,
and, when that value looks wrong, the same registers read every other way (type, word order,
byte order) so that the right map can be picked from the output alone. Nothing is published.

Exit status: 0 when everything works (warnings allowed), 1 when something does not, 2 when the
configuration outside its ``mqtt`` section cannot be read.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from itertools import product
from pathlib import Path
from typing import Any

from edge.clock import ClockWatch
from edge.config import DeviceConfig, EdgeConfig, parse_edge_config
from edge.drivers.base import DriverError
from eit.confread import apply_env_overrides, read_yaml
from eit.errors import ConfigError, Problem
from eit.mqttconf import Broker
from eit.timeutil import now_ns, ns_to_iso

OK, WARN, FAIL = "ok", "WARN", "FAIL"
BROKER_TIMEOUT_S = 10.0


@dataclass
class Report:
    lines: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def item(self, status: str, what: str, detail: str) -> None:
        self.lines.append(f"{status:<4}  {what:<16} {detail}")
        if status == FAIL:
            self.failures.append(what)
        elif status == WARN:
            self.warnings.append(what)

    def sub(self, text: str) -> None:
        self.lines.append(f"{'':<6}{text}")


def load_for_check(path: Path | str) -> tuple[EdgeConfig, list[Problem]]:
    """The agent's configuration as `eit edge check` reads it: a problem of the ``mqtt`` section
    (a password file that cannot be read, a variable that is not set, a TLS file that holds no
    certificate) does not stop the check, so the meters are still read; it is returned, to be
    reported as the broker's failure. Any other problem raises :class:`ConfigError` as the agent
    would."""
    path = Path(path)
    doc = read_yaml(path)
    if not isinstance(doc.data, dict):
        raise ConfigError(str(path), "", "expected a mapping at the top level", 1)
    origins = apply_env_overrides(doc.data, None)
    base_dir = path.parent.resolve()
    try:
        return parse_edge_config(doc.data, str(path), base_dir, origins, lines=doc.lines), []
    except ConfigError as exc:
        broker = [p for p in exc.problems if _is_mqtt_key(p.key)]
        if len(broker) < len(exc.problems):
            raise
    # Read the rest without the broker's settings; the broker is not logged in to.
    without = {k: v for k, v in doc.data.items() if k != "mqtt"}
    return parse_edge_config(without, str(path), base_dir, origins, lines=doc.lines), broker


def _is_mqtt_key(key: str) -> bool:
    return key == "mqtt" or key.startswith("mqtt.")


def check(
    config: EdgeConfig, out: Callable[[str], None] = print, broker_problems: Sequence[Problem] = ()
) -> int:
    report = Report()
    report.item(
        OK,
        "configuration",
        f"{config.source}: factory {config.factory}, {len(config.devices)} device(s)",
    )
    # Each step on its own: whatever one of them meets, the others still run and the report is
    # printed (an unforeseen error is one failed item, named by its type and message).
    _step(report, "clock", lambda: _check_clock(config, report))
    _step(report, "outbox", lambda: _check_outbox(config, report))
    _step(report, "signing", lambda: _check_signing(config, report))
    for device in config.devices:
        _step(report, f"device {device.id}", partial(_check_device, device, report))
    if broker_problems:
        report.item(FAIL, "broker", "not tried: the mqtt section cannot be used")
        for problem in broker_problems:
            report.sub(str(problem))
    else:
        _step(report, "broker", lambda: _check_broker(config, report))
    for line in report.lines:
        out(line)
    out("")
    if report.failures:
        out(f"{len(report.failures)} problem(s): {', '.join(report.failures)}")
        if report.warnings:
            out(f"{len(report.warnings)} warning(s): {', '.join(report.warnings)}")
        return 1
    if report.warnings:
        out(f"everything works; {len(report.warnings)} warning(s): {', '.join(report.warnings)}")
    else:
        out("everything works")
    return 0


def _step(report: Report, what: str, run: Callable[[], None]) -> None:
    try:
        run()
    except Exception as exc:  # the report goes on: one failed item instead of a traceback
        report.item(FAIL, what, f"{type(exc).__name__}: {exc}")


def _check_signing(config: EdgeConfig, report: Report) -> None:
    """Each device's signing key: there, owner-only, an Ed25519 key (its id and public key)."""
    if config.signing_keys is None:
        report.item(OK, "signing", "scans are not signed (no signing.keys): wire v1")
        return
    from edge.keys import key_path, load_signer
    from eit.errors import ConfigError
    from eit.signing import public_text

    for device in config.devices:
        path = key_path(config.signing_keys, device.id)
        try:
            signer = load_signer(path, config.source, "signing.keys")
        except ConfigError as exc:
            report.item(FAIL, f"signing {device.id}", exc.problem)
            continue
        report.item(
            OK,
            f"signing {device.id}",
            f"{path}: key {signer.key_id}, public key {public_text(signer.private.public_key())} "
            "(registered on the server with `eit devices key add`)",
        )


def _check_clock(config: EdgeConfig, report: Report) -> None:
    now = now_ns()
    state = ClockWatch(config.clock_min_year).judge(now)
    sync = {True: "synchronised", False: "not synchronised", None: "synchronisation unknown"}
    detail = f"{ns_to_iso(now)} UTC, {sync[state.synchronised]}"
    if state.state == "ok":
        report.item(OK, "clock", detail)
    elif state.state == "unsynchronised":
        report.item(WARN, "clock", f"{detail}: {state.problem}")
    else:
        report.item(FAIL, "clock", f"{state.problem}; scans taken now would be flagged D")


def _check_outbox(config: EdgeConfig, report: Report) -> None:
    path = config.outbox_path
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        report.item(FAIL, "outbox", f"{path} is not writable by this user: the agent could not keep any scan")
        return
    scans_per_s = sum(1 / d.scan_interval_s for d in config.devices)
    max_mb, max_days = (config.outbox_max_bytes or 0) / 1e6, (config.outbox_max_age_s or 0) / 86400
    bound = f"bound {max_mb:g} MB / {max_days:g} days"
    if not path.exists():
        made = "" if folder == path.parent else f" (and its folder {path.parent})"
        report.item(OK, "outbox", f"{path}: not made yet; the agent creates it{made} when it starts, {bound}")
        report.sub(f"{scans_per_s:g} scans/s from {len(config.devices)} device(s)")
        return
    try:
        pending, dropped, used = read_outbox(path)
    except sqlite3.Error as exc:
        report.item(FAIL, "outbox", f"{path} cannot be read as an outbox: {exc}")
        return
    status = WARN if dropped else OK
    detail = f"{path}: {pending} scan(s) waiting, {used / 1e6:.1f} MB used, {bound}"
    if dropped:
        detail += f"; {sum(dropped.values())} scan(s) dropped so far ({dropped}): the bound was reached"
    report.item(status, "outbox", detail)
    report.sub(f"{scans_per_s:g} scans/s from {len(config.devices)} device(s)")


def read_outbox(path: Path) -> tuple[int, dict[str, int], int]:
    """(scans waiting, scans dropped by reason, bytes used) of an outbox file, read without
    changing it: read-only, and, when no agent has it open (no ``-wal`` file), as an immutable
    file, so that SQLite makes no ``-wal`` or ``-shm`` file beside it either."""
    mode = "ro" if Path(f"{path}-wal").exists() else "ro&immutable=1"
    db = sqlite3.connect(f"{path.resolve().as_uri()}?mode={mode}", uri=True)
    try:
        tables = {str(row[0]) for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "scans" not in tables:
            raise sqlite3.DatabaseError("no table of scans")
        pending = int(db.execute("SELECT count(*) FROM scans").fetchone()[0])
        dropped: dict[str, int] = {}
        if "dropped" in tables:
            rows = db.execute("SELECT reason, sum(scans) FROM dropped GROUP BY reason").fetchall()
            dropped = {str(r): int(n) for r, n in rows}
        pages = int(db.execute("PRAGMA page_count").fetchone()[0])
        free = int(db.execute("PRAGMA freelist_count").fetchone()[0])
        page_size = int(db.execute("PRAGMA page_size").fetchone()[0])
    finally:
        db.close()
    return pending, dropped, (pages - free) * page_size


def _check_device(device: DeviceConfig, report: Report) -> None:
    from edge.drivers.modbus import ModbusDriver

    driver = device.driver
    what = f"device {device.id}"
    if isinstance(driver, ModbusDriver):
        _check_modbus(device.id, driver, report)
        return
    try:
        driver.connect()
        scan = driver.read()
    except DriverError as exc:
        report.item(FAIL, what, f"({device.driver_name}) {exc}")
        return
    finally:
        with contextlib.suppress(Exception):
            driver.close()
    values = ", ".join(
        f"{k}={v:g}" + (f" [{scan.flags[k]}]" if k in scan.flags else "") for k, v in scan.values.items()
    )
    when = f" (recorded {ns_to_iso(scan.ts_ns)})" if scan.ts_ns is not None else ""
    report.item(OK, what, f"({device.driver_name}) {values}{when}")


def _alternatives(registers: list[int], channel: Any) -> list[tuple[str, float]]:
    """The same registers decoded every other way, scaled like the channel."""
    from edge.drivers.registers import ORDERS, TYPES, decode_raw, is_plausible

    found: list[tuple[str, float]] = []
    # The configured type first (only its order wrong, the usual mistake), then the other types.
    ordered = sorted(TYPES.items(), key=lambda item: item[0] != channel.type)
    for type_name, (_, count) in ordered:
        if count != len(registers):
            continue
        word_orders = ORDERS if count > 1 else ("big",)
        for word, byte in product(word_orders, ORDERS):
            if (type_name, word, byte) == (channel.type, channel.word_order, channel.byte_order):
                continue
            value = decode_raw(registers, type_name, word, byte) * channel.scale + channel.offset
            if is_plausible(value):
                label = f"type: {type_name}" + (f", word_order: {word}" if count > 1 else "")
                label += f", byte_order: {byte}"
                found.append((label, value))
    return found


def _in_range(channel: Any, value: float) -> bool:
    above = channel.minimum is None or value >= channel.minimum
    return above and (channel.maximum is None or value <= channel.maximum)


def _check_modbus(device_id: str, driver: Any, report: Report) -> None:
    from edge.drivers.modbus import ModbusNoAnswer, ModbusRefused
    from edge.drivers.registers import Block, is_plausible

    what = f"device {device_id}"
    header = f"(modbus {driver.transport}, unit {driver.unit} at {driver.link.where})"
    try:
        driver.connect()
    except DriverError as exc:
        fix = (
            "the host and port"
            if driver.transport == "tcp"
            else "the serial port name, and that no other program holds it (stop the agent first)"
        )
        report.item(FAIL, what, f"{header} {exc}: check {fix}")
        return
    try:
        results = driver.read_blocks()
        if results and all(isinstance(r.error, ModbusNoAnswer) for r in results):
            first = results[0].error
            report.item(FAIL, what, f"{header} {first}")
            if isinstance(first, ModbusNoAnswer) and first.closed_by_peer:
                # A meter that does not know the unit id stays silent; one that closes the
                # connection is refusing the connection itself.
                report.sub(
                    f"{driver.link.where} closed the connection instead of answering: not the unit id "
                    "(a wrong one gets no answer) but the connection: the meter or its gateway may "
                    "take one client at a time (stop the agent or another program polling it) or "
                    "only listed client addresses"
                )
            elif driver.transport == "tcp":
                report.sub(
                    f"the connection to {driver.link.where} opened, so the host answers: "
                    "the unit id is the likely fault"
                )
            return
        problems = 0
        lines: list[str] = []
        for ch in driver.channels:
            regs = driver.registers_at(results, ch.function, ch.address, ch.count)
            label = f"{ch.id:<14}"
            if regs is None:
                err = driver.error_at(results, ch.function, ch.address)
                problems += 1
                lines.append(f"{label}FAIL  {ch.describe()}: {err}")
                if isinstance(err, ModbusRefused) and err.code == 2:
                    for shift in (-1, 1):
                        probe = Block(ch.function, ch.address + shift, ch.count)
                        if probe.address < 0:
                            continue
                        try:
                            with driver.link.hold(True):
                                got = driver._read_block(probe, 1)
                        except DriverError:
                            continue
                        value = ch.decode(got)
                        lines.append(
                            f"{'':<20}address {probe.address} answers ({_raw(got)} -> {value:g} {ch.unit}): "
                            f"if the manual counts registers from {'1' if shift == -1 else '0'}, "
                            f"use address: {probe.address}"
                        )
                continue
            value = ch.decode(regs)
            unit = f" {ch.unit}" if ch.unit else ""
            if not is_plausible(value):
                problems += 1
                lines.append(
                    f"{label}FAIL  {value:g} is not a measurement ({ch.describe()}; raw {_raw(regs)})"
                )
            elif not _in_range(ch, value):
                problems += 1
                lines.append(
                    f"{label}FAIL  {value:g}{unit} is outside min..max {ch.minimum}..{ch.maximum} "
                    f"({ch.describe()}; raw {_raw(regs)})"
                )
            else:
                lines.append(f"{label}{value:g}{unit}  ({ch.describe()}; raw {_raw(regs)})")
                continue
            alternatives = _alternatives(regs, ch)
            fitting = [(k, v) for k, v in alternatives if _in_range(ch, v)]
            if fitting:
                lines.append(f"{'':<20}the same registers read other ways:")
                for label_alt, v in fitting:
                    lines.append(f"{'':<22}{label_alt:<52} -> {v:g}{unit}")
            else:
                lines.append(
                    f"{'':<20}no other type or order gives a plausible value: check the address and function"
                )
        for st in driver.statuses:
            regs = driver.registers_at(results, st.function, st.address, 1)
            if regs is None:
                problems += 1
                lines.append(
                    f"status {st.address:<7}FAIL  {driver.error_at(results, st.function, st.address)}"
                )
                continue
            flag = st.flag(regs[0])
            said = f"flag {flag} on {', '.join(st.channels)}" if flag else "normal (no flag)"
            lines.append(
                f"status {st.address:<7}{st.function} register {st.address} = {regs[0]} "
                f"(0x{regs[0]:04x}, bits {regs[0]:016b}): {said}"
            )
        status = FAIL if problems else OK
        summary = f"{header} {len(driver.channels)} channel(s) in {len(driver.blocks)} read(s)"
        report.item(status, what, summary + (f", {problems} problem(s)" if problems else ""))
        for line in lines:
            report.sub(line)
    finally:
        with contextlib.suppress(Exception):
            driver.close()


def _raw(regs: list[int]) -> str:
    return " ".join(f"{r:04x}" for r in regs)


def _check_broker(config: EdgeConfig, report: Report) -> None:
    """Log in to every broker the agent may connect to (each entry of ``mqtt.hosts``)."""
    s = config.mqtt
    for broker in s.brokers:
        at = f" at {broker}" if s.hosts else ""
        if not s.login_per_connection:
            _check_login(config, report, broker, f"{s.client_id}-check", f"broker{at}")
            continue
        # One login per device connection, each bound to its client id: log in as each, as the
        # agent will (a running agent's connection is taken over for a moment and reconnects;
        # its outbox keeps the scans).
        for device in config.devices:
            _check_login(config, report, broker, f"{s.client_id}-{device.id}", f"broker {device.id}{at}")


def _check_login(config: EdgeConfig, report: Report, broker: Broker, client_id: str, what: str) -> None:
    from eit.mqttclient import make_client

    s = config.mqtt
    where = str(broker)
    # The keys that name this broker's address, for the hints.
    address_keys = "mqtt.hosts" if s.hosts else "mqtt.host and mqtt.port"
    host_key = "mqtt.hosts" if s.hosts else "mqtt.host"
    how = "over TLS" if s.tls else "without TLS"
    username = s.username_for(client_id)
    who = f"as {username}" if username else "without a login"
    try:
        client = make_client(s, client_id=client_id)
    except (ssl.SSLError, OSError, ValueError) as exc:
        files = f"mqtt.tls.ca_file {s.tls.ca_file}" if s.tls else "mqtt.tls"
        if s.tls and s.tls.cert_file:
            files += f", cert_file {s.tls.cert_file}, key_file {s.tls.key_file}"
        report.item(FAIL, what, f"the TLS files cannot be used ({exc}): check {files}")
        return
    done = threading.Event()
    result: dict[str, Any] = {}

    def on_connect(c: Any, u: Any, flags: Any, reason: Any, props: Any) -> None:
        result["connack"] = reason
        done.set()

    def on_disconnect(c: Any, u: Any, flags: Any, reason: Any, props: Any) -> None:
        result.setdefault("closed", reason)
        done.set()

    client.on_connect = on_connect
    client.on_disconnect = on_disconnect
    started = time.monotonic()
    try:
        client.connect(broker.host, broker.port, keepalive=s.keepalive_s)  # TCP and the TLS handshake, now
    except ssl.SSLCertVerificationError as exc:
        report.item(
            FAIL,
            what,
            f"{where}: the broker's certificate was not accepted ({exc.verify_message}): check "
            f"mqtt.tls.ca_file, and that {host_key} is a name the certificate was made for",
        )
        return
    except ssl.SSLError as exc:
        report.item(FAIL, what, f"{where}: TLS failed ({exc.reason}): check mqtt.tls and the broker's port")
        return
    except ConnectionRefusedError:
        report.item(FAIL, what, f"nothing listens at {where}: check {address_keys}")
        return
    except OSError as exc:  # timeouts, unknown host names, unreachable networks
        report.item(
            FAIL,
            what,
            f"cannot reach {where}: {exc.strerror or exc}: check {host_key}, the network and the firewall",
        )
        return
    client.loop_start()
    try:
        done.wait(BROKER_TIMEOUT_S)
    finally:
        client.disconnect()
        client.loop_stop()
    connack = result.get("connack")
    if connack is None:
        closed = result.get("closed")
        problem = f"closed the connection ({closed})" if closed is not None else "did not answer"
        hint = (
            ": it may want a client certificate (mqtt.tls.cert_file, key_file)"
            if s.tls and s.tls.cert_file is None
            else ": check that the port speaks MQTT" + (" over TLS" if s.tls else " without TLS")
        )
        report.item(FAIL, what, f"{where} {problem} before accepting the login {how}{hint}")
        return
    if connack.is_failure:
        report.item(
            FAIL,
            what,
            f"{where} refused the login {who} {how}: {connack}: check mqtt.username and the password "
            f"(password_file or password_env); the platform operator creates or rotates it with "
            f"`eit devices add {config.factory}`"
            + (f" (login {username}, client id {client_id})" if s.login_per_connection else ""),
        )
        return
    took = time.monotonic() - started
    cert = ""
    if s.tls:
        cert = f"; broker certificate verified against {s.tls.ca_file or 'the system CAs'}"
        if s.tls.cert_file:
            cert += f"; client certificate {s.tls.cert_file}"
    report.item(OK, what, f"logged in to {where} {how} {who} ({took * 1000:.0f} ms){cert}")
