"""Ranking and fusion on hand-made candidates: features in their named columns, the learned ranker's scores,
RRF, orders per mode, overlap deduplication and highlights. No model, no index (fast)."""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qa.chunking import Chunk
from qa.config import Settings
from qa.lexical import lucene_idf
from qa.manifest import Manifest
from qa.ranking import PASSAGE_FEATURES, QUESTION_FEATURES, Linear, Ranker, rank_feature, sigmoid
from qa.retrieval import (
    Candidates,
    Mode,
    Retriever,
    _best_sentence,
    _dedupe_overlaps,
    _longest,
    _merge,
    _overlaps,
    _term_spans,
)
from qa.stores.base import Scope, Windows
from qa.tokens import cjk_share

P = len(PASSAGE_FEATURES)


def _chunk(doc_id: str, start: int, end: int, text: str = "") -> Chunk:
    return Chunk(doc_id, f"{doc_id}:{start}", 0, start, end, text or "x" * (end - start))


class Chunks:
    """The one part of a snapshot `_dedupe_overlaps` reads: chunks by row."""

    def __init__(self, chunks: dict[int, Chunk] | list[Chunk]) -> None:
        self.chunks = dict(enumerate(chunks)) if isinstance(chunks, list) else chunks

    def chunk(self, row: int) -> Chunk:
        return self.chunks[row]


def _dedupe(chunks: list[Chunk], order: list[int], top_k: int = 10) -> list[int]:
    return _dedupe_overlaps(order, np.arange(len(chunks)), Chunks(chunks), top_k)  # type: ignore[arg-type]


def _retriever(**changes: Any) -> Retriever:
    return Retriever(None, None, Settings(**changes))  # type: ignore[arg-type]


def _candidates(
    rows: list[int],
    cosine: list[float] | None = None,
    lexical: list[float] | None = None,
    dense_rank: dict[int, int] | None = None,
    bm25_rank: dict[int, int] | None = None,
    features: np.ndarray | None = None,
) -> Candidates:
    n = len(rows)
    return Candidates(
        rows=np.asarray(rows, dtype=np.int64),
        texts=[""] * n,
        windows=[],
        window_cosine=[],
        features=np.zeros((n, P)) if features is None else features,
        lexical=np.asarray(lexical if lexical is not None else [0.0] * n),
        cosine=np.asarray(cosine if cosine is not None else [0.0] * n),
        dense_rank=dense_rank or {},
        bm25_rank=bm25_rank or {},
        signals=np.zeros(4),
        legacy_dense=np.zeros(n),
    )


# Overlap deduplication


def test_overlapping_chunks_of_one_document_keep_the_better_ranked() -> None:
    chunks = [_chunk("a", 0, 300), _chunk("a", 100, 400)]  # 200 shared characters of 300
    assert _dedupe(chunks, [1, 0]) == [1]
    assert _dedupe(chunks, [0, 1]) == [0]


def test_the_same_span_of_another_document_is_never_deduplicated() -> None:
    chunks = [_chunk("a", 0, 300), _chunk("b", 0, 300), _chunk("b", 0, 300)]
    assert _dedupe(chunks, [0, 1, 2]) == [0, 1]  # b's second copy goes; a's span is no reason to drop b's


def test_overlap_counts_against_the_shorter_chunk_and_must_exceed_half() -> None:
    long = _chunk("a", 0, 1000)
    half = _chunk("a", 900, 1100)  # 100 of its 200 characters shared: exactly half, kept
    inside = _chunk("a", 200, 300)  # all of it inside the long one, though only a tenth of the long one
    touching = _chunk("a", 1100, 1400)
    assert _dedupe([long, half, inside, touching], [0, 1, 2, 3]) == [0, 1, 3]
    assert not _overlaps(long, half) and _overlaps(long, inside) and _overlaps(inside, long)


def test_dedupe_stops_at_top_k_and_skipped_chunks_do_not_count() -> None:
    chunks = [_chunk("a", 0, 300), _chunk("a", 50, 350), _chunk("b", 0, 100), _chunk("c", 0, 100)]
    assert _dedupe(chunks, [0, 1, 2, 3], top_k=2) == [0, 2]


