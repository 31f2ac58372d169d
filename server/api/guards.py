"""What every request passes before a route sees it (one ASGI middleware, outermost):

- **Body size**: a body larger than ``max_body_bytes`` is refused with 413, by its Content-Length
  before a byte is read, or, sent in chunks, as soon as it grows past the limit. An upload path
  (``uploads``: path -> its own limit, e.g. the duties' PDF reports) may take more, and only from
  an account: its writes are authenticated before the body is read.
- **Authentication before the body**: every write under ``/api/v1/`` (POST, PUT, PATCH, DELETE),
  except logging in, needs an account; without a bearer token that the server issued, it answers
  401 before the body is read, so an anonymous caller cannot make the server read or parse JSON.
- **Framing and content sniffing**: every answer says ``X-Frame-Options: DENY``,
  ``X-Content-Type-Options: nosniff`` and, unless the route set its own (the pages, the API
  explorer), a Content-Security-Policy that allows nothing to load, run or frame it (the HTML
  compliance report keeps its inline styles).
"""

from __future__ import annotations

import json
from typing import Any

import anyio.to_thread
from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Counter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from eit.errors import EitError
from server.api.auth import Auth

# For any answer without a policy of its own: JSON, CSV, the HTML report, errors.
STRICT_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none';"
    " frame-ancestors 'none'"
)
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
OPEN_WRITES = frozenset({"/api/v1/token"})


class BodyTooLarge(Exception):
    pass


class RequestGuard:
    def __init__(
        self,
        app: ASGIApp,
        max_body_bytes: int,
        auth: Auth | None,
        refused: Counter,
        uploads: dict[str, int] | None = None,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.auth = auth
        self.refused = refused
        # Upload paths with a larger limit; never without authentication (see above).
        self.uploads = dict(uploads or {}) if auth is not None else {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        path = str(scope.get("path", ""))
        limit = self.max_body_bytes
        if scope.get("method") in WRITE_METHODS:
            limit = max(limit, self.uploads.get(path, 0))
        declared = headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                await self._refuse(send, 400, "the Content-Length header is not a number", "bad_length")
                return
            if int(declared) > limit:
                await self._refuse(send, 413, self._too_large_text(limit), "too_large")
                return
        if (
            self.auth is not None
            and scope.get("method") in WRITE_METHODS
            and path.startswith("/api/v1/")
            and path not in OPEN_WRITES
            and not await self._authenticated(headers.get("authorization", ""))
        ):
            await self._refuse(
                send,
                401,
                "this needs an account: log in (POST /api/v1/token) and send the bearer token",
                "unauthenticated",
                {"WWW-Authenticate": "Bearer"},
            )
            return

        received = 0
        too_large = False
        refusal_sent = False

        async def counted_receive() -> Message:
            nonlocal received, too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    too_large = True
                    raise BodyTooLarge
            return message

        async def secured_send(message: Message) -> None:
            nonlocal refusal_sent
            if too_large:
                # The route turned the aborted read into an error of its own: answer 413 instead.
                if not refusal_sent:
                    refusal_sent = True
                    await self._refuse(send, 413, self._too_large_text(limit), "too_large")
                return
            if message["type"] == "http.response.start":
                message["headers"] = _with_security_headers(list(message.get("headers", [])))
            await send(message)

        try:
            await self.app(scope, counted_receive, secured_send)
        except BodyTooLarge:
            if not refusal_sent:
                refusal_sent = True
                await self._refuse(send, 413, self._too_large_text(limit), "too_large")

    def _too_large_text(self, limit: int) -> str:
        return f"the request body is larger than {limit} bytes, the most this server reads"

    async def _authenticated(self, authorization: str) -> bool:
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or len(token) > 200 or self.auth is None:
            return False
        accounts = self.auth.accounts
        try:
            user = await anyio.to_thread.run_sync(accounts.user_for_token, token, self.auth.clock())
        except EitError:
            return True  # the route's own check answers 503 for an unreachable state database
        return user is not None

    async def _refuse(
        self, send: Send, status: int, detail: str, reason: str, extra: dict[str, str] | None = None
    ) -> None:
        self.refused.labels(reason).inc()
        body = json.dumps({"detail": detail}).encode()
        raw = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
            *((k.lower().encode(), v.encode()) for k, v in (extra or {}).items()),
        ]
        await send({"type": "http.response.start", "status": status, "headers": _with_security_headers(raw)})
        await send({"type": "http.response.body", "body": body})


def _with_security_headers(headers: list[Any]) -> list[Any]:
    names = {bytes(k).lower() for k, _ in headers}
    if b"content-security-policy" not in names:
        headers.append((b"content-security-policy", STRICT_CSP.encode()))
    if b"x-frame-options" not in names:
        headers.append((b"x-frame-options", b"DENY"))
    if b"x-content-type-options" not in names:
        headers.append((b"x-content-type-options", b"nosniff"))
    return headers


def install_guards(
    app: FastAPI,
    max_body_bytes: int,
    auth: Auth | None,
    metrics: CollectorRegistry,
    uploads: dict[str, int] | None = None,
) -> None:
    refused = Counter(
        "eit_http_requests_refused",
        "Requests refused before any route: too_large, unauthenticated (a write without an account),"
        " bad_length",
        ["reason"],
        registry=metrics,
    )
    app.add_middleware(
        RequestGuard, max_body_bytes=max_body_bytes, auth=auth, refused=refused, uploads=uploads
    )
