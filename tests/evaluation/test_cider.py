"""CIDEr-D (`vidcap.evaluation.cider`) against pycocoevalcap's `Cider`, on hand-made edge cases and
on the real MSVD and MSR-VTT test references."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pycocoevalcap.cider.cider import Cider

from tests.evaluation.captions import DATASETS, held_out, real_captions
from vidcap.evaluation.cider import cider_d
from vidcap.evaluation.metrics import score_cider

TOLERANCE = 1e-9


def _compare(hypotheses: list[str], references: list[list[str]]) -> tuple[float, np.ndarray]:
    """Both scorers on the same captions; asserts they agree and returns pycocoevalcap's."""
    ids = [f"v{i}" for i in range(len(hypotheses))]
    want, want_each = Cider().compute_score({v: list(r) for v, r in zip(ids, references)},
                                            {v: [h] for v, h in zip(ids, hypotheses)})
    got, got_each = cider_d(hypotheses, references)
    assert got == pytest.approx(float(want), abs=TOLERANCE, rel=0)
    assert len(got_each) == len(ids)
    assert np.max(np.abs(np.asarray(got_each) - np.asarray(want_each))) <= TOLERANCE
    return float(want), np.asarray(want_each)


def test_hand_made_edge_cases_equal_pycocoevalcap():
    hypotheses = [
        "a man is cooking pasta in a kitchen",  # a reference word for word
        "a dog a dog a dog a dog runs",  # repeated n-grams: clipped by the references' counts
        "",  # empty: no n-grams, zero norm
        "zebra",  # one word found in no reference: df 0, no bigram
        "someone cooks",
        "a cat sleeps on the sofa while a man reads a long book in the quiet living room",
    ]
    references = [
        ["a man is cooking pasta in a kitchen", "someone cooks", "a man cooks pasta"],
        ["a dog runs", "a dog runs on the grass", ""],  # an empty reference still counts
        ["a woman sings", "someone sings a song"],
        ["a zebra"],
        ["a man is cooking pasta in a kitchen", "someone cooks"],
        ["a cat sleeps", "a cat is sleeping on a sofa", "the cat sleeps"],
    ]
    corpus, each = _compare(hypotheses, references)
    assert corpus > 0 and each[2] == 0.0 and each[0] > 1.0


def test_one_video_and_all_empty_hypotheses_score_zero():
    # one video: every n-gram's df equals the set size, IDF log(1) - log(1) = 0
    assert _compare(["a man runs"], [["a man runs", "someone runs"]])[0] == 0.0
    assert _compare(["", ""], [["a b", "c"], ["d e f"]])[0] == 0.0
    # references without a word: pycocoevalcap fails (max() of no document frequencies);
    # `score_captions` refuses such sets before scoring, and cider_d scores them 0
    corpus, each = cider_d(["a b", "c d"], [[""], [""]])
    assert corpus == 0.0 and list(each) == [0.0, 0.0]


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="one hypothesis per video"):
        cider_d(["a"], [["a"], ["b"]])
    with pytest.raises(ValueError, match="one hypothesis per video"):
        cider_d([], [])
    with pytest.raises(ValueError, match="at least one reference"):
        cider_d(["a", "b"], [["a"], []])


@pytest.mark.parametrize("dataset", DATASETS)
def test_real_references_equal_pycocoevalcap(shared_data: Path, dataset: str):
    captions = real_captions(shared_data, dataset, 300)
    hypotheses, references = held_out(captions, seed=len(captions))
    corpus, each = _compare(hypotheses, references)
    assert 0.05 < corpus < 5.0
    assert (each[4::7] == 0.0).all()  # the emptied hypotheses
    assert (each[0::7] > 0).mean() > 0.9  # a held-out reference mostly shares n-grams


def test_score_cider_is_the_table_scorer():
    gts = {"a": ["a man is cooking", "someone cooks"], "b": ["a dog runs", "a dog plays"]}
    res = {"a": ["a man cooks"], "b": ["a dog runs"]}
    out = score_cider(["a", "b"], gts, res)
    want, each = Cider().compute_score(gts, res)
    assert out.corpus["CIDEr"] == pytest.approx(want, abs=TOLERANCE)
    assert out.per_video["CIDEr"] == pytest.approx(list(each), abs=TOLERANCE)
