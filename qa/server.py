"""Run the service: build the index if there is none to serve (with progress), then serve with uvicorn.

A missing index, or one built with another model or chunker, is built before
serving (unless QA_BUILD_ON_START=0: a read-only replica waits for a writer).
An index that only lags the corpus serves at once, and the app rebuilds it in
the background (QA_BUILD_ON_START), swapping when done.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import Any

import h11
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from qa.config import Settings
from qa.errors import error_body
from qa.logs import setup_logging

log = logging.getLogger(__name__)


def serve(settings: Settings) -> int:
    import uvicorn

    from qa.api import create_app
    from qa.service import Service

    setup_logging(settings.log_level)
    service = Service(settings)
    if not settings.build_on_start:
        # a read-only replica never builds (with Milvus it would publish its own, maybe empty, corpus): it
        # serves what the store serves, and says not_ready until a writer has built something
        log.info("QA_BUILD_ON_START=0: serving the store's current index, never building it")
    else:
        state = service.index_state()
        if state in ("missing", "config"):
            why = "missing" if state == "missing" else "built with other settings"
            log.info("index %s: building before serving", why)
            result = service.build()
            log.info("index %s ready: %d docs, %d chunks", result.version, result.documents, result.chunks)
        elif state == "corpus":
            log.warning("the corpus changed since the index was built: serving it and rebuilding in the background")
    log.info("serving on http://%s:%d (%d worker(s))", settings.host, settings.port, settings.workers)
    configure(settings)
    if settings.workers > 1:
        # each worker process loads its own model and snapshot from the same index directory
        uvicorn.run("qa.api:app_from_env", factory=True, workers=settings.workers, **uvicorn_options(settings))
    else:
        uvicorn.run(create_app(settings, service), **uvicorn_options(settings))
    return 0


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """How uvicorn serves: no proxy headers of its own (qa.proxies decides whom to believe), its h11
    protocol with our deadline for request heads, and the limits from QA_* settings."""
    return {
        "host": settings.host,
        "port": settings.port,
        "http": GuardedH11Protocol,
        "ws": "none",
        "proxy_headers": False,
        "timeout_keep_alive": settings.keep_alive_timeout,
        "h11_max_incomplete_event_size": settings.max_header_bytes,
        "log_config": None,
        "access_log": False,
    }


@dataclass(frozen=True)
class Limits:
    header_timeout: float
    max_connections: int


_limits = Limits(Settings.header_timeout, Settings.max_connections)


def configure(settings: Settings) -> None:
    """Set the connection limits for this process (uvicorn builds protocols from a class, not an instance)."""
    global _limits
    _limits = Limits(settings.header_timeout, settings.max_connections)


def raw_error(status: int, reason: str, code: str, message: str, retry_after: int | None = None) -> bytes:
    """A whole HTTP/1.1 error response in the API's error shape, for answers given below the app."""
    body = json.dumps(error_body(code, message)).encode()
    head = [
        f"HTTP/1.1 {status} {reason}",
        "content-type: application/json",
        f"content-length: {len(body)}",
        "connection: close",
    ]
    if retry_after is not None:
        head.append(f"retry-after: {retry_after}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


class HeadLimit:
    """431 for a request head over QA_MAX_HEADER_BYTES. uvicorn's h11 limit only bounds a head still
    being received; one that arrives whole in a single read is parsed at any size."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            size = len(scope.get("raw_path", b"")) + len(scope.get("query_string", b""))
            size += sum(len(k) + len(v) + 4 for k, v in scope.get("headers", []))
            if size > self.max_bytes:
                message = f"request head over {self.max_bytes} bytes (QA_MAX_HEADER_BYTES)"
                body = error_body("headers_too_large", message, {"bytes": size})
                await JSONResponse(body, status_code=431)(scope, receive, send)
                return
        await self.app(scope, receive, send)


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, plus what it lacks against slow or piled-up clients: a request head
    must arrive within QA_HEADER_TIMEOUT of the connection opening (or of the previous response),
    else 408 and close — uvicorn's keep-alive timer restarts on every byte, so a client sending a
    byte a second held a connection for ever; and beyond QA_MAX_CONNECTIONS open connections a new
    one gets 503 at once. Errors below the app keep the API's JSON error shape."""

    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > _limits.max_connections:
            log.warning("over QA_MAX_CONNECTIONS=%d: refusing a connection", _limits.max_connections)
            message = "too many open connections; retry shortly"
            transport.write(raw_error(503, "Service Unavailable", "overloaded", message, retry_after=1))
            transport.close()
            return
        self._arm_head_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def send_400_response(self, msg: str) -> None:
        self._cancel_head_timer()
        self.transport.write(raw_error(400, "Bad Request", "bad_http_request", msg))
        self.transport.close()

    def _arm_head_timer(self) -> None:
        self._cancel_head_timer()
        if not self.transport.is_closing():
            self._head_timer = self.loop.call_later(_limits.header_timeout, self._head_timeout)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timeout(self) -> None:
        self._head_timer = None
        waiting = self.conn.their_state is h11.IDLE and (self.cycle is None or self.cycle.response_complete)
        if waiting and not self.transport.is_closing():
            message = f"request headers not received within {_limits.header_timeout:g} s (QA_HEADER_TIMEOUT)"
            self.transport.write(raw_error(408, "Request Timeout", "request_timeout", message))
            self.transport.close()
