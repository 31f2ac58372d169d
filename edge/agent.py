"""The agent: one scan thread and one publisher per device, sharing one on-disk outbox.

Scan threads never wait on the network: a scan goes to the outbox and the publisher is woken.
A meter that stops answering affects only its own thread (devices on one serial line share it,
see :mod:`edge.drivers.modbus`); after ``offline_after_failures`` failed reads in a row its
status topic says ``offline`` until it answers again.

Every scan is stamped by the agent in UTC at the start of its read. The clock is judged at each
scan (:mod:`edge.clock`); a scan taken while it is known to be wrong gets the HJ 212 flag ``D``
on every channel the meter reported as normal, and is counted.

A scan the outbox cannot store (a full disk, a read-only file system) is lost, counted
(``outbox_write_errors``) and reported in the device's status message (``outbox_error``) until
the outbox takes scans again; the scan loop goes on at its interval and tries again at the next
scan. The scan loops and the publishers run under the agent's supervisor (:mod:`eit.supervise`):
a loop that fails anyway is restarted, and the status says so (``scan_restarts``); one that fails
too often stops the agent with a non-zero exit code, for systemd to start it afresh.
"""

from __future__ import annotations

import collections
import functools
import logging
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from edge.clock import ClockState, ClockWatch
from edge.config import DeviceConfig, EdgeConfig
from edge.drivers.base import DriverError, SourceExhausted
from edge.keys import key_path, load_signer
from edge.outbox import Outbox
from edge.publisher import DevicePublisher
from eit.signing import Signer
from eit.supervise import RestartPolicy, Stage, StageStatus, SupervisedLoop, Supervisor
from eit.timeutil import now_ns

log = logging.getLogger("eit.edge.agent")

CLOCK_WRONG_FLAG = "D"
OUTBOX_LOG_EVERY_S = 60.0  # while the outbox refuses scans, the log repeats it this often
# A scan (a meter read and its storing) under way for this long is stuck (the agent's /healthz).
STUCK_AFTER_S = 60.0


@dataclass(slots=True)
class DeviceCounters:
    scans: int = 0
    read_failures: int = 0
    consecutive_failures: int = 0
    clock_flagged_scans: int = 0
    outbox_write_errors: int = 0  # scans lost because the outbox could not store them
    outbox_error: str = ""  # set while the outbox refuses scans
    last_error: str = ""
    last_read_s: float = 0.0
    # (scheduled tick, seconds late at the start of the read, seconds the read took), newest last
    recent: collections.deque[tuple[float, float, float]] = field(
        default_factory=lambda: collections.deque(maxlen=120)
    )


