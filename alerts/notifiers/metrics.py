"""Prometheus metrics of the notifiers, one series per notifier (label ``notifier``).

Counters since the process started (queued, delivered, failed attempts, expired) and the queue as
its worker last read it (undelivered, the age of the oldest undelivered notification), read from
the workers when scraped: a scrape never waits on the state database.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from alerts.notifiers.dispatch import Dispatcher
from eit.timeutil import now_ns


class NotificationMetrics(Collector):
    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher

    def collect(self) -> Iterator[Metric]:
        label = ["notifier"]
        queued = CounterMetricFamily("eit_notifications_queued", "Notifications queued", labels=label)
        delivered = CounterMetricFamily(
            "eit_notifications_delivered", "Notifications the receiver took", labels=label
        )
        failed = CounterMetricFamily(
            "eit_notification_attempts_failed",
            "Attempts to deliver a notification that failed (each is tried again until it expires)",
            labels=label,
        )
        expired = CounterMetricFamily(
            "eit_notifications_expired",
            "Notifications given up undelivered after expire_after_s",
            labels=label,
        )
        undelivered = GaugeMetricFamily(
            "eit_notifications_undelivered", "Notifications queued and not yet delivered", labels=label
        )
        oldest = GaugeMetricFamily(
            "eit_notification_oldest_undelivered_age_seconds",
            "Age of the oldest notification not yet delivered (0: none)",
            labels=label,
        )
        up = GaugeMetricFamily("eit_notifier_worker_up", "1 while the notifier's worker runs", labels=label)
        now = now_ns()
        for name, worker in self.dispatcher.workers.items():
            stats = worker.stats
            queued.add_metric([name], stats.queued)
            delivered.add_metric([name], stats.delivered)
            failed.add_metric([name], stats.failed_attempts)
            expired.add_metric([name], stats.expired)
            undelivered.add_metric([name], stats.undelivered)
            oldest.add_metric([name], stats.oldest_undelivered_age_s(now))
            up.add_metric([name], 1.0 if worker.alive else 0.0)
        yield from (queued, delivered, failed, expired, undelivered, oldest, up)
