"""The on-disk index: reference checks, incremental and atomic builds, encodings."""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from rank_bm25 import BM25Okapi

from conftest import CORPUS, QUESTIONS, ROOT
from qa.config import Settings
from qa.dense import dense_spec
from qa.service import Service
from qa.stores.faiss import FaissSnapshot, current_snapshot_dir

QUESTION_TEXTS = [json.loads(line)["question"] for line in QUESTIONS.read_text(encoding="utf-8").splitlines()]


class LuceneBM25(BM25Okapi):
    """rank_bm25's Okapi scoring with Lucene's IDF, log(1 + (N - df + 0.5) / (df + 0.5)).

    Okapi multiplies the tf part by (k1 + 1), a constant: rankings equal bm25s' Lucene variant.
    """

    def _calc_idf(self, nd: dict[str, int]) -> None:
        self.idf = {w: math.log(1 + (self.corpus_size - f + 0.5) / (f + 0.5)) for w, f in nd.items()}


def test_faiss_top_k_equals_numpy_brute_force(corpus_service: Service) -> None:
    snap = corpus_service.snapshot()
    queries = corpus_service.embedder.encode_queries(QUESTION_TEXTS[:30])
    for q in queries:
        rows, scores = snap.dense_search(q, 10, None)
        brute = snap.vectors @ q
        expected = np.argsort(-brute, kind="stable")[:10]
        np.testing.assert_allclose(scores, brute[expected], rtol=1e-5, atol=1e-6)
        assert set(rows.tolist()) == set(expected.tolist()) or np.allclose(brute[rows], brute[expected], atol=1e-6)


def test_faiss_filter_searches_only_those_rows(corpus_service: Service) -> None:
    snap = corpus_service.snapshot()
    q = corpus_service.embedder.encode_queries(["美日经济安全同盟"])[0]
    scope = snap.scope(["001_f609a139d62f3c97"])
    rows, _ = snap.dense_search(q, 5, scope)
    allowed = scope.rows
    assert len(rows) == 5 and set(rows.tolist()) <= set(allowed.tolist())
    expected = allowed[np.argsort(-(snap.vectors[allowed] @ q))[:5]]
    assert rows.tolist() == expected.tolist()


def test_bm25_agrees_with_rank_bm25(corpus_service: Service) -> None:
    snap = corpus_service.snapshot()
    corpus = [snap.chunk_terms(i) for i in range(len(snap))]
    reference = LuceneBM25(corpus, k1=1.5, b=0.75)
    for question in QUESTION_TEXTS[:40]:
        terms = [t for t in dict.fromkeys(corpus_service.tokenizer.term_list(question)) if t in reference.idf]
        if not terms:
            continue
        ours = snap.lexical_scores(terms)
        ref = reference.get_scores(terms) / (1.5 + 1)
        np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-5)
        assert np.argsort(-ours, kind="stable")[:5].tolist() == np.argsort(-ref, kind="stable")[:5].tolist()


def write(path: Path, text: str, encoding: str = "utf-8") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(encoding))


SMALL = {
    "a": "日本产业空心化的表现之一是对外直接投资不断增长。1985年开始，日元大幅升值。" * 8,
    "b": "美日两国在出口管制、外资审查、半导体制造等领域启动了合作。经济安全同盟逐步成形。" * 8,
    "sub/c": "日本财务省在日本国际协力银行设立专门设施，支持约5500亿美元的对美投资。" * 8,
}


def small_service(settings: Settings, corpus_service: Service) -> Service:
    for doc_id, text in SMALL.items():
        write(settings.corpus_dir / f"{doc_id}.txt", text)
    return Service(settings, corpus_service.embedder, corpus_service.tokenizer, poll_seconds=0)


def test_rebuild_on_unchanged_corpus_is_a_no_op(small_settings: Settings, corpus_service: Service) -> None:
    service = small_service(small_settings, corpus_service)
    first = service.build(progress=False)
    again = service.build(progress=False)
    assert first.changed and not again.changed
    assert again.version == first.version and again.embedded == 0
    assert len(list((small_settings.index_dir / "snapshots").iterdir())) == 1


