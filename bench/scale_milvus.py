"""The Milvus store at scale: build time, disk and single-query latency of the real adapter.

Why: bench/scale.py sizes the FAISS store; this measures the other side of the decision rule — what the
same service costs on Milvus (`QA_STORE=milvus`) — through the production code (`qa.stores.milvus`:
`MilvusStore(settings).dense_spec`, `write_version` of a real `qa.manifest.Manifest`, then `MilvusSnapshot`
asked by `qa.retrieval.Retriever`, the code behind /v1/ask).

How to run (from the project root; on a shared machine under nice):

    nice -n 19 .venv/bin/python bench/scale_milvus.py --sizes 10000                  # Lite, ~1 min
    nice -n 19 .venv/bin/python bench/scale_milvus.py --sizes 10000 100000 --json out.json
    .venv/bin/python bench/scale_milvus.py --uri http://milvus:19530 --sizes 1000000  # a real cluster

Without --uri a Milvus Lite data directory in a temp dir is used (removed at the end); with --uri the
collections are created under the prefix `qa_bench` and dropped at the end.

Synthetic data, the same generator as bench/scale.py (fixed seed): N random 384-d unit vectors, queries =
a stored vector plus noise (cosine ≈ 0.89 to its source); each chunk's text is Poisson(150) words from a
Zipf law over jieba's 50,000 most frequent words, joined by spaces (so Milvus' jieba analyzer and our terms
agree), one sentence window per chunk (its own vector); queries are 5-8 words. Measured per size and
vector index (FLAT, and HNSW with QA_HNSW_M / QA_HNSW_EF_CONSTRUCTION / QA_HNSW_EF_SEARCH, via
`MilvusStore.dense_spec`):
- build: `write_version`, insert + flush of the chunks, windows, terms and meta collections (no embedding:
  vectors are given);
- disk: bytes of the Lite data directory (not measured for a cluster);
- latency, one query at a time, p50/p95 over --queries queries: dense top QA_CANDIDATES; BM25 top QA_CANDIDATES
  (Milvus' candidates + the local rescoring with global IDF); hybrid = `Retriever.ask` with
  QA_FUSION (default: the learned ranker shipped for the bundled model), everything /v1/ask does but the
  question encode (see bench/scale.py's `SyntheticModel`). The snapshot's row and window caches are
  emptied before each timed call, so every call fetches its candidates from Milvus;
- recall@10 of the dense search against exact search (numpy) and source@10 (see bench/scale.py for why
  source@10 is the meaningful one on random vectors).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from importlib.metadata import version
from pathlib import Path
from typing import Any

import common
import numpy as np
import scale  # the shared synthetic data generator and SyntheticModel (this directory is sys.path[0])
from common import markdown_table, p50_p95

from qa.config import Settings
from qa.corpus import Document
from qa.stores.base import Contents, Windows
from qa.stores.milvus.reader import MilvusSnapshot
from qa.stores.milvus.store import MilvusStore
from qa.stores.milvus.writer import write_version


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


def dir_mib(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def forget(snap: MilvusSnapshot) -> None:
    """Empty the snapshot's caches of chunk rows and windows: the next call fetches from Milvus."""
    snap._rows.clear()
    snap._windows.clear()


