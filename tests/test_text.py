"""vidcap.text: the caption cleaners of dataset preparation, scoring and tokenizers."""

from __future__ import annotations

import unicodedata

from hypothesis import given, settings
from hypothesis import strategies as st

from vidcap.text import clean_caption, collapse_whitespace, normalize_caption


def test_collapse_whitespace_keeps_case_and_punctuation():
    assert collapse_whitespace("  A man,\n is  Running. ") == "A man, is Running."
    assert collapse_whitespace(" \t\r\n") == ""


def test_clean_caption_makes_one_plain_line():
    assert clean_caption("  a man\nis\r\nrunning\t fast  ") == "a man is running fast"
    assert clean_caption("a ||| b |||| c ||||||d") == "a b | c d"
    assert "|||" not in clean_caption("||||||||")
    assert clean_caption("x\x00y\x85z\u2028w\u2029v\x0bu\x1cq") == "x y z w v u q"
    assert clean_caption("zero\u200bwidth\ufeff") == "zerowidth"
    assert clean_caption("no\u00a0break") == "no break"
    assert clean_caption("lone \ud800 surrogate") == "lone surrogate"
    # case, punctuation and non-ASCII letters are the tokenizer's business
    assert clean_caption("Un Café, naïve — 日本語!") == "Un Café, naïve — 日本語!"
    assert clean_caption(" \n\t ") == ""


def test_normalize_caption():
    assert normalize_caption("  A Red\tcircle\n moves ") == "a red circle moves"
    assert normalize_caption("A Red \ufb01sh", lowercase=False) == "A Red fish"  # NFKC ligature


@settings(max_examples=500, deadline=None)
@given(st.text())
def test_printable_text_holds_no_character_clean_caption_changes(text):
    """clean_caption skips its per-character pass for printable text: such text must hold none of
    the categories that pass replaces (Cc, Zl, Zp) or drops (Cf, Cs)."""
    if text.isprintable():
        assert not {unicodedata.category(c) for c in text} & {"Cc", "Zl", "Zp", "Cf", "Cs"}
