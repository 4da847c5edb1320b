"""Does a decoded body read as text? And titles that stay one visible line.

A leaf module (no qa imports) so the admin upload and the corpus loader judge
with the same rules: a file the API accepted is never skipped by the next build.

GB18030 maps almost any run of high bytes to some character, so a GB18030
reading is accepted only if it looks like text; charset-normalizer's mess ratio
is the judge. Valid UTF-8 is itself strong evidence of UTF-8 and is not judged
by it: emoji in CJK text or box-drawing tables would score as mess (1.0, 1.87).
"""

from __future__ import annotations

import math
import unicodedata
from collections import Counter
from dataclasses import dataclass, field

from charset_normalizer.md import mess_ratio

HIDDEN = frozenset({"Cf", "Cn", "Co"})  # format (zero-width, bidi, BOM, soft hyphen), unassigned, private use
_INVISIBLE = HIDDEN | {"Cc", "Cs"}
_BREAKS = frozenset("\r\n\v\f\x85\u2028\u2029")
SAMPLE_CHARS = 65_536  # judged on the first 64k characters: bounded work for a 5 MB upload
MOSTLY_HIDDEN = 0.5  # more than half of the non-space characters are Cn/Co/Cf or U+FFFD: nothing left to read
_LOST = "\ufffd"  # the replacement character: an earlier conversion already lost what stood there (锟斤拷 in GBK)
# Mess ratio of the GB18030 reading (charset_normalizer.md.mess_ratio of the judged sample), measured on texts of
# ≥ 32 visible characters: corpus files ≤ 0.001, their opencc s2t/s2twp conversions ≤ 0.009, their lines and
# sentences ≤ 0.097, 742 test questions ≤ 0.067, Markdown files ≤ 0.11, Python ≤ 0.16; the most symbol-heavy
# Markdown paragraph 0.43 (ASCII, never judged; non-ASCII ones ≤ 0.28). Random bytes 0x81–0xFE read as GB18030
# (200 seeds): ≥ 0.50 at 200 B (median 1.16), ≥ 0.65 at 500 B, ≥ 0.83 at 1 kB, ≥ 1.04 at 4 kB, ≥ 1.96 at 20 kB;
# bodies of 0x80–0xFF never decode from 1 kB on. 0.6 leaves 0.17 above the worst text and refuses 196/200
# junk bodies of 200 B, all from 500 B.
MESS_THRESHOLD = 0.6
MESS_MIN_CHARS = 32  # below this one or two punctuation marks decide the ratio (a legit " 。" scores 0.5)
# Fill bytes read as GB18030: 0xCC… is 烫烫烫 (MSVC's uninitialised stack), 0xCD… 屯屯屯 (heap). Mess ratio can't
# see these (one character repeated scores 0.0–0.2). Lines and 100-character windows of the corpus, Markdown
# and Python with ≥ 64 visible characters use ≥ 6 distinct ones (a `# --- dense ---…` comment), prose dozens.
FILLER_MIN_CHARS = 64
FILLER_MAX_DISTINCT = 4
_PLACEHOLDER = "\ue000"  # every Cn/Co character is judged as this one, see _judged


@dataclass(frozen=True)
class NotText:
    """Why a decoded body is not accepted as a document's text."""

    message: str
    details: dict[str, object] = field(default_factory=dict)


def is_visible(ch: str) -> bool:
    """Not a space, control, format (zero-width, bidi, BOM), unassigned, private-use or surrogate character."""
    return not ch.isspace() and unicodedata.category(ch) not in _INVISIBLE


def has_visible(text: str) -> bool:
    return any(is_visible(ch) for ch in text)


def clean_title(text: str) -> str:
    """One line of visible text: a title can't break the layout it is shown in or reverse what follows it.

    Line breaks and controls become spaces; format characters (bidi controls such as U+202E, zero-width
    characters, BOM, soft hyphen) go; lone surrogates become U+FFFD; whitespace runs collapse to one space.
    """
    return " ".join("".join(_title_char(ch) for ch in text).split())


def _title_char(ch: str) -> str:
    if ch in _BREAKS:
        return " "
    category = unicodedata.category(ch)
    if category == "Cf":
        return ""
    if category == "Cc":
        return " "
    return "\ufffd" if category == "Cs" else ch


def preview(text: str, limit: int = 24) -> str:
    """The start of `text` as one short visible line, for error messages."""
    line = clean_title(text[: limit * 4])
    return line if len(line) <= limit else line[:limit] + "…"


def not_text(text: str, encoding: str) -> NotText | None:
    """Why `text` (decoded from `encoding`) is not a document, or None; emptiness is the caller's rule."""
    sample = text[:SAMPLE_CHARS]
    counts = Counter(sample)
    categories = {ch: unicodedata.category(ch) for ch in counts}
    hidden = sum(n for ch, n in counts.items() if categories[ch] in HIDDEN or ch == _LOST)
    visible = {ch: n for ch, n in counts.items() if ch != _LOST and is_visible(ch)}
    shown = sum(visible.values())
    if hidden > MOSTLY_HIDDEN * (hidden + shown) > 0:
        return NotText(
            f"the text is mostly invisible or lost: {hidden} of {hidden + shown} characters are unassigned, "
            "private-use, format (zero-width spaces, bidi controls) or replacement (U+FFFD) characters",
            {"hidden": hidden, "characters": hidden + shown},
        )
    if encoding != "gb18030" or sample.isascii():
        return None  # ASCII reads the same in both encodings
    return _filler(visible, shown) or _mojibake(sample, categories, shown)


def _filler(visible: dict[str, int], shown: int) -> NotText | None:
    if shown < FILLER_MIN_CHARS or len(visible) > FILLER_MAX_DISTINCT:
        return None
    chars = "".join(sorted(visible, key=visible.__getitem__, reverse=True))
    return NotText(
        f"the body does not look like text in a known encoding: read as GB18030 it is {shown} characters made "
        f"of only {chars!r} (filler bytes, like 0xCC read as 烫烫烫)",
        {"encoding": "gb18030", "distinct": len(visible)},
    )


def _mojibake(sample: str, categories: dict[str, str], shown: int) -> NotText | None:
    if shown < MESS_MIN_CHARS:
        return None
    ratio = mess_ratio(_judged(sample, categories), maximum_threshold=math.inf)  # no early stop: whole sample
    if ratio < MESS_THRESHOLD:
        return None
    return NotText(
        "the body does not look like text in a known encoding: read as GB18030 it is mojibake "
        f"({preview(sample)!r}; mess ratio {ratio:.2f}, the limit is {MESS_THRESHOLD}). "
        "If it is text, send it as UTF-8 with charset=utf-8",
        {"encoding": "gb18030", "mess_ratio": ratio, "limit": MESS_THRESHOLD},
    )


def _judged(sample: str, categories: dict[str, str]) -> str:
    """Format characters dropped (their own rule above), every Cn/Co as one placeholder.

    The placeholder keeps them unprintable to the detector while bounding its per-character cache (an
    unbounded lru_cache in charset-normalizer): GB18030 can name all 1.1M code points, ~300 MB of cache.
    """
    table: dict[int, str | None] = {}
    for ch, category in categories.items():
        if category == "Cf":
            table[ord(ch)] = None
        elif category in ("Cn", "Co"):
            table[ord(ch)] = _PLACEHOLDER
    return sample.translate(table)
