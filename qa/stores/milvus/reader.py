"""Reading one version: `MilvusSnapshot`, with BM25 rescored exactly like the FAISS store's."""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from typing import Any

import numpy as np

from qa.chunking import Chunk
from qa.errors import IndexFormatError, IndexNotFoundError
from qa.lexical import K1, B, lucene_idf
from qa.manifest import FORMAT_VERSION, Manifest
from qa.stores.base import DocumentInfo, DocumentRecord, Scope, Windows, require_document, require_documents
from qa.stores.milvus.layout import CHUNK_FIELDS, collection_names, filter_list, get_blob, index_params

ROW_CACHE = 8192  # chunk rows kept in memory per version (they never change)


class MilvusSnapshot:
    """One index version in Milvus; implements `qa.stores.base.Snapshot` (reads only)."""

    def __init__(self, client: Any, prefix: str, version: str, where: str = "Milvus") -> None:
        self.client = client
        self.names = collection_names(prefix, version)
        self.location = f"{where}, collections {', '.join(self.names.values())}"
        existing = set(client.list_collections())
        missing = [n for n in self.names.values() if n not in existing]
        if missing:
            raise IndexNotFoundError(f"Milvus version {version} is incomplete (missing {', '.join(missing)})")
        for name in self.names.values():
            client.load_collection(name)  # Lite needs it after connecting; never release/reload after a flush
        stats = json.loads(get_blob(client, self.names["meta"], "stats"))
        if stats.get("format_version") != FORMAT_VERSION:
            raise IndexFormatError(
                f"Milvus version {version} has layout {stats.get('format_version')}, this code reads "
                f"{FORMAT_VERSION}: rebuild it with `qa build --force`"
            )
        self.manifest = Manifest.from_dict(json.loads(get_blob(client, self.names["meta"], "manifest")))
        self.version = self.manifest.version
        self.num_chunks, self.avgdl = int(stats["n"]), float(stats["avgdl"])
        self._docs = {d["doc_id"]: d for d in json.loads(get_blob(client, self.names["meta"], "documents"))}
        _, _, self._search_params = index_params(self.manifest.dense_index)
        self._df: dict[str, int] = {}
        self._rows: OrderedDict[int, dict[str, Any]] = OrderedDict()
        self._windows: OrderedDict[int, Windows] = OrderedDict()
        self._dim = self.manifest.model.dim
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return self.num_chunks

    def disk_bytes(self) -> int | None:
        return None  # Milvus keeps it (Lite's directory holds every version at once)

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
        literal = filter_list(list(scope.doc_ids))
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
        return get_blob(self.client, self.names["meta"], f"text:{doc_id}")

    def document_record(self, doc_id: str) -> DocumentRecord | None:
        if doc_id not in self._docs:
            return None
        literal = filter_list([doc_id])
        expr = f"doc_id in {literal}" if literal else "row >= 0"
        got = [
            r
            for r in self.client.query(self.names["chunks"], filter=expr, output_fields=CHUNK_FIELDS)
            if r["doc_id"] == doc_id
        ]
        got.sort(key=lambda r: int(r["row"]))
        dim = self._dim
        return DocumentRecord(
            sha256=self._docs[doc_id]["sha256"],
            chunks=[Chunk(r["doc_id"], r["chunk_id"], r["ordinal"], r["start"], r["end"], r["text"]) for r in got],
            terms=[r["terms"].split(" ") if r["terms"] else [] for r in got],
            vectors=np.asarray([r["vector"] for r in got], dtype=np.float32).reshape(len(got), dim),
            windows=self.windows_of(np.asarray([int(r["row"]) for r in got], dtype=np.int64)),
        )
