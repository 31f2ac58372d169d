"""A notifier's worker: the thread that sends its queued notifications.

It sends the notifier's notifications in the order they were queued (per recipient: one mailbox
that refuses does not hold another's mail), each until the receiver answers or the notifier's
``expire_after_s`` runs out. After a failed attempt the notification waits ``retry_after_s``,
then twice as long each time up to ``retry_max_s``, each wait with jitter (so that notifications
failing together do not come back in step); the time of its next attempt is kept in the queue,
so a restart does not start the waits over.

A notification is marked delivered right after the receiver's answer. When the state database
cannot take that mark, the worker keeps trying to write it and never sends the notification
again; only a process that stops between the answer and the mark leaves it to be sent again
(once its lease runs out), with the same idempotency key.

The worker never dies of an error: a failure of its own (the state database unreachable, a
defect) is logged, counted and retried after a pause; ``alive`` and the counters are in the
server's health and metrics.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import tenacity

from alerts.notifiers.base import NotifyError, Parts
from alerts.notifiers.queue import Delivery, DeliveryQueue
from eit.timeutil import NS_PER_S, now_ns

log = logging.getLogger("eit.alerts.notify")

DAY_S = 86400.0
# Delivered notifications are kept this long (for the console), then forgotten.
KEEP_DELIVERED_S = 30 * DAY_S
PRUNE_EVERY_S = 3600.0
ERROR_PAUSE_MAX_S = 30.0

Send = Callable[[Parts, str], None]


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    """How long a notifier's notifications are tried: until ``expire_after_s`` after they were
    queued, waiting ``retry_after_s`` after the first failed attempt, twice as long after each
    further one, at most ``retry_max_s``."""

    expire_after_s: float = DAY_S
    retry_after_s: float = 10.0
    retry_max_s: float = 600.0

    def wait_s(self, failed_attempts: int) -> float:
        """The wait after the ``failed_attempts``-th failed attempt, jitter included."""
        wait = tenacity.wait_exponential_jitter(
            multiplier=self.retry_after_s, max=self.retry_max_s, jitter=self.retry_after_s
        )
        state = tenacity.RetryCallState(tenacity.Retrying(), None, (), {})
        state.attempt_number = max(1, failed_attempts)
        return float(wait(state))


@dataclass(slots=True)
class WorkerStats:
    """What a notifier's worker did since the process started, and its queue as last read."""

    queued: int = 0
    delivered: int = 0
    failed_attempts: int = 0
    expired: int = 0
    undelivered: int = 0
    oldest_undelivered_ns: int | None = None
    last_error: str = ""
    alive: bool = False

    def oldest_undelivered_age_s(self, now: int | None = None) -> float:
        if self.oldest_undelivered_ns is None:
            return 0.0
        return max(0.0, ((now if now is not None else now_ns()) - self.oldest_undelivered_ns) / NS_PER_S)


