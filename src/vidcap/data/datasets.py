"""`vidcap prepare msvd|msrvtt|vatex`: a manifest from a dataset's official annotation files.

Each dataset module (`msvd`, `msrvtt`, `vatex`) reads its annotation files into `Clip`s: an id, a
split, the captions, and the names its video file goes by in the releases users have. This module
finds those files in the video folder and writes the manifest (DESIGN.md, "Data").

Decisions, the same for every dataset:
- Captions are kept as the annotation gives them (case and punctuation too: the metrics PTB-tokenize
  and lower-case anyway, and a model's tokenizer may want them), with runs of whitespace (line
  breaks included) made one space and the ends stripped. Empty captions are dropped and counted; a
  video left with no caption is dropped and counted.
- Video files are found by name anywhere under `--videos` (sub-folders too: MSR-VTT ships
  `TrainValVideo/` and `TestVideo/`), with any common video extension (`VIDEO_EXTENSIONS`, any
  case); names are case-sensitive, as YouTube ids are. A clip may also be found as its full source
  video (`<youtube id>.<ext>`): then the manifest's `start`/`end` give the clip's window in it.
- `path` is relative to the manifest's folder when the video lies under it, absolute otherwise.
- Missing videos are counted and the first few named; that is an error unless `allow_missing`,
  then the manifest holds the videos found.
- `no_videos` writes a captions-only manifest with `"path": ""` (no video file), enough for
  `vidcap score`; a video loader given such a record has no file to open.
"""

from __future__ import annotations

import logging
import os
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vidcap.data.manifest import VideoRecord, write_manifest
from vidcap.errors import DatasetError

log = logging.getLogger(__name__)

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".flv",
                    ".wmv", ".3gp", ".ogv", ".ts")
"""Extensions (compared in lower case) of the files searched for under `--videos`."""
SHOWN = 5
"""How many missing videos an error or warning names."""


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
    """Sentences for the user: what was dropped and why."""


def normalize_caption(text: str) -> str:
    """Runs of whitespace (line breaks included) become one space; the ends are stripped."""
    return " ".join(text.split())


def keep_captions(captions: Sequence[str]) -> tuple[list[str], int]:
    """(normalised non-empty captions, how many were empty)."""
    kept = [c for c in (normalize_caption(c) for c in captions) if c]
    return kept, len(captions) - len(kept)


def source_window(clip_name: str, pattern: str = r"^(.+)_(\d+(?:\.\d+)?)_(\d+(?:\.\d+)?)$"
                  ) -> VideoName | None:
    """`<youtube id>_<start>_<end>` -> the full source video's name with the window, or None."""
    match = re.match(pattern, clip_name)
    if match is None:
        return None
    start, end = float(match.group(2)), float(match.group(3))
    if end <= start:
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
    return files


def index_videos(folder: Path) -> dict[str, Path]:
    """`{stem: path}` of the video files under `folder` (recursively)."""
    if not folder.is_dir():
        raise DatasetError(f"{folder}: video folder not found")
    found: dict[str, Path] = {}
    rank = {ext: i for i, ext in enumerate(VIDEO_EXTENSIONS)}
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            stem, ext = os.path.splitext(name)
            ext = ext.lower()
            if ext not in rank:
                continue
            path = Path(root) / name
            if stem in found:
                if rank[ext] < rank[found[stem].suffix.lower()]:
                    found[stem], path = path, found[stem]
                log.debug("two files for %s: using %s, not %s", stem, found[stem], path)
                continue
            found[stem] = path
    return found


def _manifest_path(video: Path, manifest_dir: Path) -> str:
    video = video.resolve()
    try:
        return video.relative_to(manifest_dir).as_posix()
    except ValueError:
        return str(video)


