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

The stages run under a supervisor (:mod:`eit.supervise`): a stage that fails is restarted with the
batch it held, and each reports its liveness, backlog (messages) and progress to ``/healthz``.

Dead letter or wait (docs/architecture.md): whatever is wrong with a message itself makes it a
dead letter, and the message is acknowledged with the valid rest of its batch. Any exception one
message raises while it is decoded or validated is such a fault (``internal_error`` with the
exception, when no reason foresaw it); a reading the store refuses alone (a value beyond the
store's type, a field type conflict, older than the retention) is found by writing the batch in
halves until the refused readings stand alone. Whatever is about the store itself (unreachable,
credentials, permissions, a missing database, a full disk, a series limit: StoreUnavailable) is
an outage: the batch waits, unacknowledged, and is retried; :attr:`Ingest.store_outage` and the
metrics say since when and why. No stage thread ends because of one message.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import paho.mqtt.client as mqtt
import tenacity

from eit import wire
from eit.bounds import SEQ_MAX
from eit.errors import DecodeError
from eit.model import Reading
from eit.mqttclient import connect_async, make_client
from eit.mqttconf import MqttSettings
from eit.registry import Registry
from eit.signing import RESULTS, VERIFIED
from eit.store import Point, Store, StoreError, StoreUnavailable
from eit.storeschema import ChainEvents
from eit.supervise import Stage, Supervisor, Worker
from eit.timeutil import now_ns, ns_to_iso
from ingest.deadletters import DeadLetter, DeadLetterStore, Evicted, payload_text, printable
from ingest.metrics import IngestMetrics
from ingest.settings import IngestSettings
from ingest.validate import Validator
from ingest.verify import KeyRing, ScanVerifier
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
    # AMQP only: the partition (queue) it came from and the connection that delivered it.
    partition: int = -1
    epoch: int = 0


@dataclass(slots=True)
class BatchResult:
    readings: list[Reading] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    statuses: list[tuple[str, str, str]] = field(default_factory=list)
    chain_events: list[Point] = field(default_factory=list)  # ingest/verify.py


@dataclass(frozen=True, slots=True)
class StoreOutage:
    """Why the ingest holds its batches back (unacknowledged), and since when."""

    what: str  # "store" (the readings' store) or "state database" (the dead letters')
    reason: str  # the store's own words
    since_ns: int
    attempts: int = 1


@dataclass(slots=True)
class _MessageResult:
    """One message's part of a batch, added to it only once the whole message is decoded."""

    readings: list[Reading] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    status: tuple[str, str, str] | None = None
    chain_events: list[Point] = field(default_factory=list)


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
        device_keys: Path | None = None,
    ) -> None:
        self.settings = settings or IngestSettings()
        self.registry = registry
        self.store = store
        self.deadletters = deadletters
        self.metrics = metrics
        self.sinks = list(sinks)
        self.validator = Validator(registry, self.settings.max_future_s)
        # Signed scans (wire v2): each scan's result is stored with its readings (``verified``).
        self._verification_counts: dict[str, int] = {}
        self.verifier = ScanVerifier(
            KeyRing(device_keys, on_error=lambda _problem: metrics.device_keys_errors.inc()),
            head_of=self._newest_stored_seq,
            count=self._count_verification,
        )
        self._stopping = threading.Event()
        self._outage: StoreOutage | None = None
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

    def _newest_stored_seq(self, factory: str, device: str) -> int | None:
        seqs = [r.seq for r in self.store.latest(factory, device) if r.seq is not None]
        return max(seqs) if seqs else None

    def _count_verification(self, name: str, n: int) -> None:
        # Added up per batch (decode_batch): a metric update takes a lock and a label lookup.
        self._verification_counts[name] = self._verification_counts.get(name, 0) + n

    def _flush_verification_counts(self) -> None:
        for name, n in self._verification_counts.items():
            if name in RESULTS or name == "not_signed":
                self.metrics.scans_verified.labels(name).inc(n)
            else:
                self.metrics.chain_events.labels(name).inc(n)
        self._verification_counts.clear()

    def decode_batch(self, messages: Sequence[Incoming], received_ns: int) -> BatchResult:
        result = BatchResult()
        # Counted per batch, not per message: a metric update takes a lock and a label lookup.
        counts = {"data": 0, "status": 0, "values": 0}
        try:
            for msg in messages:
                one = _MessageResult()
                try:
                    self._decode_message(one, msg, received_ns, counts)
                except Exception as exc:  # any fault of one message is that message's alone
                    log.error(
                        "message on %s raised %s while decoded: dead-lettered as internal_error",
                        printable(msg.topic[:200]),
                        type(exc).__name__,
                        exc_info=True,
                    )
                    one = _MessageResult()
                    self._dead(
                        one,
                        msg,
                        "internal_error",
                        f"{type(exc).__name__}: {exc}",
                        "",
                        msg.payload,
                        received_ns,
                    )
                result.readings.extend(one.readings)
                result.dead.extend(one.dead)
                result.chain_events.extend(one.chain_events)
                if one.status is not None:
                    result.statuses.append(one.status)
        finally:
            if counts["data"]:
                self.metrics.messages.labels("data").inc(counts["data"])
            if counts["status"]:
                self.metrics.messages.labels("status").inc(counts["status"])
            if counts["values"]:
                self.metrics.readings_received.inc(counts["values"])
            if self._verification_counts:
                self._flush_verification_counts()
        return result

    def _decode_message(
        self, one: _MessageResult, msg: Incoming, received_ns: int, counts: dict[str, int]
    ) -> None:
        try:
            topic = wire.parse_topic(msg.topic)
        except DecodeError as exc:
            self._dead(one, msg, exc.reason, exc.detail, exc.where, msg.payload, received_ns)
            return
        if topic.kind == "status":
            counts["status"] += 1
            self._status(one, msg, topic, received_ns)
            return
        counts["data"] += 1
        try:
            decoded = wire.decode(msg.payload)
            for scan in decoded.scans:
                counts["values"] += len(scan.values)
            verified: list[str] | None = None
            if self.registry.device(topic.factory, topic.device) is not None:
                verified, one.chain_events = self.verifier.check(topic.factory, topic.device, decoded.scans)
                if verified is not None and self.verifier.follows(topic.factory, topic.device):
                    verified = self._keep_verified_evidence(topic, decoded, verified)
            checked = self.validator.check(topic, decoded, received_ns, verified)
        except DecodeError as exc:
            self._dead(one, msg, exc.reason, exc.detail, exc.where, msg.payload, received_ns)
            return
        one.readings = checked.readings
        for rej in checked.rejected:
            self._dead(one, msg, rej.reason, rej.detail, rej.where, rej.fragment, received_ns)

    def _keep_verified_evidence(
        self, topic: wire.Topic, decoded: wire.Decoded, verified: list[str]
    ) -> list[str]:
        """Scans that do not verify under a seq received verified before become dead letters
        (``unverified_copy``): a changed copy must not overwrite the verified readings."""
        kept: list[wire.Scan] = []
        kept_results: list[str] = []
        for scan, result in zip(decoded.scans, verified, strict=True):
            if (
                result != VERIFIED
                and scan.seq is not None
                and self.verifier.verified_before(topic.factory, topic.device, scan.seq)
            ):
                decoded.rejected.append(
                    wire.Rejected(
                        "unverified_copy",
                        f"seq {scan.seq} was received signed and verified; this copy is "
                        f"{result or 'not signed'}: kept here, the verified readings stay",
                        f"scans[seq={scan.seq}]",
                        wire.signed_scan_body(scan),
                    )
                )
                continue
            kept.append(scan)
            kept_results.append(result)
        decoded.scans = kept
        return kept_results

    def _status(self, one: _MessageResult, msg: Incoming, topic: wire.Topic, received_ns: int) -> None:
        try:
            status = wire.decode_status(msg.payload)
        except DecodeError as exc:
            self._dead(one, msg, exc.reason, exc.detail, exc.where, msg.payload, received_ns)
            return
        if self.registry.device(topic.factory, topic.device) is None:
            self._dead(
                one,
                msg,
                "unknown_device",
                f"status for {topic.factory}/{topic.device}, which is not in the site registry",
                "",
                msg.payload,
                received_ns,
            )
            return
        one.status = (topic.factory, topic.device, status.state)
        self._agent_metrics(topic, status.details)
        one.chain_events = self.verifier.reported_drops(topic.factory, topic.device, status.details)

    def _agent_metrics(self, topic: wire.Topic, details: dict[str, Any]) -> None:
        """The agent's own figures from a JSON status: outbox drops, backlog and write errors,
        scan loop restarts, clock."""
        labels = (topic.factory, topic.device)
        for key, gauge in (
            ("outbox_dropped", self.metrics.edge_outbox_dropped),
            ("outbox_pending", self.metrics.edge_outbox_pending),
            ("outbox_write_errors", self.metrics.edge_outbox_write_errors),
            ("scan_restarts", self.metrics.edge_scan_restarts),
        ):
            value = details.get(key, 0 if key in ("outbox_write_errors", "scan_restarts") else None)
            if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= SEQ_MAX:
                gauge.labels(*labels).set(value)
        self.metrics.edge_outbox_ok.labels(*labels).set(0 if details.get("outbox_error") else 1)
        clock = details.get("clock")
        if isinstance(clock, str):
            self.metrics.edge_clock_ok.labels(*labels).set(0 if clock == "wrong" else 1)

    def _dead(
        self,
        one: _MessageResult,
        msg: Incoming,
        reason: str,
        detail: str,
        where: str,
        payload: Any,
        received_ns: int,
    ) -> None:
        self.metrics.dead_letters.labels(reason).inc()
        log.warning(
            "dead letter on %s: %s: %s",
            printable(msg.topic[:200]),
            reason,
            printable(f"{where}: {detail}" if where else detail)[:500],
        )
        one.dead.append(
            DeadLetter(
                received_ns,
                msg.topic,
                reason,
                detail,
                where,
                payload_text(payload),
                factory=self._factory_of(msg.topic),
            )
        )

    def _factory_of(self, topic: str) -> str:
        """The registered factory a topic names, else "" (one allowance of dead letters for
        every unregistered sender: made-up factory names cannot multiply it)."""
        parts = topic.split("/", 2)
        if len(parts) >= 2 and parts[0] == wire.TOPIC_ROOT and parts[1] in self.registry.factories:
            return parts[1]
        return ""

    @property
    def store_outage(self) -> StoreOutage | None:
        """The outage holding batches back now (the store or the state database), or None."""
        return self._outage

    def _outage_begins(self, what: str, exc: Exception) -> None:
        reason = str(exc)
        current = self._outage
        if current is None or current.what != what:
            self._outage = StoreOutage(what, reason, now_ns())
            self.metrics.store_outage.set(1)
            self.metrics.store_outage_since.set(self._outage.since_ns / 1e9)
        else:
            self._outage = StoreOutage(what, reason, current.since_ns, current.attempts + 1)

    def _outage_ends(self) -> None:
        if self._outage is not None:
            held = (now_ns() - self._outage.since_ns) / 1e9
            log.warning("%s available again after %.1f s: the held batches go on", self._outage.what, held)
            self._outage = None
            self.metrics.store_outage.set(0)
            self.metrics.store_outage_since.set(0)

    def store_batch(self, result: BatchResult, rest: Callable[[float], None] | None = None) -> None:
        """Make the batch durable, retrying while the store (or the state database, for the
        dead letters) is unavailable: the batch waits, unacknowledged, as long as the outage
        lasts. ``rest`` is told of each wait before a retry (the write stage's health: waiting on
        the store is not stuck). Raises StoreUnavailable only when the ingest stops meanwhile."""
        store_retries, letter_retries = self._store_retries, self._dead_letter_retries
        if rest is not None:
            store_retries = store_retries.copy(before_sleep=_and_rest(self._store_unavailable, rest))
            letter_retries = letter_retries.copy(before_sleep=_and_rest(self._dead_letters_unavailable, rest))
        for attempt in store_retries:
            with attempt:
                started = time.perf_counter()
                self._write(result)
                self.metrics.store_write_seconds.observe(time.perf_counter() - started)
        for attempt in letter_retries:
            with attempt:
                try:
                    self._keep_dead_letters(result.dead)
                except StateDbUnavailable as exc:
                    # The state database is down (PostgreSQL restarting): an outage like the store's.
                    raise StoreUnavailable(f"dead letters: {exc}") from exc
        self._outage_ends()
        self.metrics.readings_stored.inc(len(result.readings))
        self.metrics.batch_readings.observe(len(result.readings))

    def _store_unavailable(self, state: tenacity.RetryCallState) -> None:
        assert state.outcome is not None and state.next_action is not None
        exc = state.outcome.exception()
        assert isinstance(exc, Exception)
        self.metrics.store_errors.labels("unavailable").inc()
        self._outage_begins("store", exc)
        log.error(
            "store unavailable, retrying in %.1f s (nothing acknowledged): %s", state.next_action.sleep, exc
        )

    def _dead_letters_unavailable(self, state: tenacity.RetryCallState) -> None:
        assert state.outcome is not None and state.next_action is not None
        exc = state.outcome.exception()
        assert isinstance(exc, Exception)
        self.metrics.store_errors.labels("dead_letters_unavailable").inc()
        self._outage_begins("state database", exc)
        log.error(
            "dead letters cannot be kept, retrying in %.1f s (nothing acknowledged): %s",
            state.next_action.sleep,
            exc,
        )

    def _wait_unless_stopping(self, seconds: float) -> None:
        if self._stopping.wait(seconds):
            raise StoreUnavailable("the ingest is stopping while the store is unavailable")

    def _keep_dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        if not letters:
            return
        try:
            self._count_evicted(self.deadletters.add(letters))
        except StateDbUnavailable:
            raise
        except Exception:
            # Not the database being away: one letter it will not take. Kept one by one; one
            # it refuses alone is logged and counted, never allowed to hold the batch back.
            log.exception("the state database refused a batch of %d dead letters", len(letters))
            for letter in letters:
                try:
                    self._count_evicted(self.deadletters.add([letter]))
                except StateDbUnavailable:
                    raise
                except Exception as exc:
                    self.metrics.dead_letters_unkept.inc()
                    log.error(
                        "dead letter on %s (%s) not kept: %s: %s",
                        printable(letter.topic[:200]),
                        letter.reason,
                        type(exc).__name__,
                        printable(str(exc)[:300]),
                    )

    def _count_evicted(self, evicted: Evicted) -> None:
        if evicted.cap:
            self.metrics.dead_letters_evicted.labels("cap").inc(evicted.cap)
            log.warning(
                "dead letters beyond the cap of %d per factory let go (oldest first): %d, of %s",
                self.deadletters.settings.max_per_factory,
                evicted.cap,
                ", ".join(f or "unregistered senders" for f in evicted.factories),
            )
        if evicted.retention:
            self.metrics.dead_letters_evicted.labels("retention").inc(evicted.retention)

    def prune_dead_letters(self) -> None:
        """Apply the dead letters' retention and caps now (when the ingest starts)."""
        try:
            self._count_evicted(self.deadletters.prune())
        except Exception as exc:  # the state database away: the next batch's dead letters prune
            log.warning("dead letters not pruned at start: %s", exc)

    def _write(self, result: BatchResult) -> None:
        if result.chain_events:
            self.store.write_points(ChainEvents.NAME, result.chain_events)
        try:
            self.store.write(result.readings)
        except StoreUnavailable:
            raise
        except Exception as exc:
            # The store refused the batch itself: find the readings it refuses by writing halves
            # (a partial write keeps the rest: writes are idempotent), and dead-letter only those.
            self.metrics.store_errors.labels("refused").inc()
            log.error(
                "store refused a batch of %d readings: %s", len(result.readings), printable(str(exc)[:300])
            )
            good: list[Reading] = []
            refused: list[tuple[Reading, Exception]] = []
            self._isolate(result.readings, good, refused)
            received = now_ns()
            for reading, error in refused:
                if isinstance(error, StoreError):
                    reason, detail = error.reason, str(error)
                else:
                    reason, detail = "internal_error", f"{type(error).__name__}: {error}"
                self.metrics.dead_letters.labels(reason).inc()
                result.dead.append(
                    DeadLetter(
                        received,
                        wire.data_topic(reading.factory, reading.device),
                        reason,
                        detail,
                        reading.channel,
                        payload_text(
                            {
                                "ts": _iso_or_ns(reading.ts_ns),
                                "channel": reading.channel,
                                "value": reading.value,
                                "flag": reading.flag,
                                "seq": reading.seq,
                            }
                        ),
                        factory=reading.factory,
                    )
                )
            result.readings = good

    def _isolate(
        self, readings: list[Reading], good: list[Reading], refused: list[tuple[Reading, Exception]]
    ) -> None:
        """Write ``readings`` (refused as a whole) in halves, each half that fails in halves
        again, down to single readings: k refused readings of n cost about 2k log2(n) writes,
        fewer when the store says it refused a whole half (InfluxDB's "dropped=N")."""
        if len(readings) == 1:
            try:
                self.store.write(readings)
                good.append(readings[0])
            except StoreUnavailable:
                raise
            except Exception as exc:
                refused.append((readings[0], exc))
            return
        middle = len(readings) // 2
        for half in (readings[:middle], readings[middle:]):
            if len(half) == 1:
                self._isolate(half, good, refused)
                continue
            try:
                self.store.write(half)
                good.extend(half)
            except StoreUnavailable:
                raise
            except StoreError as exc:
                if exc.dropped == len(half):  # the store says it refused every one: no need to ask
                    refused.extend((reading, exc) for reading in half)
                else:
                    self._isolate(half, good, refused)
            except Exception:
                self._isolate(half, good, refused)

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


