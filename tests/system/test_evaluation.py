"""Metric functions on hand-made rankings, and the quality floors of the corpus question set."""

from __future__ import annotations

import glob
import json
import subprocess
import sys

import pytest

from conftest import QUESTIONS, ROOT
from qa import evaluation as ev
from qa.service import Service

QUESTION_FILES = [
    str(ROOT / "tests" / "data" / "corpus_qa.jsonl"),
    str(ROOT / "tests" / "data" / "questions" / "*.jsonl"),
]
ABSTRACTS_DOC = "003_9a26cb7cfdeac646"
# Test-split floors: just under what `qa eval --split test` measures (README, Evaluation), a question or
# two of slack for floating-point ties. The targets above them that are not met yet are listed in
# the README; raise a floor when the measurement rises, never lower one.
FLOORS = {
    "hit1": 0.84,  # measured 0.863 (target 0.90)
    "hit5": 0.93,  # 0.941 (target 0.98)
    "paraphrase_hit1": 0.62,  # 0.660 (target 0.80)
    "english_hit5": 0.80,  # 0.833 (target 0.90)
    "traditional_hit5": 0.92,  # 0.964 (target 0.95; 28 questions, one is 0.036)
    "typo_hit5": 0.96,  # 1.000 (target 0.95)
    "ood_refused": 0.80,  # 0.828 (target 0.90)
    "ood_near_refused": 0.56,  # 0.610
    "in_domain_answerable": 0.91,  # 0.941 (target 0.95)
}


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


def test_development_set_meets_its_spec() -> None:
    qs = ev.load_question_files(QUESTION_FILES)
    new = [q for q in qs if not q.id.startswith("q")]  # beside the 142 of 0.3.0's set, which it keeps
    kinds = [q.kind for q in new]
    assert sum(q.in_domain for q in new) >= 400
    assert kinds.count("ood") + kinds.count("ood_near") >= 150 and kinds.count("ood_near") >= 75
    for kind in ("paraphrase", "keyword", "long", "typo", "english", "traditional", "multi"):
        assert kinds.count(kind) >= 20, kind
    assert len({q.id for q in qs}) == len(qs)
    splits = [ev.split_of(q.id) for q in qs]
    assert 0.4 < splits.count("dev") / len(splits) < 0.6


def test_every_new_gold_answer_is_in_a_chunk_of_its_document() -> None:
    """scripts/check_questions.py: fields, ids, answers present in the indexed (cleaned, chunked) text."""
    files = sorted(glob.glob(QUESTION_FILES[1]))
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "check_questions.py"), "--corpus", str(ROOT / "corpus"), *files],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-2000:]


@pytest.fixture(scope="module")
def test_split(corpus_service: Service) -> list[ev.Outcome]:
    """The held-out half of every question file, through the same code as /v1/ask (top 10)."""
    questions = ev.in_split(ev.load_question_files(QUESTION_FILES), "test")
    return ev.evaluate(lambda q, m: corpus_service.ask(q, top_k=10, mode=m), questions, "hybrid", ev.first_answer_rank)


def _kind(outcomes: list[ev.Outcome], *kinds: str) -> list[int | None]:
    return [o.first_rank for o in outcomes if o.question.kind in kinds]


def test_test_split_meets_the_floors(test_split: list[ev.Outcome]) -> None:
    """Regression guards at the measured test-split level (README, Evaluation); the issue's targets above
    them are not all reached yet (the README says which)."""
    s = ev.summarize("test", test_split)
    assert s.hit1 >= FLOORS["hit1"], s
    assert s.hit5 >= FLOORS["hit5"], s
    assert ev.hit_at_k(_kind(test_split, "paraphrase"), 1) >= FLOORS["paraphrase_hit1"]
    assert ev.hit_at_k(_kind(test_split, "english"), 5) >= FLOORS["english_hit5"]
    assert ev.hit_at_k(_kind(test_split, "traditional"), 5) >= FLOORS["traditional_hit5"]
    assert ev.hit_at_k(_kind(test_split, "typo"), 5) >= FLOORS["typo_hit5"]


def test_test_split_abstains_out_of_domain(test_split: list[ev.Outcome]) -> None:
    s = ev.summarize("test", test_split)
    near = [o for o in test_split if o.question.kind == "ood_near"]
    assert s.ood_refused is not None and s.ood_refused >= FLOORS["ood_refused"], s
    assert sum(not o.answerable for o in near) / len(near) >= FLOORS["ood_near_refused"]
    assert s.in_domain_answerable is not None and s.in_domain_answerable >= FLOORS["in_domain_answerable"], s


def _other_abstracts(text: str) -> tuple[int, int, int, int]:
    """Raw spans of 003's appended abstracts, and of the article's own abstract among them."""
    start = text.index("From Conceptual Change to Institutional Construction")
    own = text.index("The U.S.-Japan Economic Security Alliance：Building")
    own_end = text.index("China-U.S.-Japan Relations", own) + len("China-U.S.-Japan Relations")
    return start, len(text), own, own_end


def test_no_off_topic_question_lands_on_the_other_articles_abstracts(corpus_service: Service) -> None:
    snap = corpus_service.snapshot()
    start, end, own, own_end = _other_abstracts(snap.document_text(ABSTRACTS_DOC))
    questions = [q for q in ev.load_question_files(QUESTION_FILES) if not q.in_domain]
    questions.append(ev.Question("recipe", "红烧肉应该怎么做才好吃？", "ood", "zh", (), ()))
    for q in questions:
        for hit in corpus_service.ask(q.question, top_k=5).hits:
            c = hit.chunk
            inside = max(0, min(c.end, end) - max(c.start, start)) - max(0, min(c.end, own_end) - max(c.start, own))
            assert not (c.doc_id == ABSTRACTS_DOC and inside > (c.end - c.start) / 2), (q.question, c.start, c.end)


def test_the_index_records_the_ranker_it_ranks_with(corpus_service: Service) -> None:
    from qa.ranking import packaged

    snap = corpus_service.snapshot()
    fingerprint = corpus_service.embedder.identity.fingerprint
    shipped = json.loads(packaged(fingerprint).read_text(encoding="utf-8"))
    assert snap.manifest.ranker == shipped
    assert snap.manifest.ranker["fitted"]["split"] == "dev"
