"""Which requests are admin requests, strict JSON bodies and short echoes: the real app's routes, no model loaded
(no TestClient context is entered, so the lifespan that loads the model never runs)."""

from __future__ import annotations

import json

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient
from starlette.routing import BaseRoute
from starlette.types import Scope

from qa.config import Settings
from qa.serve.app import create_app
from qa.serve.errors import ECHO_MAX, shorten
from qa.serve.jsonbody import parse_json
from qa.serve.middleware import is_admin_request, requires_admin

ORIGIN = "http://widget.example"
ADMIN_ROUTES = {
    ("PUT", "/v1/documents/{doc_id:anypath}"),
    ("DELETE", "/v1/documents/{doc_id:anypath}"),
    ("POST", "/v1/index/rebuild"),
    ("GET", "/v1/jobs"),
    ("GET", "/v1/jobs/{job_id}"),
}
# (method, path, the method a CORS preflight asks for, or None for a plain request)
ADMIN_REQUESTS = [
    ("PUT", "/v1/documents/x", None),
    ("DELETE", "/v1/documents/x", None),
    ("GET", "/v1/jobs", None),
    ("GET", "/v1/jobs/abc", None),
    ("POST", "/v1/index/rebuild", None),
    ("OPTIONS", "/v1/documents/x", "PUT"),
    ("OPTIONS", "/v1/documents/x", "delete"),  # header values are compared upper-cased
    ("OPTIONS", "/v1/jobs", "POST"),  # no route serves POST /v1/jobs, but only admin routes have the path
    ("OPTIONS", "/v1/jobs/abc", "GET"),
    ("OPTIONS", "/v1/index/rebuild", "POST"),
]
PUBLIC_REQUESTS = [
    ("GET", "/v1/documents/x", None),
    ("GET", "/v1/documents", None),
    ("POST", "/v1/ask", None),
    ("GET", "/healthz", None),
    ("GET", "/", None),
    ("POST", "/v1/documents/x", None),  # no route for it, and the path is also a public one: not admin
    ("OPTIONS", "/v1/documents/x", "GET"),
    ("OPTIONS", "/v1/ask", "POST"),
    ("OPTIONS", "/v1/documents/x", ""),  # a preflight that names no method
]


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    root = tmp_path_factory.mktemp("app")
    return create_app(Settings(index_dir=root / "i", corpus_dir=root / "c", cors_origins=(ORIGIN,)))


@pytest.fixture(scope="module")
def endpoints(app: FastAPI) -> list[BaseRoute]:
    """Every route of the app as one flat list (FastAPI ≥ 0.137 keeps included routers as nodes of a tree in
    `app.router.routes`; `iter_route_contexts` is its public way to flatten them). No router has a prefix,
    so each original route matches the paths the app serves."""
    return [ctx.original_route for ctx in iter_route_contexts(app.router.routes)]


def _scope(method: str, path: str, preflight: str | None = None) -> Scope:
    headers = [(b"origin", ORIGIN.encode())]
    if preflight is not None:
        headers.append((b"access-control-request-method", preflight.encode()))
    return {
        "type": "http",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": headers,
    }


def _api_routes(endpoints: list[BaseRoute]) -> list[APIRoute]:
    return [r for r in endpoints if isinstance(r, APIRoute)]


@pytest.mark.parametrize(("method", "path", "preflight"), ADMIN_REQUESTS)
def test_admin_requests_and_their_preflights_are_admin(
    endpoints: list[BaseRoute], method: str, path: str, preflight: str | None
) -> None:
    assert is_admin_request(_scope(method, path, preflight), endpoints)


@pytest.mark.parametrize(("method", "path", "preflight"), PUBLIC_REQUESTS)
def test_public_requests_and_their_preflights_are_not_admin(
    endpoints: list[BaseRoute], method: str, path: str, preflight: str | None
) -> None:
    assert not is_admin_request(_scope(method, path, preflight), endpoints)


@pytest.mark.parametrize(("method", "path", "preflight"), PUBLIC_REQUESTS)
def test_public_requests_are_not_admin_on_the_list_the_middleware_gets(
    app: FastAPI, method: str, path: str, preflight: str | None
) -> None:
    assert not is_admin_request(_scope(method, path, preflight), app.router.routes)


@pytest.mark.parametrize(("method", "path", "preflight"), ADMIN_REQUESTS)
def test_admin_requests_are_admin_on_the_list_the_middleware_gets(
    app: FastAPI, method: str, path: str, preflight: str | None
) -> None:
    """PublicCORS is given `app.router.routes` (install_middleware), a tree of included routers: the decision
    must hold on that list, not only on a flat one."""
    assert is_admin_request(_scope(method, path, preflight), app.router.routes)


def test_requires_admin_reads_the_route_contexts_of_included_routers(app: FastAPI) -> None:
    contexts = list(iter_route_contexts(app.router.routes))
    assert {(m, c.path) for c in contexts if requires_admin(c) for m in c.methods or ()} == ADMIN_ROUTES


def test_exactly_the_admin_routers_routes_require_the_admin_token(endpoints: list[BaseRoute]) -> None:
    admin = {(m, r.path) for r in _api_routes(endpoints) if requires_admin(r) for m in r.methods or ()}
    assert admin == ADMIN_ROUTES


