"""The agent's Prometheus endpoint (``metrics: {port: 9108}`` in its config): ``/metrics`` in the
text exposition format and ``/healthz`` (503 while a scan loop or publisher is dead or stuck),
served with the standard library so the agent installs without the server's packages."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edge.agent import Agent


def _labels(**labels: str) -> str:
    inner = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return "{" + inner + "}" if inner else ""


def render(agent: Agent) -> str:
    lines: list[str] = []

    def metric(name: str, kind: str, help_text: str, samples: list[tuple[dict[str, str], float]]) -> None:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        lines.extend(f"{name}{_labels(**labels)} {value:g}" for labels, value in samples)

    scanners = agent.scanners
    pubs = agent.publishers
    pending = agent.outbox.counts()
    dropped = agent.outbox.dropped_by_device()
    metric(
        "eit_edge_scans_total",
        "counter",
        "Scans taken and stored in the outbox",
        [({"device": d}, s.counters.scans) for d, s in scanners.items()],
    )
    metric(
        "eit_edge_read_failures_total",
        "counter",
        "Meter reads that failed",
        [({"device": d}, s.counters.read_failures) for d, s in scanners.items()],
    )
    metric(
        "eit_edge_meter_answering",
        "gauge",
        "1 while the meter answers",
        [({"device": d}, float(s.counters.consecutive_failures == 0)) for d, s in scanners.items()],
    )
    metric(
        "eit_edge_read_seconds",
        "gauge",
        "Duration of the last meter read",
        [({"device": d}, s.counters.last_read_s) for d, s in scanners.items()],
    )
    metric(
        "eit_edge_scans_clock_flagged_total",
        "counter",
        "Scans taken while the clock was known to be wrong (flagged D)",
        [({"device": d}, s.counters.clock_flagged_scans) for d, s in scanners.items()],
    )
    metric(
        "eit_edge_outbox_pending_scans",
        "gauge",
        "Scans in the outbox not yet acknowledged by the broker",
        [({"device": d}, pending.get(d, 0)) for d in scanners],
    )
    metric(
        "eit_edge_outbox_dropped_scans_total",
        "counter",
        "Oldest scans dropped because the outbox reached its size or age bound",
        [({"device": d, "reason": r}, dropped.get((d, r), 0)) for d in scanners for r in ("size", "age")],
    )
    metric(
        "eit_edge_outbox_bytes",
        "gauge",
        "Database pages in use by the outbox",
        [({}, agent.outbox.used_bytes())],
    )
    metric(
        "eit_edge_published_messages_total",
        "counter",
        "Data messages published",
        [({"device": d}, p.stats.published_messages) for d, p in pubs.items()],
    )
    metric(
        "eit_edge_acked_scans_total",
        "counter",
        "Scans acknowledged by the broker and deleted from the outbox",
        [({"device": d}, p.stats.acked_scans) for d, p in pubs.items()],
    )
    metric(
        "eit_edge_refused_messages_total",
        "counter",
        "Publishes the broker refused (not authorized ...)",
        [({"device": d}, p.stats.refused_messages) for d, p in pubs.items()],
    )
    metric(
        "eit_edge_broker_connected",
        "gauge",
        "1 while connected to the broker",
        [({"device": d}, float(p.stats.connected)) for d, p in pubs.items()],
    )
    metric(
        "eit_edge_broker_info",
        "gauge",
        "1 for the broker (host:port) each device's connection is on; absent while not connected",
        [({"device": d, "broker": p.stats.broker}, 1.0) for d, p in pubs.items() if p.stats.broker],
    )
    metric(
        "eit_edge_broker_connect_failures_total",
        "counter",
        "Connection attempts that found no broker at their address",
        [({"device": d}, p.stats.connect_failures) for d, p in pubs.items()],
    )
    metric(
        "eit_edge_outbox_write_errors_total",
        "counter",
        "Scans lost because the outbox could not store them (full disk, read-only file system)",
        [({"device": d}, s.counters.outbox_write_errors) for d, s in scanners.items()],
    )
    metric(
        "eit_edge_outbox_ok",
        "gauge",
        "0 while the outbox refuses to store the device's scans",
        [({"device": d}, float(not s.counters.outbox_error)) for d, s in scanners.items()],
    )
    stages = agent.stage_report()
    metric(
        "eit_stage_alive",
        "gauge",
        "1 while the stage's thread runs its loop (scan-<device>, publish-<device>)",
        [({"stage": st.name}, float(st.alive)) for st in stages],
    )
    metric(
        "eit_stage_stuck",
        "gauge",
        "1 while a scan has been under way for longer than it may take",
        [({"stage": st.name}, float(st.stuck)) for st in stages],
    )
    metric(
        "eit_worker_restarts_total",
        "counter",
        "Times a scan loop or publisher that failed was restarted",
        [({"worker": st.name}, st.restarts) for st in stages],
    )
    clock = agent.clock_state
    metric(
        "eit_edge_clock_ok",
        "gauge",
        "0 while the clock is known to be wrong",
        [({}, float(not clock.known_wrong))],
    )
    metric(
        "eit_edge_clock_synchronised",
        "gauge",
        "1 synchronised, 0 not, -1 unknown",
        [({}, -1.0 if clock.synchronised is None else float(clock.synchronised))],
    )
    return "\n".join(lines) + "\n"


def health(agent: Agent) -> tuple[bool, dict[str, Any]]:
    """The agent's health: not ok while a scan loop or publisher is dead or stuck."""
    stages = agent.stage_report()
    ok = all(st.ok for st in stages)
    return ok, {
        "status": "ok" if ok else "not ok",
        "stages": {st.name: st.state for st in stages},
        "factory": agent.config.factory,
        "clock": agent.clock_state.as_status(),
        "outbox_pending": agent.outbox.count(),
        "outbox_dropped": agent.outbox.dropped(),
        "devices": {
            d: {
                "meter_answering": s.counters.consecutive_failures == 0,
                "last_error": s.counters.last_error,
                "outbox_error": s.counters.outbox_error,
                "outbox_write_errors": s.counters.outbox_write_errors,
                "broker_connected": agent.publishers[d].stats.connected,
                "broker": agent.publishers[d].stats.broker,
            }
            for d, s in agent.scanners.items()
        },
    }


def serve_metrics(agent: Agent, host: str, port: int) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            code = 200
            if self.path == "/metrics":
                body, kind = render(agent).encode(), "text/plain; version=0.0.4"
            elif self.path == "/healthz":
                ok, detail = health(agent)
                body, kind, code = json.dumps(detail).encode(), "application/json", 200 if ok else 503
            else:
                self.send_error(404)
                return
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, name="edge-metrics", daemon=True).start()
    return server
