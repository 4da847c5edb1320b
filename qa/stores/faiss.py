"""The on-disk FAISS store: immutable snapshot directories and the `CURRENT` pointer.

index/
  CURRENT                   name of the serving snapshot (switched with os.replace)
  snapshots/<version>/      manifest.json, meta.sqlite, vectors.npy, dense.faiss, bm25/,
                            windows.npy (sentence vectors), window_spans.npy, window_rows.npy
  models/                   converted embedding model cache
A snapshot is written under a temporary name and renamed into place before the
pointer moves, so a crash at any point leaves the previous snapshot serving.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sqlite3
import tempfile
import threading
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import numpy as np

from qa.chunking import Chunk
from qa.config import Settings
from qa.dense import build_dense, configure, dense_spec
from qa.errors import IndexFormatError, IndexNotFoundError
from qa.files import keep_file_mode, set_dir_mode
from qa.lexical import Lexical
from qa.manifest import FORMAT_VERSION, DenseSpec, Manifest
from qa.stores.base import Contents, DocumentInfo, DocumentRecord, Scope, Windows, require_document, require_documents
from qa.tokens import cjk_share

log = logging.getLogger(__name__)

POINTER = "CURRENT"
SNAPSHOTS = "snapshots"
KEEP_SNAPSHOTS = 3  # the serving one and two before it (requests may still hold them)

_SCHEMA = """
CREATE TABLE documents (
  doc_id TEXT PRIMARY KEY, path TEXT NOT NULL, title TEXT NOT NULL, source TEXT NOT NULL,
  sha256 TEXT NOT NULL, encoding TEXT NOT NULL, chars INTEGER NOT NULL, chunks INTEGER NOT NULL,
  text TEXT NOT NULL
);
CREATE TABLE chunks (
  row INTEGER PRIMARY KEY, chunk_id TEXT NOT NULL, doc_id TEXT NOT NULL REFERENCES documents(doc_id),
  ordinal INTEGER NOT NULL, start INTEGER NOT NULL, "end" INTEGER NOT NULL, text TEXT NOT NULL,
  terms TEXT NOT NULL
);
CREATE INDEX chunks_doc ON chunks(doc_id);
"""


def snapshot_root(index_dir: Path) -> Path:
    return index_dir / SNAPSHOTS


def current_snapshot_dir(index_dir: Path) -> Path | None:
    pointer = index_dir / POINTER
    try:
        name = pointer.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    path = snapshot_root(index_dir) / name
    return path if (path / "manifest.json").exists() else None


def read_manifest(path: Path) -> Manifest:
    return Manifest.from_dict(json.loads((path / "manifest.json").read_text(encoding="utf-8")))


def pointer_stamp(index_dir: Path) -> str | None:
    """Cheap identity of the pointer's target, for hot-swap polling."""
    try:
        return (index_dir / POINTER).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None


def switch_pointer(index_dir: Path, name: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".CURRENT-", dir=index_dir)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        keep_file_mode(fh.fileno(), index_dir / POINTER)  # a replica under another uid must read it
        fh.write(name + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, index_dir / POINTER)
    _fsync_dir(index_dir)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def collect_garbage(index_dir: Path, keep: int = KEEP_SNAPSHOTS) -> None:
    """Remove half-written temp dirs and all but the newest `keep` snapshots (never the serving one)."""
    root = snapshot_root(index_dir)
    if not root.exists():
        return
    serving = pointer_stamp(index_dir)
    for tmp in root.glob(".tmp-*"):
        shutil.rmtree(tmp, ignore_errors=True)
    done = sorted((p for p in root.iterdir() if not p.name.startswith(".")), key=lambda p: p.name)
    for old in done[:-keep]:
        if old.name != serving:
            shutil.rmtree(old, ignore_errors=True)


