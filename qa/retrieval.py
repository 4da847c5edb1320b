"""Hybrid retrieval: dense (FAISS) and BM25 candidates, ranked by the learned ranker, deduplicated, annotated.

Default (`QA_FUSION=learned`): every candidate gets the features of `qa.ranking` — cosine with the chunk
and with its best sentence window (window vectors come from the index: the only encode per request is
the question's), BM25 share, IDF coverage, ranks, the language gap — and the fitted logistic model ranks
by P(passage answers). `confidence` is the fitted P(a top-5 passage answers), `answerable` its threshold.
"convex" (the fixed-constant fusion of 0.3.0, with its language credit) and "rrf" remain for comparison
in the evaluation; they ignore the ranker.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal

import numpy as np

from qa.chunking import Chunk, sentences
from qa.config import Settings
from qa.embedding import Embedder
from qa.errors import RankerMissingError
from qa.lexical import lucene_idf
from qa.ranking import PASSAGE_FEATURES, Ranker, question_features, rank_feature
from qa.stores.base import Scope, Snapshot, Windows
from qa.tokens import Tokenizer, cjk_share, normalize

Mode = Literal["hybrid", "dense", "bm25"]


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
class Candidates:
    """Every candidate of one question, with what ranking and annotation need."""

    rows: np.ndarray
    texts: list[str]  # normalised passage texts (matching, coverage, highlights)
    windows: list[Windows]
    window_cosine: list[np.ndarray]  # per candidate: the question's cosine with each window
    features: np.ndarray  # (len(rows), len(PASSAGE_FEATURES))
    lexical: np.ndarray  # fraction of the query's best BM25, [0, 1]
    cosine: np.ndarray  # raw question–passage cosine
    dense_rank: dict[int, int]
    bm25_rank: dict[int, int]
    signals: np.ndarray  # per question, QUESTION_SIGNALS
    legacy_dense: np.ndarray  # "convex" only: 0.3.0's calibrated dense part (language credit included)


class Retriever:
    def __init__(self, embedder: Embedder, tokenizer: Tokenizer, settings: Settings) -> None:
        self.embedder = embedder
        self.tokenizer = tokenizer
        self.settings = settings
        self._rankers: dict[str, Ranker | None] = {}

    def ranker(self, snap: Snapshot) -> Ranker | None:
        """The ranker recorded in this index version's manifest (parsed once per version)."""
        if snap.version not in self._rankers:
            raw = snap.manifest.ranker
            try:
                self._rankers[snap.version] = Ranker.from_dict(raw) if raw else None
            except (ValueError, KeyError, TypeError):  # a fit this code can't read: as if none (503, not 500)
                self._rankers[snap.version] = None
        return self._rankers[snap.version]

    def require_ranker(self, snap: Snapshot) -> Ranker:
        ranker = self.ranker(snap)
        if ranker is None:
            model = snap.manifest.model
            raise RankerMissingError(
                f"index {snap.version} has no ranker for model {model.name!r} "
                f"(fingerprint {model.fingerprint}): run `qa calibrate` (fits it on the development "
                "questions, a few minutes), then `qa build`"
            )
        return ranker

    def ask(
        self,
        snap: Snapshot,
        question: str,
        top_k: int = 5,
        doc_ids: list[str] | None = None,
        mode: Mode = "hybrid",
    ) -> Answer:
        t0 = time.perf_counter()
        timings: dict[str, float] = {}
        learned = self.settings.fusion == "learned"
        ranker = self.require_ranker(snap) if learned else None
        scope = snap.scope(doc_ids) if doc_ids else None
        qvec = self.embedder.encode_query(normalize(question, lower=False))
        timings["encode"] = _ms(t0)
        terms = list(dict.fromkeys(self.tokenizer.term_list(question)))
        cands = self.candidates(snap, question, qvec, terms, scope, timings)
        t = time.perf_counter()
        if ranker is not None:
            logits = ranker.relevance.logit(cands.features) if len(cands.rows) else np.zeros(0)
            fused = ranker.passage.probability(logits[:, None]) if len(logits) else np.zeros(0)
        else:
            w = self.settings.dense_weight
            fused = w * cands.legacy_dense + (1 - w) * cands.lexical
        order = self._order(cands, fused, mode)
        picked = _dedupe_overlaps([int(i) for i in order], cands.rows, snap, top_k)
        timings["fusion"] = _ms(t)
        t = time.perf_counter()
        hits = self._annotate(snap, terms, cands, picked, fused, mode)
        timings["annotate"] = _ms(t)
        if ranker is not None:
            best_first = np.argsort(-logits, kind="stable")
            q = question_features(logits, best_first, cands.features, cands.signals)
            confidence = float(ranker.confidence.probability(q[None, :])[0])
            threshold = ranker.threshold
        else:
            confidence = float(fused.max()) if len(fused) else 0.0
            threshold = self.settings.answerable_threshold
        answerable = bool(hits) and _has_content(question) and confidence >= threshold
        return Answer(question, answerable, confidence, hits, snap.version, _ms(t0), timings)

    def candidates(
        self,
        snap: Snapshot,
        question: str,
        qvec: np.ndarray,
        terms: list[str],
        scope: Scope | None,
        timings: dict[str, float] | None = None,
    ) -> Candidates:
        """Dense top-k ∪ BM25 top-k, with every ranking feature (also what `qa calibrate` fits on)."""
        timings = {} if timings is None else timings
        k = self.settings.candidates
        t = time.perf_counter()
        d_rows, _ = snap.dense_search(qvec, k, scope)
        timings["dense"] = _ms(t)
        t = time.perf_counter()
        b_rows, _ = snap.lexical_search(terms, k, scope)
        timings["bm25"] = _ms(t)
        union = np.asarray(list(dict.fromkeys([*d_rows.tolist(), *b_rows.tolist()])), dtype=np.int64)
        n = len(union)
        cosine = snap.dense_scores(qvec, union).astype(np.float64) if n else np.zeros(0)
        best = snap.lexical_max(terms)
        raw = snap.lexical_scores_of(terms, union) if n else np.zeros(0)
        lexical = np.clip(raw / best, 0.0, 1.0) if best > 0 else np.zeros(n)
        texts = [_normalized(snap.chunk(int(r)).text) for r in union]
        wins = snap.windows_of(union) if n else []
        wcos = [w.vectors @ qvec for w in wins]
        window = np.asarray([float(c.max()) if len(c) else -1.0 for c in wcos])
        top2 = np.asarray([float(np.sort(c)[-2:].mean()) if len(c) else -1.0 for c in wcos])
        idf = [snap.idf(t) for t in terms]
        total = sum(idf)
        coverage = np.asarray([sum(w for t, w in zip(terms, idf, strict=True) if t in x) for x in texts])
        coverage = coverage / total if total > 0 else np.zeros(n)
        unknown = lucene_idf(0, len(snap))  # the IDF of a term no chunk has
        known = sum(w for w in idf if w < unknown) / total if total > 0 else 0.0
        plain = normalize(question)
        numbers = set(_NUMBER.findall(plain))
        signals = np.asarray([known, 1.0 - cjk_share(question), float(bool(numbers)), np.log1p(len(terms))])
        cross = np.abs(cjk_share(question) - snap.cjk_of(union)) if n else np.zeros(0)
        dense_rank = {int(r): i + 1 for i, r in enumerate(d_rows)}
        bm25_rank = {int(r): i + 1 for i, r in enumerate(b_rows)}
        rows = union.tolist()
        features = np.column_stack(
            [
                cosine,
                cosine - (cosine.max() if n else 0.0),
                window,
                window - (window.max() if n else 0.0),
                top2,
                lexical,
                coverage,
                cross,
                cosine * cross,
                [rank_feature(dense_rank.get(r)) for r in rows],
                [rank_feature(bm25_rank.get(r)) for r in rows],
                np.log([max(1, len(x)) for x in texts]),
                _standardised(cosine),
                _standardised(window),
                _standardised(lexical),
                _bigram_share(plain, texts),
                [sum(x in t for x in numbers) / len(numbers) if numbers else 1.0 for t in texts],
            ]
        ).reshape(n, len(PASSAGE_FEATURES))
        s = self.settings
        # 0.3.0's fixed-constant dense part, for QA_FUSION=convex comparisons only
        adjusted = cosine + s.language_gap * cross
        legacy = np.clip((adjusted - s.dense_floor) / (s.dense_ceiling - s.dense_floor), 0.0, 1.0)
        return Candidates(
            rows=union,
            texts=texts,
            windows=wins,
            window_cosine=wcos,
            features=features,
            lexical=lexical,
            cosine=cosine,
            dense_rank=dense_rank,
            bm25_rank=bm25_rank,
            signals=signals,
            legacy_dense=legacy,
        )

    def _order(self, c: Candidates, fused: np.ndarray, mode: Mode) -> np.ndarray:
        """Candidate indices best first, with the score each mode ranks by."""
        if mode == "dense":
            key = c.cosine
        elif mode == "bm25":
            key = c.lexical
        elif self.settings.fusion == "rrf":
            key = self._rrf(c)
        else:
            key = fused
        if mode == "bm25":  # BM25 alone only returns chunks that share a term with the question
            idx = np.flatnonzero(key > 0)
            return idx[np.argsort(-key[idx], kind="stable")]
        return np.argsort(-key, kind="stable")

    def _rrf(self, c: Candidates) -> np.ndarray:
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
        snap: Snapshot,
        terms: list[str],
        c: Candidates,
        picked: list[int],
        fused: np.ndarray,
        mode: Mode,
    ) -> list[Hit]:
        shown = [t for t in terms if len(t) >= 2 or t.isascii()]
        idf = {t: snap.idf(t) for t in shown}
        hits = []
        for rank, i in enumerate(picked, start=1):
            row = int(c.rows[i])
            chunk = snap.chunk(row)
            norm = c.texts[i]
            spans, matched = _term_spans(norm, shown)
            evidence = _best_sentence(chunk.text, norm, spans, matched, idf)
            if evidence is None and len(c.window_cosine[i]):
                # no question term occurs (e.g. an English question): the window nearest in meaning
                evidence = c.windows[i].spans[int(np.argmax(c.window_cosine[i]))]
            score = {"dense": c.cosine[i], "bm25": c.lexical[i]}.get(mode, fused[i])
            hits.append(
                Hit(
                    rank=rank,
                    score=round(float(score), 4),
                    chunk=chunk,
                    title=snap.document(chunk.doc_id).title,
                    dense_score=round(float(c.cosine[i]), 4),
                    bm25_score=round(float(c.lexical[i]), 4),
                    dense_rank=c.dense_rank.get(row),
                    bm25_rank=c.bm25_rank.get(row),
                    highlights=_merge(spans),
                    evidence=evidence,
                    matched_terms=matched,
                )
            )
        return hits