def test_dedupe_returns_candidate_indices_and_reads_chunks_by_their_row() -> None:
    snap = Chunks({7: _chunk("a", 100, 400), 3: _chunk("a", 0, 300)})
    rows = np.asarray([7, 3])  # candidate 0 is row 7, candidate 1 is row 3
    assert _dedupe_overlaps([1, 0], rows, snap, 5) == [1]  # type: ignore[arg-type]


spans = st.tuples(st.sampled_from("ab"), st.integers(0, 50), st.integers(1, 30)).map(
    lambda t: _chunk(t[0], t[1], t[1] + t[2])
)


@settings(max_examples=100, deadline=None)
@given(st.lists(spans, min_size=1, max_size=12), st.integers(1, 6))
def test_dedupe_keeps_a_chunk_exactly_when_no_better_kept_chunk_covers_it(chunks: list[Chunk], top_k: int) -> None:
    """Reference: walk the order, keep a chunk unless > half of the shorter span is shared with a kept chunk
    of the same document."""
    kept: list[int] = []
    for i, c in enumerate(chunks):
        same = [chunks[k] for k in kept if chunks[k].doc_id == c.doc_id]
        shared = [min(c.end, k.end) - max(c.start, k.start) for k in same]
        if all(s <= 0.5 * min(c.end - c.start, k.end - k.start) for s, k in zip(shared, same, strict=True)):
            kept.append(i)
        if len(kept) == top_k:
            break
    assert _dedupe(chunks, list(range(len(chunks))), top_k) == kept


# Orders: RRF, and what each mode ranks by


def test_rrf_adds_each_lists_weighted_reciprocal_rank() -> None:
    c = _candidates([10, 11, 12], dense_rank={10: 1, 11: 2}, bm25_rank={12: 1, 10: 3})
    scores = _retriever(fusion="rrf", rrf_k=60, dense_weight=0.5)._rrf(c)
    assert scores == pytest.approx([0.5 / 61 + 0.5 / 63, 0.5 / 62, 0.5 / 61])
    assert list(_retriever(fusion="rrf")._order(c, np.zeros(3), "hybrid")) == [0, 2, 1]  # in both lists: first


def test_rrf_with_all_weight_on_dense_ignores_bm25_only_candidates() -> None:
    c = _candidates([10, 12], dense_rank={10: 4}, bm25_rank={12: 1})
    assert _retriever(fusion="rrf", rrf_k=10, dense_weight=1.0)._rrf(c) == pytest.approx([1 / 14, 0.0])


def test_bm25_mode_ranks_by_bm25_and_drops_candidates_without_a_shared_term() -> None:
    c = _candidates([0, 1, 2, 3], cosine=[0.9, 0.1, 0.2, 0.3], lexical=[0.0, 0.5, 0.9, 0.5])
    assert list(_retriever()._order(c, np.asarray([1.0, 0.0, 0.0, 0.0]), "bm25")) == [2, 1, 3]  # ties keep order


@pytest.mark.parametrize(("mode", "expected"), [("dense", [2, 0, 1]), ("hybrid", [1, 2, 0])])
def test_dense_ranks_by_cosine_and_hybrid_by_the_fused_score(mode: Mode, expected: list[int]) -> None:
    c = _candidates([0, 1, 2], cosine=[0.5, 0.1, 0.9], lexical=[0.9, 0.0, 0.1])
    fused = np.asarray([0.2, 0.8, 0.5])
    assert list(_retriever(fusion="learned")._order(c, fused, mode)) == expected


# The learned ranker, on hand-made weights


def _linear(names: tuple[str, ...], weights: dict[str, float], bias: float = 0.0) -> Linear:
    n = len(names)
    return Linear(names, (0.0,) * n, (1.0,) * n, tuple(weights.get(name, 0.0) for name in names), bias)


def _ranker() -> Ranker:
    return Ranker(
        model="fp",
        relevance=_linear(PASSAGE_FEATURES, {"window": 2.0, "bm25": 1.0}),
        passage=_linear(("relevance",), {"relevance": 1.0}, bias=-1.0),
        confidence=_linear(QUESTION_FEATURES, {"top_logit": 1.0}),
        threshold=0.5,
    )