def test_every_jobs_and_index_route_requires_the_admin_token(endpoints: list[BaseRoute]) -> None:
    routes = [r for r in _api_routes(endpoints) if r.path.startswith(("/v1/jobs", "/v1/index"))]
    assert {r.path for r in routes} == {"/v1/jobs", "/v1/jobs/{job_id}", "/v1/index/rebuild"}
    assert all(requires_admin(r) for r in routes)


def test_no_public_route_requires_the_admin_token(endpoints: list[BaseRoute]) -> None:
    public = [r for r in _api_routes(endpoints) if not ADMIN_ROUTES & {(m, r.path) for m in r.methods or ()}]
    paths = {r.path for r in public}
    assert {"/v1/ask", "/v1/documents", "/v1/documents/{doc_id:anypath}", "/healthz", "/readyz", "/v1/info"} <= paths
    assert not [r.path for r in public if requires_admin(r)]


def test_a_public_route_answers_cross_origin(app: FastAPI) -> None:
    r = TestClient(app).get("/healthz", headers={"Origin": ORIGIN})
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == ORIGIN


def test_an_admin_route_never_answers_cross_origin(app: FastAPI) -> None:
    client = TestClient(app)
    r = client.get("/v1/jobs", headers={"Origin": ORIGIN})
    assert r.status_code == 403  # the admin API is disabled here: QA_ADMIN_TOKEN is unset
    assert "access-control-allow-origin" not in r.headers
    preflight = client.options("/v1/jobs", headers={"Origin": ORIGIN, "Access-Control-Request-Method": "GET"})
    assert "access-control-allow-origin" not in preflight.headers


def test_405_on_a_top_level_route_names_its_methods(app: FastAPI) -> None:
    r = TestClient(app).delete("/widget.js")
    assert r.status_code == 405 and r.headers["allow"] == "GET, HEAD"


def test_405_on_a_routers_route_names_its_methods(app: FastAPI) -> None:
    r = TestClient(app).delete("/v1/ask")
    assert r.status_code == 405 and r.headers["allow"] == "POST"


# qa.serve.jsonbody.parse_json


def test_parse_json_reads_utf8_json() -> None:
    assert parse_json('{"question": "日本的产业空心化", "top_k": 3}'.encode()) == {
        "question": "日本的产业空心化",
        "top_k": 3,
    }


@pytest.mark.parametrize(
    ("body", "key"),
    [
        (b'{"question": "a", "question": "b"}', "question"),
        (b'{"doc_ids": ["a"], "filter": {"x": 1, "x": 2}}', "x"),  # nested objects too
        (b'[{"k": 1}, {"k": 2, "k": 3}]', "k"),
    ],
)
def test_parse_json_refuses_a_duplicated_key(body: bytes, key: str) -> None:
    with pytest.raises(json.JSONDecodeError, match=f"duplicate key '{key}'"):
        parse_json(body)


def test_keys_that_differ_only_in_case_are_not_duplicates() -> None:
    assert parse_json(b'{"a": 1, "A": 2}') == {"a": 1, "A": 2}


def test_a_duplicated_long_key_is_named_shortened() -> None:
    key = "k" * 10_000
    with pytest.raises(json.JSONDecodeError) as exc:
        parse_json(f'{{"{key}": 1, "{key}": 2}}'.encode())
    assert len(exc.value.msg) < 200 and "10000 characters" in exc.value.msg


@pytest.mark.parametrize("body", [b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 100_000 + b"1" + b"}" * 100_000])
def test_parse_json_refuses_nesting_too_deep_to_parse(body: bytes) -> None:
    with pytest.raises(json.JSONDecodeError, match="nested too deeply"):
        parse_json(body)


def test_parse_json_reads_reasonable_nesting() -> None:
    assert parse_json(b"[" * 100 + b"]" * 100) is not None


@pytest.mark.parametrize("body", ['{"question": "日本"}'.encode("gb18030"), b'{"question": "\xff"}'])
def test_parse_json_refuses_bytes_that_are_not_utf8(body: bytes) -> None:
    with pytest.raises(json.JSONDecodeError, match="not UTF-8"):
        parse_json(body)


def test_parse_json_refuses_utf16_and_utf32() -> None:
    accepted = []
    for encoding in ("utf-16", "utf-16-le", "utf-32"):
        try:
            parse_json('{"question": "日本"}'.encode(encoding))
            accepted.append(encoding)
        except json.JSONDecodeError:
            pass
    assert accepted == []


# qa.serve.errors.shorten


def test_shorten_keeps_a_string_up_to_the_limit() -> None:
    assert shorten("x" * ECHO_MAX) == "x" * ECHO_MAX
    assert shorten("report-2026", 11) == "report-2026"


def test_shorten_cuts_a_longer_string_and_says_how_long_it_was() -> None:
    assert shorten("abcdef", 3) == "abc… (6 characters)"
    long = shorten("文" * 60_000)
    assert long.startswith("文" * ECHO_MAX + "…") and "60000 characters" in long
    assert len(long) < ECHO_MAX + 30


def test_shorten_handles_an_empty_string_and_a_tiny_limit() -> None:
    assert shorten("", 0) == ""
    assert shorten("ab", 1) == "a… (2 characters)"
