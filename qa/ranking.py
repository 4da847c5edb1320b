"""The learned ranker: passage features, a logistic relevance model, a calibrated confidence.

Every candidate passage (dense top-k ∪ BM25 top-k) is described by the features below, all cheap on the
request path (the window vectors come from the index). A logistic regression fitted on the development
questions (`qa calibrate`, qa/calibration.py) turns them into P(this passage answers the question), which
ranks the passages; a second one turns the ranked list into `confidence` = P(one of the top 5 passages
answers the question), and `answerable` is `confidence ≥ threshold`, the threshold chosen on the dev split
for a stated precision. Weights are fitted per embedding model (its cosines have their own scale), stored
with the index and recorded in its manifest; nothing here is a constant tuned by hand.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

RANKER_FORMAT = 1
CONFIDENCE_TOP = 5  # confidence is about the passages a default request returns

# Per candidate passage. "gap" features are relative to the best candidate of the same question, so
# they are comparable across questions; rank features are scale-free; cross_language lets the model
# learn how much a multilingual encoder favours same-language pairs instead of a hand-set credit.
PASSAGE_FEATURES = (
    "cosine",  # question vs the whole chunk
    "cosine_gap",  # cosine − the best candidate's cosine
    "window",  # question vs the chunk's best sentence window
    "window_gap",  # window − the best candidate's window
    "window_top2",  # mean of the chunk's two best windows
    "bm25",  # BM25 over the best any chunk could reach for these terms (the sum of their IDFs)
    "coverage",  # share of the question's IDF mass whose terms occur in the passage (sub-words too)
    "cross_language",  # |CJK share(question) − CJK share(passage)|
    "cosine_cross",  # cosine × cross_language
    "dense_rank",  # 1/log2(1 + rank) in the dense list, 0 if absent
    "bm25_rank",  # the same in the BM25 list
    "log_length",  # log of the passage's characters
    "cosine_z",  # cosine standardised over this question's candidates
    "window_z",  # window, the same
    "bm25_z",  # bm25, the same
    "bigrams",  # share of the question's character bigrams in the passage, weighted by rarity among candidates
    "numbers",  # share of the question's numbers (years, amounts) that occur in the passage; 1 if it has none
)

# Per question, computed with its candidates whatever their order.
QUESTION_SIGNALS = (
    "known_terms",  # share of the question's IDF mass in terms the index knows
    "latin_share",  # 1 − CJK share of the question: cross-language questions score lower everywhere
    "has_numbers",  # the question names a year or an amount
    "log_terms",  # log(1 + number of question terms)
)
# Per question, from its ranked candidates, then the signals.
_QUESTION_BASE = (
    "top_logit",  # relevance score of rank 1
    "margin",  # rank 1 − rank 2
    "top_cosine",
    "top_window",
    "top_coverage",  # best coverage among the top 5
    "top_bm25",  # best BM25 share among the top 5
    "top_bigrams",  # best bigram share among the top 5
    "top_numbers",  # the question's numbers found in rank 1 (a year the passage lacks is another question)
    *QUESTION_SIGNALS,
)
# ...and each of them times latin_share: an English question over Chinese text has no lexical evidence and
# lower cosines everywhere, so its confidence gets weights of its own (language-conditional calibration).
QUESTION_FEATURES = (*_QUESTION_BASE, *(f"{n}×latin" for n in _QUESTION_BASE if n != "latin_share"))


@dataclass(frozen=True)
class Linear:
    """A standardised logistic regression: logit = ((x − mean) / scale) · weights + bias."""

    names: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    weights: tuple[float, ...]
    bias: float

    def logit(self, x: np.ndarray) -> np.ndarray:
        z = (np.asarray(x, dtype=np.float64) - np.asarray(self.mean)) / np.asarray(self.scale)
        out: np.ndarray = z @ np.asarray(self.weights) + self.bias
        return out

    def probability(self, x: np.ndarray) -> np.ndarray:
        return sigmoid(self.logit(x))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Linear:
        return cls(tuple(d["names"]), tuple(d["mean"]), tuple(d["scale"]), tuple(d["weights"]), float(d["bias"]))


@dataclass(frozen=True)
class Ranker:
    """The fitted models of one embedding model (its fingerprint), and how they were fitted."""

    model: str  # fingerprint of the embedding model the weights belong to
    relevance: Linear  # PASSAGE_FEATURES → a score that orders passages (pairwise logit; higher = better)
    passage: Linear  # ("relevance",) → P(this passage answers): Platt scaling of that score
    confidence: Linear  # QUESTION_FEATURES → P(a top-5 passage answers)
    threshold: float  # answerable = confidence ≥ threshold
    fitted: dict[str, Any] = field(default_factory=dict)  # data, date, dev metrics: provenance only
    format: int = RANKER_FORMAT

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Ranker:
        if d.get("format") != RANKER_FORMAT:
            raise ValueError(f"ranker format {d.get('format')}, this code reads {RANKER_FORMAT}")
        relevance, confidence = Linear.from_dict(d["relevance"]), Linear.from_dict(d["confidence"])
        if relevance.names != PASSAGE_FEATURES or confidence.names != QUESTION_FEATURES:
            raise ValueError("ranker features differ from this code's: run `qa calibrate`")
        passage = Linear.from_dict(d["passage"])
        return cls(d["model"], relevance, passage, confidence, float(d["threshold"]), dict(d.get("fitted", {})))

    def save(self, path: Path) -> None:
        """Atomically (a temp file renamed over the target), like every other write of the index."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(self.as_dict(), ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> Ranker:
        return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))


