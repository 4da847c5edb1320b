"""The Milvus store: every index version is a set of collections, and an alias names the serving one.

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

import json
import logging
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from qa.chunking import Chunk
from qa.config import Settings
from qa.corpus import Document
from qa.dense import ivf_lists
from qa.errors import IndexFormatError, IndexNotFoundError, StoreUnavailableError
from qa.lexical import K1, B, lucene_idf
from qa.store import DocumentInfo, DocumentRecord, Scope, Windows, require_document, require_documents
from qa.tokens import cjk_share

log = logging.getLogger(__name__)

FORMAT_VERSION = 2  # of the collection layout; a change needs a rebuild (2: the windows collection)
KINDS = ("chunks", "terms", "meta", "windows")
KEEP_VERSIONS = 3  # the serving one and two before it (requests may still hold them)
DUMMY = [0.0, 1.0]  # Milvus needs a vector field in every collection: terms and meta carry this one
PART_CHARS = 16_000  # a VARCHAR holds ≤ 65,535 bytes: 16k characters of up to 4 bytes each
INSERT_BATCH = 500
ROW_CACHE = 8192  # chunk rows kept in memory per version (they never change)
CHUNK_FIELDS = ["row", "doc_id", "chunk_id", "ordinal", "start", "end", "text", "vector", "terms", "dl", "cjk"]


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


def milvus_spec(settings: Settings, n: int) -> dict[str, Any]:
    """The vector index of a Milvus version (FLAT is exact; HNSW/IVF_FLAT for big collections)."""
    if settings.milvus_index == "HNSW":
        return {
            "type": "milvus-hnsw",
            "M": settings.hnsw_m,
            "efConstruction": settings.hnsw_ef_construction,
            "ef": settings.hnsw_ef_search,
        }
    if settings.milvus_index == "IVF_FLAT":
        nlist = ivf_lists(n)
        return {"type": "milvus-ivf_flat", "nlist": nlist, "nprobe": min(settings.ivf_nprobe, nlist)}
    return {"type": "milvus-flat"}


def _index_params(spec: dict[str, Any]) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """(index type, build params, search params) of a spec."""
    kind = spec["type"].removeprefix("milvus-").upper()
    if kind == "HNSW":
        return kind, {"M": spec["M"], "efConstruction": spec["efConstruction"]}, {"ef": spec["ef"]}
    if kind == "IVF_FLAT":
        return kind, {"nlist": spec["nlist"]}, {"nprobe": spec["nprobe"]}
    return "FLAT", {}, {}


class _LiteUnimplemented(logging.Filter):
    """Lite's in-process gRPC server lacks AllocTimestamp, which pymilvus calls while waiting for an index
    it then finds built anyway; grpc logs each such call as an error with a traceback. Drop only those."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Method not implemented" not in record.getMessage()


