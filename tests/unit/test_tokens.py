"""Normalisation and BM25 terms: jieba with the domain dictionary, no model (fast)."""

from __future__ import annotations

from importlib import resources

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qa.tokens import Tokenizer, cjk_share, normalize

USERDICT = [
    line.split()[0]
    for line in (resources.files("qa") / "data" / "userdict.txt").read_text(encoding="utf-8").splitlines()
    if line.strip()
]


@pytest.fixture(scope="module")
def plain_jieba(tmp_path_factory: pytest.TempPathFactory) -> Tokenizer:
    """The same tokenizer with an empty user dictionary: what jieba alone makes of our domain words."""
    empty = tmp_path_factory.mktemp("dict") / "empty.txt"
    empty.write_text("", encoding="utf-8")
    return Tokenizer(userdict=empty)


@pytest.mark.parametrize(
    ("traditional", "simplified"),
    [("經濟安全保障", "经济安全保障"), ("產業空心化", "产业空心化"), ("臺灣積體電路製造", "台湾积体电路制造")],
)
def test_normalize_turns_traditional_into_simplified(traditional: str, simplified: str) -> None:
    assert normalize(traditional) == simplified


def test_normalize_turns_full_width_into_half_width() -> None:
    assert normalize("ＪＢＩＣ　２０２４，（注）") == "jbic 2024,(注)"


def test_normalize_lower_cases_only_when_asked() -> None:
    assert normalize("JBIC Report") == "jbic report"
    assert normalize("ＪＢＩＣ Report", lower=False) == "JBIC Report"


@pytest.mark.parametrize("ch", ["㈱", "ﬁ", "İ", "…"])
def test_normalize_keeps_a_character_whose_normal_form_is_longer(ch: str) -> None:
    # ㈱ → "(株)", ﬁ → "fi", "İ".lower() is two code points, … → "...": offsets would shift
    assert normalize(f"a{ch}b") == f"a{ch}b"


@settings(max_examples=50, deadline=None)
@given(st.text(max_size=40))
def test_normalize_preserves_length(text: str) -> None:
    """Highlight and evidence offsets computed on normalised text index the original text."""
    assert len(normalize(text)) == len(text)
    assert len(normalize(text, lower=False)) == len(text)


@pytest.mark.parametrize(
    ("text", "share"),
    [
        ("日本经济", 1.0),
        ("Japan", 0.0),
        ("日本 Japan", 2 / 7),  # letters only: the space does not count
        ("2019年，", 1.0),  # digits and punctuation are not letters
        ("12345", 0.0),
        ("", 0.0),
    ],
)
def test_cjk_share_counts_ideographs_among_letters(text: str, share: float) -> None:
    assert cjk_share(text) == pytest.approx(share)


def test_terms_drop_stop_words_and_punctuation(tokenizer: Tokenizer) -> None:
    terms = tokenizer.term_list("日本的产业空心化是什么？")
    assert "产业空心化" in terms
    assert not {"的", "是", "什么", "？", "?"} & set(terms)
    assert not set(terms) & tokenizer.stopwords


def test_terms_drop_english_stop_words_and_single_letters(tokenizer: Tokenizer) -> None:
    assert tokenizer.term_list("What is the share of Japan's exports?") == ["share", "japan", "exports"]


@pytest.mark.parametrize("word", USERDICT)
def test_domain_words_of_the_user_dictionary_stay_whole(tokenizer: Tokenizer, word: str) -> None:
    assert normalize(word) in tokenizer.term_list(f"关于{word}的问题")


@pytest.mark.parametrize("word", ["产业空心化", "经济安全保障推进法", "日本国际协力银行", "芯片四方联盟", "广场协议"])
def test_jieba_alone_would_split_the_domain_words(plain_jieba: Tokenizer, word: str) -> None:
    assert word not in plain_jieba.term_list(f"关于{word}的问题")  # so the user dictionary is what keeps them


def test_traditional_and_full_width_questions_get_the_same_terms(tokenizer: Tokenizer) -> None:
    assert tokenizer.term_list("日本的產業空心化") == tokenizer.term_list("日本的产业空心化")
    assert tokenizer.term_list("ＪＢＩＣ的報告") == tokenizer.term_list("jbic的报告") == ["jbic", "报告"]


def test_term_offsets_point_into_the_original_text(tokenizer: Tokenizer) -> None:
    text = "日本國際協力銀行（ＪＢＩＣ）的對外直接投資"
    terms = tokenizer.terms(text)
    assert terms
    for t in terms:
        assert normalize(text[t.start : t.end]) == t.text


def test_terms_are_deterministic(tokenizer: Tokenizer) -> None:
    text = "美日贸易协议与5500亿美元的对外直接投资，以及经济安全保障推进法。"
    first = tokenizer.term_list(text)
    assert tokenizer.term_list(text) == first
    assert Tokenizer().term_list(text) == first  # another instance (another worker) agrees
