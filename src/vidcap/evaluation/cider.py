"""CIDEr-D as coco-caption's `Cider` computes it, with numpy arrays in place of Python dicts.

pycocoevalcap's `CiderScorer` (tylin/coco-caption, the scorer every captioning paper reports) walks
dicts of n-gram tuples: about 15 s for MSR-VTT's test split (2,990 videos x 20 references). This
module computes the same numbers about ten times faster, reproducing every step of
`cider_scorer.py`:

- n-grams of orders 1..n (n = 4) of `caption.split()` (captions come PTB-tokenized), counted per
  caption (the term frequency);
- document frequency df(g): the number of videos among whose references g occurs; the IDF weight is
  `log(V) - log(max(1, df(g)))` with V the number of videos scored (so an n-gram found in no
  reference, df 0, gets the full `log(V)`), and a caption's vector for order k holds
  `tf(g) * weight(g)` for its n-grams of order k;
- a caption's norm for order k: the square root of the sum of its squared values, added in the
  order the caption first uses its n-grams (`pow(v, 2)` there is libm's `pow`, reproduced with
  `np.float_power`, which calls it; `v * v` differs from it in the last bit for about 0.1 % of
  values);
- a caption's "length" is its count of bigrams (pycocoevalcap's `if n == 1` tests the order's
  index, so it counts 2-grams): `max(words - 1, 0)`;
- for a hypothesis and one reference, per order: the sum over the hypothesis' n-grams of
  `min(v_hyp, v_ref) * v_ref` (hypothesis values clipped by the reference's; 0 for n-grams the
  reference lacks), in the hypothesis' order of first use, divided by `norm_hyp * norm_ref` when
  both are non-zero (else left as is: it is then 0), times the Gaussian length penalty
  `e ** (-(delta ** 2) / (2 * sigma ** 2))`, delta the difference of the two lengths, sigma = 6;
- a video's score: the per-order values summed over its references in their order, the mean over
  the orders, divided by the number of references (empty ones included), times 10; the corpus
  score is numpy's mean of the video scores.

Every floating-point operation is the one pycocoevalcap performs, in the same order, so the scores
come out identical to the last bit, not merely close (the sums that a vectorised reduction would
reorder are done one position at a time across all captions). `bench/score.py` asserts that
identity on MSR-VTT's test split; the tests, on real MSVD and MSR-VTT references, allow 1e-9, in
case another platform's numpy or libm rounds a power or a logarithm differently (it held here
with numpy's AVX-512 code disabled too). Empty captions have no n-grams: they score 0 as
hypotheses and count as references with a zero vector, as in pycocoevalcap (which fails when no
reference holds a word; `score_captions` refuses such sets first, this function scores them 0).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from vidcap.evaluation.ngrams import Grams, Layout, distinct, ngram_tables

NGRAM_ORDERS = 4
"""coco-caption's n: 1- to 4-grams."""
SIGMA = 6.0
"""Standard deviation of the length penalty."""


def _ordered_sum(values: np.ndarray, segment: np.ndarray, rank: np.ndarray, size: int
                 ) -> np.ndarray:
    """Per segment, `0.0 + v_0 + v_1 + ...` with the values added in rank order, one at a time,
    as a Python loop adds them (a numpy reduction would pair them differently)."""
    out = np.zeros(size)
    if not len(values):
        return out
    small = rank.astype(np.uint16) if rank.max() < 1 << 16 else rank  # radix sort when small
    order = np.argsort(small, kind="stable")
    bounds = np.searchsorted(rank[order], np.arange(int(rank.max()) + 2))
    for r in range(len(bounds) - 1):
        rows = order[bounds[r]:bounds[r + 1]]
        out[segment[rows]] += values[rows]  # one row per segment and rank: no repeated index
    return out


def _weights(grams: Grams, is_reference: np.ndarray, video: np.ndarray, videos: int
             ) -> np.ndarray:
    """`log(V) - log(max(1, df))` per n-gram id, df counted over the videos' references."""
    rows = is_reference[grams.caption]
    in_video = distinct(video[grams.caption[rows]] * grams.grams + grams.gram[rows])
    df = np.bincount(in_video % grams.grams, minlength=grams.grams)
    ref_len = np.log(float(videos))
    counts, where = np.unique(df, return_inverse=True)
    log_df = np.array([np.log(max(1.0, float(d))) for d in counts])
    return ref_len - log_df[where.reshape(-1)]


@dataclass
class _Order:
    """One order's vectors: each row's value, and each caption's norm."""

    grams: Grams
    value: np.ndarray
    norm: np.ndarray


