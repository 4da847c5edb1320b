"""BM25 over jieba terms, with bm25s (Lucene variant: IDF never negative, tf saturates at 1).

Scores are also given as a fraction of the best a chunk could reach for the
query (the sum of the query terms' IDFs), so they compare across queries.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

K1, B = 1.5, 0.75


def lucene_idf(df: int, n: int) -> float:
    """bm25s' Lucene IDF (never negative); the Milvus store rescores its candidates with the same one."""
    return math.log(1 + (n - df + 0.5) / (df + 0.5))


class Lexical:
    def __init__(self, retriever) -> None:  # type: ignore[no-untyped-def]
        self._bm25 = retriever
        indptr = np.asarray(retriever.scores["indptr"])
        self.num_docs = int(retriever.scores["num_docs"])
        self._df = np.diff(indptr)  # CSC columns are terms: nnz per column = document frequency
        self._vocab: dict[str, int] = retriever.vocab_dict

    @classmethod
    def build(cls, corpus_terms: list[list[str]]) -> Lexical:
        import bm25s

        retriever = bm25s.BM25(method="lucene", k1=K1, b=B)
        retriever.index(corpus_terms or [[""]], show_progress=False)
        return cls(retriever)

    def save(self, path: Path) -> None:
        self._bm25.save(str(path))

    @classmethod
    def load(cls, path: Path) -> Lexical:
        import bm25s

        return cls(bm25s.BM25.load(str(path), mmap=False))

    def idf(self, term: str) -> float:
        tid = self._vocab.get(term)
        df = int(self._df[tid]) if tid is not None and tid < len(self._df) else 0
        return lucene_idf(df, self.num_docs)

    def scores(self, terms: list[str]) -> np.ndarray:
        """Raw BM25 score of every chunk row (zeros when no term is known)."""
        known = [t for t in terms if t in self._vocab and t != ""]
        if not known:
            return np.zeros(self.num_docs, dtype=np.float32)
        return np.asarray(self._bm25.get_scores(known), dtype=np.float32)

    def max_score(self, terms: list[str]) -> float:
        """Upper bound of a chunk's score for these terms: each term's tf component is < 1."""
        return sum(self.idf(t) for t in terms)
