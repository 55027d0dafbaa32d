"""ROUGE-L as coco-caption's `Rouge` computes it, the LCS of every (hypothesis, reference) pair at
once.

pycocoevalcap's `Rouge` (beta = 1.2): tokens are `caption.split(" ")` (so an empty caption is one
empty token), the longest common subsequence of hypothesis and reference by dynamic programming in
Python, precision `lcs / len(hypothesis)` and recall `lcs / len(reference)`, each maximised over
the references, score `((1 + beta**2) * P * R) / (R + beta**2 * P)` (0 when either is 0), and the
corpus score numpy's mean of the video scores. About 2 s for MSR-VTT's test split.

Here the LCS lengths come from the bit-parallel algorithm of Allison and Dix (1986; as in Hyyrö,
"Bit-parallel LCS-length computation revisited", 2004): the hypothesis' positions are the bits of
a 64-bit word, each reference word updates it with one addition, and all pairs advance together as
numpy arrays. The LCS lengths are integers, hence exact; the floating-point steps after them are
pycocoevalcap's, in its order, so the scores are identical. Hypotheses over 64 words (none in
practice) go through pycocoevalcap's own `my_lcs`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vidcap.evaluation.ngrams import Layout

BETA = 1.2
"""Weight of recall in the F-measure (coco-caption's)."""
_WORD_BITS = 64
_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.int64)


_CHUNK = 4096
"""References whose LCS advance together (sorted by length, so padding stays small)."""


def _tokens(captions: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(word ids end to end, first index of each caption, its length) of `caption.split(" ")`."""
    length = np.fromiter((c.count(" ") + 1 for c in captions), dtype=np.int64,
                         count=len(captions))
    words = " ".join(captions).split(" ")  # the captions' split(" ") words, end to end
    vocabulary = {w: i for i, w in enumerate(set(words))}
    ids = np.fromiter(map(vocabulary.__getitem__, words), dtype=np.int64, count=len(words))
    return ids, np.cumsum(length) - length, length


def _table(ids: np.ndarray, start: np.ndarray, length: np.ndarray) -> np.ndarray:
    """The captions' word ids as rows, padded with -1."""
    width = np.arange(max(int(length.max()), 1) if len(length) else 1)
    valid = width[None, :] < length[:, None]
    at = np.where(valid, start[:, None] + width[None, :], 0)
    return np.where(valid, ids[at] if len(ids) else -1, -1)


def _hypothesis_masks(hyp: np.ndarray, vocab: int) -> tuple[np.ndarray, np.ndarray]:
    """(sorted keys `video * vocab + word`, the bits of the positions where the video's
    hypothesis holds that word), for hypotheses of at most 64 words."""
    v_idx, pos = np.nonzero(hyp >= 0)
    keys = v_idx * vocab + hyp[v_idx, pos]
    bits = np.left_shift(np.uint64(1), pos.astype(np.uint64))
    order = np.argsort(keys, kind="stable")
    keys, bits = keys[order], bits[order]
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    return keys[starts], np.bitwise_or.reduceat(bits, starts)


def _lcs_lengths(ref: np.ndarray, video: np.ndarray, hyp_len: np.ndarray,
                 masks: tuple[np.ndarray, np.ndarray], vocab: int) -> np.ndarray:
    """LCS length of each reference (row of `ref`) with its video's hypothesis."""
    keys, bits = masks
    wanted = video[:, None] * vocab + ref
    at = np.minimum(np.searchsorted(keys, wanted), len(keys) - 1)
    match = np.where((keys[at] == wanted) & (ref >= 0), bits[at], np.uint64(0))
    state = np.full(len(ref), np.uint64(0xFFFFFFFFFFFFFFFF))
    for j in range(ref.shape[1]):  # one reference word at a time, all pairs together
        matched = state & match[:, j]
        state = (state + matched) | (state - matched)  # wraps around: only the low m bits count
    m = hyp_len[video].astype(np.uint64)
    low = state & (np.uint64(0xFFFFFFFFFFFFFFFF) >> (np.uint64(_WORD_BITS) - m))
    ones = _POPCOUNT[low.view(np.uint8)].reshape(-1, 8).sum(axis=1)
    return hyp_len[video] - ones  # the zero bits among the hypothesis' m


def _all_lcs(layout: Layout) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(LCS length of each reference with its video's hypothesis, lengths of the hypotheses,
    lengths of the references) in words of `split(" ")`."""
    first = layout.first_hyp
    ids, start, length = _tokens(layout.captions)
    video = layout.video[:first]
    hyp_len = length[first:]
    vocab = int(ids.max()) + 2
    short = np.flatnonzero(hyp_len[video] <= _WORD_BITS)
    fits = hyp_len <= _WORD_BITS
    masks = _hypothesis_masks(np.where(fits[:, None], _table(ids, start[first:],
                                                             np.minimum(hyp_len, _WORD_BITS)),
                                       -1), vocab)
    lcs = np.zeros(first, dtype=np.int64)
    short = short[np.argsort(length[short], kind="stable")]
    for chunk in np.array_split(short, max(1, -(-len(short) // _CHUNK))):
        if len(chunk):
            ref = _table(ids, start[chunk], length[chunk])
            lcs[chunk] = _lcs_lengths(ref, video[chunk], hyp_len, masks, vocab)
    long = np.flatnonzero(hyp_len[video] > _WORD_BITS)
    if len(long):
        from pycocoevalcap.rouge.rouge import my_lcs

        for i in long:
            lcs[i] = my_lcs(layout.captions[i].split(" "),
                            layout.captions[first + video[i]].split(" "))
    return lcs, hyp_len, length[:first]


def rouge_l(hypotheses: Sequence[str], references: Sequence[Sequence[str]], *,
            beta: float = BETA) -> tuple[float, np.ndarray]:
    """coco-caption's ROUGE-L of tokenized captions: (corpus score, one score per video); equal to
    `pycocoevalcap.rouge.rouge.Rouge().compute_score(gts, res)`."""
    try:
        layout = Layout.of(hypotheses, references)
    except ValueError as err:
        raise ValueError(f"ROUGE-L: {err}") from None
    lcs, hyp_len, ref_len = _all_lcs(layout)
    video = layout.video[:layout.first_hyp]
    precision = lcs / hyp_len[video].astype(np.float64)
    recall = lcs / ref_len.astype(np.float64)
    p = np.maximum.reduceat(precision, layout.ref_start)
    r = np.maximum.reduceat(recall, layout.ref_start)
    both = (p != 0) & (r != 0)
    score = np.zeros(len(hypotheses))
    score[both] = ((1 + beta ** 2) * p[both] * r[both]) / (r[both] + beta ** 2 * p[both])
    return float(np.mean(score)), score
