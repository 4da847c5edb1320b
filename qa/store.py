"""The store interface retrieval talks to (FAISS snapshot now, Milvus next), and its values."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from qa.chunking import Chunk


@dataclass(frozen=True)
class DocumentInfo:
    doc_id: str
    title: str
    source: str
    chars: int
    chunks: int


class Store(Protocol):
    """A read-only, immutable view of one index version.

    Retrieval asks for candidates and scores of named rows only, never for arrays over the whole
    corpus, so a store can keep its data elsewhere (a server) and still rank exactly like FAISS.
    """

    version: str
    manifest: dict[str, Any]

    def __len__(self) -> int: ...

    def chunk(self, row: int) -> Chunk: ...

    def rows_of(self, doc_ids: list[str]) -> np.ndarray:
        """Chunk rows of these documents (DocumentNotFoundError names an unknown one)."""
        ...

    def dense_search(self, query: np.ndarray, k: int, rows: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """(rows, cosine scores) of the k nearest chunks, best first, optionally within `rows`."""
        ...

    def dense_scores(self, query: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Cosine of the query with the given chunk rows (for fusion of BM25-only candidates)."""
        ...

    def lexical_search(self, terms: list[str], k: int, rows: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """(rows, BM25 scores) of the k best chunks sharing a term with the query, best first, optionally
        within `rows`. Ties keep row order, so results are deterministic."""
        ...

    def lexical_scores_of(self, terms: list[str], rows: np.ndarray) -> np.ndarray:
        """BM25 of the given rows (0 where no term matches), on the same scale as `lexical_max`."""
        ...

    def cjk_of(self, rows: np.ndarray) -> np.ndarray:
        """Per row: the share of letters that are CJK (the language of the passage)."""
        ...

    def lexical_max(self, terms: list[str]) -> float: ...

    def idf(self, term: str) -> float: ...

    def document(self, doc_id: str) -> DocumentInfo: ...

    def documents(self) -> list[DocumentInfo]: ...

    def document_text(self, doc_id: str) -> str:
        """The raw source text the chunk offsets index into."""
        ...
