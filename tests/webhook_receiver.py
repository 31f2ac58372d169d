"""A real HTTP server on a free port that records the JSON POSTed to it (a webhook endpoint).

It can be down for a while (``refusing``: every call answered 503) or hang (while ``hanging`` is
set, every call waits, unanswered, until ``release()``)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from testbed.services import wait_for


class WebhookReceiver:
    def __init__(self, fail_first: int = 0, fail_status: int = 503) -> None:
        self.received: list[dict[str, Any]] = []
        self.raw: list[tuple[dict[str, str], bytes]] = []  # headers and body of accepted calls
        self.attempts = 0
        self.attempted_at: list[float] = []  # time.monotonic() of each call
        self.fail_first = fail_first
        self.fail_status = fail_status
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                receiver.attempts += 1
                receiver.attempted_at.append(time.monotonic())
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if receiver.attempts <= receiver.fail_first:
                    self.send_response(receiver.fail_status)
                    self.end_headers()
                    return
                if receiver.hanging.is_set():
                    receiver.hung += 1
                    receiver._released.wait()
                if receiver.refusing:
                    receiver.refused.append(dict(self.headers.items()))
                    self.send_response(503)
                    self.end_headers()
                    return
                receiver.received.append(json.loads(body))
                receiver.raw.append((dict(self.headers.items()), body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.refusing = False
        self.refused: list[dict[str, str]] = []  # headers of the calls answered 503 while refusing
        self.hanging = threading.Event()
        self.hung = 0  # calls that waited
        self._released = threading.Event()

    def release(self) -> None:
        """Answer the calls that hang, and hang no more."""
        self.hanging.clear()
        self._released.set()

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
        self.server.shutdown()
        self.server.server_close()

    def wait_for(self, predicate: Any, timeout_s: float, what: str) -> dict[str, Any]:
        found: list[dict[str, Any]] = []

        def check() -> bool:
            for item in self.received:
                if predicate(item):
                    found.append(item)
                    return True
            return False

        wait_for(check, timeout_s, what)
        return found[0]
