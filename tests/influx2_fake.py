"""FAKE InfluxDB 2.x: a contract server for the store kind ``influxdb2``, because InfluxDB 2.x
cannot be installed from Debian here. It checks the parts of the 2.x API the store uses and hands
the data to a real InfluxDB 1.x behind it, so what is written can be read back for real:

- ``POST /api/v2/write?org=&bucket=&precision=``: ``Authorization: Token <token>`` (401
  otherwise), the organisation and bucket it knows (404 otherwise, as 2.x answers), precision
  ``ns``, a line-protocol body (gzip when Content-Encoding says so); answers 204. The lines go to
  the 1.x database named like the bucket; what it refuses comes back as 2.x words it (400, or 422
  for a partial write).
- ``/query`` (the v1 compatibility API, InfluxQL): the same token, ``db`` mapped to the bucket;
  passed to the 1.x server.
- ``GET /ping``: 204.

Every call is recorded (method, path, query parameters, headers, body).
"""

from __future__ import annotations

import gzip
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests


@dataclass
class Call:
    method: str
    path: str
    params: dict[str, str]
    headers: dict[str, str]
    body: bytes


class FakeInflux2:
    def __init__(self, engine_url: str, org: str, bucket: str, token: str) -> None:
        self.engine_url = engine_url
        self.org, self.bucket, self.token = org, bucket, token
        self.calls: list[Call] = []
        self.fail_writes_with: int | None = None  # answer writes with this status instead
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        requests.post(f"{engine_url}/query", params={"q": f'CREATE DATABASE "{bucket}"'}, timeout=10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> FakeInflux2:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def writes(self) -> list[Call]:
        return [c for c in self.calls if c.path == "/api/v2/write"]

    def answer(self, call: Call) -> tuple[int, bytes, str]:
        if call.path == "/ping":
            return 204, b"", "text/plain"
        if call.headers.get("authorization") != f"Token {self.token}":
            return 401, b'{"code":"unauthorized","message":"unauthorized access"}', "application/json"
        if call.path == "/api/v2/write" and call.method == "POST":
            if call.params.get("org") != self.org:
                return 404, b'{"code":"not found","message":"organization not found"}', "application/json"
            if call.params.get("bucket") != self.bucket:
                return 404, b'{"code":"not found","message":"bucket not found"}', "application/json"
            if call.params.get("precision") != "ns":
                return (
                    400,
                    b'{"code":"invalid","message":"this fake expects precision=ns"}',
                    "application/json",
                )
            if self.fail_writes_with is not None:
                return (
                    self.fail_writes_with,
                    b'{"code":"internal error","message":"told to fail"}',
                    "application/json",
                )
            resp = requests.post(
                f"{self.engine_url}/write",
                params={"db": self.bucket, "precision": "ns"},
                data=call.body,
                timeout=10,
            )
            if resp.status_code != 204:
                # 2.x answers a partial write (points the engine refused) with 422.
                return (
                    422 if "partial write" in resp.text else 400,
                    b'{"code":"invalid","message":"' + resp.text.encode()[:200].replace(b'"', b"'") + b'"}',
                    "application/json",
                )
            return 204, b"", "text/plain"
        if call.path == "/query":
            if call.params.get("db") not in (None, self.bucket):
                return 404, b'{"code":"not found","message":"no dbrp mapping"}', "application/json"
            resp = requests.post(f"{self.engine_url}/query", params=call.params, timeout=10)
            return resp.status_code, resp.content, "application/json"
        return 404, b'{"code":"not found","message":"path not found"}', "application/json"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                url = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                params = {k: v[-1] for k, v in parse_qs(url.query).items()}
                if self.headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"):
                    params.update({k: v[-1] for k, v in parse_qs(body.decode()).items()})
                call = Call(
                    self.command, url.path, params, {k.lower(): v for k, v in self.headers.items()}, body
                )
                fake.calls.append(call)
                status, data, ctype = fake.answer(call)
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _serve

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler
