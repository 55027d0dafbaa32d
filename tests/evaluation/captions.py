"""Real test-split captions for comparing scorers with pycocoevalcap: each video's first caption
held out as its hypothesis, the others as references."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest

from vidcap.data.msrvtt import read_msrvtt
from vidcap.data.msvd import read_msvd

DATASETS = ("msvd", "msrvtt")


def words(caption: str) -> str:
    """A cheap stand-in for PTB tokenization (the scorers compared read the same strings)."""
    return " ".join(re.findall(r"[a-z0-9']+", caption.lower()))


def real_captions(shared_data: Path, dataset: str, videos: int) -> list[list[str]]:
    """The captions of the first `videos` test videos of MSVD or MSR-VTT (skip when absent)."""
    if dataset == "msvd":
        path, read = shared_data / "msvd" / "sents_test_lc_nopunc.txt", read_msvd
    else:
        path, read = shared_data / "msrvtt" / "test_videodatainfo.json.zip", read_msrvtt
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return [c.captions for c in read([path]).clips if c.split == "test"][:videos]


def held_out(captions_of: list[list[str]], seed: int) -> tuple[list[str], list[list[str]]]:
    """Hypotheses: each video's first caption, held out of its references, mostly as it is and
    sometimes shuffled, doubled, cut short, mixed with an unseen word or emptied (every 7th from
    the 5th); every 50th video from the 10th gets an empty reference too."""
    rng = random.Random(seed)
    hypotheses, references = [], []
    for i, captions in enumerate(captions_of):
        tokens = words(captions[0]).split()
        kind = i % 7
        if kind == 1:
            rng.shuffle(tokens)
        elif kind == 2:
            tokens = tokens + tokens
        elif kind == 3:
            tokens = tokens[:2] + ["qzxv"]
        elif kind == 4:
            tokens = []
        hypotheses.append(" ".join(tokens))
        references.append([words(c) for c in captions[1:]] + ([""] if i % 50 == 9 else []))
    return hypotheses, references
