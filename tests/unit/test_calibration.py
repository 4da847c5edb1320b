"""`qa calibrate`'s pure parts on hand-made numbers: reliability bins, ECE, the threshold, the logistic fits,
folds and question labels. No model, no index (fast); test_ranking.py covers the ranker fit end to end."""

from __future__ import annotations

import numpy as np
import pytest

from qa import calibration as cal
from qa.chunking import Chunk
from qa.evaluation import Question
from qa.ranking import CONFIDENCE_TOP, PASSAGE_FEATURES, QUESTION_SIGNALS, Linear, question_features

P = len(PASSAGE_FEATURES)
QUESTION = Question("q1", "日本的产业空心化始于何时？", "factual", "zh", ("report",), ("1985 年",))
# six predictions over four bins; 1.0 belongs to the last bin, not to an eleventh
PREDICTED = np.asarray([0.05, 0.15, 0.12, 0.95, 1.0, 0.55])
OBSERVED = np.asarray([0.0, 1.0, 0.0, 1.0, 1.0, 0.0])


def test_reliability_lists_the_non_empty_bins_with_their_mean_prediction_and_outcome() -> None:
    assert cal.reliability(PREDICTED, OBSERVED) == [
        {"bin": "0.0–0.1", "n": 1, "predicted": 0.05, "observed": 0.0},
        {"bin": "0.1–0.2", "n": 2, "predicted": 0.135, "observed": 0.5},
        {"bin": "0.5–0.6", "n": 1, "predicted": 0.55, "observed": 0.0},
        {"bin": "0.9–1.0", "n": 2, "predicted": 0.975, "observed": 1.0},
    ]


def test_ece_is_the_count_weighted_gap_of_the_reliability_bins() -> None:
    by_hand = (1 * 0.05 + 2 * 0.365 + 1 * 0.55 + 2 * 0.025) / 6
    assert cal.expected_calibration_error(PREDICTED, OBSERVED) == pytest.approx(by_hand)
    rows = cal.reliability(PREDICTED, OBSERVED)
    from_rows = sum(r["n"] * abs(r["predicted"] - r["observed"]) for r in rows) / len(PREDICTED)
    assert cal.expected_calibration_error(PREDICTED, OBSERVED) == pytest.approx(from_rows, abs=1e-3)


def test_ece_of_a_constant_overconfident_prediction_is_its_whole_gap() -> None:
    assert cal.expected_calibration_error(np.full(5, 0.9), np.zeros(5)) == pytest.approx(0.9)
    assert cal.expected_calibration_error(np.ones(4), np.ones(4)) == pytest.approx(0.0)


