"""Text normalisation and jieba tokens for BM25, highlighting and chunk boundaries.

Normalisation is length-preserving (one character in, one character out) so a
token's offsets in the normalised text are its offsets in the original text:
highlights and evidence spans need that.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

log = logging.getLogger(__name__)

_WORDISH = re.compile(r"[\w\u4e00-\u9fff]")
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_LETTER = re.compile(r"[^\W\d_]")


def cjk_share(text: str) -> float:
    """Share of letters that are CJK ideographs: ~1 for Chinese, 0 for English."""
    letters = len(_LETTER.findall(text))
    return len(_CJK.findall(text)) / letters if letters else 0.0


@lru_cache(maxsize=1)
def _t2s():  # type: ignore[no-untyped-def]
    import opencc

    return opencc.OpenCC("t2s")


@lru_cache(maxsize=65536)
def _norm_char(ch: str, lower: bool) -> str:
    """Full width → half width (NFKC), lower-case; only when the result stays one character."""
    out = unicodedata.normalize("NFKC", ch)
    if len(out) != 1:
        return ch
    low = out.lower() if lower else out
    return low if len(low) == 1 else out


def normalize(text: str, lower: bool = True) -> str:
    """Traditional → simplified, full → half width, lower-case; same length as `text`."""
    simplified = _t2s().convert(text)
    if len(simplified) != len(text):  # phrase-level conversion changed length: go char by char
        simplified = "".join(_t2s().convert(ch) if len(_t2s().convert(ch)) == 1 else ch for ch in text)
    return "".join(_norm_char(ch, lower) for ch in simplified)


@dataclass(frozen=True)
class Token:
    text: str
    start: int
    end: int


class Tokenizer:
    """jieba with the domain user dictionary and stop words; one instance per process."""

    def __init__(self, userdict: Path | None = None, stopwords: Path | None = None) -> None:
        import jieba

        jieba.setLogLevel(logging.WARNING)
        self._jieba = jieba.Tokenizer()
        data = resources.files("qa") / "data"
        with resources.as_file(data / "userdict.txt") as default_dict:
            self._jieba.load_userdict(str(userdict or default_dict))
        stop_path = stopwords or data / "stopwords.txt"
        self.stopwords = frozenset(Path(str(stop_path)).read_text(encoding="utf-8").split())

    def words(self, text: str) -> list[Token]:
        """jieba words of `text` (not normalised), with offsets; used for chunk boundaries."""
        return [Token(w, s, e) for w, s, e in self._jieba.tokenize(text, HMM=True)]

    def terms(self, text: str) -> list[Token]:
        """BM25 terms: normalised jieba search-mode words, no stop words or punctuation."""
        norm = normalize(text)
        out = []
        for word, start, end in self._jieba.tokenize(norm, mode="search", HMM=True):
            word = word.strip()
            if word and word not in self.stopwords and _WORDISH.search(word) and not _single_latin(word):
                out.append(Token(word, start, end))
        return out

    def term_list(self, text: str) -> list[str]:
        return [t.text for t in self.terms(text)]


def _single_latin(word: str) -> bool:
    """One ASCII letter ("s" of "Japan's", "i"): no use for matching."""
    return len(word) == 1 and word.isascii() and word.isalpha()