def _vectors(grams: Grams, weight: np.ndarray, captions: int) -> _Order:
    value = grams.count.astype(np.float64) * weight[grams.gram]
    squares = np.float_power(value, np.full_like(value, 2.0))  # libm pow, as pycocoevalcap
    norm = np.sqrt(_ordered_sum(squares, grams.caption, grams.rank, captions))
    return _Order(grams, value, norm)


def _numerators(order: _Order, first_hyp: int, ref_start: np.ndarray, ref_count: np.ndarray
                ) -> np.ndarray:
    """Per reference caption: sum over its video's hypothesis n-grams of min(v_hyp, v_ref) * v_ref
    (v_ref 0 where the reference lacks the n-gram), in the hypothesis' order of first use.
    Captions below `first_hyp` are the references, video by video; hypothesis i is caption
    `first_hyp + i`."""
    g = order.grams
    hyp_rows = np.flatnonzero(g.caption >= first_hyp)
    ref_rows = np.flatnonzero(g.caption < first_hyp)
    video = g.caption[hyp_rows] - first_hyp
    repeat = ref_count[video]
    rows = np.repeat(hyp_rows, repeat)  # each hypothesis row once per reference of its video
    offsets = np.arange(len(rows)) - np.repeat(np.cumsum(repeat) - repeat, repeat)
    reference = np.repeat(ref_start[video], repeat) + offsets
    v_ref = np.zeros(len(rows))
    if len(ref_rows):
        ref_keys = g.keys[ref_rows]
        wanted = reference * g.grams + g.gram[rows]
        at = np.minimum(np.searchsorted(ref_keys, wanted), len(ref_keys) - 1)
        found = ref_keys[at] == wanted
        v_ref[found] = order.value[ref_rows[at[found]]]
    products = np.minimum(order.value[rows], v_ref) * v_ref
    return _ordered_sum(products, reference, g.rank[rows], first_hyp)


def _penalty(delta: np.ndarray, sigma: float) -> np.ndarray:
    """pycocoevalcap's Gaussian length penalty, evaluated by the same Python expression."""
    deltas, where = np.unique(delta, return_inverse=True)
    table = np.array([np.e ** (-(float(d) ** 2) / (2 * sigma ** 2)) for d in deltas])
    return table[where.reshape(-1)]


def _order_values(order: _Order, first_hyp: int, ref_start: np.ndarray, ref_count: np.ndarray,
                  penalty: np.ndarray) -> np.ndarray:
    """One order's similarity of each (hypothesis, reference) pair, one value per reference."""
    numerator = _numerators(order, first_hyp, ref_start, ref_count)
    norm_ref = order.norm[:first_hyp]
    norm_hyp = order.norm[first_hyp:][np.repeat(np.arange(len(ref_count)), ref_count)]
    value = numerator.copy()
    np.divide(numerator, norm_hyp * norm_ref, out=value, where=(norm_hyp != 0) & (norm_ref != 0))
    return value * penalty


def cider_d(hypotheses: Sequence[str], references: Sequence[Sequence[str]], *,
            n: int = NGRAM_ORDERS, sigma: float = SIGMA) -> tuple[float, np.ndarray]:
    """coco-caption's CIDEr-D of tokenized captions: (corpus score, one score per video).

    `hypotheses[i]` is video i's caption, `references[i]` its reference captions (at least one);
    the IDF comes from the references given. Equal to
    `pycocoevalcap.cider.Cider().compute_score(gts, res)` (see the module docstring)."""
    try:
        layout = Layout.of(hypotheses, references)
    except ValueError as err:
        raise ValueError(f"CIDEr: {err}") from None
    videos, first_hyp = len(hypotheses), layout.first_hyp
    ref_count, ref_start, video = layout.ref_count, layout.ref_start, layout.video
    words, tables = ngram_tables(layout.captions, n)
    is_reference = np.arange(len(video)) < first_hyp
    bigrams = np.maximum(words.length - 1, 0) if n >= 2 else np.zeros_like(words.length)
    delta = bigrams[first_hyp:][video[:first_hyp]] - bigrams[:first_hyp]
    penalty = _penalty(delta, sigma)
    similarity = np.zeros((first_hyp, n))
    for k, grams in enumerate(tables):
        weight = _weights(grams, is_reference, video, videos)
        order = _vectors(grams, weight, len(video))
        similarity[:, k] = _order_values(order, first_hyp, ref_start, ref_count, penalty)
    total = np.zeros((videos, n))
    for j in range(int(ref_count.max())):  # references added one at a time, in their order
        has = np.flatnonzero(ref_count > j)
        total[has] += similarity[ref_start[has] + j]
    per_video = np.mean(total, axis=1) / ref_count * 10.0
    return float(np.mean(per_video)), per_video
