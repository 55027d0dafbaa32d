"""A toy embedder for the search tests: a file is lines of words, each line a 2-second segment
whose vector counts the words of VOCAB; a file holding BROKEN cannot be read."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from vidcap.errors import VideoError
from vidcap.search import FileEmbedding, Fingerprint, Segment

VOCAB = ("red", "green", "blue", "circle", "square", "left", "right", "grows")
DIM = len(VOCAB)
FINGERPRINT = Fingerprint(model="toy-bag-of-words", dim=DIM, run="runs/toy")


def bag(text: str) -> np.ndarray:
    """Counts of VOCAB words, plus a little of everything (no zero vector)."""
    counts = Counter(text.lower().split())
    return np.array([counts[w] for w in VOCAB], dtype=np.float32) + 0.01


class ToyEmbedder:
    """Embeds toy files; records every file it embedded (to catch double work)."""

    fingerprint = FINGERPRINT

    def __init__(self, fail_after: int | None = None) -> None:
        self.embedded: list[Path] = []
        self.fail_after = fail_after

    def embed_file(self, path: Path) -> tuple[list[Segment], np.ndarray]:
        text = path.read_text()
        if "BROKEN" in text:
            raise VideoError(path, "cannot decode (toy)")
        lines = [line for line in text.splitlines() if line.strip()]
        segments = [Segment(2.0 * i, 2.0 * i + 2.0) for i in range(len(lines))]
        return segments, np.stack([bag(line) for line in lines])

    def embed_videos(self, paths: Sequence[Path]) -> Iterator[FileEmbedding]:
        for path in paths:
            if self.fail_after is not None and len(self.embedded) >= self.fail_after:
                raise RuntimeError("simulated crash")
            self.embedded.append(path)
            try:
                segments, rows = self.embed_file(path)
            except VideoError as err:
                yield FileEmbedding(path, error=str(err))
            else:
                yield FileEmbedding(path, segments, rows)

    def embed_text(self, texts: Sequence[str]) -> np.ndarray:
        return np.stack([bag(t) for t in texts])


def write_videos(folder: Path, contents: dict[str, str]) -> list[Path]:
    """Toy 'videos' (text files) named by the keys; their paths, in order."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, text in contents.items():
        (folder / name).write_text(text)
        paths.append((folder / name).resolve())
    return paths


COLLECTION = {
    "a.mp4": "red circle left\nblue square grows",
    "b.mp4": "green square right",
    "c.mp4": "blue circle left\nred square right\ngreen circle grows",
    "d.mp4": "red square grows",
}


@pytest.fixture
def videos(tmp_path: Path) -> list[Path]:
    """Four toy videos, seven segments in all."""
    return write_videos(tmp_path / "videos", COLLECTION)
