"""The Milvus store at scale: build time, disk and single-query latency of the real adapter.

Why: bench/scale.py sizes the FAISS store; this measures the other side of the decision rule — what the
same service costs on Milvus (`QA_STORE=milvus`) — through the production code (`qa.milvus_store`:
`write_version`, then `MilvusSnapshot` searches exactly as `qa.retrieval` calls them).

How to run (from the project root; on a shared machine under nice):

    nice -n 19 .venv/bin/python bench/scale_milvus.py --sizes 10000                  # Lite, ~1 min
    nice -n 19 .venv/bin/python bench/scale_milvus.py --sizes 10000 100000 --json out.json
    .venv/bin/python bench/scale_milvus.py --uri http://milvus:19530 --sizes 1000000  # a real cluster

Without --uri a Milvus Lite data directory in a temp dir is used (removed at the end); with --uri the
collections are created under the prefix `qa_bench` and dropped at the end.

Synthetic data, the same generator as bench/scale.py (fixed seed): N random 384-d unit vectors, queries =
a stored vector plus noise (cosine ≈ 0.89 to its source); each chunk's text is Poisson(150) words from a
Zipf law over jieba's 50,000 most frequent words, joined by spaces (so Milvus' jieba analyzer and our terms
agree); queries are 5-8 words. Measured per size and vector index (FLAT, HNSW M 32 / ef 128):
- build: insert + flush of the chunks, terms and meta collections (no embedding: vectors are given);
- disk: bytes of the Lite data directory (not measured for a cluster);
- latency, one query at a time, p50/p95 over --queries queries: dense top 50; BM25 top 50 (Milvus'
  candidates + the local rescoring with global IDF); hybrid = dense + BM25 + the scores of the union that
  the fusion needs (the calls `qa.retrieval` makes, without the question encode);
- recall@10 of the dense search against exact search (numpy) and source@10 (see bench/scale.py for why
  source@10 is the meaningful one on random vectors).
"""

from __future__ import annotations

import argparse
import itertools
import json
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from importlib.metadata import version
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import scale  # the shared synthetic data generator

from qa.chunking import Chunk
from qa.config import Settings
from qa.milvus_store import MilvusBackend, MilvusSnapshot, milvus_spec, write_version
from qa.store import Windows

K = 50


@dataclass
class Row:
    size: int
    index: str
    build_s: float
    disk_mib: float | None
    dense_p50: float
    dense_p95: float
    bm25_p50: float
    bm25_p95: float
    hybrid_p50: float
    hybrid_p95: float
    recall10: float
    source10: float


def pct(ms: list[float]) -> tuple[float, float]:
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 95))