@lru_cache(maxsize=16384)
def _normalized(text: str) -> str:
    """Passage texts recur across questions: normalise each once (~35 µs a chunk, ~70 candidates a question)."""
    return normalize(text)


_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def _standardised(x: np.ndarray) -> np.ndarray:
    return (x - x.mean()) / (x.std() + 1e-6) if len(x) else x


def _bigram_share(question: str, texts: list[str]) -> np.ndarray:
    """Character bigrams of the question's CJK runs found in each passage, weighted by how rare each is
    among the candidates: robust to jieba cutting a word differently and to one mistyped character."""
    grams = {question[i : i + 2] for i in range(len(question) - 1) if cjk_share(question[i : i + 2]) == 1.0}
    if not grams or not texts:
        return np.zeros(len(texts))
    present = np.asarray([[g in t for g in grams] for t in texts], dtype=np.float64)
    weight = np.log1p(len(texts) / (1.0 + present.sum(axis=0)))
    out: np.ndarray = present @ weight / weight.sum()
    return out


def _has_content(question: str) -> bool:
    """An ideograph or two letters: "😀", "x" or zero-width characters answer nothing."""
    return cjk_share(question) > 0 or sum(ch.isalpha() for ch in question) >= 2


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 2)


def _dedupe_overlaps(order: list[int], rows: np.ndarray, snap: Snapshot, top_k: int) -> list[int]:
    """Best-first, skipping a chunk that overlaps a kept one by more than half of the shorter span."""
    kept: list[int] = []
    spans: list[Chunk] = []
    for i in order:
        c = snap.chunk(int(rows[i]))
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
