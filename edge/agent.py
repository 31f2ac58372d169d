"""The agent: one scan thread and one publisher per device, sharing one on-disk outbox.

Scan threads never wait on the network: a scan goes to the outbox and the publisher is woken.
A meter that stops answering affects only its own thread; after ``offline_after_failures``
failed reads in a row its status topic says ``offline`` until it answers again.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from edge.config import DeviceConfig, EdgeConfig
from edge.drivers.base import DriverError
from edge.outbox import Outbox
from edge.publisher import DevicePublisher
from eit import wire
from eit.timeutil import now_ns

log = logging.getLogger("eit.edge.agent")


@dataclass(slots=True)
class DeviceCounters:
    scans: int = 0
    read_failures: int = 0
    consecutive_failures: int = 0


class DeviceScanner:
    def __init__(
        self, factory: str, device: DeviceConfig, outbox: Outbox, publisher: DevicePublisher
    ) -> None:
        self.factory = factory
        self.device = device
        self.outbox = outbox
        self.publisher = publisher
        self.counters = DeviceCounters()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"scan-{device.id}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10.0)

    def _run(self) -> None:
        interval = self.device.scan_interval_s
        try:
            self.device.driver.connect()
        except DriverError as exc:
            log.error("device %s: cannot connect to the meter: %s", self.device.id, exc)
        # Scans fall on multiples of the interval (wall clock), so scans of different devices
        # line up and a restart does not shift the timeline.
        next_at = (time.time() // interval + 1) * interval
        while not self._stop.wait(max(0.0, next_at - time.time())):
            self.scan_once()
            now = time.time()
            next_at += interval
            if next_at <= now:  # fell behind (slow meter, suspended machine): skip missed ticks
                next_at = (now // interval + 1) * interval
        self.device.driver.close()

    def scan_once(self) -> None:
        ts_ns = now_ns() // 1_000_000 * 1_000_000  # millisecond resolution on the wire
        try:
            scan = self.device.driver.read()
        except DriverError as exc:
            self.counters.read_failures += 1
            self.counters.consecutive_failures += 1
            log.warning("device %s: read failed: %s", self.device.id, exc)
            if self.counters.consecutive_failures == self.device.offline_after_failures:
                self._say(wire.STATUS_OFFLINE.encode())
            return
        if self.counters.consecutive_failures >= self.device.offline_after_failures:
            self._say(self.publisher.status_payload())
        self.counters.consecutive_failures = 0
        self.outbox.append(self.device.id, ts_ns, scan.values, scan.flags)
        self.counters.scans += 1
        self.publisher.wake()

    def _say(self, payload: bytes) -> None:
        self.publisher.client.publish(self.publisher.status_topic, payload, qos=1, retain=True)


class Agent:
    def __init__(self, config: EdgeConfig) -> None:
        self.config = config
        self.outbox = Outbox(config.outbox_path)
        self.publishers: dict[str, DevicePublisher] = {}
        self.scanners: dict[str, DeviceScanner] = {}
        for device in config.devices:
            publisher = DevicePublisher(
                config.factory,
                device.id,
                config.mqtt,
                self.outbox,
                max_inflight=config.max_inflight,
                max_scans_per_message=config.max_scans_per_message,
            )
            self.publishers[device.id] = publisher
            self.scanners[device.id] = DeviceScanner(config.factory, device, self.outbox, publisher)

    def start(self) -> None:
        log.info(
            "agent for factory %s: %d device(s), outbox %s (%d scan(s) waiting), broker %s:%s",
            self.config.factory,
            len(self.config.devices),
            self.config.outbox_path,
            self.outbox.count(),
            self.config.mqtt.host,
            self.config.mqtt.port,
        )
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
        waiting = self.outbox.count()
        if waiting:
            log.info(
                "stopped with %d scan(s) waiting in the outbox; they are sent on the next start", waiting
            )
        self.outbox.close()

    def scans_taken(self) -> int:
        return sum(s.counters.scans for s in self.scanners.values())

    def wait_drained(self, timeout_s: float) -> bool:
        """Wait until the outbox is empty (every scan acknowledged by the broker)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.outbox.count() == 0:
                return True
            time.sleep(0.1)
        return self.outbox.count() == 0
