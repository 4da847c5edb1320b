"""What an adversarial pass found, each attack replayed and shown not to work any more.

Where the behaviour lives in uvicorn (client addresses, header deadlines, connection caps) the test
talks to a real uvicorn configured exactly as `qa serve` configures it (`conftest.live_server`).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import replace

import httpx
import pytest

from conftest import ROOT, live_server, serving
from qa.config import Settings
from qa.embedding import Embedder
from qa.errors import ConfigError
from qa.serve.app import create_app
from qa.service import Service, question_cost

NORMAL = {"question": "晶圆厂", "top_k": 1}
DEGENERATE = ["的" * 1000, "\u0301" * 1000, "a " * 500]
GOOD_TOKEN = "a-long-enough-admin-token"


def statuses(url: str, n: int, headers: list[dict[str, str]] | None = None, body: dict | None = None) -> list[int]:
    with httpx.Client(base_url=url, timeout=30) as c:
        return [c.post("/v1/ask", json=body or NORMAL, headers=(headers or [{}] * n)[i]).status_code for i in range(n)]


# --- 1. X-Forwarded-For ----------------------------------------------------------------------------


def test_a_rotating_forwarded_for_does_not_open_new_buckets(corpus_service: Service) -> None:
    settings = replace(corpus_service.settings, rate_limit="3/minute", rate_limit_localhost=True)
    with live_server(settings, corpus_service) as url:
        rotating = [{"X-Forwarded-For": f"10.0.0.{i}"} for i in range(6)]
        assert statuses(url, 6, rotating) == [200, 200, 200, 429, 429, 429]


def test_forwarded_for_counts_only_from_a_trusted_proxy_and_only_as_an_ip(corpus_service: Service) -> None:
    settings = replace(
        corpus_service.settings, rate_limit="2/minute", rate_limit_localhost=True, trusted_proxies=("127.0.0.1",)
    )
    with live_server(settings, corpus_service) as url:
        # behind the proxy each client is its own bucket, and the proxy's own address is not anybody's
        alice = [{"X-Forwarded-For": "203.0.113.7"}] * 3
        bob = [{"X-Forwarded-For": "198.51.100.1, 203.0.113.9"}] * 3  # right-most untrusted entry is the client
        assert statuses(url, 3, alice) == [200, 200, 429]
        assert statuses(url, 3, bob) == [200, 200, 429]
        with httpx.Client(base_url=url) as c:
            refused = c.post("/v1/ask", json=NORMAL, headers={"X-Forwarded-For": "not-an-ip"})
            assert refused.status_code == 400 and refused.json()["error"]["code"] == "bad_forwarded_for"


def test_trusted_proxies_must_be_addresses_not_a_wildcard() -> None:
    assert Settings.from_env({"QA_TRUSTED_PROXIES": "127.0.0.1, 10.0.0.0/8"}).trusted_proxies == (
        "127.0.0.1",
        "10.0.0.0/8",
    )
    for bad in ("*", "proxy.internal", "10.0.0.0/33"):
        with pytest.raises(ConfigError, match="QA_TRUSTED_PROXIES"):
            Settings.from_env({"QA_TRUSTED_PROXIES": bad})


# --- 2. costly questions -------------------------------------------------------------------------


@pytest.mark.parametrize("question", [*DEGENERATE, "日本经济安全保障与美日同盟" * 80])
def test_the_encoder_reads_at_most_the_token_cap(embedder: Embedder, question: str) -> None:
    clipped, tokens = embedder.clip_query(question)
    assert question.startswith(clipped)
    assert tokens <= embedder.max_query_tokens == 128
    assert embedder.token_count(clipped) <= 128 + 2  # plus <s> and </s>


def test_a_question_costs_units_by_its_encoder_tokens(corpus_service: Service) -> None:
    assert [question_cost(t) for t in (1, 13, 63, 64, 128)] == [1, 1, 1, 2, 3]
    assert corpus_service.question_cost("晶圆厂") == 1
    assert corpus_service.question_cost("的" * 1000) == 3
    settings = replace(corpus_service.settings, rate_limit="6/minute", rate_limit_localhost=True)
    with serving(create_app(settings, corpus_service)) as c:
        costly = [c.post("/v1/ask", json={"question": "的" * 1000, "top_k": 1}) for _ in range(3)]
        assert [r.status_code for r in costly] == [200, 200, 429]  # 3 + 3 units spend the budget of 6
        assert costly[-1].headers["retry-after"]


def test_a_refusal_is_held_before_it_is_sent(corpus_service: Service) -> None:
    settings = replace(corpus_service.settings, rate_limit="1/minute", rate_limit_localhost=True, rate_limit_delay=0.5)
    with serving(create_app(settings, corpus_service)) as c:
        assert c.post("/v1/ask", json=NORMAL).status_code == 200
        started = time.monotonic()
        refused = c.post("/v1/ask", json=NORMAL)
        assert refused.status_code == 429 and time.monotonic() - started >= 0.5  # a flood of refusals stays slow


def test_long_questions_take_turns_and_short_ones_never_wait_for_them(corpus_service: Service) -> None:
    settings = replace(corpus_service.settings, max_long_questions=1)
    with serving(create_app(settings, corpus_service)) as c:
        lane = c.app.state.runtime.long_questions  # type: ignore[attr-defined]
        c.portal.call(lane.acquire)  # type: ignore[union-attr]  # as if a long question were being answered
        done: list[int] = []
        waiting = threading.Thread(
            target=lambda: done.append(c.post("/v1/ask", json={"question": "的" * 1000}).status_code)
        )
        try:
            assert c.post("/v1/ask", json=NORMAL).status_code == 200  # a short question goes straight through
            waiting.start()
            waiting.join(2.0)
            assert not done  # the long one waits for its turn
        finally:
            c.portal.call(lane.release)  # type: ignore[union-attr]
        waiting.join(60)
        assert done == [200]


# --- 3. junk questions ---------------------------------------------------------------------------


@pytest.mark.parametrize("junk", ["😀", "x", "\udcff", "\u0301" * 1000, "？？", "12345"])
def test_junk_questions_are_never_answerable(corpus_service: Service, junk: str) -> None:
    with serving(create_app(corpus_service.settings, corpus_service)) as c:
        body = json.dumps({"question": junk}).encode()  # a lone surrogate travels as its JSON escape
        answer = c.post("/v1/ask", content=body, headers={"Content-Type": "application/json"})
        assert answer.status_code == 200, answer.text
        assert answer.json()["answerable"] is False


@pytest.mark.parametrize("invisible", ["\u200b" * 5, "\u200e\u202e\u2066", "\ufeff \u2060"])
def test_questions_of_format_characters_only_are_blank(corpus_service: Service, invisible: str) -> None:
    with serving(create_app(corpus_service.settings, corpus_service)) as c:
        refused = c.post("/v1/ask", json={"question": invisible})
        assert refused.status_code == 422 and "invisible" in refused.json()["error"]["message"]


# --- 4. admin token ------------------------------------------------------------------------------


@pytest.mark.parametrize("token", ["Zq9", "short-token", "é" * 20, "sixteen chars ok"])
def test_a_weak_or_non_ascii_admin_token_stops_the_server_at_start(token: str) -> None:
    env = {**os.environ, "QA_ADMIN_TOKEN": token, "QA_PORT": "1"}
    run = subprocess.run(
        [sys.executable, "-m", "qa.cli", "serve"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 2
    assert run.stderr.startswith("error: QA_ADMIN_TOKEN must be at least 16 printable ASCII characters")
    assert "Traceback" not in run.stderr and token not in run.stderr  # a secret, even a weak one
    assert Settings.from_env({"QA_ADMIN_TOKEN": GOOD_TOKEN}).admin_token == GOOD_TOKEN


def test_wrong_admin_tokens_are_throttled_even_for_the_right_one_after(corpus_service: Service) -> None:
    settings = replace(corpus_service.settings, admin_token=GOOD_TOKEN, admin_auth_limit="5/minute")
    with serving(create_app(settings, corpus_service)) as c:
        wrong = [c.get("/v1/jobs", headers={"Authorization": f"Bearer guess-{i}"}) for i in range(7)]
        assert [r.status_code for r in wrong] == [403] * 5 + [429] * 2
        assert 1 <= int(wrong[-1].headers["retry-after"]) <= 60
        assert wrong[-1].json()["error"]["code"] == "rate_limited"
        right = c.get("/v1/jobs", headers={"Authorization": f"Bearer {GOOD_TOKEN}"})
        assert right.status_code == 429  # else a guesser would just watch for the answer that is not a 429


def test_the_right_token_is_not_throttled(corpus_service: Service) -> None:
    settings = replace(corpus_service.settings, admin_token=GOOD_TOKEN, admin_auth_limit="2/minute")
    with serving(create_app(settings, corpus_service)) as c:
        auth = {"Authorization": f"Bearer {GOOD_TOKEN}"}
        assert {c.get("/v1/jobs", headers=auth).status_code for _ in range(10)} == {200}


def test_the_admin_token_must_match_byte_for_byte(corpus_service: Service) -> None:
    settings = replace(corpus_service.settings, admin_token=GOOD_TOKEN)
    with serving(create_app(settings, corpus_service)) as c:
        near = GOOD_TOKEN[:-1] + "\u00e9"  # Latin-1 in the header: never equal to an ASCII token
        assert c.get("/v1/jobs", headers={"Authorization": f"Bearer {near}".encode("latin-1")}).status_code == 403


# --- 7. server limits ----------------------------------------------------------------------------


def _slow_client(port: int, out: dict[str, tuple[float, bytes]], name: str) -> None:
    """Sends a request head one byte every 0.3 s (a slowloris); records when the server hung up."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.settimeout(10)
        try:
            for byte in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * 100:
                s.send(bytes([byte]))
                time.sleep(0.3)
            reply = b"(never cut)"
        except OSError:
            reply = b""
        with contextlib.suppress(OSError):
            reply = reply or s.recv(4096)
    out[name] = (time.monotonic() - started, reply)