def test_the_learned_ranker_orders_passages_by_its_weighted_features() -> None:
    ranker = _ranker()
    features = np.zeros((3, P))
    col = PASSAGE_FEATURES.index
    features[:, col("window")] = [0.9, 0.5, 0.2]
    features[:, col("bm25")] = [0.0, 1.0, 0.1]
    features[:, col("cosine")] = [0.99, 0.0, 0.0]  # weight 0: the best cosine does not help
    logits = ranker.relevance.logit(features)
    assert logits == pytest.approx([1.8, 2.0, 0.5])
    fused = ranker.passage.probability(logits[:, None])  # as Retriever.ask calls it: one column
    assert fused.shape == (3,) and fused == pytest.approx(sigmoid(logits - 1.0))
    c = _candidates([0, 1, 2], cosine=[0.99, 0.0, 0.0], features=features)
    assert list(_retriever()._order(c, fused, "hybrid")) == [1, 0, 2]


def test_the_retriever_reads_the_ranker_its_snapshot_records_once_per_version() -> None:
    retriever = _retriever()
    with_ranker = SimpleNamespace(version="v1", manifest=Manifest.from_dict({"ranker": _ranker().as_dict()}))
    assert retriever.ranker(with_ranker) == _ranker()
    same_version = SimpleNamespace(version="v1", manifest=Manifest.from_dict({}))
    assert retriever.ranker(same_version) == _ranker()  # parsed once: a version never changes
    without = SimpleNamespace(version="v2", manifest=Manifest.from_dict({}))
    assert retriever.ranker(without) is None


# Every feature in the column PASSAGE_FEATURES names


IDFS = {"2019": 1.0, "日本": 1.0, "产业空心化": 3.0}


class FeatureSnapshot:
    """Three chunks with 2-d vectors and fixed BM25 answers: what `Retriever.candidates` asks of a snapshot."""

    version = "v1"
    texts = ("2019年日本产业空心化加剧。", "美国制造业回流。", "Japan's hollowing out since 2019.")
    vectors = np.asarray([[0.8, 0.6], [0.6, 0.8], [0.9, math.sqrt(1 - 0.81)]])
    windows = (
        Windows(((0, 5), (5, 14)), np.asarray([[0.8, 0.6], [0.6, 0.8]])),
        Windows((), np.zeros((0, 2))),  # a chunk without windows
        Windows(((0, 33),), np.asarray([[1.0, 0.0]])),
    )
    bm25 = (12.0, 8.0, 0.0)

    def __len__(self) -> int:
        return 3

    def chunk(self, row: int) -> Chunk:
        return Chunk("a" if row < 2 else "b", f"c{row}", row, 0, len(self.texts[row]), self.texts[row])

    def dense_search(self, query: np.ndarray, k: int, scope: Scope | None) -> tuple[np.ndarray, np.ndarray]:
        return np.asarray([2, 0]), np.asarray([0.9, 0.8])

    def lexical_search(self, terms: list[str], k: int, scope: Scope | None) -> tuple[np.ndarray, np.ndarray]:
        return np.asarray([0, 1]), np.asarray([12.0, 8.0])

    def dense_scores(self, query: np.ndarray, rows: np.ndarray) -> np.ndarray:
        out: np.ndarray = self.vectors[rows] @ query
        return out

    def lexical_max(self, terms: list[str]) -> float:
        return 10.0  # row 0's 12 is over it: clipped to 1

    def lexical_scores_of(self, terms: list[str], rows: np.ndarray) -> np.ndarray:
        return np.asarray([self.bm25[r] for r in rows])

    def windows_of(self, rows: np.ndarray) -> list[Windows]:
        return [self.windows[r] for r in rows]

    def idf(self, term: str) -> float:
        return IDFS.get(term, lucene_idf(0, 3))

    def cjk_of(self, rows: np.ndarray) -> np.ndarray:
        return np.asarray([cjk_share(self.texts[r]) for r in rows])


