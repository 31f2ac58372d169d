"""Cost and isolation of the notifiers' delivery queue, on a SQLite state database.

Run: ``python -m bench.notify_cost [--events N]`` (prints the figures; nothing is kept).

- queueing: the time :meth:`Dispatcher.submit` takes per alert event (rendering and writing its
  notifications with their claims, one transaction) with a webhook and an e-mail notifier: the
  cost the rules' effect thread now pays per alert event;
- delivering: notifications per second one notifier's worker sends to a local HTTP receiver that
  answers at once (lease, send, mark: three transactions and one HTTP call each);
- isolation: how long an officer's e-mail (a real SMTP server, aiosmtpd) takes to arrive while the
  webhook, queued before it, hangs unanswered for ``--hang-s`` seconds.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from alerts.model import AlertEvent
from alerts.notifiers.dispatch import Dispatcher
from alerts.notifiers.email import EmailNotifier
from alerts.notifiers.routing import Router
from alerts.notifiers.webhook import WebhookNotifier
from alerts.state import AlertStore
from eit.registry import load_registry
from statedb import open_state_db
from testbed.services import REPO, free_port

T0 = 1_795_752_000 * 1_000_000_000
SITE = REPO / "tests" / "data" / "compliance-site.yaml"


class Receiver:
    """An HTTP endpoint that answers 204, or holds every call for ``hang_s`` first."""

    def __init__(self, hang_s: float = 0.0) -> None:
        self.count = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                time.sleep(hang_s)
                receiver.count += 1
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _events(alerts: AlertStore, n: int, first: int = 0) -> list[AlertEvent]:
    out = []
    for i in range(first, first + n):
        key = ("biomass", "boiler", "so2", f"rule-{i}")
        alert = alerts.open_alert(key, "critical", "so2 above the limit", T0 + i, 75.0, 60.0, "ppm")
        assert alert is not None
        out.append(AlertEvent("opened", alert, 0))
    return out


def queueing(folder: Path, events: int) -> tuple[float, float, int]:
    """(median ms, p99 ms, notifications) per submitted event."""
    registry = load_registry(SITE)
    db = open_state_db(None, folder / "queueing.db")
    try:
        alerts = AlertStore(db)
        notifiers = [
            WebhookNotifier("http://127.0.0.1:9/hook"),
            EmailNotifier("127.0.0.1", 25, "eit@example.org"),
        ]
        d = Dispatcher(notifiers, Router(registry), db)  # not started: queueing only
        times = []
        for event in _events(alerts, events):
            started = time.perf_counter()
            d.submit(event)
            times.append((time.perf_counter() - started) * 1000)
        rows = sum(w.stats.queued for w in d.workers.values())
        return statistics.median(times), statistics.quantiles(times, n=100)[98], rows // events
    finally:
        db.close()


def delivering(folder: Path, events: int) -> float:
    """Notifications per second, one webhook's worker."""
    registry = load_registry(SITE)
    db = open_state_db(None, folder / "delivering.db")
    receiver = Receiver()
    try:
        alerts = AlertStore(db)
        d = Dispatcher([WebhookNotifier(receiver.url, retries=0)], Router(registry), db)
        for event in _events(alerts, events):
            d.submit(event)
        started = time.perf_counter()
        d.start()
        deadline = started + 300
        while receiver.count < events or not d.wait_idle(0.05):
            if time.perf_counter() > deadline:
                raise TimeoutError(f"{receiver.count} of {events} delivered in 300 s")
            time.sleep(0.01)
        elapsed = time.perf_counter() - started
        d.stop()
        return events / elapsed
    finally:
        receiver.close()
        db.close()


def isolation(folder: Path, hang_s: float) -> float:
    """Seconds from submitting an alert event to its e-mail arriving, while the webhook queued
    before it hangs."""
    from aiosmtpd.controller import Controller

    arrived = threading.Event()

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            arrived.set()
            return "250 OK"

    port = free_port()
    smtp = Controller(Handler(), hostname="127.0.0.1", port=port)
    smtp.start()
    receiver = Receiver(hang_s)
    registry = load_registry(SITE)
    db = open_state_db(None, folder / "isolation.db")
    try:
        alerts = AlertStore(db)
        webhook = WebhookNotifier(receiver.url, timeout_s=hang_s * 2, retries=0)
        d = Dispatcher(
            [webhook, EmailNotifier("127.0.0.1", port, "eit@example.org", retries=0)], Router(registry), db
        )
        d.start()
        [event] = _events(alerts, 1)
        started = time.perf_counter()
        d.submit(event)
        if not arrived.wait(hang_s * 3):
            raise TimeoutError("no e-mail")
        took = time.perf_counter() - started
        d.stop(1.0)
        return took
    finally:
        smtp.stop()
        receiver.close()
        db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=500)
    parser.add_argument("--hang-s", type=float, default=10.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        median, p99, rows = queueing(folder, args.events)
        print(f"queueing: {rows} notifications per event; submit {median:.2f} ms median, {p99:.2f} ms p99")
        print(f"delivering: {delivering(folder, args.events):.0f} notifications/s (one webhook worker)")
        took = isolation(folder, args.hang_s)
        print(f"isolation: e-mail after {took:.2f} s while the webhook hangs {args.hang_s:g} s")


if __name__ == "__main__":
    main()
