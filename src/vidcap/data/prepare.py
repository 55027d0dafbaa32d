"""`vidcap prepare msvd|msrvtt|vatex`: a manifest from a dataset's official annotation files.

Each dataset module (`msvd`, `msrvtt`, `vatex`) reads its annotation files into `Clip`s
(`vidcap.data.annotations`): an id, a split, the captions, and the names its video file goes by in
the releases users have. This module finds those files in the video folder and writes the
manifest (DESIGN.md, "Data").

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
- Every split the annotation files give must have its standard size (MSVD 1200/100/670, MSR-VTT
  6513/497/2990, VATEX 25991/3000/6000): a truncated or edited annotation file would otherwise
  give a test set that is not the one papers report on, silently. Another size is an error with
  the counts unless `allow_partial` (then a warning). A split the files do not give at all is
  fine (e.g. only MSVD's test captions, for scoring).
- What the readers leave out (empty captions, videos without a caption, descriptions in other
  languages, ...) is counted and logged on every run, zeros included.
- `no_videos` writes a captions-only manifest with `"path": ""` (no video file), enough for
  `vidcap score`; a video loader given such a record has no file to open.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

from vidcap.data.annotations import Annotations, Clip, repeated_captions
from vidcap.data.manifest import VideoRecord, write_manifest
from vidcap.data.msrvtt import read_msrvtt
from vidcap.data.msvd import read_msvd
from vidcap.data.vatex import read_vatex
from vidcap.errors import DatasetError
from vidcap.video import VIDEO_EXTENSIONS

log = logging.getLogger(__name__)

SHOWN = 5
"""How many missing videos an error or warning names."""


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


READERS: dict[str, Callable[[Sequence[Path]], Annotations]] = {
    "msvd": read_msvd, "msrvtt": read_msrvtt, "vatex": read_vatex}
"""The dataset names `prepare_dataset` knows, and the reader of each one's annotation files."""
DATASETS = tuple(READERS)


def read_annotations(name: str, annotations: Sequence[str | Path]) -> Annotations:
    """The clips of dataset `name` from its annotation files (or folders holding them)."""
    if name not in READERS:
        raise DatasetError(f"unknown dataset {name!r} (known: {', '.join(DATASETS)})")
    if not annotations:
        raise DatasetError(f"{name}: no annotation files given")
    found = READERS[name]([Path(p) for p in annotations])
    if not found.clips:
        raise DatasetError(f"{name}: the annotation files hold no captioned video")
    return found


def _split_counts(counts: Counter[str]) -> str:
    return ", ".join(f"{counts[s]} {s}" for s in ("train", "val", "test") if counts[s])


def report(name: str, found: Annotations) -> None:
    """Log what the annotation files gave and what the reader left out (every count, every
    run), then the reader's notes as warnings."""
    counts = Counter(c.split for c in found.clips)
    captions = sum(len(c.captions) for c in found.clips)
    left_out = ", ".join(f"{n} {what}" for what, n in found.dropped.items()) or "nothing"
    log.info("%s: %d videos with %d captions in the annotation files (%s); left out: %s; "
             "%d captions repeat another of their video (kept)", name, len(found.clips),
             captions, _split_counts(counts), left_out, repeated_captions(found.clips))
    for note in found.notes:
        log.warning("%s: %s", name, note)


def check_standard_split(name: str, found: Annotations, *, allow_partial: bool) -> None:
    """A split of another size than the dataset's standard one is a DatasetError with the
    counts, or a warning with `allow_partial`; splits absent from the files are fine."""
    counts = Counter(c.split for c in found.clips)
    off = [s for s, n in found.standard.items() if counts[s] and counts[s] != n]
    if not off:
        return
    sizes = ", ".join(f"{counts[s]} of the {found.standard[s]} {s} videos" for s in found.standard
                      if counts[s])
    message = (f"{name}: the annotation files give {sizes}; the standard split differs in "
               f"{' and '.join(off)}: a truncated or edited file?")
    if not allow_partial:
        raise DatasetError(f"{message} (--allow-partial writes the manifest of these "
                           f"{len(found.clips)} videos)")
    log.warning("%s; writing the %d videos as they are (allow_partial)", message,
                len(found.clips))


def _check_sources(videos: str | Path | None, no_videos: bool, out: Path) -> None:
    if no_videos and videos is not None:
        raise DatasetError("give either --videos (match the video files) or --no-videos "
                           "(a captions-only manifest), not both")
    if not no_videos and videos is None:
        raise DatasetError("give --videos DIR (the folder of the video files) or --no-videos "
                           "(a captions-only manifest, enough for scoring)")
    if out.is_dir():
        raise DatasetError(f"{out}: is a folder; --out names the manifest file to write")


def _missing_message(missing: Sequence[Clip], total: int, videos: str | Path) -> str:
    """`N of M videos not found under DIR (per split): a few names, ...`."""
    named = ", ".join(c.video_id if c.names[0].stem == c.video_id
                      else f"{c.video_id} ({c.names[0].stem})" for c in missing[:SHOWN])
    more = ", ..." if len(missing) > SHOWN else ""
    splits = ", ".join(f"{n} {s}" for s, n in Counter(c.split for c in missing).items())
    return f"{len(missing)} of {total} videos not found under {videos} ({splits}): {named}{more}"


def _records_with_videos(name: str, clips: Sequence[Clip], videos: str | Path, out: Path, *,
                         allow_missing: bool) -> list[VideoRecord]:
    """The records of the clips whose video file is found; missing ones are an error unless
    `allow_missing` (then a warning)."""
    records, missing = locate(clips, Path(videos), out.parent.resolve())
    if not records:
        example = clips[0].names[0].stem
        raise DatasetError(f"none of the {len(clips)} videos found under {videos} "
                           f"(looked for files such as {example}.mp4, {example}.avi, ...)")
    if missing:
        message = _missing_message(missing, len(clips), videos)
        if not allow_missing:
            raise DatasetError(message + " (--allow-missing writes the manifest of the "
                                         f"{len(records)} found)")
        log.warning("%s: %s; the manifest holds the %d found", name, message, len(records))
    return records


def prepare_dataset(name: str, annotations: Sequence[str | Path], *,
                    videos: str | Path | None = None, out: str | Path,
                    allow_missing: bool = False, no_videos: bool = False,
                    allow_partial: bool = False) -> Path:
    """Write the manifest of dataset `name` (`msvd`, `msrvtt`, `vatex`) to `out`; return its path.

    `videos` is the folder of the video files; `no_videos` writes a captions-only manifest instead.
    Missing videos are a DatasetError naming a few, unless `allow_missing`; a split of another
    size than the standard one is a DatasetError with the counts, unless `allow_partial`.
    """
    out = Path(out)
    _check_sources(videos, no_videos, out)
    found = read_annotations(name, annotations)
    order = {"train": 0, "val": 1, "test": 2}
    found.clips.sort(key=lambda c: order[c.split])  # stable: each split keeps the files' order
    report(name, found)
    check_standard_split(name, found, allow_partial=allow_partial)
    if no_videos:
        records = [VideoRecord(c.video_id, "", c.split, c.captions, None, None, dict(c.extra))
                   for c in found.clips]
    else:
        records = _records_with_videos(name, found.clips, videos, out,
                                       allow_missing=allow_missing)
    write_manifest(records, out)
    log.info("%s: wrote %d videos to %s", name, len(records), out)
    return out
