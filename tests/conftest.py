"""Shared fixtures: the real model and a real index of the real corpus, built once per session."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from qa.config import Settings
from qa.embedding import Embedder
from qa.service import Service
from qa.tokens import Tokenizer

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "corpus"
QUESTIONS = ROOT / "tests" / "data" / "corpus_qa.jsonl"
ERROR_KEYS = {"code", "message", "details"}


def assert_error(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The one error shape: {"error": {code, message, details}}, the expected status, never a traceback."""
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == ERROR_KEYS
    assert body["error"]["code"] == code and body["error"]["message"]
    assert "Traceback" not in r.text
    return body["error"]  # type: ignore[no-any-return]


def model_cache() -> Path:
    """Reuse the converted model between runs (QA_MODEL_CACHE, else the repo's index/models)."""
    return Path(os.environ.get("QA_MODEL_CACHE") or ROOT / "index" / "models")


@contextmanager
def serving(app: Any) -> Iterator[TestClient]:
    """The app with its lifespan running (model and index loaded in the background), once /readyz says ready."""
    with TestClient(app) as c:
        deadline = time.monotonic() + 120
        while c.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline, c.get("/readyz").json()
            time.sleep(0.05)
        yield c


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def live_server(settings: Settings, service: Service) -> Iterator[str]:
    """The app behind a real uvicorn, configured as `qa serve` configures it (qa.serve.server), in a thread of
    this process so the loaded model is shared; yields its base URL once /readyz says ready."""
    import uvicorn

    from qa.serve.app import create_app
    from qa.serve.protocol import configure
    from qa.serve.server import uvicorn_options

    settings = replace(settings, port=free_port())
    configure(settings)
    server = uvicorn.Server(uvicorn.Config(create_app(settings, service), **uvicorn_options(settings)))
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{settings.port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(url + "/readyz", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert thread.is_alive() and time.monotonic() < deadline, "server did not become ready"
            time.sleep(0.05)
        yield url
    finally:
        server.should_exit = True
        thread.join(30)
        configure(Settings())


@pytest.fixture(autouse=True)
def _isolated_index(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test writes into the repo's index/: QA_INDEX_DIR points at a fresh temp dir."""
    monkeypatch.setenv("QA_INDEX_DIR", str(tmp_path_factory.mktemp("index-env")))


@pytest.fixture(scope="session")
def base_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    root = tmp_path_factory.mktemp("qa")
    return replace(Settings(), corpus_dir=root / "corpus", index_dir=root / "index", model_cache=model_cache())


@pytest.fixture(scope="session")
def embedder(base_settings: Settings) -> Embedder:
    return Embedder(base_settings)


@pytest.fixture(scope="session")
def tokenizer() -> Tokenizer:
    return Tokenizer()


def copy_corpus(dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for f in CORPUS.iterdir():
        if f.is_file():
            shutil.copy2(f, dest / f.name)
    return dest


@pytest.fixture(scope="session")
def corpus_service(base_settings: Settings, embedder: Embedder, tokenizer: Tokenizer) -> Service:
    """The real corpus indexed with default settings (read-only: tests must not change it)."""
    copy_corpus(base_settings.corpus_dir)
    service = Service(base_settings, embedder, tokenizer)
    service.build(progress=False)
    return service


@pytest.fixture
def small_settings(tmp_path: Path, base_settings: Settings) -> Iterator[Settings]:
    """A private corpus + index for tests that change documents."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    yield replace(base_settings, corpus_dir=corpus, index_dir=tmp_path / "index")


@pytest.fixture(scope="session")
def milvus_service(base_settings: Settings, embedder: Embedder, tokenizer: Tokenizer) -> Service:
    """The real corpus in Milvus Lite (a data directory in a temp dir), built by the same code path."""
    pytest.importorskip("pymilvus", reason="QA_STORE=milvus needs pymilvus (pip install -e '.[milvus]')")
    copy_corpus(base_settings.corpus_dir)
    settings = replace(base_settings, index_dir=base_settings.index_dir.parent / "index-milvus", store="milvus")
    service = Service(settings, embedder, tokenizer)
    service.build(progress=False)
    return service


@pytest.fixture(scope="session")
def milvus_cluster_service(base_settings: Settings, embedder: Embedder, tokenizer: Tokenizer) -> Iterator[Service]:
    """The real corpus on a live Milvus (QA_TEST_MILVUS_URI, optional QA_TEST_MILVUS_TOKEN), under collection
    names of its own that are dropped afterwards."""
    uri = os.environ.get("QA_TEST_MILVUS_URI")
    if not uri:
        pytest.skip("QA_TEST_MILVUS_URI is not set: no live Milvus cluster to test against")
    copy_corpus(base_settings.corpus_dir)
    settings = replace(
        base_settings,
        index_dir=base_settings.index_dir.parent / "index-milvus-cluster",
        store="milvus",
        milvus_uri=uri,
        milvus_token=os.environ.get("QA_TEST_MILVUS_TOKEN", ""),
        milvus_prefix=f"qa_test_{os.getpid()}",
    )
    service = Service(settings, embedder, tokenizer)
    service.store.drop_all()  # type: ignore[attr-defined]
    service.build(progress=False)
    yield service
    service.store.drop_all()  # type: ignore[attr-defined]


STORES = ["faiss", "milvus-lite", "milvus-cluster"]
_STORE_FIXTURES = {
    "faiss": "corpus_service",
    "milvus-lite": "milvus_service",
    "milvus-cluster": "milvus_cluster_service",
}


@pytest.fixture(scope="module", params=STORES)
def store_service(request: pytest.FixtureRequest) -> Service:
    """The corpus service on each store in turn: FAISS, Milvus Lite, and a live cluster when one is given."""
    service: Service = request.getfixturevalue(_STORE_FIXTURES[request.param])
    return service
