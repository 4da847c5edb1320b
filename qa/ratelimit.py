"""Per-client rate limit on /v1/ask, with the `limits` library (moving window).

The client is its bearer token when it sends one the service knows (hashed,
never stored), else its IP address: an unknown token counts against the IP, so
rotating made-up tokens cannot dodge the limit. Loopback clients are exempt unless QA_RATE_LIMIT_LOCALHOST=1,
so local tools and benchmarks are not throttled. The default in-memory storage
counts per worker process; point QA_RATE_LIMIT_STORAGE at redis:// to share
the count between workers or replicas.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import math
import time

from limits import parse_many
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from qa.errors import RateLimitedError


class RateLimiter:
    def __init__(
        self,
        rate: str,
        storage_uri: str = "memory://",
        limit_localhost: bool = False,
        known_tokens: tuple[str, ...] = (),
    ) -> None:
        self.items = parse_many(rate)
        self.known_tokens = tuple(t.encode() for t in known_tokens if t)
        self.limiter = MovingWindowRateLimiter(storage_from_string(storage_uri))
        self.limit_localhost = limit_localhost
        self.rate = rate

    def check(self, client_host: str | None, authorization: str | None) -> None:
        """Count one request for this client; raise RateLimitedError (with Retry-After) when over."""
        key = self.client_key(client_host, authorization)
        if key is None:
            return
        for item in self.items:
            if not self.limiter.hit(item, "ask", key):
                reset, _ = self.limiter.get_window_stats(item, "ask", key)
                retry = max(1, math.ceil(reset - time.time()))
                err = RateLimitedError(
                    f"rate limit of {item} exceeded for this client; retry in {retry} s",
                    {"limit": str(item), "retry_after": retry},
                )
                err.headers = {"Retry-After": str(retry)}
                raise err

    def client_key(self, client_host: str | None, authorization: str | None) -> str | None:
        scheme, _, token = (authorization or "").partition(" ")
        sent = token.strip().encode()
        if scheme.lower() == "bearer" and sent and any(hmac.compare_digest(sent, t) for t in self.known_tokens):
            return "token:" + hashlib.sha256(sent).hexdigest()[:24]
        host = client_host or "unknown"
        if not self.limit_localhost and _loopback(host):
            return None
        return "ip:" + host


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"
