"""The Milvus layout: every index version is a set of collections, and an alias names the serving one.

One version = four collections `<prefix>_<kind>_<version>`:
  chunks: row (pk), doc_id (INVERTED index, for the doc_ids filter), chunk_id, ordinal, start, end,
          text (jieba analyzer → Milvus' BM25 function → `sparse`), vector (COSINE), terms (our jieba
          terms, space-joined), dl (term count), cjk (share of CJK letters)
  terms:  term (pk) → df, the document frequency over the whole version
  meta:   key (pk) → value: the manifest, the document list and the raw document texts, in parts
  windows: id (pk), chunk_row (INVERTED index), start, end, vector: the sentence windows of every chunk

A build fills new collections, flushes them, then moves the alias `<prefix>_chunks` (Milvus' atomic
switch): a half-filled collection never serves, and a failed build leaves the previous version serving.
Unchanged documents are copied from the serving version with their vectors (no re-embedding); a changed
document is re-chunked and re-embedded, a removed one is simply not copied. The serving version and the
two before it are kept, because requests may still hold them; older versions and leftovers of a failed
build are dropped.

Ranking is the FAISS path's: candidates from Milvus (dense top-k, BM25 top-k), fused by `qa.retrieval`
with the same code. Milvus' BM25 only *proposes* lexical candidates: its scores use per-segment IDF (and
come back negative in Lite), so they are rescored here with bm25s' formula from the stored terms and the
global document frequencies — the same numbers the FAISS store computes (a test asserts identical rankings:
test_milvus_ranks_like_faiss_on_the_corpus_questions).

Milvus Lite (a `.db` data directory) differs from a server; each difference is handled where it bites:
- Lite 3.x is a Python re-implementation of the Milvus API, not the server engine.
- `{"type": "chinese"}` analyzers are rejected: the jieba tokenizer is used (`analyzer_params`).
- BM25 scores are negative and per segment: rank by order only, never threshold them.
- After connecting, `load_collection()` is needed before a search.
- `flush()` after ingest: unflushed data searches ~100× slower.
- Releasing and reloading right after a flush can fail ("file seems not fully written?"): never release.
- One process per data directory (DataDirLockedError otherwise): several API workers need
  `milvus-lite server --data-dir …` and an http URI.
- FLAT indexes in tests for a deterministic top-k.
"""

from __future__ import annotations

from typing import Any

from qa.errors import IndexFormatError
from qa.manifest import DenseSpec

KINDS = ("chunks", "terms", "meta", "windows")
DUMMY = [0.0, 1.0]  # Milvus needs a vector field in every collection: terms and meta carry this one
PART_CHARS = 16_000  # a VARCHAR holds ≤ 65,535 bytes: 16k characters of up to 4 bytes each
INSERT_BATCH = 500
CHUNK_FIELDS = ["row", "doc_id", "chunk_id", "ordinal", "start", "end", "text", "vector", "terms", "dl", "cjk"]
INDEX_TYPES = {"flat": "FLAT", "hnsw": "HNSW", "ivf": "IVF_FLAT"}  # DenseSpec.type -> Milvus index type


def collection_names(prefix: str, version: str) -> dict[str, str]:
    v = version.replace("-", "_")
    return {k: f"{prefix}_{k}_{v}" for k in KINDS}


def version_of(prefix: str, collection: str) -> str | None:
    """The version a collection belongs to, or None if it is not one of ours."""
    for kind in KINDS:
        head = f"{prefix}_{kind}_"
        if collection.startswith(head):
            return collection.removeprefix(head).replace("_", "-", 1)  # versions have one "-" and no "_"
    return None


def index_params(spec: DenseSpec) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """(Milvus index type, build params, search params) of a spec: our names mapped to Milvus' own."""
    kind = INDEX_TYPES[spec.type]
    if spec.type == "hnsw":
        return kind, {"M": spec.m, "efConstruction": spec.ef_construction}, {"ef": spec.ef_search}
    if spec.type == "ivf":
        return kind, {"nlist": spec.nlist}, {"nprobe": spec.nprobe}
    return kind, {}, {}


def blob_rows(key: str, text: str) -> list[dict[str, Any]]:
    """A long string as `<key>` (its number of parts) and `<key>#<i>` rows."""
    parts = [text[i : i + PART_CHARS] for i in range(0, len(text), PART_CHARS)] or [""]
    head = {"key": key, "value": str(len(parts)), "dummy": DUMMY}
    return [head, *({"key": f"{key}#{i}", "value": p, "dummy": DUMMY} for i, p in enumerate(parts))]


def get_blob(client: Any, collection: str, key: str) -> str:
    head = client.query(collection, ids=[key], output_fields=["value"])
    if not head:
        raise IndexFormatError(f"Milvus collection {collection} has no {key!r}: rebuild the index")
    keys = [f"{key}#{i}" for i in range(int(head[0]["value"]))]
    got = {r["key"]: r["value"] for r in client.query(collection, ids=keys, output_fields=["key", "value"])}
    return "".join(got[k] for k in keys)


def filter_list(values: list[str]) -> str | None:
    """A Milvus filter list literal, or None when a value would need escaping we can't rely on."""
    if any('"' in v or "\\" in v for v in values):
        return None
    return "[" + ", ".join(f'"{v}"' for v in values) + "]"
