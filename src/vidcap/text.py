"""Caption text: the three ways vidcap cleans a caption, each for its own reader.

- `collapse_whitespace` (dataset preparation): runs of whitespace, line breaks included, become
  one space; nothing else changes, so a manifest keeps the annotation's case and punctuation.
- `clean_caption` (scoring): one line of plain text for coco-caption's Java tools — control and
  format characters and METEOR's field separator `|||` become spaces as well (METEOR hangs on a
  line break; `|||` would split its protocol's fields).
- `normalize_caption` (tokenizers): Unicode NFKC, whitespace collapsed, lower case unless asked
  not to — what the caption tokenizer is trained on and what training targets are.

They differ on purpose: lower-casing a manifest would lose information a tokenizer may want, and
NFKC before scoring would change what coco-caption's PTB tokenizer sees (scores must match the
toolkit's). Each builds on the one before it.
"""

from __future__ import annotations

import unicodedata

METEOR_SEPARATOR = "|||"
"""METEOR's field separator on its stdin protocol; never allowed inside a scored caption."""


def collapse_whitespace(text: str) -> str:
    """Runs of whitespace (line breaks included) become one space; the ends are stripped."""
    return " ".join(text.split())  # str.split() also splits on NBSP, \x1c-\x1f, \x85, U+2028...


def clean_caption(text: str) -> str:
    """One line of plain text: line breaks, tabs, control and format characters and `|||` become
    single spaces; leading and trailing space is dropped. Case, punctuation and non-ASCII letters
    are kept (the PTB tokenizer lower-cases and drops punctuation afterwards)."""
    if not text.isprintable():  # printable text (most captions) has no character to change
        chars = []
        for ch in text:
            category = unicodedata.category(ch)
            if category in ("Cc", "Zl", "Zp"):  # control (\n, \r, \t, \x00...), line/par. sep.
                chars.append(" ")
            elif category not in ("Cf", "Cs"):  # format (zero-width space, BOM), lone surrogates
                chars.append(ch)
        text = "".join(chars)
    while METEOR_SEPARATOR in text:
        text = text.replace(METEOR_SEPARATOR, " ")
    return collapse_whitespace(text)


def normalize_caption(text: str, *, lowercase: bool = True) -> str:
    """NFKC, single spaces, no leading or trailing space, lower case (unless asked not to)."""
    text = collapse_whitespace(unicodedata.normalize("NFKC", text))
    return text.lower() if lowercase else text
