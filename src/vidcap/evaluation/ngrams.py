"""The n-grams of many captions at once, as integer arrays (for CIDEr-D and BLEU).

Captions are split as pycocoevalcap splits them (`str.split()`); words become integers, and the
n-grams of order k+1 are numbered from (id of the k-gram at a position, the next word). Each
caption's distinct n-grams of an order are one row each, with their count and the rank of their
first use in the caption (the order in which pycocoevalcap's `precook` dicts hold them).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass
class Words:
    """Every caption's words as integers, end to end: `tokens[i]` belongs to caption `caption[i]`
    at position `position[i]`; `length[c]` is caption c's number of words."""

    tokens: np.ndarray
    caption: np.ndarray
    position: np.ndarray
    length: np.ndarray
    vocabulary: int


@dataclass
class Grams:
    """The distinct n-grams of one order in each caption: one row per (caption, n-gram), sorted
    by caption then n-gram id (so a caption's rows are contiguous and searchable)."""

    caption: np.ndarray
    gram: np.ndarray
    """Ids of the n-grams of this order (shared by all captions)."""
    count: np.ndarray
    """Term frequency of the n-gram in the caption."""
    rank: np.ndarray
    """0 for the caption's first distinct n-gram of this order, 1 for the next one it uses..."""
    grams: int
    """Distinct n-grams of this order over all captions."""

    @property
    def keys(self) -> np.ndarray:
        """`caption * grams + gram`: increasing along the rows."""
        return self.caption * self.grams + self.gram


def caption_words(captions: Sequence[str]) -> Words:
    length = np.fromiter((len(c.split()) for c in captions), dtype=np.int64, count=len(captions))
    words = " ".join(captions).split()  # the same words as splitting each caption
    vocabulary = {w: i for i, w in enumerate(set(words))}
    tokens = np.fromiter(map(vocabulary.__getitem__, words), dtype=np.int64, count=len(words))
    caption = np.repeat(np.arange(len(captions), dtype=np.int64), length)
    starts = np.cumsum(length) - length
    position = np.arange(len(tokens), dtype=np.int64) - np.repeat(starts, length)
    return Words(tokens, caption, position, length, max(len(vocabulary), 1))


def distinct(values: np.ndarray) -> np.ndarray:
    """Sorted distinct values (by sorting: numpy's hash-based `unique` is slower here)."""
    ordered = np.sort(values)
    keep = np.ones(len(ordered), dtype=bool)
    keep[1:] = ordered[1:] != ordered[:-1]
    return ordered[keep]


def _count_grams(words: Words, starts: np.ndarray, ids: np.ndarray, grams: int) -> Grams:
    """Rows of (caption, n-gram) from the n-gram `ids` found at token positions `starts`."""
    keys = words.caption[starts] * grams + ids
    unique, first, count = np.unique(keys, return_index=True, return_counts=True)
    caption = unique // grams
    # rank within the caption by first use: the rows in the order of their first positions
    # (`starts` increases, so marking the first positions orders them without a sort)
    row_at = np.full(len(keys), -1, dtype=np.int64)
    row_at[first] = np.arange(len(unique), dtype=np.int64)
    by_use = row_at[row_at >= 0]
    block = np.searchsorted(caption, caption[by_use], side="left")
    rank = np.empty(len(unique), dtype=np.int64)
    rank[by_use] = np.arange(len(unique), dtype=np.int64) - block
    return Grams(caption, unique % grams, count, rank, grams)


def caption_ngrams(words: Words, orders: int) -> list[Grams]:
    """The n-grams of orders 1..`orders` of every caption; the ids of order k+1 number the pairs
    (id of the k-gram at a position, word k positions further on)."""
    out = []
    previous = words.tokens  # id of the n-gram starting at each token position, last order
    for k in range(1, orders + 1):
        starts = np.flatnonzero(words.position + k <= words.length[words.caption])
        if k == 1:
            ids, grams = words.tokens[starts], words.vocabulary
        else:
            pairs = previous[starts] * words.vocabulary + words.tokens[starts + k - 1]
            unique, ids = np.unique(pairs, return_inverse=True)
            grams = max(len(unique), 1)
            previous = np.full(len(words.tokens), -1, dtype=np.int64)
            previous[starts] = ids
        out.append(_count_grams(words, starts, ids.reshape(-1), grams))
    return out


_last: tuple[tuple[str, ...], int, Words, list[Grams]] | None = None
_last_lock = threading.Lock()


def ngram_tables(captions: Sequence[str], orders: int) -> tuple[Words, list[Grams]]:
    """`caption_words` and `caption_ngrams` of `captions`, kept for the last captions asked: BLEU
    and CIDEr of one scoring ask for the same ones (the arrays are shared: do not modify them)."""
    global _last
    key = tuple(captions)
    with _last_lock:
        if _last is not None and _last[1] == orders and _last[0] == key:
            return _last[2], _last[3]
    words = caption_words(key)
    grams = caption_ngrams(words, orders)
    with _last_lock:
        _last = (key, orders, words, grams)
    return words, grams


def forget_ngram_tables() -> None:
    """Drop the tables `ngram_tables` keeps (tens of MB for a test split)."""
    global _last
    with _last_lock:
        _last = None


@dataclass
class Layout:
    """Hypotheses and references as one list of captions: the references video by video, then the
    hypotheses (hypothesis i is caption `first_hyp + i`)."""

    captions: list[str]
    ref_count: np.ndarray
    """References of each video."""
    ref_start: np.ndarray
    """Index of each video's first reference."""
    video: np.ndarray
    """The video of each caption."""

    @property
    def first_hyp(self) -> int:
        """Index of the first hypothesis (= the number of references)."""
        return len(self.captions) - len(self.ref_count)

    @classmethod
    def of(cls, hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> Layout:
        """The layout of one hypothesis and at least one reference per video; ValueError else."""
        videos = len(hypotheses)
        if videos != len(references) or videos == 0:
            raise ValueError(f"one hypothesis per video and at least one video are needed "
                             f"({videos} hypotheses, {len(references)} reference lists)")
        ref_count = np.array([len(r) for r in references], dtype=np.int64)
        if not ref_count.all():
            raise ValueError("every video needs at least one reference caption")
        captions = [r for refs in references for r in refs] + list(hypotheses)
        video = np.concatenate([np.repeat(np.arange(videos), ref_count), np.arange(videos)])
        return cls(captions, ref_count, np.cumsum(ref_count) - ref_count, video)
