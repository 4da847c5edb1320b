"""The admin API: documents in and out through authenticated, atomic writes and rebuild jobs.

Real model, real index of real corpus files, in a private corpus directory — on the FAISS store and on
Milvus Lite (a rebuild there fills new collections and moves the alias).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from conftest import CORPUS, assert_error, serving
from qa.config import Settings
from qa.embedding import Embedder
from qa.logs import JsonFormatter
from qa.serve.app import create_app
from qa.service import Service
from qa.tokens import Tokenizer

TOKEN = "s3cret-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
TEXT = {"Content-Type": "text/plain; charset=utf-8"}
BASE_DOC = "002_ba0bb63e0258bd58"  # the smallest corpus file: the index starts with it alone
NEW_TEXT = (
    "第一章 北海道半导体产业\n\n"
    "2026年，北海道千岁市的晶圆厂完成了第二期扩建，月产能达到四万片。"
    "地方政府为该项目提供了土地和电力方面的支持，并设立了人才培训中心。\n\n"
    "第二章 供应链\n\n"
    "该厂所需的高纯度化学品主要由本州的供应商提供，部分设备从荷兰进口。"
)


def wait_job(client: TestClient, job_id: str, timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"/v1/jobs/{job_id}", headers=AUTH).json()
        if job["state"] in ("succeeded", "failed", "interrupted"):
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.1)


@pytest.fixture(scope="module", params=["faiss", "milvus"])
def admin_settings(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, base_settings: Settings
) -> Settings:
    root = tmp_path_factory.mktemp(f"admin-{request.param}")
    (root / "corpus").mkdir()
    shutil.copy2(CORPUS / f"{BASE_DOC}.txt", root / "corpus")
    return replace(
        base_settings,
        corpus_dir=root / "corpus",
        index_dir=root / "index",
        admin_token=TOKEN,
        max_document_bytes=200_000,
        poll_seconds=0.05,
        store=request.param,
    )


@pytest.fixture(scope="module")
def admin_service(admin_settings: Settings, embedder: Embedder, tokenizer: Tokenizer) -> Service:
    service = Service(admin_settings, embedder, tokenizer)
    service.build(progress=False)
    return service


@pytest.fixture(scope="module")
def client(admin_settings: Settings, admin_service: Service) -> Iterator[TestClient]:
    with serving(create_app(admin_settings, admin_service)) as c:
        yield c


def corpus_files(settings: Settings) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(settings.corpus_dir.iterdir())}


# --- auth -----------------------------------------------------------------------------------------

ADMIN_CALLS = [
    ("PUT", "/v1/documents/x1", {"content": "正文", "headers": TEXT}),
    ("DELETE", "/v1/documents/x1", {}),
    ("POST", "/v1/index/rebuild", {"json": {}}),
    ("GET", "/v1/jobs/20260101T000000000000-abcdef12", {}),
    ("GET", "/v1/jobs", {}),
]


@pytest.mark.parametrize(("method", "path", "kwargs"), ADMIN_CALLS)
def test_admin_routes_need_the_token(client: TestClient, method: str, path: str, kwargs: dict) -> None:
    before = corpus_files(client.app.state.runtime.settings)  # type: ignore[attr-defined]
    missing = client.request(method, path, **kwargs)
    assert_error(missing, 401, "unauthorized")
    assert missing.headers["www-authenticate"] == "Bearer"
    headers = {**kwargs.get("headers", {}), "Authorization": "Bearer not-the-token"}
    assert_error(client.request(method, path, **{**kwargs, "headers": headers}), 403, "forbidden")
    headers = {**kwargs.get("headers", {}), "Authorization": f"Basic {TOKEN}"}
    assert_error(client.request(method, path, **{**kwargs, "headers": headers}), 401, "unauthorized")
    assert corpus_files(client.app.state.runtime.settings) == before  # type: ignore[attr-defined]


def test_admin_routes_are_off_without_a_configured_token(admin_service: Service) -> None:
    settings = replace(admin_service.settings, admin_token="")
    with TestClient(create_app(settings, admin_service)) as c:
        for method, path, kwargs in ADMIN_CALLS:
            err = assert_error(c.request(method, path, **{**kwargs, "headers": {**AUTH}}), 403, "forbidden")
            assert "QA_ADMIN_TOKEN" in err["message"]


# --- documents in and out -------------------------------------------------------------------------


def test_put_writes_the_file_then_a_job_indexes_it(client: TestClient, admin_settings: Settings) -> None:
    before = client.get("/readyz").json()["index_version"]
    r = client.put(
        "/v1/documents/hokkaido-fab", params={"title": "北海道晶圆厂"}, content=NEW_TEXT, headers={**AUTH, **TEXT}
    )
    assert r.status_code == 202, r.text
    job = r.json()
    assert r.headers["location"] == f"/v1/jobs/{job['id']}"
    assert job["changes"] == [{"op": "put", "doc_id": "hokkaido-fab"}]
    # acknowledged means on disk, byte for byte, before the index has it
    assert (admin_settings.corpus_dir / "hokkaido-fab.txt").read_text(encoding="utf-8") == NEW_TEXT
    done = wait_job(client, job["id"])
    assert done["state"] == "succeeded", done
    assert done["progress"]["fraction"] == 1.0 and done["chunks_embedded"] >= 1, done
    assert done["index_version_before"] == before and done["index_version"] != before
    time.sleep(0.1)
    assert client.get("/readyz").json()["index_version"] == done["index_version"]
    answer = client.post("/v1/ask", json={"question": "千岁市晶圆厂月产能是多少？", "top_k": 3}).json()
    assert answer["index_version"] == done["index_version"]
    top = answer["passages"][0]
    assert top["doc_id"] == "hokkaido-fab" and top["title"] == "北海道晶圆厂"
    raw = client.get("/v1/documents/hokkaido-fab").json()["text"]
    assert raw == NEW_TEXT and "四万片" in raw[top["start"] : top["end"]]


def test_put_replaces_and_delete_removes(client: TestClient, admin_settings: Settings) -> None:
    first = client.put(
        "/v1/documents/tmp-doc", content="临时文档：东京湾的港口吞吐量持续下降。", headers={**AUTH, **TEXT}
    )
    assert wait_job(client, first.json()["id"])["state"] == "succeeded"
    second = client.put(
        "/v1/documents/tmp-doc", content="临时文档：名古屋港的汽车出口创新高。", headers={**AUTH, **TEXT}
    )
    assert wait_job(client, second.json()["id"])["state"] == "succeeded"
    assert "名古屋" in client.get("/v1/documents/tmp-doc").json()["text"]
    assert [p.name for p in admin_settings.corpus_dir.glob("tmp-doc*")] == ["tmp-doc.txt"]

    r = client.delete("/v1/documents/tmp-doc", headers=AUTH)
    assert r.status_code == 202, r.text
    assert not (admin_settings.corpus_dir / "tmp-doc.txt").exists()
    done = wait_job(client, r.json()["id"])
    assert done["state"] == "succeeded" and done["changes"] == [{"op": "delete", "doc_id": "tmp-doc"}]
    time.sleep(0.1)
    assert_error(client.get("/v1/documents/tmp-doc"), 404, "document_not_found")
    for question in ("名古屋港的汽车出口", "临时文档", "东京湾的港口吞吐量"):
        answer = client.post("/v1/ask", json={"question": question, "top_k": 50}).json()
        assert all(p["doc_id"] != "tmp-doc" for p in answer["passages"])
    assert_error(client.delete("/v1/documents/tmp-doc", headers=AUTH), 404, "document_not_found")


@pytest.mark.parametrize("declared", [True, False])
def test_gb18030_documents_are_accepted(client: TestClient, declared: bool) -> None:
    text = "国产化率：日本半导体材料在全球市场的份额超过五成。"
    content_type = "text/markdown; charset=GB18030" if declared else "text/markdown"
    doc_id = f"gb-{declared}".lower()
    r = client.put(
        f"/v1/documents/{doc_id}", content=text.encode("gb18030"), headers={**AUTH, "Content-Type": content_type}
    )
    assert r.status_code == 202, r.text
    assert wait_job(client, r.json()["id"])["state"] == "succeeded"
    assert client.get(f"/v1/documents/{doc_id}").json()["text"] == text


def test_changes_coalesce_into_the_queued_job(client: TestClient, admin_settings: Settings) -> None:
    big = (CORPUS / "001_f609a139d62f3c97.txt").read_text(encoding="utf-8")
    running = client.put("/v1/documents/big-one", content=big, headers={**AUTH, **TEXT}).json()
    a = client.put("/v1/documents/small-a", content="小文档甲：关于产业链。", headers={**AUTH, **TEXT}).json()
    b = client.put("/v1/documents/small-b", content="小文档乙：关于供应链。", headers={**AUTH, **TEXT}).json()
    assert a["id"] == b["id"]  # the second change joined the job that had not started yet
    assert {"op": "put", "doc_id": "small-b"} in b["changes"]
    jobs = {running["id"], a["id"]}
    results = [wait_job(client, j) for j in jobs]
    assert all(j["state"] == "succeeded" for j in results)
    docs = {d["doc_id"] for d in client.get("/v1/documents").json()["documents"]}
    assert {"big-one", "small-a", "small-b"} <= docs
    listed = client.get("/v1/jobs", headers=AUTH, params={"limit": 5}).json()["jobs"]
    assert listed[0]["id"] == max(jobs)


def test_rebuild_endpoint(client: TestClient) -> None:
    version = client.get("/readyz").json()["index_version"]
    r = client.post("/v1/index/rebuild", headers=AUTH)
    assert r.status_code == 202, r.text
    same = wait_job(client, r.json()["id"])
    assert same["state"] == "succeeded" and same["kind"] == "rebuild"
    assert same["index_version"] == version and same["chunks_embedded"] == 0  # nothing changed
    forced = wait_job(client, client.post("/v1/index/rebuild", json={"force": True}, headers=AUTH).json()["id"])
    assert forced["state"] == "succeeded" and forced["chunks_embedded"] == forced["chunks"] > 0
    assert_error(client.post("/v1/index/rebuild", json={"force": "yes"}, headers=AUTH), 422, "invalid_request")
    assert_error(client.get("/v1/jobs/20200101T000000000000-00000000", headers=AUTH), 404, "job_not_found")


# --- bad input ------------------------------------------------------------------------------------

BAD_IDS = [
    "..%2Fescaped",  # ../escaped
    "%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
    "%2Fetc%2Fpasswd",  # absolute
    "a%5Cb",  # backslash
    "a%00b",  # NUL
    "a%0Ab",  # line break
    "%2E%2E",  # ..
    ".hidden",
    "sub/dir",
    "trailing.",
    "x" * 65,
]


@pytest.mark.parametrize("doc_id", BAD_IDS)
def test_unsafe_doc_ids_are_rejected(client: TestClient, admin_settings: Settings, doc_id: str) -> None:
    parent = sorted(p.name for p in admin_settings.corpus_dir.parent.iterdir())
    before = corpus_files(admin_settings)
    assert_error(
        client.put(f"/v1/documents/{doc_id}", content="正文", headers={**AUTH, **TEXT}), 422, "invalid_request"
    )
    assert_error(client.delete(f"/v1/documents/{doc_id}", headers=AUTH), 422, "invalid_request")
    assert corpus_files(admin_settings) == before
    assert sorted(p.name for p in admin_settings.corpus_dir.parent.iterdir()) == parent


def test_the_longest_valid_id_is_accepted(client: TestClient) -> None:
    r = client.put(f"/v1/documents/{'报' * 64}", content="长编号文档。", headers={**AUTH, **TEXT})
    assert r.status_code == 202, r.text
    wait_job(client, r.json()["id"])


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code", "reason"),
    [
        (b"\xff\xfe\xfd\x80 not utf-8", "text/plain; charset=utf-8", 422, "invalid_document", "not valid utf-8"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "text/plain", 422, "invalid_document", ""),
        ("中文".encode(), "application/pdf", 415, "unsupported_media_type", "text/plain"),
        ("中文".encode(), "text/plain; charset=latin-1", 415, "unsupported_media_type", "charset"),
        (b"  \n\t ", "text/plain", 422, "invalid_document", "empty"),
        ("中文".encode(), None, 415, "unsupported_media_type", "text/plain"),
    ],
)
def test_undecodable_or_wrong_type_bodies_are_rejected(
    client: TestClient,
    admin_settings: Settings,
    body: bytes,
    content_type: str | None,
    status: int,
    code: str,
    reason: str,
) -> None:
    before = corpus_files(admin_settings)
    headers = {**AUTH, **({"Content-Type": content_type} if content_type else {})}
    err = assert_error(client.put("/v1/documents/bad-body", content=body, headers=headers), status, code)
    assert reason in err["message"].lower()
    assert corpus_files(admin_settings) == before


def test_documents_over_the_size_limit_get_413(client: TestClient, admin_settings: Settings) -> None:
    before = corpus_files(admin_settings)
    big = ("很长的文档。" * 20_000).encode()  # 360 kB > QA_MAX_DOCUMENT_BYTES (200 kB here)
    err = assert_error(
        client.put("/v1/documents/too-big", content=big, headers={**AUTH, **TEXT}), 413, "payload_too_large"
    )
    assert "QA_MAX_DOCUMENT_BYTES" in err["message"]

    def chunked() -> Iterator[bytes]:  # no Content-Length: caught while streaming
        for _ in range(4):
            yield big[:100_000]

    r = client.put("/v1/documents/too-big", content=chunked(), headers={**AUTH, **TEXT})
    assert_error(r, 413, "payload_too_large")
    assert corpus_files(admin_settings) == before


def _writable(path: Path) -> bool:
    try:
        (path / ".probe").touch()
    except OSError:
        return False
    (path / ".probe").unlink()
    return True


def _make_unwritable(path: Path) -> None:
    """chmod for a normal user; for root the immutable flag, else a read-only bind mount of the directory."""
    path.chmod(0o555)
    attempts = [["chattr", "+i", str(path)], ["mount", "--bind", str(path), str(path)]]
    for command in attempts:
        if _writable(path) and subprocess.run(command, capture_output=True).returncode == 0 and command[0] == "mount":
            subprocess.run(["mount", "-o", "remount,ro,bind", str(path)], capture_output=True)
    if _writable(path):
        _make_writable(path)
        pytest.skip("cannot make a directory unwritable here (root without chattr or mount)")


def _make_writable(path: Path) -> None:
    subprocess.run(["chattr", "-i", str(path)], capture_output=True)
    if subprocess.run(["mountpoint", "-q", str(path)]).returncode == 0:
        subprocess.run(["umount", str(path)], capture_output=True)
    path.chmod(0o755)


def test_an_unwritable_corpus_gives_a_json_error_and_changes_nothing(
    client: TestClient, admin_settings: Settings
) -> None:
    before, version = corpus_files(admin_settings), client.get("/readyz").json()["index_version"]
    _make_unwritable(admin_settings.corpus_dir)
    try:
        r = client.put("/v1/documents/never", params={"title": "t"}, content="不会写入。", headers={**AUTH, **TEXT})
        err = assert_error(r, 500, "corpus_write_failed")
        assert "nothing was changed" in err["message"]
        assert_error(client.delete(f"/v1/documents/{BASE_DOC}", headers=AUTH), 500, "corpus_write_failed")
    finally:
        _make_writable(admin_settings.corpus_dir)
    assert corpus_files(admin_settings) == before
    assert client.get("/readyz").json()["index_version"] == version
    assert client.get(f"/v1/documents/{BASE_DOC}").status_code == 200


# --- start-up, CORS, rate limits, metrics, logs ----------------------------------------------------


def test_a_stale_index_serves_at_once_and_catches_up(admin_service: Service, tmp_path: Path) -> None:
    settings = replace(admin_service.settings, corpus_dir=tmp_path / "corpus", index_dir=tmp_path / "index")
    settings.corpus_dir.mkdir()
    shutil.copy2(CORPUS / f"{BASE_DOC}.txt", settings.corpus_dir)
    service = Service(settings, admin_service.embedder, admin_service.tokenizer)
    old = service.build(progress=False).version
    (settings.corpus_dir / "late.txt").write_text("启动时发现的新文档：关西地区的电池工厂。", encoding="utf-8")
    with serving(create_app(settings, Service(settings, admin_service.embedder, admin_service.tokenizer))) as c:
        deadline = time.monotonic() + 120
        while not (jobs := c.get("/v1/jobs", headers=AUTH).json()["jobs"]) or jobs[0]["state"] != "succeeded":
            assert time.monotonic() < deadline, jobs
            time.sleep(0.1)
        assert jobs[0]["kind"] == "startup" and jobs[0]["index_version_before"] == old
        time.sleep(0.1)
        assert "late" in {d["doc_id"] for d in c.get("/v1/documents").json()["documents"]}


def test_cors_never_applies_to_admin_routes(admin_service: Service) -> None:
    origin = "http://tools.internal"
    settings = replace(admin_service.settings, cors_origins=(origin,))
    with TestClient(create_app(settings, admin_service)) as c:
        ok = c.options("/v1/ask", headers={"Origin": origin, "Access-Control-Request-Method": "POST"})
        assert ok.headers.get("access-control-allow-origin") == origin
        for path, method in [
            ("/v1/documents/x", "PUT"),
            ("/v1/documents/x", "DELETE"),
            ("/v1/index/rebuild", "POST"),
            ("/v1/jobs/x", "GET"),
        ]:
            pre = c.options(path, headers={"Origin": origin, "Access-Control-Request-Method": method})
            assert "access-control-allow-origin" not in pre.headers, (path, method)
        actual = c.get("/v1/jobs", headers={**AUTH, "Origin": origin})
        assert actual.status_code == 200 and "access-control-allow-origin" not in actual.headers
        unlisted = c.options(
            "/v1/ask", headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"}
        )
        assert "access-control-allow-origin" not in unlisted.headers


def test_rate_limit_answers_429_with_retry_after(admin_service: Service) -> None:
    settings = replace(admin_service.settings, rate_limit="3/minute", rate_limit_localhost=True)
    with serving(create_app(settings, admin_service)) as c:
        body = {"question": "晶圆厂", "top_k": 1}
        codes = [c.post("/v1/ask", json=body).status_code for _ in range(3)]
        assert codes == [200, 200, 200]
        err = assert_error(limited := c.post("/v1/ask", json=body), 429, "rate_limited")
        assert 1 <= int(limited.headers["retry-after"]) <= 60 and "3 per 1 minute" in err["message"]
        # a made-up token does not open a new bucket; a known token is its own client
        assert_error(c.post("/v1/ask", json=body, headers={"Authorization": "Bearer made-up"}), 429, "rate_limited")
        assert c.post("/v1/ask", json=body, headers=AUTH).status_code == 200
        assert c.get("/healthz").status_code == 200  # only /v1/ask is limited
    off = Settings.from_env({"QA_RATE_LIMIT": "2/second"}).rate_limit_localhost
    assert off is False  # loopback clients are exempt unless asked


def test_metrics_cover_routes_stages_index_and_jobs(client: TestClient) -> None:
    client.post("/v1/ask", json={"question": "晶圆厂的月产能", "top_k": 2})
    wait_job(client, client.post("/v1/index/rebuild", headers=AUTH).json()["id"])
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    version = client.get("/readyz").json()["index_version"]
    assert 'http_requests_total{handler="/v1/ask",method="POST",status="200"}' in text
    assert 'http_request_duration_seconds_bucket{handler="/v1/ask"' in text
    for stage in ("encode", "dense", "bm25", "fusion"):
        assert f'qa_retrieval_stage_seconds_count{{stage="{stage}"}}' in text
    assert f'qa_index_info{{version="{version}"}} 1.0' in text
    assert "qa_index_chunks " in text and "qa_index_documents " in text
    assert 'qa_rebuild_jobs_total{state="succeeded"}' in text and "qa_rebuild_duration_seconds_count" in text


def test_request_logs_carry_the_id_and_leave_questions_out(
    admin_service: Service, caplog: pytest.LogCaptureFixture
) -> None:
    question = "这个问题不应出现在日志里"
    for log_questions in (False, True):
        settings = replace(admin_service.settings, log_questions=log_questions)
        with serving(create_app(settings, admin_service)) as c, caplog.at_level("INFO", logger="qa.api"):
            caplog.clear()
            r = c.post("/v1/ask", json={"question": question, "top_k": 1}, headers={"X-Request-ID": "req-42"})
            assert r.headers["x-request-id"] == "req-42" and r.headers["x-content-type-options"] == "nosniff"
            records = [rec for rec in caplog.records if getattr(rec, "qa_path", "") == "/v1/ask"]
            assert records and records[-1].qa_request_id == "req-42" and records[-1].qa_status == 200  # type: ignore[attr-defined]
            assert records[-1].qa_ms > 0  # type: ignore[attr-defined]
            logged = getattr(records[-1], "qa_question", None)
            assert logged == (question if log_questions else None)
            assert (question in JsonFormatter().format(records[-1])) is log_questions
    with TestClient(create_app(admin_service.settings, admin_service)) as c:
        odd = c.get("/healthz", headers={"X-Request-ID": "bad id\twith spaces"}).headers["x-request-id"]
        assert len(odd) == 32 and odd.isalnum()  # unsafe ids are replaced, not echoed