@contextmanager
def new_snapshot_dir(index_dir: Path, version: str) -> Iterator[Path]:
    """Yield a temp dir to fill; on success rename it to snapshots/<version> (not yet serving)."""
    root = snapshot_root(index_dir)
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=root))
    try:
        yield tmp
        set_dir_mode(tmp)
        os.rename(tmp, root / version)
        _fsync_dir(root)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write_snapshot(out: Path, manifest: Manifest, contents: Contents) -> None:
    """Every file of one snapshot into `out` (a fresh directory), the manifest last."""
    import faiss

    chunks, vectors, windows = contents.chunks, contents.vectors, contents.windows
    per_doc = contents.chunks_per_document()
    with closing(sqlite3.connect(out / "meta.sqlite")) as db:
        db.executescript(_SCHEMA)
        db.executemany(
            "INSERT INTO documents VALUES (?,?,?,?,?,?,?,?,?)",
            [
                (
                    d.doc_id,
                    d.path,
                    d.title,
                    d.source,
                    d.sha256,
                    d.encoding,
                    len(d.text),
                    per_doc.get(d.doc_id, 0),
                    d.text,
                )
                for d in contents.docs
            ],
        )
        db.executemany(
            "INSERT INTO chunks VALUES (?,?,?,?,?,?,?,?)",
            [
                (i, c.chunk_id, c.doc_id, c.ordinal, c.start, c.end, c.text, " ".join(t))
                for i, (c, t) in enumerate(zip(chunks, contents.terms, strict=True))
            ],
        )
        db.commit()
    np.save(out / "vectors.npy", vectors)
    dim = manifest.model.dim
    np.save(out / "windows.npy", np.concatenate([np.zeros((0, dim), np.float32)] + [w.vectors for w in windows]))
    np.save(out / "window_spans.npy", np.asarray([s for w in windows for s in w.spans], np.int32).reshape(-1, 2))
    # window_rows[i]:window_rows[i + 1] are chunk row i's windows
    np.save(out / "window_rows.npy", np.cumsum([0] + [len(w.spans) for w in windows]).astype(np.int64))
    index = build_dense(vectors, dim, manifest.dense_index)
    faiss.write_index(index, str(out / "dense.faiss"))
    Lexical.build(contents.terms).save(out / "bm25")
    (out / "manifest.json").write_text(json.dumps(manifest.as_dict(), ensure_ascii=False, indent=2), encoding="utf-8")