def _iso_or_ns(ts_ns: int) -> str | int:
    """A reading's time as ISO 8601 when it is one (a time outside the contract's bounds has
    none: its nanoseconds are kept instead)."""
    try:
        return ns_to_iso(ts_ns)
    except (OverflowError, ValueError):
        return ts_ns


class StagedIngest:
    """Runs :class:`Ingest` as three stages over a transport's deliveries: manual acks, batching.

    The transport (MQTT here, AMQP in :mod:`ingest.amqp`) puts each delivery on ``_queue`` (with
    :meth:`_received_one`) and acknowledges it in :meth:`_acknowledge`; the stages are the same for
    every transport. Its three stages run under a :class:`eit.supervise.Supervisor`. Each keeps the
    batch it holds on this object (``_decoding``, ``_writing``, ``_delivering``), so a stage that
    fails and is restarted begins with that batch again: nothing unacknowledged is dropped, nothing
    is acknowledged twice (the rules stage remembers how many of its batch's messages it acked).

    A transport may fence batches (:meth:`_may_write`, :meth:`_still_current`): a batch whose
    deliveries the broker has taken back (their connection closed) is neither written nor handed
    to the rules nor acknowledged; the broker gives its messages to whoever holds them now.
    """

    def __init__(self, ingest: Ingest, supervisor: Supervisor | None = None) -> None:
        self.ingest = ingest
        self.metrics = ingest.metrics
        self.supervisor = supervisor or Supervisor()
        # SimpleQueue: the C queue, a cheaper put in the transport's network thread than queue.Queue.
        self._queue: queue.SimpleQueue[Incoming] = queue.SimpleQueue()
        # Messages received (the transport's thread), handed to the writer (decode stage), stored
        # (write stage) and acknowledged (rules stage): each stage's backlog, and the queue depth
        # gauge, are differences of these, computed when read rather than updated per message.
        self._received = 0
        self._handed = 0
        self._written = 0
        self._done = 0
        self.metrics.queue_depth.set_function(lambda: self._received - self._done)
        self._stop = threading.Event()
        self._connected = threading.Event()
        self.last_broker_error = "not connected yet"
        # Decoded batches waiting to be written: two at most, so memory stays bounded while the
        # store is slow (the broker's flow control holds back the rest).
        self._handoff: queue.Queue[tuple[list[Incoming], BatchResult] | None] = queue.Queue(maxsize=2)
        # Stored batches on their way to the rules; unbounded, but never more than the decoded
        # batches the broker's receive maximum lets in.
        self._stored: queue.SimpleQueue[tuple[list[Incoming], BatchResult] | None] = queue.SimpleQueue()
        # What each stage holds: taken from its queue, not yet passed on.
        self._decoding: list[Incoming] | None = None
        self._writing: tuple[list[Incoming], BatchResult] | None = None
        self._delivering: tuple[list[Incoming], BatchResult] | None = None
        self._delivered = False
        self._acked = 0
        self.decode_stage = Stage("ingest-decode", lambda: self._received - self._handed)
        self.write_stage = Stage("ingest-write", lambda: self._handed - self._written)
        self.rules_stage = Stage("ingest-rules", lambda: self._written - self._done)
        self._workers: list[Worker] = []

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def stages(self) -> tuple[Stage, ...]:
        return (self.decode_stage, self.write_stage, self.rules_stage)

    def start(self) -> None:
        self.ingest.prune_dead_letters()
        self._start_transport()
        self._workers = [
            self.supervisor.run(self.decode_stage, self._run),
            self.supervisor.run(self.write_stage, self._write_stage),
            self.supervisor.run(self.rules_stage, self._rules_stage),
        ]

    def wait_connected(self, timeout_s: float) -> bool:
        return self._connected.wait(timeout_s)

    def stop(self) -> None:
        self._stop.set()
        self.ingest.stop()
        # In order: each stage ends after passing on what it holds, then tells the next.
        for worker in self._workers:
            worker.stop(30.0)
        self._stop_transport()

    # -- what a transport provides --------------------------------------------------------------
    def _start_transport(self) -> None:
        raise NotImplementedError

    def _stop_transport(self) -> None:
        raise NotImplementedError

    def _acknowledge(self, batch: Sequence[Incoming], upto: int) -> None:
        """Acknowledge ``batch[self._acked:upto]`` (the rules stage calls it once per batch)."""
        raise NotImplementedError

    def _may_write(self, batch: Sequence[Incoming]) -> bool | None:
        """Whether the batch may be written now: True, False (fenced: drop it, unacknowledged),
        or None (not yet: wait and ask again)."""
        return True

    def _still_current(self, batch: Sequence[Incoming]) -> bool:
        """Whether the batch's deliveries are still this process's to hand on and acknowledge."""
        return True

    def _after_write(self, batch: Sequence[Incoming]) -> None:
        """Told of each batch once it is durable (before the rules see it)."""

    def _received_one(self, incoming: Incoming) -> None:
        self._queue.put(incoming)
        self._received += 1

    def _dropped(self, count: int) -> None:
        """``count`` messages left the pipeline unacknowledged (fenced): the broker has them."""
        self._done += count

    # -- the stages -------------------------------------------------------------------------------
    def _run(self) -> None:
        """The decoding stage: collects a batch, decodes and validates it, and hands it to the
        writing stage, so that a batch is decoded while the one before it is being written."""
        stage = self.decode_stage
        while not self._stop.is_set():
            batch = self._decoding  # a batch a failed run of this stage left behind
            if batch is None:
                batch = self._collect()
                if batch is None:
                    continue
            stage.progress()
            # decode_batch holds each message's faults; a failure outside any message restarts
            # the stage with this batch (the supervisor), not dead letters of good messages.
            result = self.ingest.decode_batch(batch, now_ns())
            if not self._hand_over((batch, result)):
                return  # stopping, and the writer is gone: the batch stays unacknowledged
            self._decoding = None
            self._handed += len(batch)
            stage.progress()
        self._hand_over(None)

    def _collect(self) -> list[Incoming] | None:
        """The next batch from the queue (None when nothing came within 0.2 s). The batch is
        held on the stage (``_decoding``) from its first message on."""
        settings = self.ingest.settings
        # Roughly 20 bytes of JSON per value: cap a batch near batch_max_readings values.
        budget = settings.batch_max_readings * 20
        try:
            first = self._queue.get(timeout=0.2)
        except queue.Empty:
            return None
        batch = self._decoding = [first]
        size = len(first.payload)
        deadline = time.monotonic() + settings.flush_interval_s
        while size < budget:
            # What has arrived meanwhile joins the batch at once; an idle queue is waited on
            # until the flush deadline.
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
        return batch

    def _hand_over(self, item: tuple[list[Incoming], BatchResult] | None) -> bool:
        """Put ``item`` on the writer's queue; False when stopping and the writer has ended."""
        while True:
            try:
                self._handoff.put(item, timeout=0.2)
                return True
            except queue.Full:
                # Waiting for the writer is this stage working as designed; the writer's own
                # stage reports whether it is stuck.
                self.decode_stage.progress()
                if self._stop.is_set() and not self.write_stage.running:
                    return False  # the writer stopped (store down while stopping)

    def _write_stage(self) -> None:
        """The writing stage: makes each batch durable and hands it on to the rules stage."""
        stage = self.write_stage
        while True:
            item = self._writing
            if item is None:
                try:
                    item = self._handoff.get(timeout=0.2)
                except queue.Empty:
                    if self._stop.is_set() and not self.decode_stage.running:
                        item = None  # the decode stage ended without a word (it failed)
                    else:
                        continue
                if item is None:
                    self._stored.put(None)
                    return
                self._writing = item
            stage.progress()
            allowed = self._may_write(item[0])
            while allowed is None and not self._stop.is_set():
                stage.rest(0.2)  # waiting for a partition's lease is working as designed
                time.sleep(0.05)
                allowed = self._may_write(item[0])
            if not allowed:
                if self._stop.is_set() and allowed is None:
                    self._stored.put(None)
                    return
                self._writing = None
                self._written += len(item[0])
                self._dropped(len(item[0]))
                continue
            try:
                self.ingest.store_batch(item[1], rest=stage.rest)
            except StoreUnavailable:
                # Stopping while the store is down: leave the batch unacknowledged.
                self._stored.put(None)
                return
            self._after_write(item[0])
            self._writing = None
            self._written += len(item[0])
            stage.progress()
            self._stored.put(item)

    def _rules_stage(self) -> None:
        """The rules stage: hands each stored batch to the rules, then acknowledges its messages,
        in the order they were received (a message is acknowledged only once its readings are
        stored and the rules have seen them; a crash before that brings it back)."""
        stage = self.rules_stage
        while True:
            if self._delivering is None:
                try:
                    item = self._stored.get(timeout=0.2)
                except queue.Empty:
                    if self._stop.is_set() and not self.write_stage.running:
                        return  # the write stage ended without a word (it failed)
                    continue
                if item is None:
                    return
                self._delivering, self._delivered, self._acked = item, False, 0
            stage.progress()
            batch, result = self._delivering
            if not self._delivered:
                if not self._still_current(batch):
                    # Fenced after the write: the broker gives these messages to the new holder,
                    # whose rules see them (the rules absorb the repeat of a stored batch).
                    self._delivering = None
                    self._dropped(len(batch))
                    continue
                self.ingest.deliver(result, now_ns())
                self._delivered = True
            if self._acked < len(batch):
                self._acknowledge(batch, len(batch))
                self._acked = len(batch)
            self._delivering = None
            self._done += len(batch)
            stage.progress()


