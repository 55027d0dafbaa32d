"""BLEU statistics (`vidcap.evaluation.bleu`) and ROUGE-L (`vidcap.evaluation.rouge`) against
pycocoevalcap's `BleuScorer` and `Rouge`: identical, on edge cases and real references."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from pycocoevalcap.bleu.bleu_scorer import BleuScorer
from pycocoevalcap.rouge.rouge import Rouge

from tests.evaluation.captions import DATASETS, held_out, real_captions
from vidcap.evaluation.bleu import bleu_scorer, bleu_statistics
from vidcap.evaluation.metrics import score_bleu, score_rouge
from vidcap.evaluation.rouge import rouge_l


def _same_as_pycocoevalcap(hypotheses: list[str], references: list[list[str]]) -> None:
    plain = BleuScorer(n=4)
    for hyp, refs in zip(hypotheses, references):
        plain += (hyp, refs)
    ours = bleu_scorer(hypotheses, references)
    assert [dict(c) for c in plain.ctest] == ours.ctest  # every video's statistics
    assert (plain.compute_score(option="closest", verbose=0)
            == ours.compute_score(option="closest", verbose=0))
    assert (plain._testlen, plain._reflen) == (ours._testlen, ours._reflen)

    ids = [str(i) for i in range(len(hypotheses))]
    want, want_each = Rouge().compute_score({i: list(r) for i, r in zip(ids, references)},
                                            {i: [h] for i, h in zip(ids, hypotheses)})
    got, got_each = rouge_l(hypotheses, references)
    assert got == want and np.array_equal(got_each, want_each)


def test_edge_cases_and_random_captions():
    hypotheses = ["a man is cooking", "", "a  b", "x " * 63 + "x", "y " * 70 + "y", "the the the"]
    references = [["a man is cooking pasta", "someone cooks"], ["a woman sings"], ["a  b", ""],
                  ["x " * 80 + "x", "x"], ["y z " * 40, "z"], ["the cat", "the the", ""]]
    rng = random.Random(7)
    vocabulary = "a b c d e".split()  # few words: many repeats, clipping and long LCS
    for _ in range(200):
        hypotheses.append(" ".join(rng.choices(vocabulary, k=rng.choice([0, 1, 3, 9, 64, 65]))))
        references.append([" ".join(rng.choices(vocabulary, k=rng.choice([0, 1, 4, 12, 70])))
                           for _ in range(rng.randint(1, 4))])
    _same_as_pycocoevalcap(hypotheses, references)


@pytest.mark.parametrize("dataset", DATASETS)
def test_real_references(shared_data: Path, dataset: str):
    captions = real_captions(shared_data, dataset, 400)
    _same_as_pycocoevalcap(*held_out(captions, seed=3))


def test_statistics_and_table_scorers():
    stats = bleu_statistics(["a b a", ""], [["a b", "b a a c"], ["x"]])
    assert stats[0] == {"reflen": [2, 4], "testlen": 3, "guess": [3, 2, 1, 0],
                        "correct": [3, 2, 0, 0]}
    assert stats[1]["guess"] == [0, 0, 0, 0] and stats[1]["correct"] == [0, 0, 0, 0]
    gts = {"a": ["a man is cooking", "someone cooks"], "b": ["a dog runs", "a dog plays"]}
    res = {"a": ["a man cooks"], "b": ["a dog runs"]}
    bleu = score_bleu(["a", "b"], gts, res)
    assert bleu.stats["testlen"] == 6 and bleu.stats["correct"][:2] == [6, 3]
    assert score_rouge(["a", "b"], gts, res).per_video["ROUGE_L"][1] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="ROUGE-L: every video needs"):
        rouge_l(["a"], [[]])
