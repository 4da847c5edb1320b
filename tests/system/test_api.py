"""The HTTP contract of /v1/ask, the documents API, health and errors — real model, real index, on every
store (FAISS, Milvus Lite, and a live Milvus cluster when QA_TEST_MILVUS_URI is set)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from conftest import assert_error, serving
from qa.serve.app import create_app
from qa.service import Service

TRANSPORT = "日本运输机械行业海外生产比率是多少？"


@pytest.fixture(scope="module")
def client(store_service: Service) -> Iterator[TestClient]:
    with serving(create_app(store_service.settings, store_service)) as c:
        yield c


def ask(client: TestClient, **body: object) -> dict:
    r = client.post("/v1/ask", json=body)
    assert r.status_code == 200, r.text
    return r.json()


def test_ask_returns_the_documented_fields(client: TestClient) -> None:
    body = ask(client, question=TRANSPORT, top_k=5, doc_ids=None)
    assert body["question"] == TRANSPORT
    assert body["answerable"] is True
    assert isinstance(body["took_ms"], float) and body["took_ms"] > 0
    assert re.fullmatch(r"\d{8}T\d+-[0-9a-f]{8}", body["index_version"])
    assert 1 <= len(body["passages"]) <= 5
    fields = {
        "rank",
        "score",
        "doc_id",
        "title",
        "chunk_id",
        "text",
        "start",
        "end",
        "highlights",
        "evidence",
        "matched_terms",
        "dense_rank",
        "bm25_rank",
    }
    for i, p in enumerate(body["passages"], start=1):
        assert fields <= set(p)
        assert p["rank"] == i and 0.0 <= p["score"] <= 1.0
        assert p["start"] < p["end"]


def test_transport_question_cites_44_4_percent_at_rank_1(client: TestClient) -> None:
    top = ask(client, question=TRANSPORT)["passages"][0]
    assert "44.4%" in top["text"]
    assert top["doc_id"] == "000_b2b502afe09dfef5"
    assert "产业空心化" in top["title"]


def test_offsets_index_the_raw_document_text(client: TestClient) -> None:
    for p in ask(client, question="美日经济安全同盟的推动力量", top_k=10)["passages"]:
        raw = client.get(f"/v1/documents/{p['doc_id']}").json()["text"]
        span = re.sub(r"\s", "", raw[p["start"] : p["end"]])
        text = re.sub(r"\s", "", p["text"])
        it = iter(span)
        assert all(ch in it for ch in text)
        assert raw[p["start"]] == p["text"][0]


def test_scores_descend_with_rank(client: TestClient) -> None:
    scores = [p["score"] for p in ask(client, question="日本产业空心化有哪些表现？", top_k=10)["passages"]]
    assert scores == sorted(scores, reverse=True)


def test_highlights_and_evidence_lie_inside_the_text(client: TestClient) -> None:
    body = ask(client, question="日本运输机械行业海外生产比率是多少？", top_k=5)
    top = body["passages"][0]
    assert top["highlights"] and top["matched_terms"]
    for a, b in top["highlights"]:
        assert 0 <= a < b <= len(top["text"])
    lowered = top["text"].lower()
    assert any(t in lowered for t in top["matched_terms"])
    a, b = top["evidence"]
    assert 0 <= a < b <= len(top["text"]) and "44.4%" in top["text"][a:b]


def test_rank_explanations_name_both_retrievers(client: TestClient) -> None:
    top = ask(client, question=TRANSPORT)["passages"][0]
    assert top["dense_rank"] is not None and top["bm25_rank"] is not None
    english = ask(client, question="How do I configure a Kubernetes ingress controller?", top_k=5)
    assert any(p["bm25_rank"] is None for p in english["passages"])


def test_top_k_limits_the_passages(client: TestClient) -> None:
    assert len(ask(client, question="经济安全", top_k=1)["passages"]) == 1
    assert len(ask(client, question="经济安全", top_k=12)["passages"]) == 12


def test_no_two_passages_overlap_by_more_than_half(client: TestClient) -> None:
    passages = ask(client, question="日本对外直接投资与产业空心化", top_k=30)["passages"]
    for i, a in enumerate(passages):
        for b in passages[i + 1 :]:
            if a["doc_id"] == b["doc_id"]:
                inter = min(a["end"], b["end"]) - max(a["start"], b["start"])
                assert inter <= 0.5 * min(a["end"] - a["start"], b["end"] - b["start"])


def test_doc_ids_restrict_the_search(client: TestClient) -> None:
    only = ["002_ba0bb63e0258bd58"]
    passages = ask(client, question="5500亿美元对美投资", top_k=8, doc_ids=only)["passages"]
    assert passages and {p["doc_id"] for p in passages} == set(only)


def test_unknown_doc_id_is_404_naming_it(client: TestClient) -> None:
    err = assert_error(
        client.post("/v1/ask", json={"question": "x", "doc_ids": ["nope_123"]}), 404, "document_not_found"
    )
    assert "nope_123" in err["message"]


def test_traditional_question_finds_the_simplified_text(client: TestClient) -> None:
    body = ask(client, question="日本運輸機械行業海外生產比率是多少？")
    assert "44.4%" in body["passages"][0]["text"]
    assert "海外生产比率" in body["passages"][0]["matched_terms"]


def test_english_question_works_across_languages(client: TestClient) -> None:
    body = ask(client, question="What share of Japan's transport machinery production is overseas?", top_k=5)
    assert body["answerable"] is True
    assert any("44.4%" in p["text"] for p in body["passages"])


def test_full_width_question_is_normalised(client: TestClient) -> None:
    body = ask(client, question="ＪＢＩＣ设立的专门设施支持多少对美投资？")
    assert "jbic" in body["passages"][0]["matched_terms"]


def test_out_of_domain_question_is_not_answerable(client: TestClient) -> None:
    body = ask(client, question="明天上海会下雨吗？需要带伞吗？")
    assert body["answerable"] is False
    assert body["passages"]  # still returned, ranked


@pytest.mark.parametrize(
    "body",
    [
        {"question": ""},
        {"question": "   \n\t "},
        {"question": "\u0001"},
        {"question": "\ufeff "},
        {"question": "长" * 1001},
        {"question": "x", "top_k": 0},
        {"question": "x", "top_k": 51},
        {"question": "x", "top_k": "5"},
        {"question": "x", "top_k": True},
        {"question": "x", "top_k": 2.5},
        {"question": 42},
        {"question": ["a"]},
        {"question": "x", "doc_ids": "000"},
        {"question": "x", "unknown_field": 1},
        {},
    ],
)
def test_bad_ask_bodies_are_422(client: TestClient, body: dict) -> None:
    assert_error(client.post("/v1/ask", json=body), 422, "invalid_request")


def test_integral_float_top_k_is_accepted(client: TestClient) -> None:
    assert len(ask(client, question="经济安全", top_k=3.0)["passages"]) == 3


def test_malformed_json_is_400(client: TestClient) -> None:
    r = client.post("/v1/ask", content=b'{"question": ', headers={"content-type": "application/json"})
    assert_error(r, 400, "malformed_json")


def test_oversized_body_is_413(client: TestClient) -> None:
    r = client.post(
        "/v1/ask", content=b'{"question": "' + b"a" * 70_000 + b'"}', headers={"content-type": "application/json"}
    )
    assert_error(r, 413, "payload_too_large")


def test_unknown_route_is_404_and_wrong_method_405(client: TestClient) -> None:
    assert_error(client.get("/v2/nothing"), 404, "not_found")
    assert_error(client.get("/v1/ask"), 405, "method_not_allowed")


def test_control_characters_do_not_crash(client: TestClient) -> None:
    body = ask(client, question="日本\x00产业\x07空心化\x1b[31m？")
    assert body["passages"]


def test_lone_surrogate_is_a_clear_error_not_a_crash(client: TestClient) -> None:
    r = client.post(
        "/v1/ask", content='{"question": "日本\\ud800产业"}'.encode(), headers={"content-type": "application/json"}
    )
    assert r.status_code in (200, 422), r.text
    assert r.status_code == 200 or r.json()["error"]["code"] == "invalid_request"


def test_documents_are_listed(client: TestClient) -> None:
    body = client.get("/v1/documents").json()
    docs = {d["doc_id"]: d for d in body["documents"]}
    assert set(docs) == {"000_b2b502afe09dfef5", "001_f609a139d62f3c97", "002_ba0bb63e0258bd58", "003_9a26cb7cfdeac646"}
    for d in docs.values():
        assert {"doc_id", "title", "source", "chars", "chunks"} <= set(d) and d["chunks"] > 0 and d["chars"] > 0
    assert docs["003_9a26cb7cfdeac646"]["title"].startswith("美日经济安全同盟")


def test_document_returns_the_raw_file_text(client: TestClient, store_service: Service) -> None:
    body = client.get("/v1/documents/001_f609a139d62f3c97").json()
    raw = (store_service.settings.corpus_dir / "001_f609a139d62f3c97.txt").read_text(encoding="utf-8")
    assert body["text"] == raw and body["chars"] == len(raw)


def test_unknown_document_is_404(client: TestClient) -> None:
    assert_error(client.get("/v1/documents/does-not-exist"), 404, "document_not_found")


def test_health_ready_and_info(client: TestClient, store_service: Service) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    info = client.get("/v1/info").json()
    assert ready["status"] == "ready" and ready["index_version"] == info["index"]["version"]
    assert info["model"]["dim"] == 384 and info["index"]["counts"]["chunks"] > 100
    assert info["index"]["store"] == store_service.settings.store


def test_index_version_is_the_same_everywhere(client: TestClient) -> None:
    version = client.get("/readyz").json()["index_version"]
    assert ask(client, question="经济安全")["index_version"] == version


def test_openapi_documents_the_routes_and_error_shape(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    assert {"/v1/ask", "/v1/documents", "/v1/documents/{doc_id}", "/healthz", "/readyz", "/v1/info"} <= set(
        schema["paths"]
    )
    ask_responses = schema["paths"]["/v1/ask"]["post"]["responses"]
    assert {"200", "400", "404", "413", "422", "503"} <= set(ask_responses)
    assert client.get("/docs").status_code == 200


def test_every_response_says_nosniff_and_echoes_request_id(client: TestClient) -> None:
    r = client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["x-request-id"] == "abc-123"


def test_missing_index_is_503_with_the_reason_until_one_is_built(store_service: Service, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A replica may start before the writer's first build: it says why it is not ready, then picks it up."""
    from dataclasses import replace

    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "note.txt").write_text("北海道千岁市的晶圆厂月产能达到四万片。", encoding="utf-8")
    prefix = f"{store_service.settings.milvus_prefix}_empty"  # a cluster has no such collections
    settings = replace(
        store_service.settings, corpus_dir=tmp_path / "corpus", index_dir=tmp_path / "empty-index", milvus_prefix=prefix
    )
    service = Service(settings, store_service.embedder, store_service.tokenizer)
    try:
        with TestClient(create_app(settings, service)) as c:
            deadline = time.monotonic() + 30
            while "qa build" not in (c.get("/readyz").json().get("detail") or ""):
                assert time.monotonic() < deadline
                time.sleep(0.1)
            assert c.get("/readyz").status_code == 503
            err = assert_error(c.post("/v1/ask", json={"question": "x"}), 503, "not_ready")
            assert "qa build" in err["message"]
            assert c.get("/healthz").status_code == 200
            writer = Service(settings, store_service.embedder, store_service.tokenizer, store=service.store)
            writer.build(progress=False)
            deadline = time.monotonic() + 30
            while c.get("/readyz").status_code != 200:
                assert time.monotonic() < deadline, c.get("/readyz").json()
                time.sleep(0.1)
            assert ask(c, question="晶圆厂月产能")["passages"][0]["doc_id"] == "note"
    finally:
        if hasattr(service.store, "drop_all"):
            service.store.drop_all()