def sigmoid(x: np.ndarray) -> np.ndarray:
    out: np.ndarray = 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x, dtype=np.float64)))  # overflow-free
    return out


def file_name(fingerprint: str) -> str:
    return f"ranker-{fingerprint}.json"


def packaged(fingerprint: str) -> Path:
    """The fit shipped with the code for the bundled model (written by `qa calibrate --packaged`)."""
    return Path(str(resources.files("qa") / "data" / file_name(fingerprint)))


def find_ranker(models_dir: Path, fingerprint: str, override: Path | None = None) -> Ranker | None:
    """QA_RANKER if set, else this machine's own fit (`qa calibrate`), else the one shipped for the model."""
    candidates = [override] if override else [models_dir / file_name(fingerprint), packaged(fingerprint)]
    for path in candidates:
        if path is None or not path.exists():
            continue
        try:
            ranker = Ranker.load(path)
        except (ValueError, KeyError, TypeError) as exc:  # another format or feature set: refit, don't crash
            log.warning("ignoring ranker %s: %s", path, exc)
            continue
        if ranker.model == fingerprint:
            return ranker
    return None


def rank_feature(rank: int | None) -> float:
    return 1.0 / math.log2(1 + rank) if rank else 0.0


def question_features(logits: np.ndarray, order: np.ndarray, passage: np.ndarray, signals: np.ndarray) -> np.ndarray:
    """QUESTION_FEATURES from the candidates' scores, their best-first order, PASSAGE_FEATURES rows and the
    question's QUESTION_SIGNALS."""
    if len(order) == 0:
        return _with_language(np.concatenate([[-20.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], signals]))
    col = {n: i for i, n in enumerate(PASSAGE_FEATURES)}
    top = order[:CONFIDENCE_TOP]
    first = int(order[0])
    second = float(logits[order[1]]) if len(order) > 1 else float(logits[first]) - 5.0
    ranked = [
        float(logits[first]),
        float(logits[first]) - second,
        float(passage[first, col["cosine"]]),
        float(passage[first, col["window"]]),
        float(passage[top, col["coverage"]].max()),
        float(passage[top, col["bm25"]].max()),
        float(passage[top, col["bigrams"]].max()),
        float(passage[first, col["numbers"]]),
    ]
    return _with_language(np.concatenate([ranked, signals]))


def _with_language(base: np.ndarray) -> np.ndarray:
    latin = base[_QUESTION_BASE.index("latin_share")]
    others = np.asarray([v for n, v in zip(_QUESTION_BASE, base, strict=True) if n != "latin_share"])
    return np.concatenate([base, latin * others])
