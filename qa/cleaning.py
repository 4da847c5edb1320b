"""Cleaning of raw PDF/web extractions, keeping a map from every kept character to the raw text.

Line level: drop page furniture (image placeholders, the `1. 2. 3.` line, chart
captions, `资料来源` lines, the platform disclaimer, lines repeated 3+ times).
Character level: drop reference marks (`［12］`, `①`), drop spaces next to CJK,
keep single spaces between Latin words and numbers, join PDF line breaks.
`\n` in the cleaned text marks a paragraph boundary (ends of sentences, headings).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

_IMAGE = re.compile(r"!\[[^\]]*\]\([^)]*\)")
_NUMBER_LIST = re.compile(r"(?:\d{1,3}\.\s*){5,}")
_SOURCE = re.compile(r"^(?:资料来源|数据来源|来源)\s*[:：]")
_CAPTION = re.compile(r"^(?:图表|图|表)\s*\d+[\s：:、.]")
_DISCLAIMER = re.compile(r"^(?:特别声明\s*[:：]|Notice:\s*The content above)", re.I)
_REF_MARK = re.compile(r"［\d{1,3}］|[\u2460-\u2473\u2776-\u277f]")
HEADING = re.compile(
    r"^(?:[一二三四五六七八九十]+、|（[一二三四五六七八九十]+）|\([一二三四五六七八九十]+\)|\d{1,2}[.、．](?!\d)|第[一二三四五六七八九十]+[章节部分])"
)
_TERMINAL = "。！？!?；;”」』）)…"
_LATIN = re.compile(r"[A-Za-z0-9,.;:()'\"%&/+\-–—_$€£¥°]")


@dataclass(frozen=True)
class CleanText:
    text: str
    offsets: tuple[int, ...]  # offsets[i]: raw index of text[i]
    raw: str
    breaks: frozenset[int] = frozenset()  # cleaned offsets where dropped noise stood: chunks don't span them

    def raw_span(self, start: int, end: int) -> tuple[int, int]:
        """Raw [start, end) covering cleaned text[start:end]."""
        return self.offsets[start], self.offsets[end - 1] + 1


@dataclass(frozen=True)
class _Line:
    text: str
    start: int  # raw offset of text[0]


def is_heading(line: str) -> bool:
    line = line.strip()
    return bool(HEADING.match(line)) and len(line) <= 40 and not line.endswith("。")


def is_noise(line: str, repeated: Counter[str]) -> bool:
    s = line.strip()
    if not s:
        return True
    if _IMAGE.fullmatch(s) or _NUMBER_LIST.fullmatch(s + " "):
        return True
    if _SOURCE.match(s) or _DISCLAIMER.match(s):
        return True
    if _CAPTION.match(s) and len(s) <= 60 and "。" not in s:
        return True
    key = " ".join(s.split())
    return len(key) >= 2 and repeated[key] >= 3


def _lines(raw: str) -> list[_Line]:
    return [_Line(m.group(), m.start()) for m in re.finditer(r"[^\n]+", raw)]


def clean(raw: str) -> CleanText:
    lines = _lines(raw)
    repeated = Counter(" ".join(ln.text.split()) for ln in lines)
    chars: list[str] = []
    offsets: list[int] = []
    breaks: set[int] = set()
    prev: _Line | None = None
    dropped = False
    for line in lines:
        if is_noise(line.text, repeated):
            dropped = dropped or bool(line.text.strip())
            continue
        kept = _clean_line(line)
        if not kept:
            continue
        if prev is not None and chars:
            sep = "\n" if dropped else _separator(prev.text, line.text, chars[-1], kept[0][0])
            if sep:
                chars.append(sep)
                offsets.append(line.start - 1)  # the raw line break
            if dropped:
                breaks.add(len(chars))
        dropped = False
        for ch, pos in kept:
            chars.append(ch)
            offsets.append(pos)
        prev = line
    return CleanText("".join(chars), tuple(offsets), raw, frozenset(breaks))


def _separator(prev: str, nxt: str, last: str, first: str) -> str:
    if is_heading(prev) or is_heading(nxt) or prev.rstrip().endswith(tuple(_TERMINAL)):
        return "\n"
    if _LATIN.match(last) and _LATIN.match(first):
        return " "
    return ""


def _clean_line(line: _Line) -> list[tuple[str, int]]:
    """Kept characters of one line with raw offsets: reference marks out, spaces fixed."""
    text = line.text
    drop = bytearray(len(text))
    for m in _REF_MARK.finditer(text):
        drop[m.start() : m.end()] = b"\x01" * (m.end() - m.start())
    for m in _IMAGE.finditer(text):
        drop[m.start() : m.end()] = b"\x01" * (m.end() - m.start())
    kept = [(ch, line.start + i) for i, ch in enumerate(text) if not drop[i]]
    out: list[tuple[str, int]] = []
    i = 0
    while i < len(kept):
        ch, pos = kept[i]
        if not ch.isspace():
            out.append((ch, pos))
            i += 1
            continue
        j = i
        while j < len(kept) and kept[j][0].isspace():
            j += 1
        if out and j < len(kept) and _LATIN.match(out[-1][0]) and _LATIN.match(kept[j][0]):
            out.append((" ", pos))
        i = j
    return out