def run(n: int, index: str, args: argparse.Namespace, words: list[str], root: Path, model: scale.SyntheticModel) -> Row:
    rng = np.random.default_rng(args.seed + n)
    dense = scale.make_dense(n, rng, 0.5)
    lex = scale.make_lexical(n, words, rng)
    made = scale.SyntheticChunks(lex, words, " ")
    chunks = [made.make(i) for i in range(n)]
    terms = [c.text.split(" ") for c in chunks]
    docs = [
        Document(
            doc_id=d, path=f"{d}.txt", text="", sha256="0" * 64, title=info.title, source=info.source, encoding="utf-8"
        )
        for d, info in made.documents().items()
    ]
    uri = args.uri or str(root / f"lite-{n}-{index}" / "milvus.db")
    env = Settings.from_env()
    settings = replace(
        env, milvus_uri=uri, milvus_prefix="qa_bench", milvus_index=index, fusion=args.fusion or env.fusion
    )
    store = MilvusStore(settings)
    store.drop_all()
    corpus = {d.doc_id: d.sha256 for d in docs}
    manifest = scale.synthetic_manifest(settings, model, n, store.dense_spec(n), "milvus", corpus)
    print(f"[{n} {index}] writing…", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    # one sentence window per chunk (its own vector), as in bench/scale.py
    windows = [Windows(((0, len(c.text)),), dense.vectors[i : i + 1]) for i, c in enumerate(chunks)]
    write_version(store.client, store.prefix, manifest, Contents(docs, chunks, terms, dense.vectors, windows))
    build_s = time.perf_counter() - t0
    print(f"[{n} {index}] written in {build_s:.1f}s", file=sys.stderr, flush=True)
    snap = MilvusSnapshot(store.client, store.prefix, manifest.version)
    asker = scale.Asker(settings, model)
    k = settings.candidates
    queries = dense.queries[: args.queries]
    d_ms, b_ms, h_ms, found = [], [], [], []
    for i, q in enumerate(queries):
        qterms = lex.queries[i]
        t = time.perf_counter()
        rows, _ = snap.dense_search(q, k, None)
        d_ms.append((time.perf_counter() - t) * 1000)
        found.append(rows[:10])
        t = time.perf_counter()
        snap.lexical_search(qterms, k, None)
        b_ms.append((time.perf_counter() - t) * 1000)
        forget(snap)
        t = time.perf_counter()
        asker.ask(snap, q, qterms)
        h_ms.append((time.perf_counter() - t) * 1000)
        forget(snap)
    exact = np.argsort(-(dense.vectors @ queries.T), axis=0)[:10].T
    recall = float(np.mean([len(set(f.tolist()) & set(e.tolist())) / 10 for f, e in zip(found, exact, strict=True)]))
    source = float(np.mean([s in f.tolist() for f, s in zip(found, dense.sources[: len(queries)], strict=True)]))
    disk = None if args.uri else dir_mib(Path(uri))
    store.drop_all()
    return Row(n, index, build_s, disk, *p50_p95(d_ms), *p50_p95(b_ms), *p50_p95(h_ms), recall, source)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0] if __doc__ else None)
    p.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    p.add_argument("--indexes", nargs="+", choices=["FLAT", "HNSW"], default=["FLAT", "HNSW"])
    p.add_argument("--uri", default="", help="a Milvus server (http://host:19530); default: Lite in a temp dir")
    p.add_argument("--queries", type=int, default=100)
    p.add_argument("--seed", type=int, default=20240607)
    p.add_argument("--json", type=Path)
    p.add_argument(
        "--fusion",
        choices=["learned", "convex", "rrf"],
        help="QA_FUSION of the hybrid column (default: QA_FUSION, else the service's default, learned)",
    )
    args = p.parse_args(argv)
    words = scale.jieba_vocabulary(scale.VOCAB_SIZE)
    model = scale.SyntheticModel()
    root = Path(tempfile.mkdtemp(prefix="qa-scale-milvus-"))
    rows: list[Row] = []
    try:
        for n in args.sizes:
            for index in args.indexes:
                rows.append(run(n, index, args, words, root, model))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    where = args.uri or f"Milvus Lite (pymilvus {version('pymilvus')}, milvus-lite {version('milvus-lite')})"
    print(f"Milvus store, {where}; machine: {common.machine()}\n")
    head = ["chunks", "vector index", "build s", "disk MiB", "dense p50 / p95 ms", "BM25 p50 / p95 ms"]
    head += ["hybrid p50 / p95 ms", "recall@10", "source@10"]
    table = [
        [
            f"{r.size:,}", r.index, f"{r.build_s:.1f}", "–" if r.disk_mib is None else f"{r.disk_mib:,.0f}",
            f"{r.dense_p50:.1f} / {r.dense_p95:.1f}", f"{r.bm25_p50:.1f} / {r.bm25_p95:.1f}",
            f"{r.hybrid_p50:.1f} / {r.hybrid_p95:.1f}", f"{r.recall10:.3f}", f"{r.source10:.3f}",
        ]
        for r in rows
    ]  # fmt: skip
    print(markdown_table(head, table))
    if args.json:
        out: dict[str, Any] = {"uri": where, "rows": [asdict(r) for r in rows]}
        args.json.write_text(json.dumps(out, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