def test_slow_or_silent_request_heads_are_cut_at_the_header_timeout(corpus_service: Service) -> None:
    settings = replace(corpus_service.settings, header_timeout=1.0)
    with live_server(settings, corpus_service) as url:
        port = int(url.rsplit(":", 1)[1])
        out: dict[str, tuple[float, bytes]] = {}
        threads = [threading.Thread(target=_slow_client, args=(port, out, f"slow{i}")) for i in range(5)]
        for t in threads:
            t.start()
        with socket.create_connection(("127.0.0.1", port)) as silent:
            silent.settimeout(10)
            started = time.monotonic()
            reply = silent.recv(4096)
            out["silent"] = (time.monotonic() - started, reply)
        for t in threads:
            t.join(15)
        assert set(out) == {"silent", *(f"slow{i}" for i in range(5))}
        for name, (seconds, _) in out.items():
            assert seconds < 5, (name, seconds)  # 1 s deadline; a byte every 0.3 s needs ~60 s for the head
        head, _, body = out["silent"][1].partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408") and json.loads(body)["error"]["code"] == "request_timeout"
        assert httpx.get(url + "/healthz").status_code == 200  # the server itself is fine


def test_a_request_started_in_time_is_not_cut(corpus_service: Service) -> None:
    settings = replace(corpus_service.settings, header_timeout=1.0)
    with live_server(settings, corpus_service) as url, httpx.Client(base_url=url) as c:
        for _ in range(3):  # one keep-alive connection: each request gets its own deadline
            assert c.post("/v1/ask", json=NORMAL).status_code == 200
            time.sleep(0.6)


