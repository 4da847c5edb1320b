"""Per-client limits with the `limits` library (moving window): questions by cost, wrong admin tokens by count.

The client is its bearer token when it sends one the service knows (hashed,
never stored), else its IP address: an unknown token counts against the IP, so
rotating made-up tokens cannot dodge the limit. The address is the socket's
peer unless it is one of QA_TRUSTED_PROXIES (then X-Forwarded-For, see
qa/serve/proxies.py), so a client cannot choose its own. Loopback clients are exempt
from the question limit unless QA_RATE_LIMIT_LOCALHOST=1, so local tools and
benchmarks are not throttled; never from the admin-token throttle. The default
in-memory storage counts per worker process; point QA_RATE_LIMIT_STORAGE at
redis:// to share the count between workers or replicas.

A question costs `qa.service.question_cost(tokens)` units: the encoder's time
grows with the question's tokens (bench/cost_probes.py), so a 128-token question
spends three times the budget of a short one.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import math
import time

from limits import RateLimitItem, parse_many
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
        namespace: str = "ask",
    ) -> None:
        self.items = parse_many(rate)
        self.known_tokens = tuple(t.encode() for t in known_tokens if t)
        self.limiter = MovingWindowRateLimiter(storage_from_string(storage_uri))
        self.limit_localhost = limit_localhost
        self.rate = rate
        self.namespace = namespace

    def precheck(self, client_host: str | None, authorization: str | None) -> None:
        """Refuse a client with no budget left before any work is spent on its request (counts nothing)."""
        key = self.client_key(client_host, authorization)
        if key is None:
            return
        for item in self.items:
            if not self.limiter.test(item, self.namespace, key):
                raise _refused(
                    self.limiter, item, self.namespace, key, f"rate limit of {item} exceeded for this client"
                )

    def check(self, client_host: str | None, authorization: str | None, cost: int = 1) -> None:
        """Count `cost` units for this client; raise RateLimitedError (with Retry-After) when over."""
        key = self.client_key(client_host, authorization)
        if key is None:
            return
        for item in self.items:
            if not self.limiter.hit(item, self.namespace, key, cost=min(cost, item.amount)):
                raise _refused(
                    self.limiter, item, self.namespace, key, f"rate limit of {item} exceeded for this client"
                )

    def client_key(self, client_host: str | None, authorization: str | None) -> str | None:
        scheme, _, token = (authorization or "").partition(" ")
        sent = token.strip().encode()
        if scheme.lower() == "bearer" and sent and any(hmac.compare_digest(sent, t) for t in self.known_tokens):
            return "token:" + hashlib.sha256(sent).hexdigest()[:24]
        host = client_host or "unknown"
        if not self.limit_localhost and _loopback(host):
            return None
        return "ip:" + host


class AuthThrottle:
    """Wrong admin tokens per client address: over QA_ADMIN_AUTH_LIMIT every admin request from that
    address is refused with 429 until the window frees, right token or not — otherwise a guesser would
    simply keep going and watch for the one answer that is not a 429."""

    def __init__(self, rate: str, storage_uri: str = "memory://") -> None:
        self.items = parse_many(rate)
        self.limiter = MovingWindowRateLimiter(storage_from_string(storage_uri))
        self.rate = rate

    def precheck(self, client_host: str | None) -> None:
        key = client_host or "unknown"
        for item in self.items:
            if not self.limiter.test(item, "admin-auth", key):
                raise _refused(
                    self.limiter, item, "admin-auth", key, f"too many wrong admin tokens from this client ({item})"
                )

    def failed(self, client_host: str | None) -> None:
        key = client_host or "unknown"
        for item in self.items:
            self.limiter.hit(item, "admin-auth", key)


def _refused(
    limiter: MovingWindowRateLimiter, item: RateLimitItem, namespace: str, key: str, why: str
) -> RateLimitedError:
    """A 429 saying why and when to retry (also as Retry-After)."""
    reset, _ = limiter.get_window_stats(item, namespace, key)
    retry = max(1, math.ceil(reset - time.time()))
    err = RateLimitedError(f"{why}; retry in {retry} s", {"limit": str(item), "retry_after": retry})
    err.headers = {"Retry-After": str(retry)}
    return err


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"