class DeliveryWorker:
    def __init__(
        self,
        queue: DeliveryQueue,
        notifier: str,
        send: Send,
        policy: DeliveryPolicy,
        idle: threading.Condition,
        *,
        lease_s: float = 120.0,
        poll_s: float = 5.0,
    ) -> None:
        self.queue = queue
        self.notifier = notifier
        self.send = send
        self.policy = policy
        self.lease_ns = int(lease_s * NS_PER_S)
        self.poll_s = poll_s
        self.stats = WorkerStats()
        # Idle: nothing due once every notification queued for it so far was looked at.
        self._idle = idle
        self._wanted = 0
        self._seen = 0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._pruned_at: float | None = None
        self._thread = threading.Thread(target=self._run, name=f"notify-{notifier}", daemon=True)

    # -- the dispatcher's side ---------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def join(self, timeout_s: float) -> None:
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def idle(self) -> bool:
        return self._seen == self._wanted

    def more(self) -> None:
        """Notifications were queued for this notifier."""
        with self._idle:
            self._wanted += 1
            self.stats.queued += 1
        self._wake.set()

    # -- the thread --------------------------------------------------------------------------------
    def _run(self) -> None:
        self.stats.alive = True
        pause = 0.5
        try:
            while not self._stop.is_set():
                try:
                    wait_s = self._step()
                    pause = 0.5
                except Exception as exc:
                    self.stats.last_error = f"{type(exc).__name__}: {exc}"
                    log.error(
                        "notifier %s: %s (trying again in %.1f s)",
                        self.notifier,
                        self.stats.last_error,
                        pause,
                    )
                    wait_s, pause = pause, min(pause * 2, ERROR_PAUSE_MAX_S)
                if wait_s > 0:
                    self._wake.wait(wait_s)
        finally:
            self.stats.alive = False

    def _step(self) -> float:
        """Send the next notification due; returns how long to wait before looking again (0:
        at once)."""
        with self._idle:
            wanted = self._wanted
        self._wake.clear()
        now = now_ns()
        backlog = self.queue.backlog(self.notifier)
        if backlog.soonest_expiry_ns is not None and backlog.soonest_expiry_ns <= now:
            self._expire(now)
            backlog = self.queue.backlog(self.notifier)
        self.stats.undelivered = backlog.undelivered
        self.stats.oldest_undelivered_ns = backlog.oldest_created_ns
        self._prune()
        delivery, due_ns = self.queue.next_due(self.notifier, now)
        if delivery is None:
            with self._idle:
                self._seen = wanted
                self._idle.notify_all()
            poll_ns = now + int(self.poll_s * NS_PER_S)
            wake_ns = min(
                t for t in (due_ns, backlog.soonest_expiry_ns, poll_ns) if t is not None and t > now
            )
            return (wake_ns - now) / NS_PER_S
        if self.queue.lease(delivery.id, now, now + self.lease_ns):
            self._attempt(delivery)
        return 0.0

    def _attempt(self, delivery: Delivery) -> None:
        try:
            self.send(delivery.parts, delivery.key)
        except Exception as exc:
            error = str(exc) if isinstance(exc, NotifyError) else f"{type(exc).__name__}: {exc}"
            attempts = delivery.attempts + 1
            wait_s = self.policy.wait_s(attempts)
            self.stats.failed_attempts += 1
            self.stats.last_error = error
            log.warning(
                "notifier %s: notification #%d of alert #%d (%s to %s) not delivered, attempt %d,"
                " next in %.0f s: %s",
                self.notifier,
                delivery.id,
                delivery.alert_id,
                delivery.event,
                delivery.recipient,
                attempts,
                wait_s,
                error,
            )
            self.queue.failed(delivery.id, error, now_ns() + int(wait_s * NS_PER_S))
            return
        self._mark_delivered(delivery)

    def _mark_delivered(self, delivery: Delivery) -> None:
        """The receiver took it: write so, however long the state database takes to come back;
        never send it again meanwhile."""
        pause = 0.2
        while True:
            try:
                self.queue.delivered(delivery.id, now_ns())
                self.stats.delivered += 1
                return
            except Exception as exc:
                self.stats.last_error = f"{type(exc).__name__}: {exc}"
                log.error(
                    "notifier %s: notification #%d delivered, not yet marked so: %s",
                    self.notifier,
                    delivery.id,
                    self.stats.last_error,
                )
            if self._stop.wait(pause):
                log.error(
                    "notifier %s: stopping before notification #%d was marked delivered:"
                    " it is sent again (same idempotency key) after the restart",
                    self.notifier,
                    delivery.id,
                )
                return
            pause = min(pause * 2, ERROR_PAUSE_MAX_S)

    def _expire(self, now: int) -> None:
        for delivery in self.queue.expire(self.notifier, now):
            self.stats.expired += 1
            log.error(
                "notifier %s: notification #%d of alert #%d (%s to %s) expired after %d attempts: %s",
                self.notifier,
                delivery.id,
                delivery.alert_id,
                delivery.event,
                delivery.recipient,
                delivery.attempts,
                delivery.last_error or "never attempted",
            )

    def _prune(self) -> None:
        if self._pruned_at is not None and time.monotonic() - self._pruned_at < PRUNE_EVERY_S:
            return
        self._pruned_at = time.monotonic()
        self.queue.prune(self.notifier, now_ns() - int(KEEP_DELIVERED_S * NS_PER_S))