def test_connections_beyond_the_cap_get_a_json_503(corpus_service: Service) -> None:
    settings = replace(corpus_service.settings, max_connections=3, header_timeout=5.0)
    with live_server(settings, corpus_service) as url:
        port = int(url.rsplit(":", 1)[1])
        held = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
        try:
            time.sleep(0.2)
            with socket.create_connection(("127.0.0.1", port)) as extra:
                extra.settimeout(5)
                head, _, body = extra.recv(4096).partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 503") and b"retry-after: 1" in head.lower()
            assert json.loads(body)["error"]["code"] == "overloaded"
        finally:
            for s in held:
                s.close()
        time.sleep(0.2)
        assert httpx.get(url + "/healthz").status_code == 200  # room again once they left


def test_oversized_request_heads_are_refused_in_json(corpus_service: Service) -> None:
    settings = replace(corpus_service.settings, max_header_bytes=4096)
    with live_server(settings, corpus_service) as url:
        whole = httpx.get(url + "/healthz", headers={"X-Big": "a" * 8000})  # arrives in one read
        assert whole.status_code == 431 and whole.json()["error"]["code"] == "headers_too_large"
        assert httpx.get(url + "/healthz", headers={"X-Fine": "a" * 1000}).status_code == 200
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port)) as s:  # a head that never ends is not buffered
            s.settimeout(10)
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            time.sleep(0.1)
            try:
                for _ in range(4):
                    s.sendall(b"X-More: " + b"a" * 2000 + b"\r\n")
                    time.sleep(0.1)
            except OSError:
                pass
            head, _, body = s.recv(4096).partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 400") and json.loads(body)["error"]["code"] == "bad_http_request"
