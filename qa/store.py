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
    """A read-only, immutable view of one index version."""

    version: str
    manifest: dict[str, Any]
    cjk_share: np.ndarray  # per chunk row: share of letters that are CJK (language of the passage)

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

    def lexical_scores(self, terms: list[str]) -> np.ndarray:
        """BM25 score of every chunk row."""
        ...

    def lexical_max(self, terms: list[str]) -> float: ...

    def idf(self, term: str) -> float: ...

    def document(self, doc_id: str) -> DocumentInfo: ...

    def documents(self) -> list[DocumentInfo]: ...

    def document_text(self, doc_id: str) -> str:
        """The raw source text the chunk offsets index into."""
        ...
