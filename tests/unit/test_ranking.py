"""The ranker's pieces on hand-made inputs: no model, no index (fast)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from qa import calibration as cal
from qa.evaluation import Question, split_of
from qa.ranking import (
    PASSAGE_FEATURES,
    QUESTION_FEATURES,
    QUESTION_SIGNALS,
    Linear,
    Ranker,
    file_name,
    find_ranker,
    question_features,
    sigmoid,
)
from qa.retrieval import _bigram_share, _has_content, _standardised

P = len(PASSAGE_FEATURES)


def _linear(names: tuple[str, ...], weights: list[float], bias: float = 0.0) -> Linear:
    n = len(names)
    return Linear(names, (0.0,) * n, (1.0,) * n, tuple(weights), bias)


def _ranker(model: str = "fp1") -> Ranker:
    return Ranker(
        model=model,
        relevance=_linear(PASSAGE_FEATURES, [1.0] + [0.0] * (P - 1)),
        passage=_linear(("relevance",), [2.0], -1.0),
        confidence=_linear(QUESTION_FEATURES, [1.0] + [0.0] * (len(QUESTION_FEATURES) - 1)),
        threshold=0.4,
        fitted={"split": "dev"},
    )


def test_linear_standardises_then_weighs() -> None:
    lin = Linear(("a", "b"), (1.0, 2.0), (2.0, 0.5), (3.0, -1.0), 0.5)
    x = np.asarray([[3.0, 2.5], [1.0, 2.0]])
    assert lin.logit(x) == pytest.approx([3.0 * 1 - 1.0 * 1 + 0.5, 0.5])
    assert lin.probability(x) == pytest.approx(sigmoid(lin.logit(x)))


def test_sigmoid_does_not_overflow() -> None:
    assert sigmoid(np.asarray([-1e6, 0.0, 1e6])) == pytest.approx([0.0, 0.5, 1.0])


def test_ranker_round_trips_through_its_file(tmp_path: Path) -> None:
    r = _ranker()
    r.save(tmp_path / "r.json")
    assert Ranker.load(tmp_path / "r.json") == r
    assert not list(tmp_path.glob(".*.tmp"))  # written through a temp file, renamed


def test_ranker_with_other_features_is_refused(tmp_path: Path) -> None:
    d = _ranker().as_dict()
    d["relevance"]["names"] = ["cosine"]
    with pytest.raises(ValueError, match="qa calibrate"):
        Ranker.from_dict(d)


def test_find_ranker_prefers_this_machines_fit_and_checks_the_model(tmp_path: Path) -> None:
    _ranker("fp1").save(tmp_path / file_name("fp1"))
    assert find_ranker(tmp_path, "fp1") == _ranker("fp1")
    _ranker("other").save(tmp_path / file_name("fp2"))  # a file named for fp2 that holds another model's fit
    assert find_ranker(tmp_path, "fp2") is None


def test_find_ranker_ignores_a_broken_file(tmp_path: Path) -> None:
    (tmp_path / file_name("fp1")).write_text(json.dumps({"format": 99}), encoding="utf-8")
    assert find_ranker(tmp_path, "fp1") is None
    override = tmp_path / "mine.json"
    _ranker("fp1").save(override)
    assert find_ranker(tmp_path / "elsewhere", "fp1", override) == _ranker("fp1")


def test_question_features_read_the_ranked_list() -> None:
    feats = np.zeros((3, P))
    col = PASSAGE_FEATURES.index
    feats[:, col("coverage")] = [0.2, 0.9, 0.5]
    feats[:, col("cosine")] = [0.81, 0.85, 0.83]
    feats[:, col("numbers")] = [1.0, 0.0, 1.0]
    logits = np.asarray([1.0, 3.0, 2.5])
    signals = np.arange(len(QUESTION_SIGNALS), dtype=float)
    q = question_features(logits, np.argsort(-logits), feats, signals)
    named = dict(zip(QUESTION_FEATURES, q, strict=True))
    assert named["top_logit"] == 3.0 and named["margin"] == pytest.approx(0.5)
    assert named["top_cosine"] == pytest.approx(0.85) and named["top_coverage"] == pytest.approx(0.9)
    assert named["top_numbers"] == 0.0  # rank 1 lacks the question's number
    assert [named[n] for n in QUESTION_SIGNALS] == list(signals)
    latin = named["latin_share"]
    assert named["top_logit×latin"] == pytest.approx(3.0 * latin) and "latin_share×latin" not in named


def test_question_features_of_no_candidates_say_unanswerable() -> None:
    q = question_features(np.zeros(0), np.zeros(0, np.int64), np.zeros((0, P)), np.zeros(len(QUESTION_SIGNALS)))
    assert q[0] < -10 and len(q) == len(QUESTION_FEATURES)


def test_threshold_reaches_the_stated_precision() -> None:
    conf = np.asarray([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    labels = np.asarray([1, 1, 1, 0, 1, 0], dtype=bool)
    assert cal.threshold_for(conf, labels, 1.0) == 0.7  # the deepest cut with no wrong answer
    assert cal.threshold_for(conf, labels, 0.8) == 0.5  # 4 right of 5
    assert cal.threshold_for(conf, np.zeros(6, bool), 0.9) == 1.0  # unreachable: answer nothing


def test_expected_calibration_error() -> None:
    p = np.asarray([0.25] * 4 + [0.75] * 4)
    assert cal.expected_calibration_error(p, np.asarray([1, 0, 0, 0, 1, 1, 1, 0], float)) == pytest.approx(0.0)
    assert cal.expected_calibration_error(p, np.asarray([0, 0, 0, 0, 1, 1, 1, 1], float)) == pytest.approx(0.25)


def _examples(n: int, seed: int) -> list[cal.Example]:
    """Questions whose answering passage has the best window but not the best cosine."""
    rng = np.random.default_rng(seed)
    q = Question("x", "x", "factual", "zh", ("d",), ("a",))
    out = []
    for i in range(n):
        x = rng.normal(size=(20, P))
        y = np.zeros(20, bool)
        y[i % 20] = True
        x[y, PASSAGE_FEATURES.index("window")] += 5.0
        x[~y, PASSAGE_FEATURES.index("cosine")] += 1.0
        out.append(cal.Example("corpus" if i % 2 else "cmrc", replace(q, id=f"q{i}"), x, y, np.zeros(4)))
    return out


def test_relevance_learns_which_feature_orders_passages() -> None:
    model = cal._relevance(_examples(60, 0))
    w = dict(zip(PASSAGE_FEATURES, model.weights, strict=True))
    assert w["window"] > 0 > w["cosine"]
    held_out = _examples(40, 1)
    top1 = [bool(e.labels[int(np.argmax(model.logit(e.features)))]) for e in held_out]
    assert np.mean(top1) >= 0.9


def test_fit_gives_a_calibrated_confidence_on_separable_questions() -> None:
    examples = _examples(80, 2)
    negatives = [replace(e, labels=np.zeros(20, bool), features=e.features - 3.0) for e in _examples(80, 3)]
    ranker = cal.fit(examples + negatives, "fp")
    oof = ranker.fitted["out_of_fold"]
    assert oof["roc_auc"] >= 0.95 and oof["ece"] <= 0.1
    assert 0.0 < ranker.threshold < 1.0


def test_standardised_and_bigram_share() -> None:
    assert _standardised(np.asarray([1.0, 3.0])) == pytest.approx([-1.0, 1.0], abs=1e-5)
    texts = ["日本制造业空心化", "美国制造业回流", "无关的句子"]
    share = _bigram_share("制造业空心化", texts)
    assert share[0] == pytest.approx(1.0) and share[0] > share[1] > share[2] == 0.0
    assert list(_bigram_share("hello", texts)) == [0.0, 0.0, 0.0]


@pytest.mark.parametrize("junk", ["😀", "x", "\u200b" * 5, "\udcff", "12345", "？？"])
def test_junk_questions_have_no_content(junk: str) -> None:
    assert not _has_content(junk)


@pytest.mark.parametrize("question", ["税", "日本产业空心化", "JBIC", "What is hollowing out?"])
def test_real_questions_have_content(question: str) -> None:
    assert _has_content(question)


def test_split_is_fixed_by_the_id_and_balanced() -> None:
    ids = [f"q{i:04d}" for i in range(2000)]
    assert [split_of(i) for i in ids] == [split_of(i) for i in ids]
    assert 0.45 < sum(split_of(i) == "dev" for i in ids) / len(ids) < 0.55


def test_an_unreadable_ranker_in_a_manifest_is_a_503_not_a_500() -> None:
    from types import SimpleNamespace

    from qa.config import Settings
    from qa.errors import RankerMissingError
    from qa.manifest import Manifest
    from qa.retrieval import Retriever

    manifest = Manifest.from_dict({"ranker": {"format": 99}, "model": {"name": "m"}})
    store = SimpleNamespace(version="v1", manifest=manifest)
    retriever = Retriever(None, None, Settings())  # type: ignore[arg-type]
    with pytest.raises(RankerMissingError) as exc:
        retriever.require_ranker(store)  # type: ignore[arg-type]
    assert exc.value.status == 503 and "qa calibrate" in exc.value.message
