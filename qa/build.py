"""Incremental, atomic index builds: corpus → clean → chunks → embeddings + BM25 → snapshot.

Unchanged documents (same file hash, same model, same chunker) reuse their
chunks and vectors from the serving snapshot; a build on an unchanged corpus
writes nothing. One build at a time per index directory (a file lock).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from qa.chunking import Chunk, ChunkParams, chunk_document, windows
from qa.cleaning import clean
from qa.config import Settings
from qa.corpus import load_corpus
from qa.embedding import Embedder
from qa.manifest import FLAT, BuildConfig, ChunkerSpec, Counts, DenseSpec, Manifest, TokenizerSpec
from qa.ranking import find_ranker
from qa.stores.base import Contents, Snapshot, Store, Windows
from qa.stores.factory import open_store
from qa.tokens import Tokenizer

log = logging.getLogger(__name__)

CLEANER_VERSION = 1  # bump when cleaning or chunking rules change: forces re-chunking
EMBED_SLICE = 64  # chunks embedded between two progress reports


class Stage(StrEnum):
    """What a build is doing, as rebuild jobs report it (`progress.stage`)."""

    WAITING = "waiting for the build lock"
    READING = "reading corpus"
    CHUNKING = "chunking"
    EMBEDDING = "embedding"
    WRITING = "writing snapshot"


Progress = Callable[[Stage, int, int], None]  # (stage, done, total): reported to rebuild jobs


def _quiet(stage: Stage, done: int, total: int) -> None:
    pass


@dataclass(frozen=True)
class BuildResult:
    version: str
    changed: bool
    documents: int
    chunks: int
    embedded: int  # chunks embedded by this build (the rest were reused)
    removed: int  # documents dropped since the previous snapshot
    seconds: float

    @property
    def chunks_per_second(self) -> float:
        return self.embedded / self.seconds if self.seconds > 0 else 0.0


def build_config(settings: Settings, embedder: Embedder) -> BuildConfig:
    """Everything that decides the content of a chunk or a vector; a change forces re-embedding."""
    data = resources.files("qa") / "data"
    return BuildConfig(
        model=embedder.identity,
        chunker=ChunkerSpec(settings.chunk_size, settings.chunk_overlap, settings.chunk_max, CLEANER_VERSION),
        tokenizer=TokenizerSpec(
            userdict_sha256=hashlib.sha256((data / "userdict.txt").read_bytes()).hexdigest()[:16],
            stopwords_sha256=hashlib.sha256((data / "stopwords.txt").read_bytes()).hexdigest()[:16],
        ),
    )


@contextmanager
def build_lock(index_dir: Path, name: str = ".build.lock") -> Iterator[None]:
    """An exclusive flock: across the processes of one server, and released if the holder dies."""
    index_dir.mkdir(parents=True, exist_ok=True)
    with open(index_dir / name, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def build_index(
    settings: Settings,
    embedder: Embedder,
    tokenizer: Tokenizer,
    *,
    store: Store | None = None,
    force: bool = False,
    progress: bool = True,
    on_progress: Progress | None = None,
) -> BuildResult:
    """One writer per index dir (a file lock; with Milvus, the admin service is the only writer)."""
    report = on_progress or _quiet
    report(Stage.WAITING, 0, 0)
    with build_lock(settings.index_dir):
        return _build(
            settings,
            embedder,
            tokenizer,
            store or open_store(settings),
            force=force,
            progress=progress,
            report=report,
        )


def _build(
    settings: Settings,
    embedder: Embedder,
    tokenizer: Tokenizer,
    store: Store,
    *,
    force: bool,
    progress: bool,
    report: Progress,
) -> BuildResult:
    started = time.perf_counter()
    report(Stage.READING, 0, 0)
    docs = load_corpus(settings.corpus_dir)
    config = build_config(settings, embedder)
    hashes = {d.doc_id: d.sha256 for d in docs}
    old = _previous(store)
    ranker = ranker_record(settings, embedder)
    reusable = old is not None and not force and old.manifest.config == config
    if (
        reusable
        and old is not None
        and old.manifest.corpus == hashes
        and old.manifest.dense_index == store.dense_spec(len(old))
        and old.manifest.ranker == ranker
    ):
        log.info("index %s is up to date: nothing to do", old.version)
        return BuildResult(old.version, False, len(docs), len(old), 0, 0, time.perf_counter() - started)

    params = ChunkParams(settings.chunk_size, settings.chunk_overlap, settings.chunk_max)
    parts: list[tuple[list[Chunk], list[list[str]], np.ndarray | None, list[Windows] | None]] = []
    for i, doc in enumerate(tqdm(docs, desc="chunking", unit="doc", disable=not progress)):
        report(Stage.CHUNKING, i, len(docs))
        record = old.document_record(doc.doc_id) if reusable and old is not None else None
        if record is not None and record.sha256 == doc.sha256:
            parts.append((record.chunks, record.terms, record.vectors, record.windows))
        else:
            chunks = chunk_document(doc.doc_id, clean(doc.text), params, tokenizer)
            parts.append((chunks, [tokenizer.term_list(c.text) for c in chunks], None, None))

    fresh = [c for chunks, _, vecs, _ in parts if vecs is None for c in chunks]
    spans = [windows(c.text) for c in fresh]
    texts = [c.text for c in fresh] + [c.text[a:b] for c, sp in zip(fresh, spans, strict=True) for a, b in sp]
    log.info(
        "embedding %d new chunks and %d sentence windows: %d distinct texts (%d chunks reused)",
        len(fresh),
        len(texts) - len(fresh),
        len(set(texts)),
        sum(len(p[0]) for p in parts) - len(fresh),
    )
    embedded = _embed(embedder, texts, report, progress)
    fresh_windows, pos = [], len(fresh)
    for sp in spans:
        fresh_windows.append(Windows(tuple(sp), embedded[pos : pos + len(sp)]))
        pos += len(sp)
    all_chunks: list[Chunk] = []
    all_terms: list[list[str]] = []
    all_windows: list[Windows] = []
    all_vectors = [np.zeros((0, embedder.identity.dim), np.float32)]
    used = 0
    for chunks, terms, vecs, wins in parts:
        if vecs is None or wins is None:
            vecs, wins = embedded[used : used + len(chunks)], fresh_windows[used : used + len(chunks)]
            used += len(chunks)
        all_chunks += chunks
        all_terms += terms
        all_vectors.append(vecs)
        all_windows += wins
    vectors = np.concatenate(all_vectors)

    spec = store.dense_spec(len(all_chunks))
    manifest = Manifest(
        config=config,
        version=_version(config, hashes, spec, ranker),
        built_at=datetime.now(UTC).isoformat(timespec="seconds"),
        corpus=hashes,
        counts=Counts(documents=len(docs), chunks=len(all_chunks), embedded_this_build=len(fresh)),
        dense_index=spec,
        store=store.name,
        ranker=ranker,
        encoder_backend=embedder.backend,
    )
    version = manifest.version
    report(Stage.WRITING, len(fresh), len(fresh))
    store.publish(manifest, Contents(docs, all_chunks, all_terms, vectors.astype(np.float32), all_windows))
    removed = len(set(old.manifest.corpus) - set(hashes)) if old is not None else 0
    seconds = time.perf_counter() - started
    log.info("built index %s: %d docs, %d chunks in %.1fs", version, len(docs), len(all_chunks), seconds)
    return BuildResult(version, True, len(docs), len(all_chunks), len(fresh), removed, seconds)


def _embed(embedder: Embedder, texts: list[str], report: Progress, progress: bool) -> np.ndarray:
    """Embed in slices so a rebuild job can say how far it got. Each distinct text is encoded once (a
    sentence in a chunk's overlap is a window of both chunks: ~20% of the texts here), longest first, so
    a batch pads little; the vectors come back in the order of `texts`."""
    distinct = sorted(set(texts), key=lambda t: (-len(t), t))
    parts = [np.zeros((0, embedder.identity.dim), np.float32)]
    bar = tqdm(total=len(distinct), desc="embedding", unit="text", disable=not progress or not distinct)
    for start in range(0, len(distinct), EMBED_SLICE):
        report(Stage.EMBEDDING, start, len(distinct))
        parts.append(embedder.encode_passages(distinct[start : start + EMBED_SLICE], progress=False))
        bar.update(min(EMBED_SLICE, len(distinct) - start))
    bar.close()
    report(Stage.EMBEDDING, len(distinct), len(distinct))
    row = {text: i for i, text in enumerate(distinct)}
    return np.concatenate(parts)[[row[t] for t in texts]]


def _previous(store: Store) -> Snapshot | None:
    version = store.serving()
    if version is None:
        return None
    try:
        return store.open(version)
    except Exception as exc:  # an unreadable old index only means a full rebuild
        log.warning("previous index unreadable (%s): full rebuild", exc)
        return None


def ranker_record(settings: Settings, embedder: Embedder) -> dict[str, Any] | None:
    """The fitted ranker for this model, as the manifest records it (None: `qa calibrate` has not run)."""
    ranker = find_ranker(settings.models_dir, embedder.identity.fingerprint, settings.ranker)
    if ranker is None:
        log.warning(
            "no ranker fitted for model %s (%s): run `qa calibrate`; until then QA_FUSION=learned refuses questions",
            embedder.identity.name,
            embedder.identity.fingerprint,
        )
        return None
    record: dict[str, Any] = json.loads(json.dumps(ranker.as_dict()))  # as a manifest reads back: lists, not tuples
    return record


def _version(config: BuildConfig, hashes: Mapping[str, str], spec: DenseSpec, ranker: dict[str, Any] | None) -> str:
    # a flat index keeps the hash of earlier versions (no spec in it): same corpus, same version suffix
    parts: list[Any] = [dict(hashes), config.as_dict()]
    if spec != FLAT:
        parts.append(spec.as_dict())
    if ranker is not None:
        parts.append(ranker)
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()
    return f"{datetime.now(UTC):%Y%m%dT%H%M%S%f}-{digest[:8]}"