def test_cors_only_for_listed_origins(store_service: Service) -> None:
    from dataclasses import replace

    settings = replace(store_service.settings, cors_origins=("http://tools.internal",))
    with TestClient(create_app(settings, store_service)) as c:
        ok = c.options("/v1/ask", headers={"Origin": "http://tools.internal", "Access-Control-Request-Method": "POST"})
        bad = c.options("/v1/ask", headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"})
        assert ok.headers.get("access-control-allow-origin") == "http://tools.internal"
        assert "access-control-allow-origin" not in bad.headers
    with TestClient(create_app(store_service.settings, store_service)) as c:
        r = c.get("/healthz", headers={"Origin": "http://tools.internal"})
        assert "access-control-allow-origin" not in r.headers


def test_widget_assets_and_demo_page_are_served(client: TestClient) -> None:
    assert client.get("/widget.js", params={"v": "3"}).status_code == 200  # cache busting is fine
    assert client.get("/", params={"utm_source": "wiki"}).status_code == 200
    assert_error(client.get("/v1/documents", params={"limt": "5"}), 422, "invalid_request")  # API typos are not
    js = client.get("/widget.js")
    assert js.status_code == 200 and "javascript" in js.headers["content-type"]
    assert client.get("/widget.css").headers["content-type"].startswith("text/css")
    page = client.get("/")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert 'src="/widget.js"' in page.text
