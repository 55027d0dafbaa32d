"""What a dataset's annotation files say, in one shape for every dataset reader.

Each reader (`msvd`, `msrvtt`, `vatex`) turns its dataset's files into `Annotations`: a list of
`Clip`s (id, split, captions, the names its video file goes by) and notes for the user. The
readers share these types and the small helpers below; `vidcap.data.prepare` then finds the video
files and writes the manifest.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vidcap.errors import DatasetError
from vidcap.text import collapse_whitespace


@dataclass(frozen=True)
class VideoName:
    """One name a clip's video file may have (without extension)."""

    stem: str
    start: float | None = None
    """Set when the file is the full source video: the clip starts here (seconds)."""
    end: float | None = None
    """...and ends here."""


@dataclass
class Clip:
    """One video of a dataset as its annotation files describe it."""

    video_id: str
    split: str
    captions: list[str]
    names: list[VideoName]
    """Names of its video file, most common release first."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Fields kept in the manifest beside the standard ones."""


@dataclass
class Annotations:
    """What a dataset reader found."""

    clips: list[Clip]
    notes: list[str] = field(default_factory=list)
    """Sentences for the user (warnings): what was dropped and why, beyond the counts."""
    dropped: dict[str, int] = field(default_factory=dict)
    """What the reader left out, by kind ("empty captions": 3), zeros included: `prepare` reports
    every count on every run."""
    standard: dict[str, int] = field(default_factory=dict)
    """Videos per split of the dataset's standard split (`prepare` refuses a split of another
    size unless asked); empty when the dataset has none."""


def repeated_captions(clips: Sequence[Clip]) -> int:
    """Captions that repeat another caption of the same video (kept: annotators do agree)."""
    return sum(len(c.captions) - len(set(c.captions)) for c in clips)


def keep_captions(captions: Sequence[str]) -> tuple[list[str], int]:
    """(normalised non-empty captions, how many were empty)."""
    kept = [c for c in (collapse_whitespace(c) for c in captions) if c]
    return kept, len(captions) - len(kept)


def source_window(clip_name: str, pattern: str = r"^(.+)_(\d+(?:\.\d+)?)_(\d+(?:\.\d+)?)$"
                  ) -> VideoName | None:
    """`<youtube id>_<start>_<end>` -> the full source video's name with the window, or None."""
    match = re.match(pattern, clip_name)
    if match is None:
        return None
    start, end = float(match.group(2)), float(match.group(3))
    if end <= start or not math.isfinite(end):  # 400 digits read as inf: no window
        return None
    return VideoName(match.group(1), start, end)


def expand(paths: Sequence[Path], wanted: Callable[[Path], bool]) -> list[Path]:
    """The given files, and the `wanted` files inside given folders (sorted); missing -> error."""
    files: list[Path] = []
    for path in paths:
        path = Path(path)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and wanted(p))
            if not found:
                raise DatasetError(f"{path}: no annotation file of this dataset in the folder")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise DatasetError(f"{path}: annotation file not found")
    unique: dict[Path, Path] = {}
    for path in files:  # a file given twice (itself and its folder) is read once
        unique.setdefault(path.resolve(), path)
    return list(unique.values())