def test_editing_one_file_re_embeds_only_its_chunks(small_settings: Settings, corpus_service: Service) -> None:
    service = small_service(small_settings, corpus_service)
    first = service.build(progress=False)
    snap = service.snapshot()
    a_before = [snap.chunk(i).chunk_id for i in range(first.chunks) if snap.chunk(i).doc_id == "a"]
    write(small_settings.corpus_dir / "b.txt", SMALL["b"] + "供应链韧性成为新的政策目标。")
    second = service.build(progress=False)
    snap = service.snapshot()
    b_chunks = [snap.chunk(i) for i in range(len(snap)) if snap.chunk(i).doc_id == "b"]
    assert second.changed and second.embedded == len(b_chunks) < second.chunks
    assert [snap.chunk(i).chunk_id for i in range(len(snap)) if snap.chunk(i).doc_id == "a"] == a_before


def test_removed_file_disappears_from_index(small_settings: Settings, corpus_service: Service) -> None:
    service = small_service(small_settings, corpus_service)
    service.build(progress=False)
    (small_settings.corpus_dir / "sub" / "c.txt").unlink()
    result = service.build(progress=False)
    snap = service.snapshot()
    assert result.removed == 1 and result.embedded == 0
    assert {d.doc_id for d in snap.documents()} == {"a", "b"}
    assert all(snap.chunk(i).doc_id != "sub/c" for i in range(len(snap)))
    answer = service.ask("国际协力银行 5500亿美元", top_k=10)
    assert all(h.chunk.doc_id != "sub/c" for h in answer.hits)


def test_doc_ids_come_from_relative_paths(small_settings: Settings, corpus_service: Service) -> None:
    service = small_service(small_settings, corpus_service)
    service.build(progress=False)
    assert {d.doc_id for d in service.snapshot().documents()} == {"a", "b", "sub/c"}


def test_gb18030_file_is_ingested(small_settings: Settings, corpus_service: Service) -> None:
    service = small_service(small_settings, corpus_service)
    write(small_settings.corpus_dir / "legacy.txt", "旧式编码文件：日本经济产业省发布海外经营活动调查。", "gb18030")
    service.build(progress=False)
    snap = service.snapshot()
    assert "legacy" in {d.doc_id for d in snap.documents()}
    assert snap.document_text("legacy").startswith("旧式编码文件")


def test_undecodable_file_is_skipped_with_a_warning(
    small_settings: Settings, corpus_service: Service, caplog: pytest.LogCaptureFixture
) -> None:
    service = small_service(small_settings, corpus_service)
    (small_settings.corpus_dir / "broken.txt").write_bytes(b"\xff\xfe\x00\x81\x00\xfe\xff" * 10)
    with caplog.at_level(logging.WARNING):
        result = service.build(progress=False)
    assert result.documents == 3
    assert any("broken.txt" in r.getMessage() for r in caplog.records)


def test_utf8_bom_is_stripped(small_settings: Settings, corpus_service: Service) -> None:
    service = small_service(small_settings, corpus_service)
    (small_settings.corpus_dir / "bom.txt").write_bytes("\ufeff带BOM的文件。".encode())
    service.build(progress=False)
    assert service.snapshot().document_text("bom") == "带BOM的文件。"


@pytest.mark.slow
def test_killed_build_leaves_previous_index_serving(tmp_path: Path, corpus_service: Service) -> None:
    corpus = tmp_path / "corpus"
    shutil.copytree(CORPUS, corpus)
    index_dir = tmp_path / "index"
    src = corpus_service.snapshot().path
    shutil.copytree(src, index_dir / "snapshots" / src.name)
    (index_dir / "CURRENT").write_text(src.name + "\n")
    settings = replace(corpus_service.settings, corpus_dir=corpus, index_dir=index_dir)
    service = Service(settings, corpus_service.embedder, corpus_service.tokenizer, poll_seconds=0)
    question = "日本运输机械行业海外生产比率是多少？"
    before = [(h.chunk.chunk_id, h.score) for h in service.ask(question).hits]

    shutil.copy(CORPUS / "003_9a26cb7cfdeac646.txt", corpus / "copy_of_003.txt")  # ~100 chunks to embed
    env = {
        **os.environ,
        "QA_CORPUS_DIR": str(corpus),
        "QA_INDEX_DIR": str(index_dir),
        "QA_MODEL_CACHE": str(settings.models_dir),
        "QA_BATCH_SIZE": "4",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "qa.cli", "build"],
        cwd=ROOT,
        env=env,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stderr is not None
    deadline = time.monotonic() + 300
    for line in proc.stderr:
        if "new chunks" in line or time.monotonic() > deadline:
            break
    time.sleep(1.0)  # well into embedding
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    assert current_snapshot_dir(index_dir) == index_dir / "snapshots" / src.name
    after = [
        (h.chunk.chunk_id, h.score)
        for h in Service(settings, corpus_service.embedder, corpus_service.tokenizer).ask(question).hits
    ]
    assert after == before
    result = service.build(progress=False)  # the next build cleans up and completes
    assert result.changed and not list((index_dir / "snapshots").glob(".tmp-*"))
    assert "copy_of_003" in {d.doc_id for d in FaissSnapshot.open_current(index_dir).documents()}


