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

TYPES = ("auto", "flat", "hnsw", "ivf")
FLAT: dict[str, Any] = {"type": "flat"}


def spec_of(manifest: dict[str, Any]) -> dict[str, Any]:
    """The dense index a snapshot was built with (snapshots from before the choice existed are flat)."""
    spec: dict[str, Any] = manifest.get("dense_index", FLAT)
    return spec


def dense_spec(settings: Settings, n: int) -> dict[str, Any]:
    kind = settings.faiss_index
    if kind == "auto":
        kind = "flat" if n <= settings.flat_max_chunks else "hnsw"
    if kind == "hnsw":
        return {
            "type": "hnsw",
            "m": settings.hnsw_m,
            "ef_construction": settings.hnsw_ef_construction,
            "ef_search": settings.hnsw_ef_search,
        }
    if kind == "ivf":
        nlist = ivf_lists(n)
        return {"type": "ivf", "nlist": nlist, "nprobe": min(settings.ivf_nprobe, nlist)}
    return dict(FLAT)


def ivf_lists(n: int) -> int:
    """4·√n lists, each with ≥ 39 training points (FAISS's and Milvus' IVF alike)."""
    return max(1, min(n // 39, round(4 * math.sqrt(n))))


def build_dense(vectors: np.ndarray, dim: int, spec: dict[str, Any]) -> Any:
    import faiss

    index: Any
    if spec["type"] == "hnsw":
        index = faiss.IndexHNSWFlat(dim, spec["m"], faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = spec["ef_construction"]
    elif spec["type"] == "ivf":
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFFlat(quantizer, dim, spec["nlist"], faiss.METRIC_INNER_PRODUCT)
        if len(vectors):
            sample = vectors[np.random.default_rng(0).permutation(len(vectors))[: 256 * spec["nlist"]]]
            index.train(sample)
    else:
        index = faiss.IndexFlatIP(dim)
    if len(vectors):
        index.add(vectors)
    configure(index, spec)
    return index


def configure(index: Any, spec: dict[str, Any]) -> None:
    """Search-time parameters, set again after loading (FAISS does not persist them all)."""
    if spec.get("type") == "hnsw":
        index.hnsw.efSearch = spec["ef_search"]
    elif spec.get("type") == "ivf":
        index.nprobe = spec["nprobe"]
