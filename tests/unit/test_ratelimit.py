"""Rate limits on their own (no model): cost units, prechecks that count nothing, the admin-token throttle."""

from __future__ import annotations

import pytest

from qa.errors import RateLimitedError
from qa.serve.ratelimit import AuthThrottle, RateLimiter
from qa.service import question_cost


def test_cost_grows_by_one_unit_per_64_encoder_tokens() -> None:
    assert [question_cost(t) for t in (0, 1, 63, 64, 127, 128)] == [1, 1, 1, 2, 2, 3]


def test_a_client_spends_its_budget_in_cost_units() -> None:
    limiter = RateLimiter("6/minute", limit_localhost=True)
    limiter.check("10.0.0.1", None, cost=3)
    limiter.check("10.0.0.1", None, cost=3)
    with pytest.raises(RateLimitedError) as refused:
        limiter.check("10.0.0.1", None, cost=1)
    assert refused.value.headers["Retry-After"].isdigit()
    limiter.check("10.0.0.2", None, cost=3)  # another client, another bucket


def test_a_question_dearer_than_the_whole_budget_still_fits_an_empty_window() -> None:
    limiter = RateLimiter("2/minute")
    limiter.check("10.0.0.1", None, cost=3)
    with pytest.raises(RateLimitedError):
        limiter.check("10.0.0.1", None, cost=1)


def test_the_precheck_refuses_a_spent_client_and_counts_nothing() -> None:
    limiter = RateLimiter("2/minute")
    for _ in range(5):
        limiter.precheck("10.0.0.1", None)  # never counted
    limiter.check("10.0.0.1", None, cost=2)
    with pytest.raises(RateLimitedError):
        limiter.precheck("10.0.0.1", None)


def test_loopback_is_exempt_unless_asked_and_made_up_tokens_count_against_the_ip() -> None:
    assert RateLimiter("1/minute").client_key("127.0.0.1", None) is None
    assert RateLimiter("1/minute", limit_localhost=True).client_key("127.0.0.1", None) == "ip:127.0.0.1"
    limiter = RateLimiter("1/minute", known_tokens=("a-known-token-123",))
    assert limiter.client_key("10.0.0.1", "Bearer made-up") == "ip:10.0.0.1"
    assert limiter.client_key(
        "10.0.0.1",
        "Bearer a-known-token-123",
    ).startswith("token:")


def test_the_auth_throttle_counts_failures_per_address_and_then_refuses_all() -> None:
    throttle = AuthThrottle("3/minute")
    for _ in range(3):
        throttle.precheck("10.0.0.1")
        throttle.failed("10.0.0.1")
    with pytest.raises(RateLimitedError) as refused:
        throttle.precheck("10.0.0.1")
    assert "wrong admin tokens" in refused.value.message and refused.value.headers["Retry-After"]
    throttle.precheck("10.0.0.2")  # another address is not affected


def test_loopback_gets_no_exemption_from_the_auth_throttle() -> None:
    throttle = AuthThrottle("1/minute")
    throttle.failed("127.0.0.1")
    with pytest.raises(RateLimitedError):
        throttle.precheck("127.0.0.1")