class DeviceScanner(SupervisedLoop):
    stop_wait_s = 10.0

    def __init__(
        self,
        factory: str,
        device: DeviceConfig,
        outbox: Outbox,
        publisher: DevicePublisher,
        clock: ClockWatch,
        on_clock_change: Any = None,
        supervisor: Supervisor | None = None,
    ) -> None:
        self.factory = factory
        self.device = device
        self.outbox = outbox
        self.publisher = publisher
        self.clock = clock
        self.on_clock_change = on_clock_change
        self.counters = DeviceCounters()
        self.finished = threading.Event()
        # Stage backlog 1 while a scan is under way.
        super().__init__(supervisor or Supervisor(), Stage(f"scan-{device.id}"))
        self._driver_open = False
        self._next_outbox_log = 0.0

    def status_fields(self) -> dict[str, Any]:
        """What the device's status message says of its scanning, beside its state."""
        fields: dict[str, Any] = {}
        if self.counters.outbox_write_errors:
            fields["outbox_write_errors"] = self.counters.outbox_write_errors
        if self.counters.outbox_error:
            fields["outbox_error"] = self.counters.outbox_error
        if self.stage.restarts:
            fields["scan_restarts"] = self.stage.restarts
            fields["scan_error"] = self.stage.last_error
        return fields

    def _run(self) -> None:
        interval = self.device.scan_interval_s
        if self.stage.restarts:
            self.publisher.request_status()  # the status tells of the restart
        if not self._driver_open:
            self._driver_open = True
            try:
                self.device.driver.connect()
            except DriverError as exc:
                log.error("device %s: cannot connect to the meter: %s", self.device.id, exc)
        # Scans fall on multiples of the interval (wall clock), so scans of different devices
        # line up and a restart does not shift the timeline.
        next_at = (time.time() // interval + 1) * interval
        while not self._stop.wait(max(0.0, next_at - time.time())):
            with self.stage.working():
                if not self.scan_once(tick=next_at):
                    break
            now = time.time()
            next_at += interval
            if next_at <= now:  # fell behind (slow meter, suspended machine): skip missed ticks
                next_at = (now // interval + 1) * interval
        self.device.driver.close()
        self._driver_open = False

    def scan_once(self, tick: float | None = None) -> bool:
        """Read the meter once and store the scan. False when the driver has no more data."""
        ts_ns = now_ns() // 1_000_000 * 1_000_000  # millisecond resolution on the wire
        started = time.monotonic()
        try:
            scan = self.device.driver.read()
        except SourceExhausted:
            self.finished.set()
            return False
        except DriverError as exc:
            self._note_read(tick, ts_ns, started)
            self.counters.read_failures += 1
            self.counters.consecutive_failures += 1
            self.counters.last_error = str(exc)
            log.warning("device %s: read failed: %s", self.device.id, exc)
            if self.counters.consecutive_failures == self.device.offline_after_failures:
                self.publisher.set_meter_problem(str(exc))
            return True
        self._note_read(tick, ts_ns, started)
        if self.counters.consecutive_failures >= self.device.offline_after_failures:
            log.info("device %s: the meter answers again", self.device.id)
            self.publisher.set_meter_problem(None)
        self.counters.consecutive_failures = 0
        self.counters.last_error = ""
        flags = scan.flags
        clock_ok = True
        if scan.ts_ns is not None:  # replayed data carries its own recorded time
            ts_ns = scan.ts_ns
        else:
            state = self.clock.judge(ts_ns)
            if self.on_clock_change is not None:
                self.on_clock_change(state)
            if state.known_wrong:
                clock_ok = False
                flags = {ch: flags.get(ch, CLOCK_WRONG_FLAG) for ch in scan.values}
                self.counters.clock_flagged_scans += 1
            else:
                self.clock.note_stamped(ts_ns)
        try:
            self.outbox.append(self.device.id, ts_ns, scan.values, flags, clock_ok=clock_ok)
        except sqlite3.Error as exc:
            self._outbox_refused(exc)
            return True  # the next scan tries again
        if self.counters.outbox_error:
            log.info(
                "device %s: the outbox stores scans again (%d scan(s) lost while it could not)",
                self.device.id,
                self.counters.outbox_write_errors,
            )
            self.counters.outbox_error = ""
            self.publisher.request_status()
        self.counters.scans += 1
        self.publisher.wake()
        return True

    def _outbox_refused(self, exc: sqlite3.Error) -> None:
        """A scan the outbox cannot store: lost, counted, and told in the status message."""
        self.counters.outbox_write_errors += 1
        problem = f"outbox {self.outbox.path} cannot store scans: {exc}"
        if problem != self.counters.outbox_error:
            self.counters.outbox_error = problem
            self._next_outbox_log = time.monotonic() + OUTBOX_LOG_EVERY_S
            log.error("device %s: %s; the scan is lost, the next one tries again", self.device.id, problem)
            self.publisher.request_status()
        elif time.monotonic() >= self._next_outbox_log:
            self._next_outbox_log = time.monotonic() + OUTBOX_LOG_EVERY_S
            log.error(
                "device %s: %s (%d scan(s) lost so far)",
                self.device.id,
                problem,
                self.counters.outbox_write_errors,
            )
            self.publisher.request_status()  # the count in the status message

    def _note_read(self, tick: float | None, ts_ns: int, started: float) -> None:
        took = time.monotonic() - started
        self.counters.last_read_s = took
        if tick is not None:
            self.counters.recent.append((tick, ts_ns / 1e9 - tick, took))


class Agent:
    def __init__(self, config: EdgeConfig, restart_policy: RestartPolicy | None = None) -> None:
        self.config = config
        # The scan loops and publishers run under this supervisor; one that fails too often
        # stops the agent (run_agent exits non-zero).
        self.failure: str | None = None
        self.failed = threading.Event()
        self.supervisor = Supervisor(restart_policy, on_give_up=self._give_up)
        self.publishers: dict[str, DevicePublisher] = {}
        signers: dict[str, Signer] = {}
        if config.signing_keys is not None:
            for device in config.devices:
                signers[device.id] = load_signer(
                    key_path(config.signing_keys, device.id), config.source, "signing.keys"
                )
        self.outbox = Outbox(
            config.outbox_path,
            config.outbox_max_bytes,
            config.outbox_max_age_s,
            factory=config.factory,
            signers=signers,
            on_drop=self._outbox_dropped,
        )
        self.clock = ClockWatch(config.clock_min_year, self.outbox.latest_ts_ns)
        self.clock_state: ClockState = self.clock.judge(now_ns())
        self._clock_lock = threading.Lock()
        self.scanners: dict[str, DeviceScanner] = {}
        self.metrics_server: Any = None
        for device in config.devices:
            publisher = DevicePublisher(
                config.factory,
                device.id,
                config.mqtt,
                self.outbox,
                max_inflight=config.max_inflight,
                max_scans_per_message=config.max_scans_per_message,
                status_extra=functools.partial(self._status_fields, device.id),
                status_interval_s=config.status_interval_s,
                sends_status=not device.replays,
                supervisor=self.supervisor,
            )
            self.publishers[device.id] = publisher
            self.scanners[device.id] = DeviceScanner(
                config.factory,
                device,
                self.outbox,
                publisher,
                self.clock,
                self._clock_seen,
                supervisor=self.supervisor,
            )

    def _outbox_dropped(self, device: str) -> None:
        """A bound dropped scans of the device: its status (naming the seqs) goes out now."""
        publisher = self.publishers.get(device)
        if publisher is not None:
            publisher.request_status()

    def _status_fields(self, device: str) -> dict[str, Any]:
        fields = self.clock_state.as_status()
        scanner = self.scanners.get(device)
        if scanner is not None:
            fields.update(scanner.status_fields())
        return fields

    def _give_up(self, stage: Stage, error: BaseException) -> None:
        self.failure = f"{stage.name} failed too often: {type(error).__name__}: {error}"
        log.critical("%s; stopping the agent for the service manager to start it afresh", self.failure)
        self.failed.set()

    def stage_report(self) -> list[StageStatus]:
        return self.supervisor.report(STUCK_AFTER_S)

    def _clock_seen(self, state: ClockState) -> None:
        with self._clock_lock:
            if state.state == self.clock_state.state:
                return
            before, self.clock_state = self.clock_state, state
        _log_clock(state, before)
        for publisher in self.publishers.values():
            publisher.request_status()

    def start(self) -> None:
        log.info(
            "agent for factory %s: %d device(s), outbox %s (%d scan(s) waiting), broker %s%s",
            self.config.factory,
            len(self.config.devices),
            self.config.outbox_path,
            self.outbox.count(),
            " or ".join(str(b) for b in self.config.mqtt.brokers),
            " (TLS)" if self.config.mqtt.tls else "",
        )
        if self.clock_state.state != "ok":
            _log_clock(self.clock_state, None)
        if self.config.metrics is not None:
            from edge.metrics import serve_metrics

            self.metrics_server = serve_metrics(self, *self.config.metrics)
        for publisher in self.publishers.values():
            publisher.start()
        for scanner in self.scanners.values():
            scanner.start()

    def stop(self, drain_s: float = 3.0) -> None:
        """Stop scanning, give the broker ``drain_s`` to acknowledge what is waiting, then stop.
        Whatever is still unacknowledged stays in the outbox for the next start."""
        for scanner in self.scanners.values():
            scanner.stop()
        deadline = time.monotonic() + drain_s
        for publisher in self.publishers.values():
            publisher.wake()
        while time.monotonic() < deadline and self.outbox.count() > 0:
            if not any(p.stats.connected for p in self.publishers.values()):
                break
            time.sleep(0.05)
        for publisher in self.publishers.values():
            publisher.stop()
        if self.metrics_server is not None:
            self.metrics_server.shutdown()
        waiting = self.outbox.count()
        if waiting:
            log.info(
                "stopped with %d scan(s) waiting in the outbox; they are sent on the next start", waiting
            )
        self.outbox.close()

    def scans_taken(self) -> int:
        return sum(s.counters.scans for s in self.scanners.values())

    def finished(self) -> bool:
        """Every device replayed all its data and the broker has every scan."""
        return all(s.finished.is_set() for s in self.scanners.values()) and self.outbox.count() == 0

    def wait_drained(self, timeout_s: float) -> bool:
        """Wait until the outbox is empty (every scan acknowledged by the broker)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.outbox.count() == 0:
                return True
            time.sleep(0.1)
        return self.outbox.count() == 0


class _ClockLog:
    """The machine has one clock: the agents of one process (`eit demo` runs three) log each
    change of its state once, not once each."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: str | None = None

    def first_to_see(self, state: str) -> bool:
        with self._lock:
            if state == self._last:
                return False
            self._last = state
            return True


_CLOCK_LOG = _ClockLog()


def _log_clock(state: ClockState, before: ClockState | None) -> None:
    if not _CLOCK_LOG.first_to_see(state.state):
        return
    if state.state == "ok":
        log.info("clock: ok now (was %s)", before.state if before else "unknown")
    elif state.known_wrong:
        log.error("clock: %s: %s", state.state, state.problem)  # its scans are flagged D
    else:
        # Not synchronised: the scans are kept unflagged; the time may drift, which the operator
        # should fix, but nothing is wrong with the data yet.
        log.warning("clock: %s: %s", state.state, state.problem)