def test_threshold_does_not_depend_on_the_order_of_the_questions() -> None:
    conf = np.asarray([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    labels = np.asarray([1, 1, 1, 0, 1, 0], dtype=bool)
    shuffled = np.random.default_rng(0).permutation(len(conf))
    assert cal.threshold_for(conf[shuffled], labels[shuffled], 0.8) == cal.threshold_for(conf, labels, 0.8) == 0.5


def test_when_every_answer_is_right_the_threshold_answers_everything() -> None:
    conf = np.asarray([0.3, 0.9, 0.1, 0.6])
    assert cal.threshold_for(conf, np.ones(4, dtype=bool), 0.99) == 0.1
    assert cal.threshold_for(conf, np.asarray([0, 0, 1, 0], dtype=bool), 0.0) == 0.1  # any precision will do


def _precision_at(threshold: float, conf: np.ndarray, labels: np.ndarray) -> float:
    answered = conf >= threshold
    return float(labels[answered].mean()) if answered.any() else 1.0


def test_tied_confidences_never_lower_the_precision_below_the_target() -> None:
    conf, labels = np.asarray([0.9, 0.5, 0.5]), np.asarray([True, True, False])
    for order in ([0, 1, 2], [0, 2, 1]):
        t = cal.threshold_for(conf[order], labels[order], 1.0)
        assert _precision_at(t, conf, labels) >= 1.0


def test_a_separable_set_gets_a_steep_calibrated_logistic_fit() -> None:
    rng = np.random.default_rng(0)
    x = np.r_[rng.normal(-2.0, 0.5, 30), rng.normal(2.0, 0.5, 30)][:, None]
    y = np.r_[np.zeros(30, dtype=bool), np.ones(30, dtype=bool)]
    model = cal._fit(x, y, ("x",))
    assert model.names == ("x",) and model.weights[0] > 0
    assert model.mean[0] == pytest.approx(x.mean()) and model.scale[0] == pytest.approx(x.std())
    low, middle, high = model.probability(np.asarray([[-3.0], [0.0], [3.0]]))
    assert low < 0.05 and 0.3 < middle < 0.7 and high > 0.95


@pytest.mark.parametrize("label", [True, False])
def test_one_class_only_fits_the_base_rate(label: bool) -> None:
    x = np.random.default_rng(1).normal(size=(12, 3))
    model = cal._fit(x, np.full(12, label), ("a", "b", "c"))
    assert model.weights == (0.0, 0.0, 0.0)
    p = model.probability(np.asarray([[0.0, 0.0, 0.0], [9.0, -9.0, 9.0]]))
    assert p == pytest.approx([1.0, 1.0] if label else [0.0, 0.0], abs=1e-5)


def test_a_constant_feature_is_not_divided_by_zero() -> None:
    x = np.asarray([[1.0, 5.0], [3.0, 5.0]])
    mean, scale = cal._standardiser(x)
    assert list(mean) == [2.0, 5.0] and list(scale) == [1.0, 1.0]


def test_folds_are_fixed_by_the_seed_and_balanced() -> None:
    folds = cal._folds(23)
    assert np.array_equal(folds, cal._folds(23)) and not np.array_equal(folds, cal._folds(23, seed=1))
    sizes = np.bincount(folds, minlength=cal.FOLDS)
    assert set(folds.tolist()) == set(range(cal.FOLDS)) and sizes.max() - sizes.min() <= 1


def _example(labels: list[bool], cosine: list[float]) -> cal.Example:
    features = np.zeros((len(labels), P))
    features[:, PASSAGE_FEATURES.index("cosine")] = cosine
    return cal.Example("corpus", QUESTION, features, np.asarray(labels, dtype=bool), np.zeros(len(QUESTION_SIGNALS)))


def test_a_question_is_labelled_by_whether_its_top_passages_answer() -> None:
    by_cosine = Linear(
        PASSAGE_FEATURES, (0.0,) * P, (1.0,) * P, tuple(float(n == "cosine") for n in PASSAGE_FEATURES), 0.0
    )
    cosine = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]  # the model ranks the last candidate first
    sixth = _example([False, True, False, False, False, False, False], cosine)
    fifth = _example([False, False, True, False, False, False, False], cosine)
    x, y = cal._question_rows([sixth, fifth], [by_cosine, by_cosine])
    assert CONFIDENCE_TOP == 5 and list(y) == [False, True]
    logits = by_cosine.logit(fifth.features)
    assert x[1] == pytest.approx(question_features(logits, np.argsort(-logits), fifth.features, fifth.signals))


def test_a_question_without_candidates_is_an_unanswered_row() -> None:
    empty = cal.Example("corpus", QUESTION, np.zeros((0, P)), np.zeros(0, dtype=bool), np.zeros(len(QUESTION_SIGNALS)))
    model = Linear(PASSAGE_FEATURES, (0.0,) * P, (1.0,) * P, (1.0,) * P, 0.0)
    x, y = cal._question_rows([empty], [model])
    assert list(y) == [False] and x[0, 0] < -10  # top_logit of nothing


def test_relevance_labels_of_the_three_sources() -> None:
    chunk = Chunk("report", "report:0", 0, 0, 20, "日本的产业空心化始于1985 年前后。")
    other = Chunk("elsewhere", "elsewhere:0", 0, 0, 8, "美国制造业回流。")
    assert cal.answer_in(QUESTION, chunk) and not cal.answer_in(QUESTION, other)
    assert cal.answer_in(QUESTION, Chunk("report", "r:1", 1, 0, 9, "始于1985年"))  # whitespace-insensitive
    ood = Question("q2", QUESTION.question, "ood", "zh", (), ("1985 年",))
    assert not cal.answer_in(ood, chunk)  # an out-of-domain question has no answer here, whatever the text
    assert cal.own_paragraph(QUESTION, chunk) and not cal.own_paragraph(QUESTION, other)
    assert not cal.never(QUESTION, chunk)
