"""The dataset manifest: JSON Lines, one video a line (DESIGN.md, "Data").

    {"video_id": str, "path": str, "split": "train"|"val"|"test", "captions": [str, ...],
     "start": float|null, "end": float|null}

`path` is relative to the manifest's folder or absolute. Extra keys are kept (`extra`) and written
back, so tools can carry their own fields. Every malformed line is a `ManifestError` naming the file
and the line number.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vidcap import limits
from vidcap.errors import ManifestError, VidcapError, shorten
from vidcap.files import write_lines

SPLITS = ("train", "val", "test")
REQUIRED = ("video_id", "path", "split", "captions")


@dataclass
class VideoRecord:
    """One line of a manifest."""

    video_id: str
    path: str
    split: str
    captions: list[str]
    start: float | None = None
    end: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    root: Path | None = None
    """Folder of the manifest the record came from; relative paths resolve against it."""

    @property
    def video_path(self) -> Path:
        """The video file, resolved against the manifest's folder."""
        path = Path(self.path)
        if path.is_absolute() or self.root is None:
            return path
        return self.root / path

    def to_json(self) -> dict[str, Any]:
        line = {"video_id": self.video_id, "path": self.path, "split": self.split,
                "captions": list(self.captions), "start": self.start, "end": self.end}
        line.update((k, v) for k, v in self.extra.items() if k not in line)  # never overrides
        return line


def _problem(path: Path, lineno: int, message: str) -> ManifestError:
    return ManifestError(f"{path}:{lineno}: {message}")


def _number_or_none(value: Any, name: str, path: Path, lineno: int) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _problem(path, lineno, f"`{name}` must be a number or null, got {shorten(value)}")
    if value < 0:
        raise _problem(path, lineno, f"`{name}` must not be negative, got {shorten(value)}")
    return float(value)


def parse_record(data: Any, path: Path, lineno: int) -> VideoRecord:
    """Validate one decoded JSON line."""
    if not isinstance(data, dict):
        raise _problem(path, lineno, f"expected a JSON object, got {shorten(data, 40)}")
    missing = [k for k in REQUIRED if k not in data]
    if missing:
        raise _problem(path, lineno, f"missing field {', '.join(repr(k) for k in missing)}")
    video_id, video_path, split, captions = (data[k] for k in REQUIRED)
    if not isinstance(video_id, str) or not video_id.strip():
        raise _problem(path, lineno, "`video_id` must be a non-empty string")
    if not isinstance(video_path, str):
        raise _problem(path, lineno, "`path` must be a string")
    if split not in SPLITS:
        raise _problem(path, lineno, f"unknown split {shorten(split, 40)} (expected one of "
                                     f"{', '.join(SPLITS)})")
    if not isinstance(captions, list) or not captions:
        raise _problem(path, lineno, f"video {shorten(video_id)} has no captions")
    for i, caption in enumerate(captions):
        if not isinstance(caption, str):
            raise _problem(path, lineno, f"caption {i} of {shorten(video_id)} is not a string")
        if not caption.strip():
            raise _problem(path, lineno, f"caption {i} of {shorten(video_id)} is empty")
    start = _number_or_none(data.get("start"), "start", path, lineno)
    end = _number_or_none(data.get("end"), "end", path, lineno)
    if start is not None and end is not None and end <= start:
        raise _problem(path, lineno, f"`end` ({end}) must be after `start` ({start})")
    extra = {k: v for k, v in data.items() if k not in REQUIRED + ("start", "end")}
    return VideoRecord(video_id, video_path, split, list(captions), start, end, extra, path.parent)


def iter_json_lines(path: Path, error: type[VidcapError] = ManifestError
                    ) -> Iterator[tuple[int, Any]]:
    """(line number, decoded value) of every non-blank line of a JSON Lines file; any problem
    (not UTF-8, not JSON, a line or file over the limits of `vidcap.limits`) raises `error`
    naming the file and the line."""
    return limits.iter_json_lines(path, error)


def read_manifest(path: str | Path, split: str | Sequence[str] | None = None) -> list[VideoRecord]:
    """Read and validate a manifest; keep only `split` (a name or several) when given."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"{path}: manifest not found")
    wanted = {split} if isinstance(split, str) else set(split) if split is not None else None
    if wanted is not None and not wanted <= set(SPLITS):
        raise ManifestError(f"{path}: unknown split {sorted(wanted - set(SPLITS))}")
    records: list[VideoRecord] = []
    seen: dict[str, int] = {}
    for lineno, data in iter_json_lines(path):
        record = parse_record(data, path, lineno)
        if record.video_id in seen:
            raise _problem(path, lineno, f"video_id {shorten(record.video_id)} repeats line "
                                         f"{seen[record.video_id]}")
        seen[record.video_id] = lineno
        if wanted is None or record.split in wanted:
            records.append(record)
    if not seen:
        raise ManifestError(f"{path}: manifest is empty")
    return records


def write_manifest(records: Iterable[VideoRecord], path: str | Path) -> Path:
    """Write records as JSON Lines (atomically: a temporary file, then rename)."""
    return write_lines(path, (json.dumps(r.to_json(), ensure_ascii=False) for r in records))


def references(records: Iterable[VideoRecord]) -> dict[str, list[str]]:
    """`{video_id: captions}`: the reference form the metrics take."""
    return {r.video_id: list(r.captions) for r in records}


def summarize(records: Sequence[VideoRecord]) -> dict[str, dict[str, float]]:
    """Per split: videos, captions, captions per video, mean words per caption."""
    stats: dict[str, dict[str, float]] = {}
    videos = Counter(r.split for r in records)
    for split in SPLITS:
        chosen = [r for r in records if r.split == split]
        if not chosen:
            continue
        captions = [c for r in chosen for c in r.captions]
        stats[split] = {
            "videos": videos[split],
            "captions": len(captions),
            "captions_per_video": len(captions) / len(chosen),
            "words_per_caption": sum(len(c.split()) for c in captions) / len(captions),
        }
    return stats
