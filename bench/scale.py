"""Capacity plan by measurement, then extrapolation: when does flat FAISS stop being enough?

Why: the service keeps every chunk vector in a flat FAISS index (exact inner product) and every chunk's
jieba terms in a bm25s index, both in RAM, and answers a question with dense top 50 + BM25 top 50 + a
convex fusion. This script builds synthetic stores of N chunks, measures what an operator needs to decide
when to switch to HNSW or IVF (or to a distributed engine such as Milvus), and extrapolates the measured
points to 10M and 100M chunks.

How to run (from the project root; on a shared machine always under nice):

    nice -n 19 .venv/bin/python bench/scale.py --sizes 10000                 # smoke run, ~10 s
    nice -n 19 .venv/bin/python bench/scale.py --sizes 10000 100000          # ~2 min (HNSW build dominates)
    nice -n 19 .venv/bin/python bench/scale.py --json /tmp/scale.json        # default 10k 100k 1M: ~30 min, ~6 GiB peak

Markdown goes to stdout, progress (one line per step, with its wall time) to stderr; --json writes every
raw number. Nothing here reads the corpus, loads the model or touches the index directory; temporary files
(faiss.write_index output, the saved bm25s index) go to a temporary directory that is removed at the end.

Synthetic data (fixed seed, per size, so a size's numbers do not depend on which other sizes run):
- dense: N random unit vectors, dim 384 (the e5-small dimension), float32, isotropic. The 200 queries
  are stored vectors plus Gaussian noise of norm --noise (default 0.5), re-normalised: each query's
  cosine to its source is ~0.89, in the range of real question-passage cosines (the service calibrates
  0.76-0.90), and the source is its exact nearest neighbour. Purely random queries would have no
  near neighbour at all.
- lexical: each chunk a bag of Poisson(150) tokens drawn from a Zipf law (s = 1.1) over the 50,000 most
  frequent words of jieba's dictionary (rank 1 = most frequent). A query is 5-8 distinct tokens from the
  same law with the 100 most frequent (stop-word-like) ranks left out. Tokens are generated as integer ids
  with numpy and handed to bm25s as a `bm25s.tokenization.Tokenized(ids=..., vocab=...)`; the ids are
  turned into Python lists one chunk at a time (`TokenRows`), because bm25s iterates its corpus three
  times and 1M chunks held as lists of Python ints would take ~5 GiB.

Measured per size N and dense index (flat = IndexFlatIP; hnsw = IndexHNSWFlat M=32, efConstruction 80,
efSearch 64 and 128; ivf = IndexIVFFlat, nlist = round(4·sqrt(N)), trained on min(N, 50k) vectors,
nprobe 16 and 64; all inner product):
- build time (all cores; ivf includes training), index memory as the size of faiss.serialize_index and as
  the process RSS delta over the build (allocator slack included), and the size of faiss.write_index output;
- dense latency: top 50, one query at a time, faiss.omp_set_num_threads(1): a server answers many queries
  concurrently, one core each. p50/p95 over 200 queries (after 5 warm-up queries);
- recall@10 against exact search (faiss.knn), and "source@10": how often the query's source vector is in
  the top 10. Caveat: on isotropic random vectors, neighbours 2-10 are all at noise level (cosine ~0.2,
  nearly tied), so recall@10 is a pessimistic bound for ANN; real embeddings are clustered and score
  higher (measure on the real index before choosing parameters). source@10 is the meaningful check here;
- BM25 (once per size): build time, memory (the CSC arrays' bytes and the RSS delta), disk (bm25s save),
  and latency of `retriever.get_scores(terms)` (strings, as qa.lexical calls it) + np.argpartition top 50
  + a sort of those 50. The service (qa.retrieval) instead argsorts every positive score; that variant's
  p50/p95 are reported too ("service sort");
- hybrid, end to end per query, one thread: dense top 50 + BM25 top 50 + the convex fusion of the union
  as qa.retrieval does it (cosines of the union from the stored vectors, calibrated, BM25 over the
  query's best possible score, weighted 0.5/0.5, sorted).

A (size, index) combination is skipped with a note when its estimated time exceeds --max-seconds or its
estimated memory exceeds what the machine has available; a build that overruns --max-seconds stops between
batches of vectors and is reported as aborted.

Extrapolation (least squares on the measured sizes, y = a + b·f(N), a >= 0; with one size, y = b·f(N)):
- flat: latency and memory linear in N; build linear in N.
- hnsw: latency a + b·ln N; memory linear in N (vectors + graph); build a + b·N·ln N.
- ivf: latency a + b·(nprobe·N/nlist + nlist), the vectors and centroids scanned per query; memory
  linear in N; build a + b·(N + 25·min(N, 50k))·nlist (assignment plus 25 k-means iterations).
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
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import bm25s
import faiss
import numpy as np
from bm25s.tokenization import Tokenized
from tqdm import tqdm

DIM = 384
N_QUERIES = 200
WARMUP = 5
K_RECALL = 10
CANDIDATES = 50  # per retriever, as qa.config.Settings.candidates
HNSW_M, HNSW_EF_CONSTRUCTION = 32, 80
IVF_TRAIN_MAX, KMEANS_ITERATIONS = 50_000, 25
K1, B = 1.5, 0.75  # qa.lexical
DENSE_FLOOR, DENSE_CEILING, DENSE_WEIGHT = 0.76, 0.90, 0.5  # qa.config defaults
VOCAB_SIZE, ZIPF_S, DOC_TOKENS, QUERY_SKIP_TOP = 50_000, 1.1, 150, 100
QUERY_TERMS = (5, 8)
FIT_HEADROOM = 0.8  # share of the machine's RAM the indexes may take
GPU_SPEEDUP = (50, 100)  # e5-small on a GPU vs this machine's 2 cores: an estimate, not measured
VARIANTS: dict[str, tuple[int, ...]] = {"flat": (0,), "hnsw": (64, 128), "ivf": (16, 64)}
# Rough priors for skipping a (size, index) never measured in this run, from a 2-core AMD EPYC; once a
# smaller size of the same index has run, its measurements replace them. Seconds per unit of f(N) above.
PRIOR_BUILD = {"flat": 2.5e-6, "hnsw": 8e-5, "ivf": 6e-9}
PRIOR_P50_MS = {"flat": 8e-5, "hnsw": 0.06, "ivf": 8e-5}  # ms per unit of the latency model's f(N)
MIB, GIB = 2**20, 2**30


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
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    models = [line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")]
    versions = {"python": platform.python_version(), "faiss": faiss.__version__, "numpy": np.__version__}
    versions["bm25s"] = getattr(bm25s, "__version__", "?")
    return Machine(
        cpu=models[0] if models else platform.processor() or "unknown CPU",
        cores=os.cpu_count() or 1,
        ram_gib=meminfo("MemTotal") / GIB,
        load_avg=os.getloadavg(),
        versions=versions,
    )


def meminfo(key: str) -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    return 0


def rss_bytes() -> int:
    gc.collect()
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def percentiles(ms: list[float]) -> tuple[float, float]:
    p50, p95 = np.percentile(ms, [50, 95])
    return float(p50), float(p95)


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


class BudgetExceeded(Exception):
    pass


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


# ---------------------------------------------------------------- BM25


def build_bm25(lex: LexicalData, words: list[str]) -> bm25s.BM25:
    retriever = bm25s.BM25(method="lucene", k1=K1, b=B)
    vocab = {w: i for i, w in enumerate(words)}
    retriever.index(Tokenized(ids=TokenRows(lex.tokens, lex.offsets), vocab=vocab), show_progress=False)
    return retriever


def lucene_idf(retriever: bm25s.BM25) -> np.ndarray:
    df = np.diff(np.asarray(retriever.scores["indptr"]))  # CSC columns are terms
    n = int(retriever.scores["num_docs"])
    return np.log1p((n - df + 0.5) / (df + 0.5))


def bm25_top(scores: np.ndarray, k: int) -> np.ndarray:
    """Top k positive rows by score, best first: argpartition, then sort the k."""
    k = min(k, len(scores))
    idx = np.argpartition(-scores, k - 1)[:k]
    idx = idx[np.argsort(-scores[idx], kind="stable")]
    return idx[scores[idx] > 0]


def service_top(scores: np.ndarray, k: int) -> np.ndarray:
    """What qa.retrieval does: argsort every positive score."""
    positive = np.flatnonzero(scores > 0)
    return positive[np.argsort(-scores[positive], kind="stable")][:k]


def measure_bm25(
    n: int, lex: LexicalData, words: list[str], tmp: Path, steps: dict[str, float]
) -> tuple[Bm25Row, bm25s.BM25]:
    rss0 = rss_bytes()
    t0 = time.perf_counter()
    with step(steps, n, "bm25 build"):
        retriever = build_bm25(lex, words)
    build_s = time.perf_counter() - t0
    rss_delta = rss_bytes() - rss0
    arrays = sum(np.asarray(retriever.scores[k]).nbytes for k in ("data", "indices", "indptr"))
    with step(steps, n, "bm25 save"):
        out = tmp / f"bm25-{n}"
        retriever.save(str(out), show_progress=False)
        disk = dir_bytes(out)
        shutil.rmtree(out)
    with step(steps, n, "bm25 latency"):
        fast, service, matching = bm25_latency(retriever, lex.queries)
    p50, p95 = percentiles(fast)
    s50, s95 = percentiles(service)
    row = Bm25Row(n, build_s, arrays, rss_delta, disk, len(retriever.scores["data"]), p50, p95, s50, s95, matching)
    return row, retriever


def bm25_latency(retriever: bm25s.BM25, queries: list[list[str]]) -> tuple[list[float], list[float], float]:
    for terms in queries[:WARMUP]:
        bm25_top(retriever.get_scores(terms), CANDIDATES)
    fast: list[float] = []
    service: list[float] = []
    matching: list[int] = []
    for terms in queries:
        t0 = time.perf_counter()
        scores = retriever.get_scores(terms)
        t1 = time.perf_counter()
        bm25_top(scores, CANDIDATES)
        t2 = time.perf_counter()
        service_top(scores, CANDIDATES)
        t3 = time.perf_counter()
        fast.append((t2 - t0) * 1e3)
        service.append((t1 - t0 + t3 - t2) * 1e3)
        matching.append(int(np.count_nonzero(scores)))
    return fast, service, float(np.mean(matching))


# ---------------------------------------------------------------- dense indexes


def nlist_for(n: float) -> int:
    return max(1, round(4 * math.sqrt(n)))


def new_index(kind: str, vectors: np.ndarray, nlist: int, rng: np.random.Generator) -> faiss.Index:
    if kind == "flat":
        return faiss.IndexFlatIP(DIM)
    if kind == "hnsw":
        index = faiss.IndexHNSWFlat(DIM, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        return index
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(DIM), DIM, nlist, faiss.METRIC_INNER_PRODUCT)
    sample = np.sort(rng.choice(len(vectors), size=min(len(vectors), IVF_TRAIN_MAX), replace=False))
    index.train(vectors[sample])
    return index


def add_batched(index: faiss.Index, vectors: np.ndarray, deadline: float, label: str) -> None:
    n = len(vectors)
    batch = max(10_000, n // 50)
    with tqdm(total=n, desc=f"add {label}", unit="vec", file=sys.stderr, disable=None, leave=False) as bar:
        for start in range(0, n, batch):
            if time.monotonic() > deadline:
                raise BudgetExceeded(f"aborted: build over --max-seconds after {start:,} of {n:,} vectors")
            index.add(vectors[start : start + batch])
            bar.update(min(batch, n - start))


def set_param(index: faiss.Index, kind: str, param: int) -> None:
    if kind == "hnsw":
        index.hnsw.efSearch = param
    elif kind == "ivf":
        index.nprobe = param


def build_dense(kind: str, data: DenseData, nlist: int, deadline: float, tmp: Path) -> tuple[faiss.Index, BuildStats]:
    rss0 = rss_bytes()
    t0 = time.perf_counter()
    index = new_index(kind, data.vectors, nlist, np.random.default_rng(len(data.vectors)))
    add_batched(index, data.vectors, deadline, kind)
    seconds = time.perf_counter() - t0
    rss_delta = rss_bytes() - rss0
    serialized = faiss.serialize_index(index)
    size = int(serialized.nbytes)
    del serialized
    path = tmp / f"{kind}.faiss"
    faiss.write_index(index, str(path))
    disk = path.stat().st_size
    path.unlink()
    return index, BuildStats(seconds, size, rss_delta, disk)


def dense_latency(index: faiss.Index, queries: np.ndarray) -> tuple[list[float], np.ndarray]:
    found = np.empty((len(queries), CANDIDATES), dtype=np.int64)
    ms: list[float] = []
    with faiss_threads(1):
        for i in range(min(WARMUP, len(queries))):
            index.search(queries[i : i + 1], CANDIDATES)
        for i in range(len(queries)):
            t0 = time.perf_counter()
            _, ids = index.search(queries[i : i + 1], CANDIDATES)
            ms.append((time.perf_counter() - t0) * 1e3)
            found[i] = ids[0]
    return ms, found


def hybrid_query(
    index: faiss.Index,
    vectors: np.ndarray,
    qvec: np.ndarray,
    retriever: bm25s.BM25,
    terms: list[str],
    best: float,
) -> np.ndarray:
    """Dense top 50 + BM25 top 50, convex fusion of the union (as qa.retrieval), top 10 rows."""
    _, ids = index.search(qvec, CANDIDATES)
    d_rows = ids[0][ids[0] >= 0]
    lex = retriever.get_scores(terms)
    b_rows = bm25_top(lex, CANDIDATES)
    union = np.asarray(list(dict.fromkeys([*d_rows.tolist(), *b_rows.tolist()])), dtype=np.int64)
    cosine = vectors[union] @ qvec[0]
    dense = np.clip((cosine - DENSE_FLOOR) / (DENSE_CEILING - DENSE_FLOOR), 0.0, 1.0)
    lexical = np.clip(lex[union] / best, 0.0, 1.0) if best > 0 else np.zeros(len(union))
    fused = DENSE_WEIGHT * dense + (1 - DENSE_WEIGHT) * lexical
    return union[np.argsort(-fused, kind="stable")[:K_RECALL]]


def hybrid_latency(
    index: faiss.Index, data: DenseData, retriever: bm25s.BM25, lex: LexicalData, idf: np.ndarray
) -> list[float]:
    def one(i: int) -> None:
        best = float(idf[lex.query_ids[i]].sum())  # qa.lexical.max_score, per query as the service does
        hybrid_query(index, data.vectors, data.queries[i : i + 1], retriever, lex.queries[i], best)

    ms: list[float] = []
    with faiss_threads(1):
        for i in range(min(WARMUP, len(data.queries))):
            one(i)
        for i in range(len(data.queries)):
            t0 = time.perf_counter()
            one(i)
            ms.append((time.perf_counter() - t0) * 1e3)
    return ms


def recall_at(found: np.ndarray, truth: np.ndarray, k: int) -> float:
    return float(
        np.mean([len(set(f[:k].tolist()) & set(t[:k].tolist())) / k for f, t in zip(found, truth, strict=True)])
    )


def source_at(found: np.ndarray, sources: np.ndarray, k: int) -> float:
    return float(np.mean([(f[:k] == s).any() for f, s in zip(found, sources, strict=True)]))


# ---------------------------------------------------------------- skipping what would not finish


def estimate(kind: str, n: int, history: list[SizeResult]) -> tuple[float, float]:
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
        size = n * (DIM * 4 + (2 * HNSW_M * 4 * 1.1 if kind == "hnsw" else 8 if kind == "ivf" else 0))
    queries = 2 * (N_QUERIES + WARMUP) * p50 / 1e3 * sum(max(1.0, v / max(1, variants[0])) for v in variants)
    return build + queries + size / 200e6, size


def skip_reason(kind: str, n: int, history: list[SizeResult], max_seconds: float) -> str:
    seconds, size = estimate(kind, n, history)
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
    with step(steps, n, "dense data"):
        data = make_dense(n, np.random.default_rng([seed, n, 0]), ctx.args.noise)
    with step(steps, n, "lexical data"):
        lex = make_lexical(n, ctx.words, np.random.default_rng([seed, n, 1]))
    with step(steps, n, "exact top-10 (faiss.knn, all threads)"):
        _, truth = faiss.knn(data.queries, data.vectors, K_RECALL, faiss.METRIC_INNER_PRODUCT)
    bm25, retriever = measure_bm25(n, lex, ctx.words, ctx.tmp, steps)
    idf = lucene_idf(retriever)
    nlist = nlist_for(n)
    rows: list[DenseRow] = []
    for kind in ctx.args.indexes:
        rows += run_index(kind, n, nlist, data, lex, retriever, idf, truth, steps, ctx)
    return SizeResult(n, nlist, bm25, rows, steps)


def run_index(
    kind: str,
    n: int,
    nlist: int,
    data: DenseData,
    lex: LexicalData,
    retriever: bm25s.BM25,
    idf: np.ndarray,
    truth: np.ndarray,
    steps: dict[str, float],
    ctx: Context,
) -> list[DenseRow]:
    rows = [DenseRow(n, kind, p) for p in VARIANTS[kind]]
    reason = skip_reason(kind, n, ctx.history, ctx.args.max_seconds)
    if reason:
        log(f"N={n:,} {kind}: {reason}")
        for row in rows:
            row.note = reason
        return rows
    start = time.monotonic()
    deadline = start + ctx.args.max_seconds
    try:
        with step(steps, n, f"{kind} build + serialize + write"):
            index, stats = build_dense(kind, data, nlist, deadline, ctx.tmp)
    except BudgetExceeded as exc:
        log(f"N={n:,} {kind}: {exc}")
        for row in rows:
            row.note = str(exc)
        gc.collect()
        return rows
    for i, row in enumerate(rows):
        left = deadline - time.monotonic()
        if i > 0 and rows[0].hybrid_p50_ms is not None:
            cost = 2 * (N_QUERIES + WARMUP) * rows[0].hybrid_p50_ms / 1e3 * row.param / rows[0].param
            if cost > left:
                row.note = f"skipped: ~{cost:,.0f} s left to run, {left:,.0f} s of --max-seconds remain"
                continue
        row.build = stats
        set_param(index, kind, row.param)
        with step(steps, n, f"{row.label} dense latency"):
            ms, found = dense_latency(index, data.queries)
        row.p50_ms, row.p95_ms = percentiles(ms)
        row.recall10 = recall_at(found, truth, K_RECALL)
        row.source10 = source_at(found, data.sources, K_RECALL)
        with step(steps, n, f"{row.label} hybrid latency"):
            row.hybrid_p50_ms, row.hybrid_p95_ms = percentiles(hybrid_latency(index, data, retriever, lex, idf))
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
    if model == "ivf build":
        return lambda n: (n + KMEANS_ITERATIONS * min(n, IVF_TRAIN_MAX)) * nlist_for(n)
    if model.startswith("ivf scan "):
        nprobe = int(model.rsplit(" ", 1)[1])
        return lambda n: min(nprobe, nlist_for(n)) * n / nlist_for(n) + nlist_for(n)
    raise ValueError(model)


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


def print_header(m: Machine, args: argparse.Namespace) -> None:
    v = m.versions
    print("# Scale benchmark: flat vs HNSW vs IVF, BM25 and hybrid\n")
    print(
        f"Machine: {m.cpu}, {m.cores} cores, {m.ram_gib:.1f} GiB RAM; load average at start "
        f"{m.load_avg[0]:.2f}/{m.load_avg[1]:.2f}/{m.load_avg[2]:.2f}; Python {v['python']}, faiss {v['faiss']}, "
        f"bm25s {v['bm25s']}, numpy {v['numpy']}.\n"
    )
    print(data_description(args.noise) + "\n")
    print(
        f"Latency: one query at a time, one thread (faiss.omp_set_num_threads(1)), p50/p95 over {N_QUERIES} "
        f"queries; dense = top {CANDIDATES}; BM25 = get_scores + argpartition top {CANDIDATES}; hybrid = dense "
        f"top {CANDIDATES} + BM25 top {CANDIDATES} + convex fusion, end to end. Builds use all {m.cores} cores.\n"
    )


def print_measured(results: list[SizeResult]) -> None:
    print("## Measured\n")
    head = (
        "| size | index | build s | index MiB | RSS Δ MiB | disk MiB | dense p50 ms | dense p95 ms | recall@10 "
        "| source@10 | BM25 p50 ms | BM25 p95 ms | hybrid p50 ms | hybrid p95 ms |"
    )
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for r in results:
        for row in r.dense:
            b = row.build
            cells = [
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
            print("| " + " | ".join(cells) + " |")
    notes = [f"- {human(r.size)} {row.label}: {row.note}" for r in results for row in r.dense if row.note]
    if notes:
        print("\n" + "\n".join(notes))
    print(
        "\nHNSW rows of one size share one build, as do IVF rows; ivf nlist: "
        + ", ".join(f"{human(r.size)} → {r.nlist}" for r in results)
        + ".\n"
    )


def print_bm25(results: list[SizeResult]) -> None:
    print("### BM25 (bm25s, lucene, k1 1.5, b 0.75; token ids via bm25s.tokenization.Tokenized)\n")
    print(
        "| size | build s | CSC arrays MiB | RSS Δ MiB | disk MiB | postings | chunks matching a query (mean) "
        "| p50 ms | p95 ms | service-sort p50 ms | service-sort p95 ms |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        b = r.bm25
        print(
            f"| {human(b.size)} | {b.build_s:.1f} | {b.array_bytes / MIB:.1f} | {b.rss_delta_bytes / MIB:.0f} "
            f"| {b.disk_bytes / MIB:.1f} | {b.postings:,} | {b.mean_matching_chunks:,.0f} | {b.p50_ms:.2f} "
            f"| {b.p95_ms:.2f} | {b.service_p50_ms:.2f} | {b.service_p95_ms:.2f} |"
        )
    print(
        "\nservice-sort = get_scores + argsort of every positive score, as qa.retrieval does today; "
        "p50/p95 = get_scores + argpartition top 50.\n"
    )


def print_extrapolation(rows: list[ExtrapolationRow], fits: dict[str, Fit], overhead: float, gib: float) -> None:
    print("## Extrapolated (from the measured sizes; not measured)\n")
    print(
        f"| size | index | dense GiB | BM25 GiB | total GiB | build h (dense + BM25) | dense p50 ms "
        f"| hybrid p50 ms | hybrid QPS per core | fits one {gib:g} GiB machine? |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        total = r.dense_gib + r.bm25_gib
        qps = 1000 / r.hybrid_p50_ms if r.hybrid_p50_ms > 0 else float("inf")
        print(
            f"| {human(r.size)} | {r.index} | {r.dense_gib:,.1f} | {r.bm25_gib:,.1f} | {total:,.1f} "
            f"| {r.build_hours:,.2f} | {r.dense_p50_ms:,.2f} | {r.hybrid_p50_ms:,.2f} | {qps:,.1f} "
            f"| {'yes' if r.fits else 'no'} |"
        )
    print(
        f'\n"Fits": dense + BM25 index ≤ {FIT_HEADROOM:.0%} of {gib:g} GiB (the rest: model, chunk text, OS, '
        "build peaks). IVF rows keep the nlist = 4·√N rule and the 50k-vector training cap (faiss wants ≥ 39 "
        "training vectors per centroid; at 10M+ train on more). Raw float32 vectors alone take "
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
    print("| chunks | 1 core h | 8 cores h | 32 cores h | one GPU h (estimate) |")
    print("|---|---|---|---|---|")
    two_core = 2 * rate
    for n in (1_000_000, 10_000_000, 100_000_000):
        cpu = [n / (rate * c) / 3600 for c in (1, 8, 32)]
        gpu = [n / (two_core * s) / 3600 for s in reversed(GPU_SPEEDUP)]
        print(f"| {human(n)} | {cpu[0]:,.1f} | {cpu[1]:,.1f} | {cpu[2]:,.1f} | {gpu[0]:,.1f}–{gpu[1]:,.1f} |")
    print(
        f"\nGPU column: an estimate, not measured — a GPU is typically {GPU_SPEEDUP[0]}–{GPU_SPEEDUP[1]}× faster "
        f"than a 2-core CPU ({two_core:g} chunks/s) for e5-small, i.e. ~{two_core * GPU_SPEEDUP[0]:,.0f}–"
        f"{two_core * GPU_SPEEDUP[1]:,.0f} chunks/s. Perfect scaling over cores is assumed.\n"
    )


def print_steps(results: list[SizeResult]) -> None:
    print("## Wall time per step (s)\n")
    print("| size | step | s |")
    print("|---|---|---|")
    for r in results:
        for name, s in r.steps.items():
            print(f"| {human(r.size)} | {name} | {s:,.1f} |")
        print(f"| {human(r.size)} | **total** | {sum(r.steps.values()):,.1f} |")
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
    return p.parse_args(argv)


def to_json(
    m: Machine,
    args: argparse.Namespace,
    results: list[SizeResult],
    fits: dict[str, Fit],
    extra: tuple[list[ExtrapolationRow], float],
) -> dict[str, Any]:
    rows, overhead = extra
    return {
        "machine": asdict(m),
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "data": data_description(args.noise),
        "results": [asdict(r) for r in results],
        "fits": {k: asdict(f) for k, f in fits.items()},
        "fusion_overhead_ms": overhead,
        "extrapolation": [asdict(r) for r in rows],
        "embedding_hours": embedding_hours(args.embed_rate),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    m = machine()
    log(f"{m.cpu}, {m.cores} cores, {m.ram_gib:.1f} GiB; sizes {args.sizes}, indexes {args.indexes}")
    words = jieba_vocabulary(VOCAB_SIZE)
    results: list[SizeResult] = []
    with tempfile.TemporaryDirectory(prefix="qa-scale-") as tmp:
        ctx = Context(args, words, Path(tmp), results)
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
    print_header(m, args)
    print_measured(results)
    print_bm25(results)
    print_extrapolation(extra[0], fits, extra[1], args.machine_gib)
    print_embedding(args.embed_rate)
    print_steps(results)
    if args.json:
        args.json.write_text(json.dumps(to_json(m, args, results, fits, extra), indent=2, ensure_ascii=False))
        log(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
