"""`qa calibrate`: fit the ranker's two logistic models on the development split, report how well they fit.

Data: the dev split of the corpus questions (in-domain and out-of-domain) asked against the corpus index,
the dev split of CMRC 2018 trial asked against its own paragraphs, and — free negatives from another
domain — each set asked against the other's index. Every candidate passage of every question is one
example for the relevance model (label: the passage holds a gold answer, or comes from the question's own
CMRC paragraph); every question is one example for the confidence model (label: one of the top 5 does).
The confidence model learns from out-of-fold relevance scores (grouped k-fold over questions), so it sees
rankings as they are on unseen questions, not on the questions the relevance model was fitted to. The
threshold is the lowest confidence whose answerable questions reach the stated precision, out of fold.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm import tqdm

from qa.chunking import Chunk
from qa.evaluation import Question, contains_answer
from qa.ranking import (
    CONFIDENCE_TOP,
    PASSAGE_FEATURES,
    QUESTION_FEATURES,
    Linear,
    Ranker,
    question_features,
)
from qa.tokens import normalize

if TYPE_CHECKING:
    from qa.service import Service

log = logging.getLogger(__name__)

FOLDS = 5
PRECISION = 0.925  # of `answerable=true` on the dev pool: the stated target (why: README, Evaluation)
C = 1.0  # inverse L2 strength; the features are standardised, so this is the library default
CS = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0)  # L2 strengths the confidence fit chooses among (by CV log loss)
PAIRS_PER_QUESTION = 200  # sampled (answering, not answering) pairs per question

Relevant = Callable[[Question, Chunk], bool]


@dataclass(frozen=True)
class Example:
    """One question asked against one index: its candidates' features and labels."""

    source: str  # which set against which index, e.g. "cmrc→corpus"
    question: Question
    features: np.ndarray
    labels: np.ndarray
    signals: np.ndarray


def answer_in(q: Question, chunk: Chunk) -> bool:
    return q.in_domain and contains_answer(chunk.text, q.answers)


def own_paragraph(q: Question, chunk: Chunk) -> bool:
    return chunk.doc_id in q.doc_ids


def never(q: Question, chunk: Chunk) -> bool:
    return False


def collect(service: Service, questions: list[Question], relevant: Relevant, source: str) -> list[Example]:
    """Candidates and features of every question through the retriever `/v1/ask` uses."""
    store = service.snapshot()
    retriever = service.retriever
    vectors = service.embedder.encode_queries([normalize(q.question, lower=False) for q in questions])
    out = []
    for q, qvec in tqdm(zip(questions, vectors, strict=True), total=len(questions), desc=source, unit="q"):
        terms = list(dict.fromkeys(service.tokenizer.term_list(q.question)))
        c = retriever.candidates(store, q.question, qvec, terms, None)
        labels = np.asarray([relevant(q, store.chunk(int(r))) for r in c.rows], dtype=bool)
        out.append(Example(source, q, c.features, labels, c.signals))
    return out


def _standardiser(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale < 1e-9] = 1.0
    return mean, scale


def _linear(names: tuple[str, ...], mean: np.ndarray, scale: np.ndarray, coef: np.ndarray, bias: float) -> Linear:
    return Linear(names, tuple(map(float, mean)), tuple(map(float, scale)), tuple(map(float, coef)), float(bias))