def dir_mib(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def run(n: int, index: str, args: argparse.Namespace, words: list[str], root: Path) -> Row:
    rng = np.random.default_rng(args.seed + n)
    dense = scale.make_dense(n, rng, 0.5)
    lex = scale.make_lexical(n, words, rng)
    bounds = lex.offsets.tolist()
    terms = [[words[t] for t in lex.tokens[a:b].tolist()] for a, b in itertools.pairwise(bounds)]
    texts = [" ".join(t) for t in terms]
    chunks = [Chunk(f"doc{i // 100}", f"c{i}", i % 100, 0, len(x), x) for i, x in enumerate(texts)]
    docs = [SimpleNamespace(doc_id=f"doc{d}", title="", source="", sha256="", text="") for d in range((n + 99) // 100)]
    uri = args.uri or str(root / f"lite-{n}-{index}" / "milvus.db")
    settings = replace(Settings(), milvus_uri=uri, milvus_prefix="qa_bench", milvus_index=index)
    backend = MilvusBackend(settings)
    backend.drop_all()
    version = f"20000101T000000000000-{n % 10**8:08d}"
    manifest = {"version": version, "model": {"dim": scale.DIM}, "dense_index": milvus_spec(settings, n)}
    print(f"[{n} {index}] writing…", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    # one window per chunk (its own vector): the bench measures the store calls, not the window scoring
    windows = [Windows(((0, len(c.text)),), dense.vectors[i : i + 1]) for i, c in enumerate(chunks)]
    write_version(backend.client, "qa_bench", manifest, docs, chunks, terms, dense.vectors, windows)  # type: ignore[arg-type]
    build_s = time.perf_counter() - t0
    print(f"[{n} {index}] written in {build_s:.1f}s", file=sys.stderr, flush=True)
    snap = MilvusSnapshot(backend.client, "qa_bench", version)
    queries = dense.queries[: args.queries]
    d_ms, b_ms, h_ms, found = [], [], [], []
    for i, q in enumerate(queries):
        qterms = lex.queries[i]
        t = time.perf_counter()
        rows, _ = snap.dense_search(q, K, None)
        d_ms.append((time.perf_counter() - t) * 1000)
        found.append(rows[:10])
        t = time.perf_counter()
        snap.lexical_search(qterms, K, None)
        b_ms.append((time.perf_counter() - t) * 1000)
        snap._rows.clear()
        t = time.perf_counter()
        d_rows, _ = snap.dense_search(q, K, None)
        l_rows, _ = snap.lexical_search(qterms, K, None)
        union = np.asarray(list(dict.fromkeys([*d_rows.tolist(), *l_rows.tolist()])), dtype=np.int64)
        snap.dense_scores(q, union)
        snap.cjk_of(union)
        snap.lexical_scores_of(qterms, union)
        snap.lexical_max(qterms)
        h_ms.append((time.perf_counter() - t) * 1000)
        snap._rows.clear()
    exact = np.argsort(-(dense.vectors @ queries.T), axis=0)[:10].T
    recall = float(np.mean([len(set(f.tolist()) & set(e.tolist())) / 10 for f, e in zip(found, exact, strict=True)]))
    source = float(np.mean([s in f.tolist() for f, s in zip(found, dense.sources[: len(queries)], strict=True)]))
    disk = None if args.uri else dir_mib(Path(uri))
    backend.drop_all()
    return Row(n, index, build_s, disk, *pct(d_ms), *pct(b_ms), *pct(h_ms), recall, source)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0] if __doc__ else None)
    p.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    p.add_argument("--indexes", nargs="+", choices=["FLAT", "HNSW"], default=["FLAT", "HNSW"])
    p.add_argument("--uri", default="", help="a Milvus server (http://host:19530); default: Lite in a temp dir")
    p.add_argument("--queries", type=int, default=100)
    p.add_argument("--seed", type=int, default=20240607)
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    words = scale.jieba_vocabulary(scale.VOCAB_SIZE)
    root = Path(tempfile.mkdtemp(prefix="qa-scale-milvus-"))
    rows: list[Row] = []
    try:
        for n in args.sizes:
            for index in args.indexes:
                rows.append(run(n, index, args, words, root))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    m = scale.machine()
    where = args.uri or f"Milvus Lite (pymilvus {version('pymilvus')}, milvus-lite {version('milvus-lite')})"
    print(f"Milvus store, {where}; machine: {m.cpu}, {m.cores} cores, {m.ram_gib:.1f} GiB\n")
    print(
        "| chunks | vector index | build s | disk MiB | dense p50 / p95 ms | BM25 p50 / p95 ms "
        "| hybrid p50 / p95 ms | recall@10 | source@10 |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        disk = "–" if r.disk_mib is None else f"{r.disk_mib:,.0f}"
        print(
            f"| {r.size:,} | {r.index} | {r.build_s:.1f} | {disk} | {r.dense_p50:.1f} / {r.dense_p95:.1f} "
            f"| {r.bm25_p50:.1f} / {r.bm25_p95:.1f} | {r.hybrid_p50:.1f} / {r.hybrid_p95:.1f} "
            f"| {r.recall10:.3f} | {r.source10:.3f} |"
        )
    if args.json:
        out: dict[str, Any] = {"uri": where, "rows": [asdict(r) for r in rows]}
        args.json.write_text(json.dumps(out, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
