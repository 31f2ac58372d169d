"""The stages of `eit serve` in Prometheus terms (``/metrics``), beside their liveness
(``/healthz``) and the readiness of what the process depends on (``/readyz``; see
:meth:`server.serve.Server.readiness`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from eit.supervise import StageStatus


class StageCollector(Collector):
    """Per stage: alive, backlog, seconds since its last progress, stuck; per worker: restarts.
    Read from the stages when scraped, so a stage that hangs is seen as it is."""

    def __init__(self, report: Callable[[], Sequence[StageStatus]]) -> None:
        self.report = report

    def collect(self) -> Iterator[Metric]:
        statuses = self.report()
        alive = GaugeMetricFamily(
            "eit_stage_alive", "1 while the stage's thread runs its loop", labels=["stage"]
        )
        backlog = GaugeMetricFamily(
            "eit_stage_backlog",
            "Items waiting for the stage (messages, effects, events; 1 while a periodic stage works)",
            labels=["stage"],
        )
        progress = GaugeMetricFamily(
            "eit_stage_last_progress_seconds",
            "Seconds since the stage last took or finished an item",
            labels=["stage"],
        )
        stuck = GaugeMetricFamily(
            "eit_stage_stuck",
            "1 while the stage has work waiting and has not progressed for health.stuck_after_s",
            labels=["stage"],
        )
        restarts = CounterMetricFamily(
            "eit_worker_restarts", "Times a worker that failed was restarted", labels=["worker"]
        )
        for s in statuses:
            alive.add_metric([s.name], float(s.alive))
            backlog.add_metric([s.name], float(s.backlog))
            progress.add_metric([s.name], s.since_progress_s)
            stuck.add_metric([s.name], float(s.stuck))
            restarts.add_metric([s.name], float(s.restarts))
        yield from (alive, backlog, progress, stuck, restarts)


def liveness(statuses: Sequence[StageStatus]) -> dict[str, bool]:
    """Each stage's name and whether it is alive and not stuck: all `/healthz` tells."""
    return {s.name: s.ok for s in statuses}


def stage_detail(s: StageStatus) -> dict[str, object]:
    """One stage as `/readyz` shows it."""
    detail: dict[str, object] = {
        "state": s.state,
        "backlog": s.backlog,
        "since_progress_s": round(s.since_progress_s, 1),
        "restarts": s.restarts,
    }
    if s.last_error:
        detail["last_error"] = s.last_error
    return detail