def _fit(x: np.ndarray, y: np.ndarray, names: tuple[str, ...]) -> Linear:
    """Logistic regression on standardised features, its L2 strength chosen by cross-validated log loss
    (a calibrated probability; the language interactions would overfit without it)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss

    mean, scale = _standardiser(x)
    z = (x - mean) / scale
    if y.all() or not y.any():  # one class only: nothing to fit, say the base rate
        rate = min(max(float(y.mean()), 1e-6), 1 - 1e-6)
        return _linear(names, mean, scale, np.zeros(len(names)), float(np.log(rate / (1 - rate))))
    fold = _folds(len(y), seed=1)

    def loss(c: float) -> float:
        p = np.zeros(len(y))
        for f in range(FOLDS):
            train = fold != f
            if y[train].all() or not y[train].any():
                return float("inf")
            p[~train] = LogisticRegression(C=c, max_iter=5000).fit(z[train], y[train]).predict_proba(z[~train])[:, 1]
        return float(log_loss(y, p, labels=[False, True]))

    best = min(CS, key=loss)
    model = LogisticRegression(C=best, max_iter=5000).fit(z, y)
    return _linear(names, mean, scale, model.coef_[0], model.intercept_[0])


def _relevance(examples: list[Example]) -> Linear:
    """Pairwise logistic regression (RankNet with a linear scorer): P(a ranks above b) = σ(w·(x_a − x_b)),
    over (answering, non-answering) candidate pairs of one question. Only order within a question is
    learnt, so corpora whose scores sit at different levels (CMRC's Wikipedia, our reports) don't pull
    the weights apart; each question weighs the same, and each source (corpus, CMRC) half. Questions
    with no answering candidate teach nothing about order: whether there is an answer at all is the
    confidence model's job."""
    from sklearn.linear_model import LogisticRegression

    ranked = [e for e in examples if e.labels.any() and not e.labels.all()]
    mean, scale = _standardiser(np.concatenate([e.features for e in ranked]).reshape(-1, len(PASSAGE_FEATURES)))
    rng = np.random.default_rng(0)
    diffs, weights, sources = [], [], []
    for e in ranked:
        z = (e.features - mean) / scale
        pairs = np.array([(p, n) for p in np.flatnonzero(e.labels) for n in np.flatnonzero(~e.labels)])
        if len(pairs) > PAIRS_PER_QUESTION:
            pairs = pairs[rng.choice(len(pairs), PAIRS_PER_QUESTION, replace=False)]
        diffs.append(z[pairs[:, 0]] - z[pairs[:, 1]])
        weights.append(np.full(len(pairs), 1.0 / len(pairs)))
        sources += [e.source] * len(pairs)
    x, w, src = np.concatenate(diffs), np.concatenate(weights), np.asarray(sources)
    for s in set(sources):
        w[src == s] /= w[src == s].sum()
    x2, y2, w2 = np.concatenate([x, -x]), np.r_[np.ones(len(x)), np.zeros(len(x))], np.r_[w, w]
    model = LogisticRegression(C=C, fit_intercept=False, max_iter=5000).fit(x2, y2, sample_weight=w2 * len(w2))
    return _linear(PASSAGE_FEATURES, mean, scale, model.coef_[0], 0.0)


def _question_rows(examples: list[Example], models: list[Linear]) -> tuple[np.ndarray, np.ndarray]:
    """QUESTION_FEATURES and top-5 labels, each question scored by its own (out-of-fold) relevance model."""
    xs, ys = [], []
    for e, model in zip(examples, models, strict=True):
        logits = model.logit(e.features) if len(e.labels) else np.zeros(0)
        order = np.argsort(-logits, kind="stable")
        xs.append(question_features(logits, order, e.features, e.signals))
        ys.append(bool(e.labels[order[:CONFIDENCE_TOP]].any()) if len(order) else False)
    return np.asarray(xs), np.asarray(ys)


def _folds(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).permutation(n) % FOLDS


def threshold_for(confidence: np.ndarray, labels: np.ndarray, precision: float) -> float:
    """The lowest threshold whose answerable set reaches `precision` (as many answers as that allows)."""
    order = np.argsort(-confidence, kind="stable")
    ranked = confidence[order]
    hits = np.cumsum(labels[order])
    prec = hits / np.arange(1, len(order) + 1)
    # `confidence >= t` answers every question tied at t: a cut may only fall after the last of a tie
    ends = np.append(ranked[1:] < ranked[:-1], True)
    ok = np.flatnonzero((prec >= precision) & ends)
    if len(ok) == 0:
        return 1.0
    k = int(ok.max())  # the deepest cut that still has the precision
    return float(ranked[k])


def expected_calibration_error(p: np.ndarray, y: np.ndarray, bins: int = 10) -> float:
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(p, edges) - 1, 0, bins - 1)
    err = 0.0
    for b in range(bins):
        m = which == b
        if m.any():
            err += m.mean() * abs(float(p[m].mean()) - float(y[m].mean()))
    return float(err)


def reliability(p: np.ndarray, y: np.ndarray, bins: int = 10) -> list[dict[str, Any]]:
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(p, edges) - 1, 0, bins - 1)
    rows = []
    for b in range(bins):
        m = which == b
        if m.any():
            rows.append(
                {
                    "bin": f"{edges[b]:.1f}–{edges[b + 1]:.1f}",
                    "n": int(m.sum()),
                    "predicted": round(float(p[m].mean()), 3),
                    "observed": round(float(y[m].mean()), 3),
                }
            )
    return rows


def fit(examples: list[Example], fingerprint: str, precision: float = PRECISION) -> Ranker:
    """Both models on all examples; threshold, ECE and AUC from out-of-fold predictions."""
    from sklearn.metrics import roc_auc_score

    fold = _folds(len(examples))
    oof_models: list[Linear | None] = [None] * len(examples)
    for f in range(FOLDS):
        model = _relevance([e for e, k in zip(examples, fold, strict=True) if k != f])
        for i in np.flatnonzero(fold == f):
            oof_models[int(i)] = model
    qx, qy = _question_rows(examples, [m for m in oof_models if m is not None])
    oof_conf = np.zeros(len(examples))
    for f in range(FOLDS):
        model = _fit(qx[fold != f], qy[fold != f], QUESTION_FEATURES)
        oof_conf[fold == f] = model.probability(qx[fold == f])
    relevance = _relevance(examples)
    scores = np.concatenate([relevance.logit(e.features) for e in examples if len(e.labels)])
    passage = _fit(scores[:, None], np.concatenate([e.labels for e in examples]), ("relevance",))
    final_qx, final_qy = _question_rows(examples, [relevance] * len(examples))
    confidence = _fit(final_qx, final_qy, QUESTION_FEATURES)
    threshold = threshold_for(oof_conf, qy, precision)
    sources: dict[str, int] = {}
    for e in examples:
        sources[e.source] = sources.get(e.source, 0) + 1
    fitted: dict[str, Any] = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "split": "dev",
        "questions": sources,
        "positives": int(qy.sum()),
        "precision_target": precision,
        "out_of_fold": {
            "roc_auc": round(float(roc_auc_score(qy, oof_conf)), 4) if 0 < qy.sum() < len(qy) else None,
            "ece": round(expected_calibration_error(oof_conf, qy.astype(float)), 4),
            "reliability": reliability(oof_conf, qy.astype(float)),
        },
    }
    # rounded down: rounding up could lift the threshold above the last confidence it was chosen to answer
    return Ranker(fingerprint, relevance, passage, confidence, math.floor(threshold * 1e4) / 1e4, fitted)
