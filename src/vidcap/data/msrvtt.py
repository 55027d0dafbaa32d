"""MSR-VTT from its official annotation files, as JSON or inside the .zip files users download.

`train_val_videodatainfo.json` (6,513 train + 497 validate videos) and `test_videodatainfo.json`
(2,990), each `{"info", "videos": [{video_id, category, url, "start time", "end time", split, id}],
"sentences": [{caption, video_id, sen_id}]}`, 20 captions a video. Splits: `train`, `validate` ->
`val`, `test` (the official 6513/497/2990 split every captioning paper reports on).

The released files `videoN.mp4` are already cut to the clip; `start time` / `end time` give where
the clip lies in its YouTube source (`url`). So they are kept as `extra.youtube_start` /
`extra.youtube_end`, not as the manifest's `start`/`end` (which would cut the cut file again).
Captions are ordered by `sen_id`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vidcap.data.annotations import Annotations, Clip, VideoName, expand, keep_captions
from vidcap import limits
from vidcap.errors import DatasetError, ManifestError, shorten, truncate

SPLITS = {"train": "train", "validate": "val", "val": "val", "test": "test"}
"""MSR-VTT's split names -> the manifest's."""
STANDARD = {"train": 6513, "val": 497, "test": 2990}
"""Videos per split of the official split."""


def _is_msrvtt_file(path: Path) -> bool:
    name = path.name.lower()
    return "videodatainfo" in name or (name.endswith(".zip") and "annotation" in name)


def _is_member(name: str) -> bool:
    return name.lower().endswith(".json") and "videodatainfo" in name.lower()


def load_annotation_files(path: Path) -> list[tuple[str, Any]]:
    """[(where, decoded JSON)] of a .json file, or of each `*videodatainfo*.json` in a .zip
    (read within `vidcap.limits`: a damaged or oversized archive or member is an error)."""
    if limits.is_zip(path):
        names, members = limits.read_zip(path, _is_member, ManifestError)
        if not members:
            raise DatasetError(f"{path}: the archive holds no *videodatainfo.json "
                               f"(it has: {truncate(', '.join(names[:5]), 200)})")
        wheres = [f"{path}:{truncate(name, 80)}" for name, _ in members]
        return [(where, _decode(data, where)) for where, (_, data) in zip(wheres, members)]
    return [(str(path), limits.read_json(path, ManifestError))]


def _decode(data: bytes, where: str) -> Any:
    return limits.loads_json(limits.decode_text(data, where, ManifestError), where, ManifestError)


def _entries(data: Any, key: str, where: str) -> list[dict[str, Any]]:
    if not isinstance(data, dict):
        raise ManifestError(f"{where}: expected MSR-VTT's object with `videos` and `sentences`")
    if key not in data:
        raise ManifestError(f"{where}: no `{key}` (MSR-VTT's files hold `videos` and "
                            f"`sentences`; this one has {truncate(', '.join(list(data)[:8]))})")
    entries = data[key]
    if not isinstance(entries, list):
        raise ManifestError(f"{where}: `{key}` must be a list")
    return entries


def _field(entry: Any, name: str, kind: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(entry, dict) or name not in entry:
        raise ManifestError(f"{where}: no `{name}`")
    value = entry[name]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ManifestError(f"{where}: `{name}` has the wrong type ({shorten(value, 60)})")
    return value


def read_msrvtt(paths: Sequence[Path]) -> Annotations:
    """The MSR-VTT videos of the given annotation files (.json, .zip, or a folder of them)."""
    videos: dict[str, dict[str, Any]] = {}
    origin: dict[str, str] = {}
    captions: dict[str, list[tuple[int, str]]] = defaultdict(list)
    caption_origin: dict[str, str] = {}
    for path in expand(paths, _is_msrvtt_file):
        for where, data in load_annotation_files(path):
            for i, video in enumerate(_entries(data, "videos", where)):
                at = f"{where}: videos[{i}]"
                vid = _field(video, "video_id", str, at)
                split = _field(video, "split", str, at)
                if split not in SPLITS:
                    raise ManifestError(f"{at}: unknown split {shorten(split, 40)} "
                                        f"(expected {', '.join(SPLITS)})")
                if vid in videos:
                    raise ManifestError(f"{at}: {truncate(vid)} is also in {origin[vid]}")
                videos[vid] = video
                origin[vid] = where
            for i, sentence in enumerate(_entries(data, "sentences", where)):
                at = f"{where}: sentences[{i}]"
                vid = _field(sentence, "video_id", str, at)
                caption = _field(sentence, "caption", str, at)
                order = sentence.get("sen_id", i)
                if not isinstance(order, int) or isinstance(order, bool):
                    raise ManifestError(f"{at}: `sen_id` must be an integer, got "
                                        f"{shorten(order, 40)}")
                captions[vid].append((order, caption))
                caption_origin.setdefault(vid, at)
    unknown = sorted(set(captions) - set(videos))
    if unknown:
        raise ManifestError(f"{caption_origin[unknown[0]]}: captions of {len(unknown)} videos not "
                            f"listed in any `videos` ({truncate(', '.join(unknown[:3]))})")
    clips: list[Clip] = []
    empty = 0
    uncaptioned = []
    for vid, video in videos.items():
        kept, dropped = keep_captions([c for _, c in sorted(captions.get(vid, []))])
        empty += dropped
        if not kept:
            uncaptioned.append(vid)
            continue
        extra: dict[str, Any] = {}
        for name, key in (("category", "category"), ("url", "url"), ("start time", "youtube_start"),
                          ("end time", "youtube_end")):
            if name in video:
                extra[key] = video[name]
        clips.append(Clip(vid, SPLITS[video["split"]], kept, [VideoName(vid)], extra))
    notes = []
    if uncaptioned:
        notes.append(f"{len(uncaptioned)} videos have no caption and are left out "
                     f"({truncate(', '.join(uncaptioned[:3]))}, ...)")
    dropped = {"empty captions": empty, "videos without a caption": len(uncaptioned)}
    return Annotations(clips, notes, dropped, dict(STANDARD))
