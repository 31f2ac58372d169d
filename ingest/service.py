"""The ingest service: subscribe, decode, validate, store (batched), hand to the rules, ack.

The MQTT session is persistent and acknowledgements are manual: a message is acknowledged only
after its readings and its dead letters are durable. If the process dies before that, the broker
delivers the message again; the store's idempotent writes keep it from being counted twice.
While the store is down the batch is retried with backoff and jitter (tenacity) and nothing is
acknowledged, so the broker's flow control (receive maximum) holds the rest back: nothing is
lost, memory is bounded.

Beside paho's network thread, three stages run in their own threads, batch after batch in the
order received: decode (collect a batch, decode, validate), write (make it durable), rules (hand
it to the sinks, then acknowledge). While one batch is being written, the next is decoded and the
one before is with the rules, so the store's round trip overlaps the work in Python.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import paho.mqtt.client as mqtt
import tenacity

from eit import wire
from eit.errors import DecodeError
from eit.model import Reading
from eit.mqttclient import connect_async, make_client
from eit.mqttconf import MqttSettings
from eit.registry import Registry
from eit.store import Store, StoreError, StoreUnavailable
from eit.timeutil import now_ns
from ingest.deadletters import DeadLetter, DeadLetterStore, payload_text
from ingest.metrics import IngestMetrics
from ingest.settings import IngestSettings
from ingest.validate import Validator
from statedb import StateDbUnavailable

STORE_RETRY_FIRST_S = 0.5
STORE_RETRY_JITTER_S = 0.5

log = logging.getLogger("eit.ingest")

RECEIVE_MAXIMUM = 10000  # MQTT 5 flow control: unacknowledged messages the broker may send us


class ReadingSink(Protocol):
    """What runs after a batch is stored (the rule engine, the demo's console)."""

    def on_readings(self, readings: Sequence[Reading], now_ns: int) -> None: ...

    def on_status(self, factory: str, device: str, state: str, now_ns: int) -> None: ...


@dataclass(slots=True)
class Incoming:
    mid: int
    qos: int
    topic: str
    payload: bytes
    retain: bool = False


@dataclass(slots=True)
class BatchResult:
    readings: list[Reading] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    statuses: list[tuple[str, str, str]] = field(default_factory=list)


class Ingest:
    """Turns raw MQTT messages into stored readings and dead letters (no networking here)."""

    def __init__(
        self,
        registry: Registry,
        store: Store,
        deadletters: DeadLetterStore,
        metrics: IngestMetrics,
        sinks: Sequence[ReadingSink] = (),
        settings: IngestSettings | None = None,
    ) -> None:
        self.settings = settings or IngestSettings()
        self.registry = registry
        self.store = store
        self.deadletters = deadletters
        self.metrics = metrics
        self.sinks = list(sinks)
        self.validator = Validator(registry, self.settings.max_future_s)
        self._stopping = threading.Event()
        # Store outages: 0.5 s, 1 s, 2 s ... up to retry_max_s, each plus up to 0.5 s of jitter so
        # that ingest workers and servers coming back together do not retry in step.
        self._store_retries = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(StoreUnavailable),
            wait=tenacity.wait_exponential_jitter(
                multiplier=STORE_RETRY_FIRST_S, max=self.settings.retry_max_s, jitter=STORE_RETRY_JITTER_S
            ),
            sleep=self._wait_unless_stopping,
            before_sleep=self._store_unavailable,
            reraise=True,
        )
        self._dead_letter_retries = self._store_retries.copy(before_sleep=self._dead_letters_unavailable)

    def decode_batch(self, messages: Sequence[Incoming], received_ns: int) -> BatchResult:
        result = BatchResult()
        # Counted per batch, not per message: a metric update takes a lock and a label lookup.
        data_messages = status_messages = values_received = 0
        try:
            for msg in messages:
                try:
                    topic = wire.parse_topic(msg.topic)
                except DecodeError as exc:
                    self._dead(result, msg, exc.reason, exc.detail, exc.where, msg.payload, received_ns)
                    continue
                if topic.kind == "status":
                    status_messages += 1
                    self._status(result, msg, topic, received_ns)
                    continue
                data_messages += 1
                try:
                    decoded = wire.decode(msg.payload)
                    for scan in decoded.scans:
                        values_received += len(scan.values)
                    checked = self.validator.check(topic, decoded, received_ns)
                except DecodeError as exc:
                    self._dead(result, msg, exc.reason, exc.detail, exc.where, msg.payload, received_ns)
                    continue
                result.readings.extend(checked.readings)
                for rej in checked.rejected:
                    self._dead(result, msg, rej.reason, rej.detail, rej.where, rej.fragment, received_ns)
        finally:
            if data_messages:
                self.metrics.messages.labels("data").inc(data_messages)
            if status_messages:
                self.metrics.messages.labels("status").inc(status_messages)
            if values_received:
                self.metrics.readings_received.inc(values_received)
        return result

    def _status(self, result: BatchResult, msg: Incoming, topic: wire.Topic, received_ns: int) -> None:
        text = msg.payload.decode("utf-8", errors="replace").strip()
        state = text
        details: dict[str, Any] = {}
        if text.startswith("{"):
            try:
                details = json.loads(text)
                state = str(details.get("state", ""))
            except (json.JSONDecodeError, AttributeError):
                state = ""
        if state not in (wire.STATUS_ONLINE, wire.STATUS_OFFLINE):
            self._dead(
                result,
                msg,
                "bad_status",
                f"status must be 'online', 'offline' or JSON with a state, got {text[:60]!r}",
                "",
                msg.payload,
                received_ns,
            )
            return
        if self.registry.device(topic.factory, topic.device) is None:
            self._dead(
                result,
                msg,
                "unknown_device",
                f"status for {topic.factory}/{topic.device}, which is not in the site registry",
                "",
                msg.payload,
                received_ns,
            )
            return
        result.statuses.append((topic.factory, topic.device, state))
        self._agent_metrics(topic, details)

    def _agent_metrics(self, topic: wire.Topic, details: dict[str, Any]) -> None:
        """The agent's own figures from a JSON status: outbox drops and backlog, clock."""
        labels = (topic.factory, topic.device)
        for key, gauge in (
            ("outbox_dropped", self.metrics.edge_outbox_dropped),
            ("outbox_pending", self.metrics.edge_outbox_pending),
        ):
            value = details.get(key)
            if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                gauge.labels(*labels).set(value)
        clock = details.get("clock")
        if isinstance(clock, str):
            self.metrics.edge_clock_ok.labels(*labels).set(0 if clock == "wrong" else 1)

    def _dead(
        self,
        result: BatchResult,
        msg: Incoming,
        reason: str,
        detail: str,
        where: str,
        payload: Any,
        received_ns: int,
    ) -> None:
        self.metrics.dead_letters.labels(reason).inc()
        log.warning("dead letter on %s: %s: %s", msg.topic, reason, f"{where}: {detail}" if where else detail)
        result.dead.append(DeadLetter(received_ns, msg.topic, reason, detail, where, payload_text(payload)))

    def store_batch(self, result: BatchResult) -> None:
        """Make the batch durable, retrying while the store is unavailable. Raises
        :class:`StoreUnavailable` only when the ingest stops meanwhile."""
        for attempt in self._store_retries:
            with attempt:
                started = time.perf_counter()
                self._write(result)
                self.metrics.store_write_seconds.observe(time.perf_counter() - started)
        for attempt in self._dead_letter_retries:
            with attempt:
                self._keep_dead_letters(result)
        self.metrics.readings_stored.inc(len(result.readings))
        self.metrics.batch_readings.observe(len(result.readings))

    def _keep_dead_letters(self, result: BatchResult) -> None:
        try:
            self.deadletters.add(result.dead)
        except StateDbUnavailable as exc:
            # The state database is down (PostgreSQL restarting): an outage like the store's.
            raise StoreUnavailable(f"dead letters: {exc}") from exc

    def _dead_letters_unavailable(self, state: tenacity.RetryCallState) -> None:
        assert state.outcome is not None and state.next_action is not None
        self.metrics.store_errors.labels("dead_letters_unavailable").inc()
        log.error(
            "dead letters cannot be kept, retrying in %.1f s (nothing acknowledged): %s",
            state.next_action.sleep,
            state.outcome.exception(),
        )

    def _store_unavailable(self, state: tenacity.RetryCallState) -> None:
        assert state.outcome is not None and state.next_action is not None
        self.metrics.store_errors.labels("unavailable").inc()
        log.error(
            "store unavailable, retrying in %.1f s (nothing acknowledged): %s",
            state.next_action.sleep,
            state.outcome.exception(),
        )

    def _wait_unless_stopping(self, seconds: float) -> None:
        if self._stopping.wait(seconds):
            raise StoreUnavailable("the ingest is stopping while the store is unavailable")

    def _write(self, result: BatchResult) -> None:
        try:
            self.store.write(result.readings)
        except StoreError as exc:
            # The store refused the batch itself: find the readings it refuses, one by one, and
            # dead-letter only those.
            self.metrics.store_errors.labels("refused").inc()
            log.error("store refused a batch of %d readings: %s", len(result.readings), exc)
            good: list[Reading] = []
            for reading in result.readings:
                try:
                    self.store.write([reading])
                    good.append(reading)
                except StoreError as one:
                    self.metrics.dead_letters.labels("store_refused").inc()
                    result.dead.append(
                        DeadLetter(
                            now_ns(),
                            wire.data_topic(reading.factory, reading.device),
                            "store_refused",
                            str(one),
                            reading.channel,
                            payload_text(
                                {
                                    "ts_ns": reading.ts_ns,
                                    "channel": reading.channel,
                                    "value": reading.value,
                                    "flag": reading.flag,
                                }
                            ),
                        )
                    )
            result.readings = good

    def deliver(self, result: BatchResult, now: int) -> None:
        for sink in self.sinks:
            try:
                if result.readings:
                    sink.on_readings(result.readings, now)
                for factory, device, state in result.statuses:
                    sink.on_status(factory, device, state, now)
            except Exception:
                log.exception("sink %s failed on a batch", type(sink).__name__)

    def process(self, messages: Sequence[Incoming]) -> BatchResult:
        received = now_ns()
        result = self.decode_batch(messages, received)
        self.store_batch(result)
        self.deliver(result, now_ns())
        return result

    def stop(self) -> None:
        self._stopping.set()


