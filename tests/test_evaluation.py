"""Metric functions on hand-made rankings, and the quality floors of the corpus question set."""

from __future__ import annotations

import pytest

from conftest import QUESTIONS
from qa import evaluation as ev
from qa.service import Service


def test_hit_at_k_counts_first_relevant_rank_within_k() -> None:
    ranks = [1, 3, None, 6, 2]
    assert ev.hit_at_k(ranks, 1) == pytest.approx(1 / 5)
    assert ev.hit_at_k(ranks, 5) == pytest.approx(3 / 5)
    assert ev.hit_at_k(ranks, 10) == pytest.approx(4 / 5)
    assert ev.hit_at_k([], 5) == 0.0


def test_mrr_ignores_ranks_beyond_k() -> None:
    assert ev.mrr_at_k([1, 2, 4, None], 10) == pytest.approx((1 + 1 / 2 + 1 / 4) / 4)
    assert ev.mrr_at_k([1, 11], 10) == pytest.approx(0.5)
    assert ev.mrr_at_k([None, None], 10) == 0.0


def test_percentile_picks_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert ev.percentile(values, 50) in (50.0, 51.0)
    assert ev.percentile(values, 95) in (95.0, 96.0)


def test_answer_match_ignores_whitespace() -> None:
    assert ev.contains_answer("占比\n近 半 44.4 %", ("44.4%",))
    assert not ev.contains_answer("44.3%", ("44.4%",))


def test_question_set_meets_its_own_spec() -> None:
    qs = ev.load_questions(QUESTIONS)
    kinds = [q.kind for q in qs]
    assert sum(q.in_domain for q in qs) >= 80
    assert kinds.count("english") >= 12 and kinds.count("traditional") >= 8 and kinds.count("ood") >= 10
    assert len({q.id for q in qs}) == len(qs)


def test_every_gold_answer_occurs_in_its_document(corpus_service: Service) -> None:
    snap = corpus_service.snapshot()
    for q in ev.load_questions(QUESTIONS):
        for doc_id in q.doc_ids:
            raw = ev.squash(snap.document_text(doc_id))
            assert any(ev.squash(a) in raw for a in q.answers), q.id


@pytest.fixture(scope="module")
def hybrid(corpus_service: Service) -> list[ev.Outcome]:
    questions = ev.load_questions(QUESTIONS)
    return ev.evaluate(lambda q, m: corpus_service.ask(q, top_k=10, mode=m), questions, "hybrid", ev.first_answer_rank)


def test_corpus_set_meets_the_quality_floors(hybrid: list[ev.Outcome]) -> None:
    s = ev.summarize("corpus", hybrid)
    english = [o.first_rank for o in hybrid if o.question.kind == "english"]
    assert s.hit5 >= 0.95, s
    assert s.hit1 >= 0.80, s
    assert ev.hit_at_k(english, 5) >= 0.85
    assert s.ood_refused is not None and s.ood_refused >= 0.8, s
    assert s.in_domain_answerable is not None and s.in_domain_answerable >= 0.95, s


def test_hybrid_is_not_worse_than_either_component(corpus_service: Service, hybrid: list[ev.Outcome]) -> None:
    questions = ev.load_questions(QUESTIONS)
    h = ev.summarize("hybrid", hybrid)
    for mode in ("bm25", "dense"):
        outs = ev.evaluate(lambda q, m: corpus_service.ask(q, top_k=10, mode=m), questions, mode, ev.first_answer_rank)
        s = ev.summarize(mode, outs)
        assert h.hit5 >= s.hit5 - 0.01 and h.mrr10 >= s.mrr10 - 0.01, (mode, s, h)
