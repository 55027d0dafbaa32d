"""CIDEr-D (`vidcap.evaluation.cider`) against pycocoevalcap's `Cider`, on hand-made edge cases and
on the real MSVD and MSR-VTT test references."""

from __future__ import annotations

import random
import re
from pathlib import Path

import numpy as np
import pytest
from pycocoevalcap.cider.cider import Cider

from vidcap.data.msrvtt import read_msrvtt
from vidcap.data.msvd import read_msvd
from vidcap.evaluation.cider import cider_d
from vidcap.evaluation.metrics import score_cider

TOLERANCE = 1e-9


def _words(caption: str) -> str:
    """A cheap stand-in for PTB tokenization (both scorers read the same strings)."""
    return " ".join(re.findall(r"[a-z0-9']+", caption.lower()))


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


def _held_out(captions_of: list[list[str]], seed: int) -> tuple[list[str], list[list[str]]]:
    """Hypotheses: each video's first caption, held out of its references, mostly as it is and
    sometimes shuffled, doubled, cut short, mixed with an unseen word or emptied."""
    rng = random.Random(seed)
    hypotheses, references = [], []
    for i, captions in enumerate(captions_of):
        words = _words(captions[0]).split()
        kind = i % 7
        if kind == 1:
            rng.shuffle(words)
        elif kind == 2:
            words = words + words
        elif kind == 3:
            words = words[:2] + ["qzxv"]
        elif kind == 4:
            words = []
        hypotheses.append(" ".join(words))
        references.append([_words(c) for c in captions[1:]] + ([""] if i % 50 == 9 else []))
    return hypotheses, references


@pytest.mark.parametrize("dataset", ["msvd", "msrvtt"])
def test_real_references_equal_pycocoevalcap(shared_data: Path, dataset: str):
    if dataset == "msvd":
        path = shared_data / "msvd" / "sents_test_lc_nopunc.txt"
        read = read_msvd
    else:
        path = shared_data / "msrvtt" / "test_videodatainfo.json.zip"
        read = read_msrvtt
    if not path.is_file():
        pytest.skip(f"{path} not found")
    clips = [c for c in read([path]).clips if c.split == "test"][:300]
    hypotheses, references = _held_out([c.captions for c in clips], seed=len(clips))
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