class MqttIngest:
    """Connects :class:`Ingest` to the broker: persistent session, manual acks, batching."""

    def __init__(self, ingest: Ingest, mqtt_settings: MqttSettings) -> None:
        self.ingest = ingest
        self.settings = mqtt_settings
        self.metrics = ingest.metrics
        # SimpleQueue: the C queue, a cheaper put in paho's network thread than queue.Queue.
        self._queue: queue.SimpleQueue[Incoming] = queue.SimpleQueue()
        # Messages received (paho's thread) and acknowledged (the writer's): the queue depth gauge
        # is their difference, computed when it is read rather than updated per message.
        self._received = 0
        self._done = 0
        self.metrics.queue_depth.set_function(lambda: self._received - self._done)
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ingest-decode", daemon=True)
        # Decoded batches waiting to be written: two at most, so memory stays bounded while the
        # store is slow (the broker's flow control holds back the rest).
        self._handoff: queue.Queue[tuple[list[Incoming], BatchResult] | None] = queue.Queue(maxsize=2)
        self._writer = threading.Thread(target=self._write_stage, name="ingest-write", daemon=True)
        # Stored batches on their way to the rules; unbounded, but never more than the decoded
        # batches the broker's receive maximum lets in.
        self._stored: queue.SimpleQueue[tuple[list[Incoming], BatchResult] | None] = queue.SimpleQueue()
        self._rules = threading.Thread(target=self._rules_stage, name="ingest-rules", daemon=True)
        self.client = make_client(mqtt_settings, persistent=True, manual_ack=True)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def start(self) -> None:
        connect_async(self.client, self.settings, persistent=True, receive_maximum=RECEIVE_MAXIMUM)
        self.client.loop_start()
        self._thread.start()
        self._writer.start()
        self._rules.start()

    def wait_connected(self, timeout_s: float) -> bool:
        return self._connected.wait(timeout_s)

    def stop(self) -> None:
        self._stop.set()
        self.ingest.stop()
        self._thread.join(30.0)
        self._writer.join(30.0)
        self._rules.join(30.0)
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        if reason.is_failure:
            log.error(
                "broker %s:%s refused the connection: %s", self.settings.host, self.settings.port, reason
            )
            return
        client.subscribe([(wire.DATA_SUBSCRIPTION, 1), (wire.STATUS_SUBSCRIPTION, 1)])
        self._connected.set()
        self.metrics.broker_connected.set(1)
        log.info(
            "connected to broker %s:%s (session present: %s)",
            self.settings.host,
            self.settings.port,
            getattr(flags, "session_present", "?"),
        )

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        self._connected.clear()
        self.metrics.broker_connected.set(0)
        if not self._stop.is_set():
            log.warning("disconnected from broker: %s (reconnecting)", reason)

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        self._queue.put(
            Incoming(message.mid, message.qos, message.topic, bytes(message.payload), message.retain)
        )
        self._received += 1

    def _run(self) -> None:
        """The decoding stage: collects a batch, decodes and validates it, and hands it to the
        writing stage, so that a batch is decoded while the one before it is being written."""
        settings = self.ingest.settings
        # Roughly 20 bytes of JSON per value: cap a batch near batch_max_readings values.
        budget = settings.batch_max_readings * 20
        try:
            while not self._stop.is_set():
                try:
                    first = self._queue.get(timeout=0.2)
                except queue.Empty:
                    continue
                batch = [first]
                size = len(first.payload)
                deadline = time.monotonic() + settings.flush_interval_s
                while size < budget:
                    # What has arrived meanwhile joins the batch at once; an idle queue is waited
                    # on until the flush deadline.
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        remaining = deadline - time.monotonic()
                        if remaining <= 0:
                            break
                        try:
                            item = self._queue.get(timeout=remaining)
                        except queue.Empty:
                            break
                    batch.append(item)
                    size += len(item.payload)
                result = self.ingest.decode_batch(batch, now_ns())
                self._hand_over((batch, result))
        finally:
            self._hand_over(None)

    def _hand_over(self, item: tuple[list[Incoming], BatchResult] | None) -> None:
        while True:
            try:
                self._handoff.put(item, timeout=0.2)
                return
            except queue.Full:
                if not self._writer.is_alive():
                    return  # the writer stopped (store down while stopping): nothing to wait for

    def _write_stage(self) -> None:
        """The writing stage: makes each batch durable and hands it on to the rules stage."""
        try:
            while True:
                item = self._handoff.get()
                if item is None:
                    return
                try:
                    self.ingest.store_batch(item[1])
                except StoreUnavailable:
                    return  # stopping while the store is down: leave the batch unacknowledged
                self._stored.put(item)
        finally:
            self._stored.put(None)

    def _rules_stage(self) -> None:
        """The rules stage: hands each stored batch to the rules, then acknowledges its messages,
        in the order they were received (a message is acknowledged only once its readings are
        stored and the rules have seen them; a crash before that brings it back)."""
        while True:
            item = self._stored.get()
            if item is None:
                return
            batch, result = item
            self.ingest.deliver(result, now_ns())
            for msg in batch:
                if msg.qos > 0:
                    self.client.ack(msg.mid, msg.qos)
            self._done += len(batch)
