"""The error contract at the edges (review #17, findings 8 and 9): one JSON error shape for every refusal,
no client-sent id echoed or logged at full length, strict JSON bodies, HEAD wherever GET, CORS refusals in
the error shape, and API docs that load nothing from the internet. Real model, real index, no mocks."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import replace
from html.parser import HTMLParser

import httpx
import pytest
from fastapi.testclient import TestClient

from conftest import live_server, serving
from qa.serve.app import create_app
from qa.service import Service

ERROR_KEYS = {"code", "message", "details"}
ORIGIN = "http://tools.internal"
TOKEN = "contract-admin-token-0123456789"
DOC_ID = "001_f609a139d62f3c97"
LONG_ID = "长" * 200 + "x" * 59_800  # 60,000 characters (61,600 bytes percent-encoded: under httpx's URL limit)
JSON = {"content-type": "application/json"}
GET_ROUTES = ["/healthz", "/readyz", "/v1/info", "/v1/documents", f"/v1/documents/{DOC_ID}", "/openapi.json", "/docs"]


@pytest.fixture(scope="module")
def client(corpus_service: Service) -> Iterator[TestClient]:
    """The real app with CORS and the admin API on, and a request-head limit high enough that a
    60,000-character id reaches the routes (by default QA_MAX_HEADER_BYTES refuses it earlier, with a 431)."""
    settings = replace(corpus_service.settings, cors_origins=(ORIGIN,), admin_token=TOKEN, max_header_bytes=512 * 1024)
    with serving(create_app(settings, corpus_service)) as c:
        yield c


def assert_error(r: httpx.Response, status: int, code: str) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == ERROR_KEYS
    assert body["error"]["code"] == code and body["error"]["message"]
    return body["error"]


def post_json(client: TestClient, path: str, raw: str | bytes, token: str | None = None) -> httpx.Response:
    headers = {**JSON, **({"Authorization": f"Bearer {token}"} if token else {})}
    return client.post(path, content=raw.encode() if isinstance(raw, str) else raw, headers=headers)


# --------------------------------------------------------------------------- over-long ids


def test_over_long_document_id_gets_a_small_404_with_the_id_shortened(client: TestClient) -> None:
    r = client.get(f"/v1/documents/{LONG_ID}")
    err = assert_error(r, 404, "document_not_found")
    assert len(r.content) < 2_000
    assert LONG_ID[:80] + "…" in err["message"] and "60000 characters" in err["message"]
    assert err["details"]["doc_id"].startswith(LONG_ID[:80] + "…")
    assert LONG_ID[:200] not in r.text


def test_over_long_document_id_is_not_in_the_request_log(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="qa.api"):
        assert client.get(f"/v1/documents/{LONG_ID}").status_code == 404
    lines = [r for r in caplog.records if r.name == "qa.api" and getattr(r, "qa_status", None) == 404]
    assert lines, "the request was not logged"
    for record in lines:
        logged = [record.getMessage(), *(str(v) for k, v in vars(record).items() if k.startswith("qa_"))]
        assert all(len(text) < 1_000 and LONG_ID[:300] not in text for text in logged), record.getMessage()[:300]
        assert "60014 characters" in record.qa_path  # "/v1/documents/" + the id: its length is still told


def test_long_but_possible_unknown_id_is_shortened_too(client: TestClient) -> None:
    """Ids under the cap reach the store, whose error names the id in full: the API shortens it."""
    doc_id = "y" * 3_000
    r = client.get(f"/v1/documents/{doc_id}")
    err = assert_error(r, 404, "document_not_found")
    assert len(r.content) < 2_000 and "3000 characters" in err["message"]


def test_known_document_is_still_served(client: TestClient) -> None:
    assert client.get(f"/v1/documents/{DOC_ID}").json()["doc_id"] == DOC_ID


def test_long_unknown_doc_ids_in_an_ask_filter_are_echoed_shortened(client: TestClient) -> None:
    ids = ["z" * 200, "w" * 200]
    r = client.post("/v1/ask", json={"question": "经济安全", "doc_ids": ids})
    err = assert_error(r, 404, "document_not_found")
    assert ids[0] not in r.text and "z" * 80 + "… (200 characters)" in err["message"]
    assert err["details"]["doc_ids"] == ["z" * 80 + "… (200 characters)", "w" * 80 + "… (200 characters)"]


def test_long_unknown_route_is_not_echoed_in_full(client: TestClient) -> None:
    r = client.get("/v2/" + "a" * 60_000)
    assert_error(r, 404, "not_found")
    assert len(r.content) < 2_000


def test_long_unknown_query_parameter_name_is_echoed_shortened(client: TestClient) -> None:
    r = client.get("/v1/documents", params={"q" * 5_000: "1"})
    assert_error(r, 422, "invalid_request")
    assert len(r.content) < 2_000


def test_long_unknown_body_field_is_echoed_shortened(client: TestClient) -> None:
    r = client.post("/v1/ask", json={"question": "经济安全", "k" * 30_000: 1})
    assert_error(r, 422, "invalid_request")
    assert len(r.content) < 2_000


# --------------------------------------------------------------------------- strict JSON bodies


@pytest.mark.parametrize(
    "raw", ["[" * 20_000, '{"question": ' * 4_000, '{"a": [' * 8_000], ids=["lists", "objects", "mixed"]
)
def test_deeply_nested_json_is_400_malformed_json(client: TestClient, raw: str) -> None:
    err = assert_error(post_json(client, "/v1/ask", raw), 400, "malformed_json")
    assert "nested too deeply" in err["message"]


def test_duplicate_json_key_is_400_naming_the_key(client: TestClient) -> None:
    err = assert_error(post_json(client, "/v1/ask", '{"question": "a", "question": "日本经济"}'), 400, "malformed_json")
    assert "duplicate key 'question'" in err["message"]


def test_duplicate_key_inside_a_nested_object_is_refused_too(client: TestClient) -> None:
    raw = '{"question": "日本经济", "doc_ids": null, "extra": {"x": 1, "x": 2}}'
    err = assert_error(post_json(client, "/v1/ask", raw), 400, "malformed_json")
    assert "duplicate key 'x'" in err["message"]


def test_long_duplicated_key_is_named_shortened(client: TestClient) -> None:
    key = "q" * 20_000
    r = post_json(client, "/v1/ask", f'{{"{key}": 1, "{key}": 2}}')
    assert_error(r, 400, "malformed_json")
    assert len(r.content) < 2_000


def test_duplicate_json_key_is_refused_on_admin_routes(client: TestClient) -> None:
    r = post_json(client, "/v1/index/rebuild", '{"force": true, "force": false}', token=TOKEN)
    err = assert_error(r, 400, "malformed_json")
    assert "duplicate key 'force'" in err["message"]
    # the same body without the duplicate is parsed and reaches the route's checks (here: a wrong token)
    assert_error(post_json(client, "/v1/index/rebuild", '{"force": true}', token="wrong-token"), 403, "forbidden")


def test_body_that_is_not_utf8_is_400_malformed_json(client: TestClient) -> None:
    err = assert_error(post_json(client, "/v1/ask", b'{"question": "\xff\xfe"}'), 400, "malformed_json")
    assert "UTF-8" in err["message"]


def test_syntax_error_is_still_400_malformed_json_saying_why(client: TestClient) -> None:
    err = assert_error(post_json(client, "/v1/ask", '{"question": '), 400, "malformed_json")
    assert "Expecting value" in err["message"]


def test_strict_parsing_keeps_well_formed_bodies_working(client: TestClient) -> None:
    r = post_json(client, "/v1/ask", '{"question": "日本运输机械行业海外生产比率是多少？", "top_k": 2}')
    assert r.status_code == 200, r.text
    assert len(r.json()["passages"]) == 2


# --------------------------------------------------------------------------- CORS preflights


def test_refused_cors_preflight_is_the_json_error_naming_the_origin(client: TestClient) -> None:
    r = client.options("/v1/ask", headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"})
    err = assert_error(r, 400, "cors_refused")
    assert "origin 'http://evil.example'" in err["message"]
    assert err["details"]["refused"] == ["origin"]
    assert "access-control-allow-origin" not in r.headers


def test_refused_cors_preflight_names_a_refused_method_and_header(client: TestClient) -> None:
    headers = {"Origin": ORIGIN, "Access-Control-Request-Method": "PATCH", "Access-Control-Request-Headers": "x-evil"}
    err = assert_error(client.options("/v1/ask", headers=headers), 400, "cors_refused")
    assert "method 'PATCH'" in err["message"] and "'x-evil'" in err["message"]
    assert err["details"]["refused"] == ["method", "headers"]


def test_refused_cors_preflight_shortens_a_long_origin(client: TestClient) -> None:
    origin = "http://" + "e" * 5_000 + ".example"
    r = client.options("/v1/ask", headers={"Origin": origin, "Access-Control-Request-Method": "POST"})
    assert_error(r, 400, "cors_refused")
    assert len(r.content) < 2_000


def test_allowed_cors_preflight_is_unchanged(client: TestClient) -> None:
    r = client.options("/v1/ask", headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"})
    assert r.status_code == 200 and r.text == "OK"
    assert r.headers["access-control-allow-origin"] == ORIGIN
    assert r.headers["access-control-allow-methods"] == "GET, POST"


# --------------------------------------------------------------------------- HEAD


@pytest.mark.parametrize("path", GET_ROUTES)
def test_head_answers_like_get_without_a_body(client: TestClient, path: str) -> None:
    got, head = client.get(path), client.head(path)
    assert head.status_code == got.status_code == 200
    assert head.content == b""
    assert head.headers["content-type"] == got.headers["content-type"]
    assert head.headers["content-length"] == str(len(got.content))


def test_head_on_a_route_without_get_is_405_allowing_post_only(client: TestClient) -> None:
    r = client.head("/v1/ask")
    assert r.status_code == 405 and r.content == b""
    assert r.headers["allow"] == "POST"


def test_head_of_an_unknown_route_is_404(client: TestClient) -> None:
    assert client.head("/v2/nothing").status_code == 404


def test_head_keeps_the_status_of_an_error(client: TestClient) -> None:
    r = client.head("/v1/documents/does-not-exist")
    assert r.status_code == 404 and r.content == b""
    assert int(r.headers["content-length"]) == len(client.get("/v1/documents/does-not-exist").content)


def test_405_allow_header_lists_head_where_get_is_allowed(client: TestClient) -> None:
    assert client.post("/healthz").headers["allow"] == "GET, HEAD"
    assert client.post(f"/v1/documents/{DOC_ID}").headers["allow"] == "DELETE, GET, HEAD, PUT"


def test_head_adds_no_operation_to_the_openapi_schema(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert all("head" not in operations for operations in paths.values())
    assert set(paths["/healthz"]) == {"get"}


def test_head_over_real_http_sends_headers_only(corpus_service: Service) -> None:
    with live_server(corpus_service.settings, corpus_service) as url:
        got = httpx.get(url + "/v1/documents", timeout=30)
        head = httpx.head(url + "/v1/documents", timeout=30)
    assert head.status_code == got.status_code == 200
    assert head.content == b"" and head.headers["content-length"] == str(len(got.content))


# --------------------------------------------------------------------------- offline API docs


class _References(HTMLParser):
    """Every URL a page loads: script src, link href, img src."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if value is not None and (name, tag) in {("src", "script"), ("href", "link"), ("src", "img")}:
                self.urls.append(value)


