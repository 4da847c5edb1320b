"""Hybrid retrieval: dense (FAISS) and BM25 candidates, fused, deduplicated, annotated.

Fusion (default "convex"): score = w·dense + (1-w)·bm25, where dense is the
cosine mapped linearly from [dense_floor, dense_ceiling] to [0, 1] and bm25 is
the chunk's BM25 over the best it could reach for this query (the sum of the
query terms' IDFs). Both parts are in [0, 1] and mean the same for every query,
so the score is comparable across queries and `answerable` is a threshold on
it. The BM25 part already shrinks with the share of the query it matched: an
English question over Chinese text gets ~0 from BM25 and is ranked by dense.
"rrf" (reciprocal rank fusion) is kept for the evaluation's comparison.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np

from qa.chunking import Chunk, sentences
from qa.config import Settings
from qa.embedding import Embedder
from qa.store import Scope, Store
from qa.tokens import Tokenizer, cjk_share, normalize

Mode = Literal["hybrid", "dense", "bm25"]
DENSE_EVIDENCE_HITS = 1  # top ranks whose evidence may be chosen by embedding sentences (an encode: ~80 ms)


@dataclass(frozen=True)
class Hit:
    rank: int
    score: float
    chunk: Chunk
    title: str
    dense_score: float
    bm25_score: float
    dense_rank: int | None
    bm25_rank: int | None
    highlights: list[tuple[int, int]]
    evidence: tuple[int, int] | None
    matched_terms: list[str]


@dataclass(frozen=True)
class Answer:
    question: str
    answerable: bool
    confidence: float
    hits: list[Hit]
    index_version: str
    took_ms: float
    timings: dict[str, float] = field(default_factory=dict)


@dataclass
class _Candidates:
    rows: np.ndarray
    dense: np.ndarray  # calibrated [0, 1]
    lexical: np.ndarray  # fraction of the query's best BM25, [0, 1]
    cosine: np.ndarray  # raw question–passage cosine
    adjusted: np.ndarray  # cosine plus the cross-language credit: what dense ranks by
    dense_rank: dict[int, int]
    bm25_rank: dict[int, int]


class Retriever:
    def __init__(self, embedder: Embedder, tokenizer: Tokenizer, settings: Settings) -> None:
        self.embedder = embedder
        self.tokenizer = tokenizer
        self.settings = settings

    def ask(
        self,
        store: Store,
        question: str,
        top_k: int = 5,
        doc_ids: list[str] | None = None,
        mode: Mode = "hybrid",
    ) -> Answer:
        t0 = time.perf_counter()
        timings: dict[str, float] = {}
        scope = store.scope(doc_ids) if doc_ids else None
        qvec = self.embedder.encode_queries([normalize(question, lower=False)])[0]
        timings["encode"] = _ms(t0)
        terms = list(dict.fromkeys(self.tokenizer.term_list(question)))
        cands = self._candidates(store, question, qvec, terms, scope, timings)
        t = time.perf_counter()
        convex = self._convex(cands)
        order = self._order(cands, convex, mode)
        picked = _dedupe_overlaps([int(i) for i in order], cands.rows, store, top_k)
        timings["fusion"] = _ms(t)
        t = time.perf_counter()
        hits = self._annotate(store, qvec, terms, cands, picked, convex, mode)
        timings["annotate"] = _ms(t)
        confidence = float(convex.max()) if len(convex) else 0.0
        answerable = bool(hits) and confidence >= self.settings.answerable_threshold
        return Answer(question, answerable, confidence, hits, store.version, _ms(t0), timings)

    def _candidates(
        self,
        store: Store,
        question: str,
        qvec: np.ndarray,
        terms: list[str],
        scope: Scope | None,
        timings: dict[str, float],
    ) -> _Candidates:
        k = self.settings.candidates
        t = time.perf_counter()
        d_rows, _ = store.dense_search(qvec, k, scope)
        timings["dense"] = _ms(t)
        t = time.perf_counter()
        b_rows, _ = store.lexical_search(terms, k, scope)
        timings["bm25"] = _ms(t)
        union = np.asarray(list(dict.fromkeys([*d_rows.tolist(), *b_rows.tolist()])), dtype=np.int64)
        cosine = store.dense_scores(qvec, union) if len(union) else np.zeros(0, np.float32)
        s = self.settings
        # Multilingual embeddings score same-language pairs higher: an English question lands on
        # English text first whatever it says. Credit the language gap back (size set by the eval).
        adjusted = cosine + s.language_gap * np.abs(cjk_share(question) - store.cjk_of(union))
        dense = np.clip((adjusted - s.dense_floor) / (s.dense_ceiling - s.dense_floor), 0.0, 1.0)
        best = store.lexical_max(terms)
        raw = store.lexical_scores_of(terms, union) if len(union) else np.zeros(0)
        lexical = np.clip(raw / best, 0.0, 1.0) if best > 0 else np.zeros(len(union))
        return _Candidates(
            rows=union,
            dense=dense,
            lexical=lexical,
            cosine=cosine,
            adjusted=adjusted,
            dense_rank={int(r): i + 1 for i, r in enumerate(d_rows)},
            bm25_rank={int(r): i + 1 for i, r in enumerate(b_rows)},
        )

    def _convex(self, c: _Candidates) -> np.ndarray:
        w = self.settings.dense_weight
        return w * c.dense + (1 - w) * c.lexical

    def _order(self, c: _Candidates, convex: np.ndarray, mode: Mode) -> np.ndarray:
        """Candidate indices best first, with the score each mode ranks by."""
        if mode == "dense":
            key = c.adjusted
        elif mode == "bm25":
            key = c.lexical
        elif self.settings.fusion == "rrf":
            key = self._rrf(c)
        else:
            key = convex
        if mode == "bm25":  # BM25 alone only returns chunks that share a term with the question
            idx = np.flatnonzero(key > 0)
            return idx[np.argsort(-key[idx], kind="stable")]
        return np.argsort(-key, kind="stable")

    def _rrf(self, c: _Candidates) -> np.ndarray:
        k, w = self.settings.rrf_k, self.settings.dense_weight
        out = np.zeros(len(c.rows))
        for i, row in enumerate(c.rows.tolist()):
            if row in c.dense_rank:
                out[i] += w / (k + c.dense_rank[row])
            if row in c.bm25_rank:
                out[i] += (1 - w) / (k + c.bm25_rank[row])
        return out

    def _annotate(
        self,
        store: Store,
        qvec: np.ndarray,
        terms: list[str],
        c: _Candidates,
        picked: list[int],
        convex: np.ndarray,
        mode: Mode,
    ) -> list[Hit]:
        shown = [t for t in terms if len(t) >= 2 or t.isascii()]
        idf = {t: store.idf(t) for t in shown}
        hits = []
        fallback: list[int] = []
        for rank, i in enumerate(picked, start=1):
            row = int(c.rows[i])
            chunk = store.chunk(row)
            norm = normalize(chunk.text)
            spans, matched = _term_spans(norm, shown)
            evidence = _best_sentence(chunk.text, norm, spans, matched, idf)
            score = {"dense": c.dense[i], "bm25": c.lexical[i]}.get(mode, convex[i])
            hit = Hit(
                rank=rank,
                score=round(float(score), 4),
                chunk=chunk,
                title=store.document(chunk.doc_id).title,
                dense_score=round(float(c.cosine[i]), 4),
                bm25_score=round(float(c.lexical[i]), 4),
                dense_rank=c.dense_rank.get(row),
                bm25_rank=c.bm25_rank.get(row),
                highlights=_merge(spans),
                evidence=evidence,
                matched_terms=matched,
            )
            hits.append(hit)
            if evidence is None and rank <= DENSE_EVIDENCE_HITS:
                fallback.append(rank - 1)
        if fallback:
            hits = self._dense_evidence(qvec, hits, fallback)
        return hits

    def _dense_evidence(self, qvec: np.ndarray, hits: list[Hit], which: list[int]) -> list[Hit]:
        """When no question term occurs (e.g. an English question), pick the sentence nearest in meaning."""
        spans = {i: [(s.start, s.end) for s in sentences(hits[i].chunk.text)] for i in which}
        texts = [hits[i].chunk.text[a:b] for i in which for a, b in spans[i]]
        if not texts:
            return hits
        sims = self.embedder.encode_passages(texts) @ qvec
        out, pos = list(hits), 0
        for i in which:
            n = len(spans[i])
            if n:
                best = spans[i][int(np.argmax(sims[pos : pos + n]))]
                out[i] = replace(hits[i], evidence=best)
            pos += n
        return out


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 2)


def _dedupe_overlaps(order: list[int], rows: np.ndarray, store: Store, top_k: int) -> list[int]:
    """Best-first, skipping a chunk that overlaps a kept one by more than half of the shorter span."""
    kept: list[int] = []
    spans: list[Chunk] = []
    for i in order:
        c = store.chunk(int(rows[i]))
        if any(_overlaps(c, k) for k in spans):
            continue
        kept.append(i)
        spans.append(c)
        if len(kept) == top_k:
            break
    return kept


def _overlaps(a: Chunk, b: Chunk) -> bool:
    if a.doc_id != b.doc_id:
        return False
    inter = min(a.end, b.end) - max(a.start, b.start)
    return inter > 0.5 * min(a.end - a.start, b.end - b.start)


def _term_spans(norm: str, terms: list[str]) -> tuple[list[tuple[int, int]], list[str]]:
    """Spans of matched question terms in the normalised passage, without sub-words of a longer match."""
    matched = _longest([t for t in terms if t in norm])
    spans = []
    for term in matched:
        start = norm.find(term)
        while start >= 0:
            spans.append((start, start + len(term)))
            start = norm.find(term, start + len(term))
    return sorted(spans), matched


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def _longest(terms: list[str]) -> list[str]:
    """Matched terms without those contained in a longer matched term (jieba search mode repeats parts)."""
    return [t for t in terms if not any(t != o and t in o for o in terms)]


def _best_sentence(
    text: str, norm: str, spans: list[tuple[int, int]], matched: list[str], idf: dict[str, float]
) -> tuple[int, int] | None:
    """The sentence with the most IDF mass of matched terms (`matched` holds no sub-words already)."""
    if not spans:
        return None
    best, best_score = None, 0.0
    for sent in sentences(text):
        piece = norm[sent.start : sent.end]
        score = sum(idf.get(t, 0.0) for t in matched if t in piece)
        if score > best_score:
            best, best_score = (sent.start, sent.end), score
    return best