class FaissSnapshot:
    """One immutable index version loaded in memory; implements `qa.stores.base.Snapshot`."""

    def __init__(self, path: Path) -> None:
        import faiss

        self.path = path
        self.location = str(path)
        self.manifest = read_manifest(path)
        if self.manifest.format_version != FORMAT_VERSION:
            raise IndexFormatError(
                f"index at {path} has format {self.manifest.format_version}, this code reads "
                f"{FORMAT_VERSION}: rebuild it with `qa build --force`"
            )
        self.version = self.manifest.version
        self._chunks, self._terms = self._load_chunks()
        self._docs = self._load_documents()
        self._doc_rows: dict[str, list[int]] = {}
        for row, c in enumerate(self._chunks):
            self._doc_rows.setdefault(c.doc_id, []).append(row)
        self.vectors = np.load(path / "vectors.npy")
        self._windows = np.load(path / "windows.npy")
        self._window_spans = np.load(path / "window_spans.npy")
        self._window_rows = np.load(path / "window_rows.npy")
        self.cjk_share = np.asarray([cjk_share(c.text) for c in self._chunks], dtype=np.float32)
        self._index = faiss.read_index(str(path / "dense.faiss"))
        self.dense_index = self.manifest.dense_index
        configure(self._index, self.dense_index)
        self.lexical = Lexical.load(path / "bm25")
        self._memo = threading.local()

    @classmethod
    def open_current(cls, index_dir: Path) -> FaissSnapshot:
        path = current_snapshot_dir(index_dir)
        if path is None:
            raise IndexNotFoundError(f"no index in {index_dir}: run `qa build` (or start serve.py, which builds it)")
        return cls(path)

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(f"file:{self.path / 'meta.sqlite'}?mode=ro", uri=True)

    def _load_chunks(self) -> tuple[list[Chunk], list[list[str]]]:
        with closing(self._connect()) as db:
            rows = db.execute(
                'SELECT doc_id, chunk_id, ordinal, start, "end", text, terms FROM chunks ORDER BY row'
            ).fetchall()
        return [Chunk(*r[:6]) for r in rows], [r[6].split(" ") if r[6] else [] for r in rows]

    def _load_documents(self) -> dict[str, DocumentInfo]:
        with closing(self._connect()) as db:
            rows = db.execute("SELECT doc_id, title, source, chars, chunks FROM documents ORDER BY doc_id").fetchall()
        return {r[0]: DocumentInfo(*r) for r in rows}

    def __len__(self) -> int:
        return len(self._chunks)

    def disk_bytes(self) -> int | None:
        return sum(f.stat().st_size for f in self.path.rglob("*") if f.is_file())

    def chunk(self, row: int) -> Chunk:
        return self._chunks[row]

    def chunk_terms(self, row: int) -> list[str]:
        return self._terms[row]

    def rows_of(self, doc_ids: list[str]) -> np.ndarray:
        require_documents(doc_ids, self._docs)
        rows = [r for d in doc_ids for r in self._doc_rows.get(d, [])]
        return np.asarray(sorted(set(rows)), dtype=np.int64)

    def scope(self, doc_ids: list[str]) -> Scope:
        return Scope(tuple(doc_ids), self.rows_of(doc_ids))

    def dense_search(self, query: np.ndarray, k: int, scope: Scope | None) -> tuple[np.ndarray, np.ndarray]:
        q = np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32)
        if scope is not None:
            rows = scope.rows
            # a doc_ids filter searches its rows exactly: no ANN graph walk that a filter could starve
            scores_all = self.vectors[rows] @ q[0]
            top = np.argsort(-scores_all, kind="stable")[: min(k, len(rows))]
            return rows[top].astype(np.int64), scores_all[top].astype(np.float32)
        scores, ids = self._index.search(q, min(k, len(self)))
        keep = ids[0] >= 0
        return ids[0][keep].astype(np.int64), scores[0][keep]

    def dense_scores(self, query: np.ndarray, rows: np.ndarray) -> np.ndarray:
        scores: np.ndarray = self.vectors[rows] @ query.astype(np.float32)
        return scores

    def lexical_scores(self, terms: list[str]) -> np.ndarray:
        """BM25 of every row (this store keeps BM25 in memory). The last query's array is kept per thread:
        `lexical_search` and `lexical_scores_of` of one question compute it once."""
        key = tuple(terms)
        memo = self._memo
        if getattr(memo, "key", None) != key:
            memo.key, memo.value = key, self.lexical.scores(terms)
        scores: np.ndarray = memo.value
        return scores

    def lexical_search(self, terms: list[str], k: int, scope: Scope | None) -> tuple[np.ndarray, np.ndarray]:
        lex = self.lexical_scores(terms)
        if scope is not None:
            mask = np.zeros(len(lex), dtype=bool)
            mask[scope.rows] = True
            lex = np.where(mask, lex, 0.0)
        positive = np.flatnonzero(lex > 0)
        top = positive[np.argsort(-lex[positive], kind="stable")][:k]
        return top.astype(np.int64), lex[top]

    def lexical_scores_of(self, terms: list[str], rows: np.ndarray) -> np.ndarray:
        scores: np.ndarray = self.lexical_scores(terms)[rows]
        return scores

    def cjk_of(self, rows: np.ndarray) -> np.ndarray:
        shares: np.ndarray = self.cjk_share[rows]
        return shares

    def windows_of(self, rows: np.ndarray) -> list[Windows]:
        out = []
        for r in rows.tolist():
            a, b = int(self._window_rows[r]), int(self._window_rows[r + 1])
            spans = tuple((int(s), int(e)) for s, e in self._window_spans[a:b])
            out.append(Windows(spans, self._windows[a:b]))
        return out

    def lexical_max(self, terms: list[str]) -> float:
        return self.lexical.max_score(terms)

    def idf(self, term: str) -> float:
        return self.lexical.idf(term)

    def documents(self) -> list[DocumentInfo]:
        return list(self._docs.values())

    def document(self, doc_id: str) -> DocumentInfo:
        require_document(doc_id, self._docs)
        return self._docs[doc_id]

    def document_text(self, doc_id: str) -> str:
        self.document(doc_id)
        with closing(self._connect()) as db:
            (text,) = db.execute("SELECT text FROM documents WHERE doc_id = ?", (doc_id,)).fetchone()
        return str(text)

    def document_record(self, doc_id: str) -> DocumentRecord | None:
        with closing(self._connect()) as db:
            row = db.execute("SELECT sha256 FROM documents WHERE doc_id = ?", (doc_id,)).fetchone()
        if row is None:
            return None
        rows = self._doc_rows.get(doc_id, [])
        return DocumentRecord(
            sha256=row[0],
            chunks=[self._chunks[r] for r in rows],
            terms=[self._terms[r] for r in rows],
            vectors=self.vectors[rows] if rows else np.zeros((0, self.vectors.shape[1]), np.float32),
            windows=self.windows_of(np.asarray(rows, dtype=np.int64)),
        )


class FaissStore:
    """Snapshot directories under <index_dir>/snapshots and the `CURRENT` pointer; implements `Store`."""

    name = "faiss"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.index_dir = settings.index_dir

    @property
    def location(self) -> str:
        return str(self.index_dir)

    def serving(self) -> str | None:
        return pointer_stamp(self.index_dir)

    def open(self, version: str | None = None) -> FaissSnapshot:
        if version is None:
            return FaissSnapshot.open_current(self.index_dir)
        path = snapshot_root(self.index_dir) / version
        if not (path / "manifest.json").exists():
            raise IndexNotFoundError(f"snapshot {version} is not in {snapshot_root(self.index_dir)}")
        return FaissSnapshot(path)

    def serving_manifest(self) -> Manifest | None:
        path = current_snapshot_dir(self.index_dir)
        return read_manifest(path) if path is not None else None

    def dense_spec(self, chunks: int) -> DenseSpec:
        return dense_spec(self.settings, chunks)

    def publish(self, manifest: Manifest, contents: Contents) -> None:
        with new_snapshot_dir(self.index_dir, manifest.version) as tmp:
            write_snapshot(tmp, manifest, contents)
        switch_pointer(self.index_dir, manifest.version)
        collect_garbage(self.index_dir)