def test_failed_write_keeps_previous_snapshot(
    small_settings: Settings, corpus_service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = small_service(small_settings, corpus_service)
    first = service.build(progress=False)
    write(small_settings.corpus_dir / "a.txt", SMALL["a"] + "新增一句。")

    def disk_full(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("qa.stores.faiss.write_snapshot", disk_full)
    with pytest.raises(OSError):
        service.build(progress=False)
    assert FaissSnapshot.open_current(small_settings.index_dir).version == first.version
    assert not list((small_settings.index_dir / "snapshots").glob(".tmp-*"))


def test_a_pointer_to_an_unloadable_snapshot_keeps_the_served_one(
    small_settings: Settings, corpus_service: Service
) -> None:
    """A swap that can't load (snapshot gone, half-visible on a shared volume) must not fail requests."""
    service = small_service(small_settings, corpus_service)
    first = service.build(progress=False)
    assert service.snapshot().version == first.version
    (small_settings.index_dir / "CURRENT").write_text("20990101T000000000000-00000000\n")
    (small_settings.index_dir / "snapshots" / "20990101T000000000000-00000000").mkdir()  # no manifest yet
    service.refresh()
    assert service.snapshot().version == first.version and service.ask("半导体", top_k=1).hits
    (small_settings.index_dir / "CURRENT").write_text(first.version + "\n")  # and it recovers
    service.refresh()
    assert service.snapshot().version == first.version


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_approximate_indexes_find_what_flat_finds_and_reuse_the_vectors(
    corpus_service: Service, tmp_path: Path, kind: str
) -> None:
    """QA_FAISS_INDEX changes the FAISS index only: no re-embedding, recall@10 vs exact search ≥ 0.95."""
    index_dir = tmp_path / "index"
    shutil.copytree(corpus_service.settings.index_dir, index_dir, ignore=shutil.ignore_patterns("models"))
    settings = replace(corpus_service.settings, index_dir=index_dir, faiss_index=kind, ivf_nprobe=8)
    service = Service(settings, corpus_service.embedder, corpus_service.tokenizer, poll_seconds=0)
    assert service.index_state() == "config"
    result = service.build(progress=False)
    assert result.changed and result.embedded == 0
    snap = FaissSnapshot.open_current(index_dir)
    assert snap.dense_index.type == kind and service.index_state() == "current"
    exact = corpus_service.snapshot()
    questions = [json.loads(line)["question"] for line in QUESTIONS.read_text(encoding="utf-8").splitlines()]
    queries = corpus_service.embedder.encode_queries(questions[:60])
    found = [
        len(set(snap.dense_search(q, 10, None)[0]) & set(exact.dense_search(q, 10, None)[0])) / 10 for q in queries
    ]
    assert sum(found) / len(found) >= 0.95
    # a doc_ids filter is searched exactly on every index type
    scope = exact.scope(["002_ba0bb63e0258bd58"])
    assert list(snap.dense_search(queries[0], 5, scope)[0]) == list(exact.dense_search(queries[0], 5, scope)[0])


def test_auto_picks_flat_for_small_corpora_and_hnsw_for_large() -> None:
    settings = Settings()
    assert dense_spec(settings, 174).type == "flat"
    assert dense_spec(settings, 5_000_000).type == "hnsw"
    assert dense_spec(replace(settings, faiss_index="ivf"), 1_000_000).nlist == 4000