def test_candidate_features_land_in_the_columns_passage_features_names() -> None:
    question, terms = "2019年日本的产业空心化？", ["2019", "日本", "产业空心化"]
    snap = FeatureSnapshot()
    c = _retriever().candidates(snap, question, np.asarray([1.0, 0.0]), terms, None)  # type: ignore[arg-type]
    assert list(c.rows) == [2, 0, 1]  # dense candidates first, then BM25-only ones
    f = {name: c.features[:, i] for i, name in enumerate(PASSAGE_FEATURES)}
    assert f["cosine"] == pytest.approx([0.9, 0.8, 0.6])
    assert f["cosine_gap"] == pytest.approx([0.0, -0.1, -0.3])
    assert f["window"] == pytest.approx([1.0, 0.8, -1.0])  # no window: -1, below any cosine
    assert f["window_gap"] == pytest.approx([0.0, -0.2, -2.0])
    assert f["window_top2"] == pytest.approx([1.0, 0.7, -1.0])
    assert f["bm25"] == pytest.approx([0.0, 1.0, 0.8])
    assert f["coverage"] == pytest.approx([1 / 5, 1.0, 0.0])  # IDF mass: 2019 (1) of 1 + 1 + 3
    assert f["cross_language"] == pytest.approx([1.0, 0.0, 0.0])  # a Chinese question, an English passage
    assert f["cosine_cross"] == pytest.approx([0.9, 0.0, 0.0])
    assert f["dense_rank"] == pytest.approx([1.0, 1 / math.log2(3), 0.0])
    assert f["bm25_rank"] == pytest.approx([0.0, 1.0, rank_feature(2)])
    assert f["log_length"] == pytest.approx(np.log([len(snap.texts[r]) for r in (2, 0, 1)]))
    assert f["cosine_z"].mean() == pytest.approx(0.0, abs=1e-9) and f["cosine_z"][0] > f["cosine_z"][2]
    assert f["numbers"] == pytest.approx([1.0, 1.0, 0.0])  # "2019" in the passage or not
    assert int(np.argmax(f["bigrams"])) == 1 and f["bigrams"][0] == 0.0  # row 0 shares the bigrams
    # known terms: IDF mass of terms below an unknown term's IDF (3.0 > log 8 counts as unknown)
    assert c.signals == pytest.approx([2 / 5, 0.0, 1.0, math.log1p(3)])


def test_convex_dense_part_credits_the_language_gap_and_is_clipped_to_0_1() -> None:
    retriever = _retriever(dense_floor=0.76, dense_ceiling=0.90, language_gap=0.1)
    snap: Any = FeatureSnapshot()
    c = retriever.candidates(snap, "2019年日本的产业空心化？", np.asarray([1.0, 0.0]), [], None)
    # row 2: 0.9 + 0.1 · 1 (English passage) over the ceiling; row 0: (0.8 − 0.76) / 0.14; row 1 under the floor
    assert c.legacy_dense == pytest.approx([1.0, 0.04 / 0.14, 0.0])


# Highlights and evidence


def test_merge_joins_overlapping_and_touching_spans() -> None:
    assert _merge([(5, 8), (0, 3), (2, 4), (8, 9), (12, 13)]) == [(0, 4), (5, 9), (12, 13)]
    assert _merge([]) == []


def test_longest_drops_terms_inside_a_longer_matched_term() -> None:
    assert _longest(["产业", "空心化", "产业空心化", "日本"]) == ["产业空心化", "日本"]


def test_term_spans_mark_every_occurrence_of_the_longest_matches() -> None:
    norm = "日本产业空心化，产业空心化加剧"
    spans, matched = _term_spans(norm, ["日本", "产业", "空心化", "产业空心化", "美国"])
    assert matched == ["日本", "产业空心化"]
    assert spans == [(0, 2), (2, 7), (8, 13)]
    assert all(norm[a:b] in matched for a, b in spans)


def test_best_sentence_is_the_one_with_most_idf_mass() -> None:
    text = "日本经济增长。产业空心化加剧。美国也是。"
    idf = {"日本": 1.0, "产业空心化": 3.0}
    spans, matched = _term_spans(text, ["日本", "产业空心化"])
    assert _best_sentence(text, text, spans, matched, idf) == (7, 15)
    assert _best_sentence(text, text, [], [], idf) is None  # no term matched: no evidence from terms