class GuardedClient:
    """The pymilvus client, whose failures become StoreUnavailableError: the API answers 503 with the reason
    (server down, Lite directory locked by another process) instead of a 500."""

    def __init__(self, client: Any, where: str) -> None:
        self._client = client
        self._where = where

    def __getattr__(self, name: str) -> Any:
        from pymilvus.exceptions import MilvusException

        attr = getattr(self._client, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return attr(*args, **kwargs)
            except MilvusException as exc:
                raise StoreUnavailableError(f"Milvus at {self._where}: {name} failed: {exc.message}") from exc

        return call


def connect(settings: Settings) -> GuardedClient:
    from pymilvus import MilvusClient
    from pymilvus.exceptions import MilvusException

    uri = settings.milvus_target
    options: dict[str, Any] = {}
    if uri.endswith(".db"):
        Path(uri).parent.mkdir(parents=True, exist_ok=True)  # pymilvus refuses a Lite path without its parent
        grpc_log = logging.getLogger("grpc._server")
        if not any(isinstance(f, _LiteUnimplemented) for f in grpc_log.filters):
            grpc_log.addFilter(_LiteUnimplemented())
        # pymilvus pings every 10 s; Lite's in-process gRPC server keeps grpc's default policy (at most one
        # ping per 5 min without data) and answers with GOAWAY "too_many_pings". Over loopback no keepalive
        # is needed: ping less often than the server's limit.
        options["grpc_options"] = {"grpc.keepalive_time_ms": 360_000, "grpc.keepalive_permit_without_calls": 0}
    if settings.milvus_token:
        options["token"] = settings.milvus_token
    try:
        client = MilvusClient(uri, **options)
    except MilvusException as exc:
        hint = (
            " (Milvus Lite allows one process per data directory: is another server or `qa build` using it? "
            "Several processes need `milvus-lite server --data-dir …` and QA_MILVUS_URI=http://…)"
            if uri.endswith(".db")
            else ""
        )
        raise StoreUnavailableError(f"can't connect to Milvus at {uri}: {exc.message}{hint}") from exc
    return GuardedClient(client, uri)


class MilvusBackend:
    """Index versions as Milvus collections and the serving alias; implements `qa.store.Backend`."""

    name = "milvus"

    def __init__(self, settings: Settings, client: Any | None = None) -> None:
        self.settings = settings
        self.prefix = settings.milvus_prefix
        self.alias = f"{self.prefix}_chunks"
        self._client = client
        self._lock = threading.Lock()

    @property
    def client(self) -> Any:
        """Connected on first use, so a FAISS-only process never needs pymilvus."""
        with self._lock:
            if self._client is None:
                self._client = connect(self.settings)
            return self._client

    def serving(self) -> str | None:
        # asked first: describing a missing alias raises, and pymilvus logs every failed RPC as an error
        if self.alias not in self.client.list_aliases().get("aliases", []):
            return None
        name = self.client.describe_alias(self.alias).get("collection_name")
        return version_of(self.prefix, name) if name else None

    def open(self, version: str | None = None) -> MilvusSnapshot:
        version = version or self.serving()
        if version is None:
            raise IndexNotFoundError(
                f"no index in Milvus at {self.settings.milvus_target} (alias {self.alias}): run `qa build`"
            )
        return MilvusSnapshot(self.client, self.prefix, version)

    def serving_manifest(self) -> dict[str, Any] | None:
        version = self.serving()
        if version is None:
            return None
        meta = collection_names(self.prefix, version)["meta"]
        self.client.load_collection(meta)
        manifest: dict[str, Any] = json.loads(_get_blob(self.client, meta, "manifest"))
        return manifest

    def dense_spec(self, chunks: int) -> dict[str, Any]:
        return milvus_spec(self.settings, chunks)

    def versions(self) -> list[str]:
        """Every version with at least one collection here, oldest first."""
        found = {version_of(self.prefix, c) for c in self.client.list_collections()}
        return sorted(v for v in found if v)

    def publish(
        self,
        manifest: dict[str, Any],
        docs: list[Document],
        chunks: list[Chunk],
        terms: list[list[str]],
        vectors: np.ndarray,
        windows: list[Windows],
    ) -> None:
        self._drop_unfinished()
        version = manifest["version"]
        try:
            write_version(self.client, self.prefix, manifest, docs, chunks, terms, vectors, windows)
        except BaseException:
            self._drop(version)  # never leave a half-written version behind (the alias has not moved)
            raise
        self._switch(version)
        self._collect_garbage()

    def _switch(self, version: str) -> None:
        target = collection_names(self.prefix, version)["chunks"]
        if self.serving() is None:
            self.client.create_alias(target, self.alias)
        else:
            self.client.alter_alias(target, self.alias)
        log.info("milvus alias %s -> %s", self.alias, target)

    def _drop_unfinished(self) -> None:
        """Versions newer than the serving one can only be leftovers of a build that died (one writer)."""
        serving = self.serving()
        for v in self.versions():
            if serving is None or v > serving:
                self._drop(v)

    def _collect_garbage(self) -> None:
        serving = self.serving()
        if serving is None:
            return
        older = [v for v in self.versions() if v < serving]
        for v in older[: max(0, len(older) - (KEEP_VERSIONS - 1))]:
            self._drop(v)

    def _drop(self, version: str) -> None:
        existing = set(self.client.list_collections())
        for name in collection_names(self.prefix, version).values():
            if name in existing:
                self.client.drop_collection(name)
        log.info("dropped milvus version %s", version)

    def drop_all(self) -> None:
        """Remove the alias and every version (tests against a shared cluster clean up with this)."""
        if self.serving() is not None:
            self.client.drop_alias(self.alias)
        for v in self.versions():
            self._drop(v)


def write_version(
    client: Any,
    prefix: str,
    manifest: dict[str, Any],
    docs: list[Document],
    chunks: list[Chunk],
    terms: list[list[str]],
    vectors: np.ndarray,
    windows: list[Windows],
) -> None:
    """Create and fill the collections of one version, flushed; does not make it serving."""
    from pymilvus import DataType, Function, FunctionType

    names = collection_names(prefix, manifest["version"])
    dim = int(manifest["model"]["dim"])
    index_type, build_params, _ = _index_params(manifest["dense_index"])

    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("row", DataType.INT64, is_primary=True)
    schema.add_field("doc_id", DataType.VARCHAR, max_length=1024)
    schema.add_field("chunk_id", DataType.VARCHAR, max_length=64)
    schema.add_field("ordinal", DataType.INT64)
    schema.add_field("start", DataType.INT64)
    schema.add_field("end", DataType.INT64)
    # Lite rejects {"type": "chinese"}; the jieba tokenizer is what we tokenize with anyway
    schema.add_field(
        "text", DataType.VARCHAR, max_length=65535, enable_analyzer=True, analyzer_params={"tokenizer": "jieba"}
    )
    schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
    schema.add_field("terms", DataType.VARCHAR, max_length=65535)
    schema.add_field("dl", DataType.INT64)
    schema.add_field("cjk", DataType.FLOAT)
    schema.add_function(
        Function(
            name="bm25", function_type=FunctionType.BM25, input_field_names=["text"], output_field_names=["sparse"]
        )
    )
    index = client.prepare_index_params()
    index.add_index("vector", index_type=index_type, metric_type="COSINE", params=build_params)
    index.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
    index.add_index("doc_id", index_type="INVERTED")
    client.create_collection(names["chunks"], schema=schema, index_params=index)
    for start in range(0, len(chunks), INSERT_BATCH):
        client.insert(
            names["chunks"],
            [
                {
                    "row": i,
                    "doc_id": c.doc_id,
                    "chunk_id": c.chunk_id,
                    "ordinal": c.ordinal,
                    "start": c.start,
                    "end": c.end,
                    "text": c.text,
                    "vector": vectors[i].tolist(),
                    "terms": " ".join(terms[i]),
                    "dl": len(terms[i]),
                    "cjk": cjk_share(c.text),
                }
                for i, c in enumerate(chunks[start : start + INSERT_BATCH], start=start)
            ],
        )
    client.flush(names["chunks"])  # unflushed data searches ~100x slower in Lite
    _write_windows(client, names["windows"], dim, windows)

    df: dict[str, int] = {}
    for t in terms:
        for term in set(t):
            df[term] = df.get(term, 0) + 1
    _kv_collection(client, names["terms"], DataType.INT64, "df")
    rows = [{"key": k, "df": v, "dummy": DUMMY} for k, v in df.items() if k]
    for start in range(0, len(rows), 4 * INSERT_BATCH):
        client.insert(names["terms"], rows[start : start + 4 * INSERT_BATCH])
    client.flush(names["terms"])

    _kv_collection(client, names["meta"], DataType.VARCHAR, "value")
    per_doc: dict[str, int] = {}
    for c in chunks:
        per_doc[c.doc_id] = per_doc.get(c.doc_id, 0) + 1
    documents = [
        {
            "doc_id": d.doc_id,
            "title": d.title,
            "source": d.source,
            "chars": len(d.text),
            "chunks": per_doc.get(d.doc_id, 0),
            "sha256": d.sha256,
        }
        for d in docs
    ]
    n = len(chunks)
    stats = {"format_version": FORMAT_VERSION, "n": n, "avgdl": (sum(len(t) for t in terms) / n) if n else 1.0}
    blobs = {
        "manifest": json.dumps(manifest, ensure_ascii=False),
        "stats": json.dumps(stats),
        "documents": json.dumps(documents, ensure_ascii=False),
        **{f"text:{d.doc_id}": d.text for d in docs},
    }
    rows = [row for key, text in blobs.items() for row in _blob_rows(key, text)]
    for start in range(0, len(rows), 100):
        client.insert(names["meta"], rows[start : start + 100])
    client.flush(names["meta"])


def _write_windows(client: Any, name: str, dim: int, windows: list[Windows]) -> None:
    from pymilvus import DataType

    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("chunk_row", DataType.INT64)
    schema.add_field("start", DataType.INT64)
    schema.add_field("end", DataType.INT64)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
    index = client.prepare_index_params()
    index.add_index("vector", index_type="FLAT", metric_type="COSINE")  # read by chunk_row, never searched
    index.add_index("chunk_row", index_type="INVERTED")
    client.create_collection(name, schema=schema, index_params=index)
    rows = [
        {"id": 0, "chunk_row": row, "start": a, "end": b, "vector": w.vectors[j].tolist()}
        for row, w in enumerate(windows)
        for j, (a, b) in enumerate(w.spans)
    ]
    for i, r in enumerate(rows):
        r["id"] = i
    for start in range(0, len(rows), INSERT_BATCH):
        client.insert(name, rows[start : start + INSERT_BATCH])
    client.flush(name)


def _kv_collection(client: Any, name: str, value_type: Any, value: str) -> None:
    from pymilvus import DataType

    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("key", DataType.VARCHAR, is_primary=True, max_length=2048)
    if value_type == DataType.VARCHAR:
        schema.add_field(value, DataType.VARCHAR, max_length=65535)
    else:
        schema.add_field(value, value_type)
    schema.add_field("dummy", DataType.FLOAT_VECTOR, dim=len(DUMMY))
    index = client.prepare_index_params()
    index.add_index("dummy", index_type="FLAT", metric_type="L2")
    client.create_collection(name, schema=schema, index_params=index)


def _blob_rows(key: str, text: str) -> list[dict[str, Any]]:
    """A long string as `<key>` (its number of parts) and `<key>#<i>` rows."""
    parts = [text[i : i + PART_CHARS] for i in range(0, len(text), PART_CHARS)] or [""]
    head = {"key": key, "value": str(len(parts)), "dummy": DUMMY}
    return [head, *({"key": f"{key}#{i}", "value": p, "dummy": DUMMY} for i, p in enumerate(parts))]


def _get_blob(client: Any, collection: str, key: str) -> str:
    head = client.query(collection, ids=[key], output_fields=["value"])
    if not head:
        raise IndexFormatError(f"Milvus collection {collection} has no {key!r}: rebuild the index")
    keys = [f"{key}#{i}" for i in range(int(head[0]["value"]))]
    got = {r["key"]: r["value"] for r in client.query(collection, ids=keys, output_fields=["key", "value"])}
    return "".join(got[k] for k in keys)


def _literal(values: list[str]) -> str | None:
    """A Milvus filter list literal, or None when a value would need escaping we can't rely on."""
    if any('"' in v or "\\" in v for v in values):
        return None
    return "[" + ", ".join(f'"{v}"' for v in values) + "]"


class MilvusSnapshot:
    """One index version in Milvus; implements `qa.store.Store` (reads only)."""

    def __init__(self, client: Any, prefix: str, version: str) -> None:
        self.client = client
        self.names = collection_names(prefix, version)
        existing = set(client.list_collections())
        missing = [n for n in self.names.values() if n not in existing]
        if missing:
            raise IndexNotFoundError(f"Milvus version {version} is incomplete (missing {', '.join(missing)})")
        for name in self.names.values():
            client.load_collection(name)  # Lite needs it after connecting; never release/reload after a flush
        stats = json.loads(_get_blob(client, self.names["meta"], "stats"))
        if stats.get("format_version") != FORMAT_VERSION:
            raise IndexFormatError(
                f"Milvus version {version} has layout {stats.get('format_version')}, this code reads "
                f"{FORMAT_VERSION}: rebuild it with `qa build --force`"
            )
        self.manifest: dict[str, Any] = json.loads(_get_blob(client, self.names["meta"], "manifest"))
        self.version: str = self.manifest["version"]
        self.num_chunks, self.avgdl = int(stats["n"]), float(stats["avgdl"])
        self._docs = {d["doc_id"]: d for d in json.loads(_get_blob(client, self.names["meta"], "documents"))}
        _, _, self._search_params = _index_params(self.manifest["dense_index"])
        self._df: dict[str, int] = {}
        self._rows: OrderedDict[int, dict[str, Any]] = OrderedDict()
        self._windows: OrderedDict[int, Windows] = OrderedDict()
        self._dim = int(self.manifest["model"]["dim"])
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return self.num_chunks

    # --- rows: one query fetches everything about a candidate; immutable, so cached -----------------
    def _fetch(self, rows: np.ndarray) -> list[dict[str, Any]]:
        wanted = [int(r) for r in rows]
        with self._lock:
            missing = [r for r in dict.fromkeys(wanted) if r not in self._rows]
        got: dict[int, dict[str, Any]] = {}
        if missing:
            for rec in self.client.query(self.names["chunks"], ids=missing, output_fields=CHUNK_FIELDS):
                got[int(rec["row"])] = rec
        with self._lock:
            for r, rec in got.items():
                self._rows[r] = rec
            out = [got.get(r) or self._rows[r] for r in wanted]
            for r in wanted:
                self._rows.move_to_end(r)
            while len(self._rows) > ROW_CACHE:
                self._rows.popitem(last=False)
        return out

    def chunk(self, row: int) -> Chunk:
        r = self._fetch(np.asarray([row]))[0]
        return Chunk(r["doc_id"], r["chunk_id"], r["ordinal"], r["start"], r["end"], r["text"])

    def scope(self, doc_ids: list[str]) -> Scope:
        require_documents(doc_ids, self._docs)
        return Scope(tuple(doc_ids), np.zeros(0, np.int64))  # Milvus filters by doc_id, not by row

    def _filter(self, scope: Scope | None) -> str:
        if scope is None:
            return ""
        literal = _literal(list(scope.doc_ids))
        if literal is not None:
            return f"doc_id in {literal}"  # the INVERTED index on doc_id answers this
        rows = self.client.query(self.names["chunks"], filter="row >= 0", output_fields=["row", "doc_id"])
        wanted = set(scope.doc_ids)
        return f"row in {[int(r['row']) for r in rows if r['doc_id'] in wanted]}"

    def cjk_of(self, rows: np.ndarray) -> np.ndarray:
        return np.asarray([r["cjk"] for r in self._fetch(rows)], dtype=np.float32)

    def windows_of(self, rows: np.ndarray) -> list[Windows]:
        """One query for every window of these rows; cached like the rows (they never change)."""
        wanted = [int(r) for r in rows]
        with self._lock:
            missing = [r for r in dict.fromkeys(wanted) if r not in self._windows]
        if missing:
            got: dict[int, list[dict[str, Any]]] = {r: [] for r in missing}
            for rec in self.client.query(
                self.names["windows"],
                filter=f"chunk_row in {missing}",
                output_fields=["chunk_row", "start", "end", "vector"],
            ):
                got[int(rec["chunk_row"])].append(rec)
            with self._lock:
                for r, recs in got.items():
                    recs.sort(key=lambda x: int(x["start"]))
                    vecs = np.asarray([x["vector"] for x in recs], dtype=np.float32).reshape(len(recs), self._dim)
                    self._windows[r] = Windows(tuple((int(x["start"]), int(x["end"])) for x in recs), vecs)
                    while len(self._windows) > ROW_CACHE:
                        self._windows.popitem(last=False)
        with self._lock:
            return [self._windows[r] for r in wanted]

    # --- dense -------------------------------------------------------------------------------------
    def dense_search(self, query: np.ndarray, k: int, scope: Scope | None) -> tuple[np.ndarray, np.ndarray]:
        hits = self.client.search(
            self.names["chunks"],
            data=[query.astype(np.float32).tolist()],
            anns_field="vector",
            limit=k,
            filter=self._filter(scope),
            search_params={"metric_type": "COSINE", "params": self._search_params},
            output_fields=["row"],
        )[0]
        return (
            np.asarray([int(h["row"]) for h in hits], dtype=np.int64),
            np.asarray([h["distance"] for h in hits], dtype=np.float32),
        )

    def dense_scores(self, query: np.ndarray, rows: np.ndarray) -> np.ndarray:
        if len(rows) == 0:
            return np.zeros(0, np.float32)
        vecs = np.asarray([r["vector"] for r in self._fetch(rows)], dtype=np.float32)
        return vecs @ query.astype(np.float32)

    # --- lexical -----------------------------------------------------------------------------------
    def _document_frequency(self, terms: list[str]) -> dict[str, int]:
        with self._lock:
            missing = [t for t in dict.fromkeys(terms) if t not in self._df]
        if missing:
            got = self.client.query(self.names["terms"], ids=missing, output_fields=["key", "df"])
            found = {r["key"]: int(r["df"]) for r in got}
            with self._lock:
                for t in missing:
                    self._df[t] = found.get(t, 0)
        with self._lock:
            return {t: self._df[t] for t in terms}

    def idf(self, term: str) -> float:
        return lucene_idf(self._document_frequency([term])[term], self.num_chunks)

    def lexical_max(self, terms: list[str]) -> float:
        """Every query term counts, known or not (like `qa.lexical`): an unknown term lowers confidence."""
        self._document_frequency(terms)
        return sum(self.idf(t) for t in terms)

    def lexical_scores_of(self, terms: list[str], rows: np.ndarray) -> np.ndarray:
        """BM25 (bm25s' Lucene variant) from the stored terms and the version's document frequencies."""
        df = self._document_frequency(terms)
        idf = {t: self.idf(t) for t in terms if df[t] > 0}
        out = np.zeros(len(rows), dtype=np.float32)
        if not idf or len(rows) == 0:
            return out
        for i, rec in enumerate(self._fetch(rows)):
            counts: dict[str, int] = {}
            for w in rec["terms"].split(" ") if rec["terms"] else []:
                if w in idf:
                    counts[w] = counts.get(w, 0) + 1
            norm = K1 * ((1 - B) + B * rec["dl"] / self.avgdl)
            out[i] = sum(idf[t] * tf / (norm + tf) for t, tf in counts.items())
        return out

    def lexical_search(self, terms: list[str], k: int, scope: Scope | None) -> tuple[np.ndarray, np.ndarray]:
        """Milvus' BM25 proposes 4k candidates (by order only: its scores are per segment, and negative in
        Lite); they are rescored here exactly like the FAISS store scores them."""
        df = self._document_frequency(terms)
        known = [t for t in terms if df[t] > 0]
        if not known:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        hits = self.client.search(
            self.names["chunks"],
            data=[" ".join(known)],
            anns_field="sparse",
            limit=4 * k,
            filter=self._filter(scope),
            search_params={"metric_type": "BM25"},
            output_fields=["row"],
        )[0]
        cand = np.asarray([int(h["row"]) for h in hits], dtype=np.int64)
        scores = self.lexical_scores_of(known, cand)
        keep = scores > 0
        cand, scores = cand[keep], scores[keep]
        order = np.lexsort((cand, -scores))[:k]  # best first, ties by row like the FAISS store
        return cand[order], scores[order]

    # --- documents ---------------------------------------------------------------------------------
    def documents(self) -> list[DocumentInfo]:
        return [self.document(d) for d in sorted(self._docs)]

    def document(self, doc_id: str) -> DocumentInfo:
        require_document(doc_id, self._docs)
        d = self._docs[doc_id]
        return DocumentInfo(d["doc_id"], d["title"], d["source"], d["chars"], d["chunks"])

    def document_text(self, doc_id: str) -> str:
        self.document(doc_id)
        return _get_blob(self.client, self.names["meta"], f"text:{doc_id}")

    def document_record(self, doc_id: str) -> DocumentRecord | None:
        if doc_id not in self._docs:
            return None
        literal = _literal([doc_id])
        expr = f"doc_id in {literal}" if literal else "row >= 0"
        got = [
            r
            for r in self.client.query(self.names["chunks"], filter=expr, output_fields=CHUNK_FIELDS)
            if r["doc_id"] == doc_id
        ]
        got.sort(key=lambda r: int(r["row"]))
        dim = int(self.manifest["model"]["dim"])
        return DocumentRecord(
            sha256=self._docs[doc_id]["sha256"],
            chunks=[Chunk(r["doc_id"], r["chunk_id"], r["ordinal"], r["start"], r["end"], r["text"]) for r in got],
            terms=[r["terms"].split(" ") if r["terms"] else [] for r in got],
            vectors=np.asarray([r["vector"] for r in got], dtype=np.float32).reshape(len(got), dim),
            windows=self.windows_of(np.asarray([int(r["row"]) for r in got], dtype=np.int64)),
        )
