"""Who the client is: the socket's peer, or — only from QA_TRUSTED_PROXIES — what X-Forwarded-For says.

uvicorn believes X-Forwarded-For from 127.0.0.1 by default, so any local
client could pick its own address (and a fresh rate-limit bucket) per request.
`qa.serve.server` switches that off; this middleware switches it back on for the
listed proxies only, with uvicorn's own parser (the right-most address no
trusted proxy added is the client), and refuses a forwarded value that is
not an IP address.
"""

from __future__ import annotations

import ipaddress

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from qa.errors import error_body


class TrustedProxies:
    def __init__(self, app: ASGIApp, proxies: tuple[str, ...]) -> None:
        self.app = app
        self.forwarded = ProxyHeadersMiddleware(self._checked, trusted_hosts=list(proxies))  # type: ignore[arg-type]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.forwarded(scope, receive, send)  # type: ignore[arg-type]

    async def _checked(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = scope.get("client")
        if client and not _is_ip(client[0]):
            message = "X-Forwarded-For from a trusted proxy must end in the client's IP address"
            body = error_body("bad_forwarded_for", message, {"header": "X-Forwarded-For"})
            await JSONResponse(body, status_code=400)(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False