class MqttIngest(StagedIngest):
    """Connects :class:`Ingest` to an MQTT broker: persistent session, manual acks, batching."""

    def __init__(
        self, ingest: Ingest, mqtt_settings: MqttSettings, supervisor: Supervisor | None = None
    ) -> None:
        super().__init__(ingest, supervisor)
        self.settings = mqtt_settings
        self.client = make_client(mqtt_settings, persistent=True, manual_ack=True)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_connect_fail = self._on_connect_fail
        self.client.on_message = self._on_message
        self._broker = f"{mqtt_settings.host}:{mqtt_settings.port}"

    def _start_transport(self) -> None:
        connect_async(self.client, self.settings, persistent=True, receive_maximum=RECEIVE_MAXIMUM)
        self.client.loop_start()

    def _stop_transport(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _acknowledge(self, batch: Sequence[Incoming], upto: int) -> None:
        for msg in batch[self._acked : upto]:
            if msg.qos > 0:
                try:
                    self.client.ack(msg.mid, msg.qos)
                except Exception:  # paho's: the broker sends the message again
                    log.exception("acknowledging message %d failed", msg.mid)
            self._acked += 1

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        if reason.is_failure:
            self.last_broker_error = f"broker {self._broker} refused the connection: {reason}"
            log.error("%s", self.last_broker_error)
            return
        client.subscribe([(wire.DATA_SUBSCRIPTION, 1), (wire.STATUS_SUBSCRIPTION, 1)])
        self._connected.set()
        self.last_broker_error = ""
        self.metrics.broker_connected.set(1)
        log.info(
            "connected to broker %s:%s (session present: %s)",
            self.settings.host,
            self.settings.port,
            getattr(flags, "session_present", "?"),
        )

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        self.last_broker_error = f"broker {self._broker} does not accept connections (retrying)"

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        self._connected.clear()
        self.metrics.broker_connected.set(0)
        self.last_broker_error = f"disconnected from broker {self._broker}: {reason}"
        if not self._stop.is_set():
            log.warning("disconnected from broker: %s (reconnecting)", reason)

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        self._received_one(
            Incoming(message.mid, message.qos, message.topic, bytes(message.payload), message.retain)
        )


def _and_rest(
    log_wait: Callable[[tenacity.RetryCallState], None], rest: Callable[[float], None]
) -> Callable[[tenacity.RetryCallState], None]:
    """Before a retry's wait: log it, and tell the stage it is resting on purpose."""

    def before_sleep(state: tenacity.RetryCallState) -> None:
        log_wait(state)
        assert state.next_action is not None
        rest(state.next_action.sleep)

    return before_sleep
