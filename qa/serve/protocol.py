"""uvicorn's h11 protocol with what it lacks against slow or piled-up clients, answering in the API's JSON shape."""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from qa.config import Settings
from qa.errors import error_body

log = logging.getLogger(__name__)


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
