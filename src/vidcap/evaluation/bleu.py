"""BLEU's statistics as coco-caption's `BleuScorer` gathers them, counted with numpy arrays.

pycocoevalcap's `Bleu` spends its time in `cook_refs` / `cook_test`: dicts of n-gram tuples per
caption, the references' maximum count of each n-gram, the hypothesis' clipped matches. Those are
integers, so counting them another way changes nothing: here they are counted for all videos at
once from the n-gram tables of `vidcap.evaluation.ngrams` (the same `split()` words and 1..4-grams),
and handed to a `BleuScorer` whose own `compute_score` does every floating-point step. About 2 s
of Python for MSR-VTT's test split becomes a fraction of a second; the scores are identical.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from vidcap.evaluation.ngrams import Layout, ngram_tables

NGRAM_ORDERS = 4
"""BLEU-1..4."""


def _correct(layout: Layout, grams: Any) -> np.ndarray:
    """Per video: its hypothesis' n-grams of one order, each counted at most as often as it occurs
    in one of the video's references (`cook_test`'s `correct`)."""
    first = layout.first_hyp
    is_ref = grams.caption < first
    video = layout.video[grams.caption]
    keys = video * grams.grams + grams.gram
    ref_keys, ref_count = keys[is_ref], grams.count[is_ref]
    order = np.argsort(ref_keys, kind="stable")
    ref_keys, ref_count = ref_keys[order], ref_count[order]
    videos = len(layout.ref_count)
    if not len(ref_keys):
        return np.zeros(videos, dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, ref_keys[1:] != ref_keys[:-1]])
    max_keys, max_count = ref_keys[starts], np.maximum.reduceat(ref_count, starts)
    hyp_keys, hyp_count = keys[~is_ref], grams.count[~is_ref]
    at = np.minimum(np.searchsorted(max_keys, hyp_keys), len(max_keys) - 1)
    clipped = np.where(max_keys[at] == hyp_keys, np.minimum(max_count[at], hyp_count), 0)
    return np.bincount(video[~is_ref], weights=clipped, minlength=videos).astype(np.int64)


def bleu_statistics(hypotheses: Sequence[str], references: Sequence[Sequence[str]], *,
                    n: int = NGRAM_ORDERS) -> list[dict[str, Any]]:
    """Per video, what pycocoevalcap's `cook_test` returns: `reflen` (the references' lengths in
    words), `testlen`, `guess` and `correct` (per order: the hypothesis' n-grams, and those
    matched, clipped by the references' counts)."""
    try:
        layout = Layout.of(hypotheses, references)
    except ValueError as err:
        raise ValueError(f"BLEU: {err}") from None
    words, tables = ngram_tables(layout.captions, n)
    first = layout.first_hyp
    correct = np.stack([_correct(layout, g) for g in tables], axis=1)
    testlen = words.length[first:]
    guess = np.maximum(testlen[:, None] - np.arange(n)[None, :], 0)
    ref_len = words.length[:first].tolist()
    return [{"reflen": ref_len[start:start + count], "testlen": t, "guess": g, "correct": c}
            for start, count, t, g, c in zip(layout.ref_start.tolist(),
                                              layout.ref_count.tolist(), testlen.tolist(),
                                              guess.tolist(), correct.tolist())]


def bleu_scorer(hypotheses: Sequence[str], references: Sequence[Sequence[str]], *,
                n: int = NGRAM_ORDERS) -> Any:
    """A pycocoevalcap `BleuScorer` holding these videos, as `scorer += (hyp, refs)` for each
    would leave it (only the statistics its `compute_score` reads are filled in)."""
    from pycocoevalcap.bleu.bleu_scorer import BleuScorer

    scorer = BleuScorer(n=n)
    scorer.ctest = bleu_statistics(hypotheses, references, n=n)
    scorer.crefs = [None] * len(scorer.ctest)  # compute_score reads only ctest
    scorer._score = None
    return scorer