def locate(clips: Sequence[Clip], videos: Path, manifest_dir: Path
           ) -> tuple[list[VideoRecord], list[Clip]]:
    """(records of the clips whose video file was found, clips whose file was not)."""
    index = index_videos(videos)
    records, missing = [], []
    for clip in clips:
        name = next((n for n in clip.names if n.stem in index), None)
        if name is None:
            missing.append(clip)
            continue
        path = _manifest_path(index[name.stem], manifest_dir)
        records.append(VideoRecord(clip.video_id, path, clip.split, clip.captions, name.start,
                                   name.end, dict(clip.extra)))
    return records, missing


def _readers() -> dict[str, Callable[[Sequence[Path]], Annotations]]:
    from vidcap.data.msrvtt import read_msrvtt
    from vidcap.data.msvd import read_msvd
    from vidcap.data.vatex import read_vatex

    return {"msvd": read_msvd, "msrvtt": read_msrvtt, "vatex": read_vatex}


DATASETS = ("msvd", "msrvtt", "vatex")
"""Names `prepare_dataset` knows."""


def read_annotations(name: str, annotations: Sequence[str | Path]) -> Annotations:
    """The clips of dataset `name` from its annotation files (or folders holding them)."""
    readers = _readers()
    if name not in readers:
        raise DatasetError(f"unknown dataset {name!r} (known: {', '.join(DATASETS)})")
    if not annotations:
        raise DatasetError(f"{name}: no annotation files given")
    found = readers[name]([Path(p) for p in annotations])
    if not found.clips:
        raise DatasetError(f"{name}: the annotation files hold no captioned video")
    return found


def prepare_dataset(name: str, annotations: Sequence[str | Path], *,
                    videos: str | Path | None = None, out: str | Path,
                    allow_missing: bool = False, no_videos: bool = False) -> Path:
    """Write the manifest of dataset `name` (`msvd`, `msrvtt`, `vatex`) to `out`; return its path.

    `videos` is the folder of the video files; `no_videos` writes a captions-only manifest instead.
    Missing videos are a DatasetError naming a few, unless `allow_missing`.
    """
    if no_videos and videos is not None:
        raise DatasetError("give either --videos (match the video files) or --no-videos "
                           "(a captions-only manifest), not both")
    if not no_videos and videos is None:
        raise DatasetError("give --videos DIR (the folder of the video files) or --no-videos "
                           "(a captions-only manifest, enough for scoring)")
    out = Path(out)
    if out.is_dir():
        raise DatasetError(f"{out}: is a folder; --out names the manifest file to write")
    found = read_annotations(name, annotations)
    order = {"train": 0, "val": 1, "test": 2}
    found.clips.sort(key=lambda c: order[c.split])  # stable: each split keeps the files' order
    for note in found.notes:
        log.warning("%s: %s", name, note)
    if no_videos:
        records = [VideoRecord(c.video_id, "", c.split, c.captions, None, None, dict(c.extra))
                   for c in found.clips]
    else:
        records, missing = locate(found.clips, Path(videos), out.parent.resolve())
        if not records:
            example = found.clips[0].names[0].stem
            raise DatasetError(f"none of the {len(found.clips)} videos found under {videos} "
                               f"(looked for files such as {example}.mp4, {example}.avi, ...)")
        if missing:
            named = ", ".join(c.video_id if c.names[0].stem == c.video_id
                              else f"{c.video_id} ({c.names[0].stem})" for c in missing[:SHOWN])
            more = ", ..." if len(missing) > SHOWN else ""
            per_split = Counter(c.split for c in missing)
            splits = ", ".join(f"{n} {s}" for s, n in per_split.items())
            message = (f"{len(missing)} of {len(found.clips)} videos not found under {videos} "
                       f"({splits}): {named}{more}")
            if not allow_missing:
                raise DatasetError(message + " (--allow-missing writes the manifest of the "
                                             f"{len(records)} found)")
            log.warning("%s: %s; the manifest holds the %d found", name, message, len(records))
    write_manifest(records, out)
    log.info("%s: wrote %d videos to %s", name, len(records), out)
    return out
