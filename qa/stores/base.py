"""What retrieval and builds ask of a store, and the values they exchange. A leaf: imports no store.

A `Store` (what `QA_STORE` picks) holds the index versions and says which one serves; a `Snapshot` is
one immutable version, read-only. Two implementations: `qa.stores.faiss` (snapshot directories and a
`CURRENT` pointer, the default) and `qa.stores.milvus` (collections per version and an alias).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Container
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

from qa.chunking import Chunk
from qa.errors import DocumentNotFoundError
from qa.manifest import DenseSpec, Manifest

if TYPE_CHECKING:
    from qa.corpus import Document


@dataclass(frozen=True)
class DocumentInfo:
    doc_id: str
    title: str
    source: str
    chars: int
    chunks: int


@dataclass(frozen=True)
class Scope:
    """A `doc_ids` filter resolved against one version: FAISS filters by rows, Milvus by `doc_id`."""

    doc_ids: tuple[str, ...]
    rows: np.ndarray


@dataclass(frozen=True)
class Windows:
    """The sentence windows of one chunk: spans in the chunk's text and their passage vectors."""

    spans: tuple[tuple[int, int], ...]
    vectors: np.ndarray  # (len(spans), dim), L2-normalised


@dataclass(frozen=True)
class DocumentRecord:
    """What an incremental build reuses of an unchanged document: its chunks, terms and vectors."""

    sha256: str
    chunks: list[Chunk]
    terms: list[list[str]]
    vectors: np.ndarray
    windows: list[Windows]


@dataclass(frozen=True)
class Contents:
    """Everything a build hands a store to publish, row-aligned: chunk i has terms[i], vectors[i], windows[i]."""

    docs: list[Document]
    chunks: list[Chunk]
    terms: list[list[str]]
    vectors: np.ndarray
    windows: list[Windows]

    def chunks_per_document(self) -> dict[str, int]:
        """doc_id -> its number of chunks (a document without any has no entry)."""
        return dict(Counter(c.doc_id for c in self.chunks))


class Snapshot(Protocol):
    """A read-only, immutable view of one index version.

    Retrieval asks for candidates and scores of named rows only, never for arrays over the whole
    corpus, so a store can keep its data elsewhere (a server) and still rank exactly like FAISS.
    """

    version: str
    manifest: Manifest
    location: str  # where this version is, as messages name it (a directory, collections at a URI)

    def __len__(self) -> int: ...

    def disk_bytes(self) -> int | None:
        """Bytes this version takes on the local disk (None when a server holds it)."""
        ...

    def chunk(self, row: int) -> Chunk: ...

    def scope(self, doc_ids: list[str]) -> Scope:
        """The chunks of these documents (DocumentNotFoundError names an unknown one)."""
        ...

    def dense_search(self, query: np.ndarray, k: int, scope: Scope | None) -> tuple[np.ndarray, np.ndarray]:
        """(rows, cosine scores) of the k nearest chunks, best first, optionally within `scope`."""
        ...

    def dense_scores(self, query: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Cosine of the query with the given chunk rows (for fusion of BM25-only candidates)."""
        ...

    def lexical_search(self, terms: list[str], k: int, scope: Scope | None) -> tuple[np.ndarray, np.ndarray]:
        """(rows, BM25 scores) of the k best chunks sharing a term with the query, best first, optionally
        within `scope`. Ties keep row order, so results are deterministic."""
        ...

    def lexical_scores_of(self, terms: list[str], rows: np.ndarray) -> np.ndarray:
        """BM25 of the given rows (0 where no term matches), on the same scale as `lexical_max`."""
        ...

    def cjk_of(self, rows: np.ndarray) -> np.ndarray:
        """Per row: the share of letters that are CJK (the language of the passage)."""
        ...

    def windows_of(self, rows: np.ndarray) -> list[Windows]:
        """Per row: its sentence windows with their vectors (built with the index, never encoded per request)."""
        ...

    def lexical_max(self, terms: list[str]) -> float: ...

    def idf(self, term: str) -> float: ...

    def document(self, doc_id: str) -> DocumentInfo: ...

    def documents(self) -> list[DocumentInfo]: ...

    def document_text(self, doc_id: str) -> str:
        """The raw source text the chunk offsets index into."""
        ...

    def document_record(self, doc_id: str) -> DocumentRecord | None:
        """Everything stored for a document, for incremental builds (None if absent)."""
        ...


class Store(Protocol):
    """Where index versions live and which one serves: a snapshot directory and its `CURRENT` pointer
    (FAISS), or collections per version and an alias (Milvus). Publishing is atomic: a version is
    complete before it is named serving, and a failure leaves the previous one serving."""

    name: str

    @property
    def location(self) -> str:
        """Where the versions are, as messages name it (a directory, a Milvus URI)."""
        ...

    def serving(self) -> str | None:
        """The serving version's name, cheaply (polled by every worker for hot swaps)."""
        ...

    def open(self, version: str | None = None) -> Snapshot:
        """Load this version, as `serving()` named it (default: ask again); IndexNotFoundError when absent."""
        ...

    def serving_manifest(self) -> Manifest | None: ...

    def dense_spec(self, chunks: int) -> DenseSpec:
        """The dense index a build of this size gets (recorded in the manifest; a change re-indexes)."""
        ...

    def publish(self, manifest: Manifest, contents: Contents) -> None:
        """Write a new version, make it serving, and drop versions no request can still hold."""
        ...


def require_documents(doc_ids: list[str], known: Container[str]) -> None:
    """A `doc_ids` filter naming an unknown document is a 404 naming all of them, on every store."""
    unknown = [d for d in doc_ids if d not in known]
    if unknown:
        raise DocumentNotFoundError(f"unknown doc_id: {', '.join(unknown)}", {"doc_ids": unknown})


def require_document(doc_id: str, known: Container[str]) -> None:
    if doc_id not in known:
        raise DocumentNotFoundError(f"unknown doc_id: {doc_id}", {"doc_id": doc_id})
