"""VATEX (English captions) from its official JSON files.

`vatex_training_v1.0.json` (25,991 clips), `vatex_validation_v1.0.json` (3,000) and
`vatex_public_test_english_v1.1.json` (6,000): JSON lists of `{"videoID": "<ytid>_<start6>_<end6>",
"enCap": [10 English captions], "chCap": [10 Chinese captions]}` (the public test file has `enCap`
only). Split, from the file name: training -> `train`, validation -> `val`, public test -> `test`
(what VATEX captioning papers report on; the private test set's captions are withheld, so its file,
`vatex_private_test_without_annotations.json`, cannot make a manifest and is an error). Only the
English captions are kept.

Video files: the clips as cut by the usual download scripts, `<ytid>_<start6>_<end6>.mp4` (or with
unpadded seconds, `<ytid>_<start>_<end>`), or the full YouTube video `<ytid>.<ext>`, in which case
the manifest's `start`/`end` hold the clip's window (VATEX clips are 10 s windows of their sources).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vidcap.data.annotations import Annotations, Clip, VideoName, expand, keep_captions
from vidcap import limits
from vidcap.errors import DatasetError, ManifestError, shorten, truncate

VIDEO_ID = re.compile(r"^(?P<ytid>.+)_(?P<start>\d{6})_(?P<end>\d{6})$")
"""`<YouTube id>_<start>_<end>`, seconds zero-padded to six digits."""
SPLIT_WORDS = (("private", None), ("train", "train"), ("val", "val"), ("test", "test"))
"""File-name words -> split (checked in this order; `private` has no captions)."""
STANDARD = {"train": 25991, "val": 3000, "test": 6000}
"""Clips per split of the released files (training v1.0, validation v1.0, public test v1.1)."""


def split_from_name(path: Path) -> str | None:
    """`train`, `val` or `test` from a VATEX file name; None for the private test set."""
    name = path.name.lower()
    for word, split in SPLIT_WORDS:
        if word in name:
            return split
    raise DatasetError(f"{path}: cannot tell the split from the file name (expected "
                       f"vatex_training_*, vatex_validation_* or vatex_public_test_*)")


def _load(path: Path) -> list[Any]:
    data = limits.read_json(path, ManifestError)
    if not isinstance(data, list):
        raise ManifestError(f"{path}: expected VATEX's JSON list of {{videoID, enCap}} entries")
    return data


def _video_id(entry: Any, where: str) -> str:
    if not isinstance(entry, dict) or not isinstance(entry.get("videoID"), str):
        raise ManifestError(f"{where}: no `videoID` string")
    return entry["videoID"]


def vatex_video_ids(path: str | Path) -> list[str]:
    """The `videoID`s of any VATEX file, captioned or not (e.g. to fetch the videos)."""
    path = Path(path)
    return [_video_id(e, f"{path}: entry {i}") for i, e in enumerate(_load(path))]


def video_names(video_id: str, where: str) -> list[VideoName]:
    """The names a clip's file may have: as cut (padded, unpadded), or the full source video."""
    match = VIDEO_ID.match(video_id)
    if match is None:
        raise ManifestError(f"{where}: videoID {shorten(video_id)} is not "
                            f"<youtube id>_<start6>_<end6>")
    start, end = int(match["start"]), int(match["end"])
    if end <= start:
        raise ManifestError(f"{where}: videoID {shorten(video_id)} ends before it starts")
    names = [VideoName(video_id)]
    if f"{match['ytid']}_{start}_{end}" != video_id:
        names.append(VideoName(f"{match['ytid']}_{start}_{end}"))
    names.append(VideoName(match["ytid"], float(start), float(end)))
    return names


def read_vatex(paths: Sequence[Path]) -> Annotations:
    """The VATEX clips of the given files (or a folder of them), English captions."""
    clips: list[Clip] = []
    origin: dict[str, str] = {}
    empty = 0
    files = expand(paths, lambda p: p.name.lower().startswith("vatex") and p.suffix == ".json")
    for path in files:
        split = split_from_name(path)
        entries = _load(path)
        for i, entry in enumerate(entries):
            where = f"{path}: entry {i}"
            video_id = _video_id(entry, where)
            named = f"{where} ({truncate(video_id, 60)})"
            if "enCap" not in entry:
                raise ManifestError(
                    f"{named} has no English captions (`enCap`)"
                    + ("; VATEX's private test set is released without captions, so it cannot go "
                       "into a manifest" if split is None else ""))
            captions = entry["enCap"]
            if not isinstance(captions, list) or not all(isinstance(c, str) for c in captions):
                raise ManifestError(f"{named}: `enCap` must be a list of strings")
            if split is None:
                raise ManifestError(f"{path}: a private test file with captions? Rename it after "
                                    f"its split (training, validation or public_test)")
            if video_id in origin:
                raise ManifestError(f"{where}: {truncate(video_id, 60)} is also in "
                                    f"{origin[video_id]}")
            origin[video_id] = str(path)
            kept, n_empty = keep_captions(captions)
            empty += n_empty
            if kept:
                clips.append(Clip(video_id, split, kept, video_names(video_id, where)))
    missing = len(origin) - len(clips)
    notes = [f"{missing} clips have no caption and are left out"] if missing else []
    dropped = {"empty captions": empty, "clips without a caption": missing}
    return Annotations(clips, notes, dropped, dict(STANDARD))
