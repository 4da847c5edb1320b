"""Cleaning drops noise, fixes spaces and keeps a map to the raw text."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import CORPUS
from qa.cleaning import clean
from qa.corpus import load_corpus

DOCS = {d.doc_id: d for d in load_corpus(CORPUS)}


def test_every_kept_character_comes_from_its_raw_offset() -> None:
    for doc in DOCS.values():
        c = clean(doc.text)
        assert len(c.text) == len(c.offsets)
        for ch, pos in zip(c.text, c.offsets, strict=True):
            assert ch == doc.text[pos] or (ch in " \n" and doc.text[pos].isspace())


def test_offsets_increase() -> None:
    for doc in DOCS.values():
        offs = clean(doc.text).offsets
        assert all(a < b for a, b in itertools.pairwise(offs))


def test_page_furniture_is_dropped() -> None:
    text = "\n".join(clean(d.text).text for d in DOCS.values())
    for noise in (
        "![]()",
        "1. 2. 3. 4. 5.",
        "资料来源",
        "特别声明",
        "Notice: The content above",
        "图表5",
        "［12］",
        "①",
    ):
        assert noise not in text


def test_spaces_between_chinese_characters_are_removed() -> None:
    assert clean("在 世 界 经 济 脆 弱 性 更 加 突 出").text == "在世界经济脆弱性更加突出"
    assert "在世界经济脆弱性更加突出" in clean(DOCS["003_9a26cb7cfdeac646"].text).text


def test_spaces_inside_english_are_kept() -> None:
    assert clean("推动 Data Free Flow with Trust 的理念").text == "推动Data Free Flow with Trust的理念"
    assert "2纳米" in clean("量产 2 纳米芯片").text


def test_pdf_line_breaks_inside_sentences_are_joined() -> None:
    raw = "日本房地产泡沫的膨胀和破裂与产业空心化\n\n现象的出现，存在着联系。\n\n二是，土地价格上涨。"
    assert clean(raw).text == "日本房地产泡沫的膨胀和破裂与产业空心化现象的出现，存在着联系。\n二是，土地价格上涨。"


def test_english_abstracts_are_kept() -> None:
    text = clean(DOCS["003_9a26cb7cfdeac646"].text).text
    assert "Building a System of Collective Resilience" in text
    assert "Realizing the infeasibility of decoupling from China" in text


def test_footnote_text_survives_without_its_mark() -> None:
    text = clean(DOCS["003_9a26cb7cfdeac646"].text).text
    assert "关于当今国际经济秩序中的三股潮流" in text


def test_real_content_is_kept() -> None:
    for doc in DOCS.values():
        raw = "".join(doc.text.split())
        kept = "".join(clean(doc.text).text.split())
        assert len(kept) >= 0.85 * len(raw), doc.doc_id


NOISE = st.sampled_from(
    ["![]()", "资料来源：Wind,平安证券研究所", "图表3 日本对外直接投资", "［12］", "①", "   ", "\n\n"]
)
CHINESE = st.text(alphabet="日本产业空心化经济安全同盟美国半导体供应链，。、；“”（）", min_size=1, max_size=40)
LATIN = st.text(alphabet="abcdefgXYZ 0123456789.,%-", min_size=1, max_size=20)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(CHINESE, LATIN, NOISE), min_size=1, max_size=30).map("".join))
def test_cleaned_text_maps_back_for_generated_text(raw: str) -> None:
    c = clean(raw)
    assert len(c.text) == len(c.offsets)
    for ch, pos in zip(c.text, c.offsets, strict=True):
        assert 0 <= pos < len(raw)
        assert ch == raw[pos] or (ch in " \n" and raw[pos].isspace())
    assert "［12］" not in c.text and "①" not in c.text
