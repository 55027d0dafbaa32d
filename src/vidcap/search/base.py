"""The small types every part of `vidcap.search` shares: the error, the embedding's fingerprint,
a segment, a file's stat, a hit, a store's statistics, and unit-length vectors."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vidcap.errors import VidcapError


class SearchIndexError(VidcapError):
    """A search index cannot be used (damaged, another model's, missing); names the file."""


@dataclass(frozen=True)
class Fingerprint:
    """Which embedding an index holds. Two fingerprints are compatible when `model` and `dim`
    agree; `run` (where the model was loaded from) is recorded and shown, not compared, so a run
    folder that moved still fits."""

    model: str
    """Identity of the weights, given by the caller (e.g. a hash of the weights file)."""
    dim: int
    run: str = ""

    def fits(self, other: Fingerprint) -> bool:
        """Whether vectors of `other` may be searched or stored beside these."""
        return self.model == other.model and self.dim == other.dim

    def describe(self) -> str:
        """'model M (dim D, run R)'."""
        return f"model {self.model!r} (dim {self.dim}" + (f", run {self.run})" if self.run else ")")


@dataclass(frozen=True)
class Segment:
    """A stretch of a file that has one vector; start and end in seconds, None for whole files."""

    start: float | None = None
    end: float | None = None
    caption: str | None = None


@dataclass(frozen=True)
class FileStat:
    """What tells a changed file from an unchanged one."""

    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: str | Path) -> FileStat:
        """The file's size and modification time (raises OSError when it cannot be stat'ed)."""
        info = os.stat(path)
        return cls(info.st_size, info.st_mtime_ns)


@dataclass(frozen=True)
class Hit:
    """One search result: a file (or a segment of it) and its cosine similarity to the query."""

    path: str
    start: float | None
    end: float | None
    score: float
    caption: str | None = None

    def to_json(self) -> dict[str, Any]:
        """{"path", "start", "end", "score"} (and "caption" when the segment has one)."""
        line: dict[str, Any] = {"path": self.path, "start": self.start, "end": self.end,
                                "score": round(self.score, 6)}
        if self.caption is not None:
            line["caption"] = self.caption
        return line


@dataclass(frozen=True)
class StoreStats:
    """What an index holds, and what it takes on disk."""

    files: int
    failed: int
    segments: int
    fingerprint: Fingerprint
    generation: int
    vectors_kind: str | None
    database_bytes: int
    vectors_bytes: int


def normalised(rows: np.ndarray, dim: int, what: str) -> np.ndarray:
    """float32 rows scaled to unit length; a wrong width or a zero/non-finite row is an error."""
    rows = np.asarray(rows, dtype=np.float32)
    if rows.ndim != 2 or rows.shape[1] != dim:
        raise SearchIndexError(f"{what}: expected vectors of shape (n, {dim}), got {rows.shape}")
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    bad = ~np.isfinite(norms[:, 0]) | (norms[:, 0] == 0)
    if bad.any():
        raise SearchIndexError(f"{what}: vector {int(np.argmax(bad))} is zero or not finite")
    return np.ascontiguousarray(rows / norms)
