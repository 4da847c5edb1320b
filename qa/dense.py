"""The FAISS index over the passage vectors: exact (flat) for small corpora, HNSW or IVF for large ones.

`QA_FAISS_INDEX=auto` (default) picks flat up to `QA_FLAT_MAX_CHUNKS` chunks (exact, and fast enough:
~7 ms per query at 100k chunks on one core, bench/scale.py) and HNSW beyond (~1 ms; recall is tuned by
`QA_HNSW_EF_SEARCH`). IVF builds much faster than HNSW and is there for corpora rebuilt often. The
resolved choice and its parameters are recorded in the manifest, so a snapshot always loads the way it
was built. The vectors themselves are the same for every index type: changing it re-indexes, never
re-embeds.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from qa.config import Settings
from qa.manifest import FLAT, DenseSpec

TYPES = ("auto", "flat", "hnsw", "ivf")


def dense_spec(settings: Settings, n: int, kind: str | None = None) -> DenseSpec:
    """The index a build of `n` chunks gets: `kind` (default QA_FAISS_INDEX; `auto` picks by size) with
    its parameters from the settings. Milvus asks with its own QA_MILVUS_INDEX."""
    kind = kind or settings.faiss_index
    if kind == "auto":
        kind = "flat" if n <= settings.flat_max_chunks else "hnsw"
    if kind == "hnsw":
        return DenseSpec(
            "hnsw", m=settings.hnsw_m, ef_construction=settings.hnsw_ef_construction, ef_search=settings.hnsw_ef_search
        )
    if kind == "ivf":
        nlist = ivf_lists(n)
        return DenseSpec("ivf", nlist=nlist, nprobe=min(settings.ivf_nprobe, nlist))
    return FLAT


def ivf_lists(n: int) -> int:
    """4·√n lists, each with ≥ 39 training points (FAISS's and Milvus' IVF alike)."""
    return max(1, min(n // 39, round(4 * math.sqrt(n))))


def build_dense(vectors: np.ndarray, dim: int, spec: DenseSpec) -> Any:
    import faiss

    index: Any
    if spec.type == "hnsw":
        assert spec.m is not None
        index = faiss.IndexHNSWFlat(dim, spec.m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = spec.ef_construction
    elif spec.type == "ivf":
        assert spec.nlist is not None
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFFlat(quantizer, dim, spec.nlist, faiss.METRIC_INNER_PRODUCT)
        if len(vectors):
            sample = vectors[np.random.default_rng(0).permutation(len(vectors))[: 256 * spec.nlist]]
            index.train(sample)
    else:
        index = faiss.IndexFlatIP(dim)
    if len(vectors):
        index.add(vectors)
    configure(index, spec)
    return index


def configure(index: Any, spec: DenseSpec) -> None:
    """Search-time parameters, set again after loading (FAISS does not persist them all)."""
    if spec.type == "hnsw":
        index.hnsw.efSearch = spec.ef_search
    elif spec.type == "ivf":
        index.nprobe = spec.nprobe