def references(html: str) -> list[str]:
    parser = _References()
    parser.feed(html)
    return parser.urls


EXTERNAL = re.compile(r"https?://|//[a-z0-9]", re.IGNORECASE)


def test_docs_page_references_only_same_origin_assets(client: TestClient) -> None:
    html = client.get("/docs").text
    urls = references(html)
    assert len(urls) == 3, urls  # the Swagger UI script, its CSS, the favicon
    assert all(u.startswith("/") and not u.startswith("//") for u in urls), urls
    assert not EXTERNAL.search(html), EXTERNAL.search(html)
    assert "cdn" not in html.lower()


def test_every_asset_the_docs_page_references_is_served_with_its_type(client: TestClient) -> None:
    kinds = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}
    for url in references(client.get("/docs").text):
        r = client.get(url)  # with its `?v=` cache buster: asset routes take any query
        assert r.status_code == 200, (url, r.text[:200])
        expected = next(t for ext, t in kinds.items() if url.split("?")[0].endswith(ext))
        assert r.headers["content-type"].split(";")[0] == expected, url
        assert len(r.content) > 1_000, url
        assert r.headers["x-content-type-options"] == "nosniff"


def test_swagger_ui_is_a_version_that_reads_openapi_3_1(client: TestClient) -> None:
    assert client.get("/openapi.json").json()["openapi"].startswith("3.1")
    bundle = client.get(next(u for u in references(client.get("/docs").text) if "swagger-ui-bundle" in u)).text
    version = re.search(r'PACKAGE_VERSION:"(\d+)\.', bundle)
    assert version and int(version.group(1)) >= 5  # Swagger UI 4 cannot render an OpenAPI 3.1 schema


def test_swagger_online_validator_badge_is_off(client: TestClient) -> None:
    assert '"validatorUrl": null' in client.get("/docs").text


def test_oauth2_redirect_page_is_served_locally(client: TestClient) -> None:
    r = client.get("/docs/oauth2-redirect")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert not references(r.text) and not EXTERNAL.search(r.text)


def test_redoc_is_switched_off(client: TestClient) -> None:
    """fastapi-offline's ReDoc 2.5.3 loads its footer logo from cdn.redoc.ly whatever the options."""
    assert_error(client.get("/redoc"), 404, "not_found")


def test_docs_routes_stay_out_of_the_schema(client: TestClient) -> None:
    paths = set(client.get("/openapi.json").json()["paths"])
    assert not {p for p in paths if p.startswith(("/docs", "/redoc"))}
