"""MSVD (Microsoft Research Video Description Corpus), in both forms users have.

1. The original corpus CSV (`video_corpus.csv`, or `MSR Video Description Corpus.csv`), columns
   VideoID, Start, End, WorkerID, Source, AnnotationTime, Language, Description: one description a
   row, in many languages. The English ones are kept; a clip is `<VideoID>_<Start>_<End>`.
2. The widely shared caption lists `sents_{train,val,test}_lc_nopunc.txt` (`vidN<TAB>caption`,
   lower case, no punctuation).

`youtube_mapping.txt` (`<VideoID>_<Start>_<End> vidN`, 1970 lines) ties clip names to vid numbers.
The standard split (used by every MSVD paper since Venugopalan et al. 2015 / Yao et al. 2015) is by
vid number: vid1..vid1200 train, vid1201..vid1300 val, vid1301..vid1970 test. Video ids in the
manifest are `vidN` in both forms, so predictions carry over; `extra.clip` keeps the clip name.
The CSV needs the mapping (it has no vid numbers, so no split); the caption lists need it only to
find the video files, which the YouTubeClips release names `<VideoID>_<Start>_<End>.avi`.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections import defaultdict
from collections.abc import Iterator, Sequence
from pathlib import Path

from vidcap.data.annotations import (Annotations, Clip, VideoName, expand, keep_captions,
                                     source_window)
from vidcap import limits
from vidcap.errors import DatasetError, ManifestError, shorten, truncate

SPLITS = (("train", 1, 1200), ("val", 1201, 1300), ("test", 1301, 1970))
"""The standard split: (name, first vid number, last vid number)."""
MAPPING = "youtube_mapping.txt"
CSV_COLUMNS = ("VideoID", "Start", "End", "Language", "Description")
"""Columns of the corpus CSV that are read (the others are ignored)."""
STANDARD = {name: hi - lo + 1 for name, lo, hi in SPLITS}
"""Videos per split of the standard split: 1200 / 100 / 670."""
_VID = re.compile(r"^vid(\d{1,9})$")


def split_of(number: int) -> str | None:
    """The standard split of vidN, None outside 1..1970."""
    return next((name for name, lo, hi in SPLITS if lo <= number <= hi), None)


def _number(match: re.Match[str] | None, path: Path, lineno: int) -> int | None:
    """N of a `vidN` match, checked to be in the standard 1..1970 (None: no match)."""
    if match is None:
        return None
    number = int(match.group(1))
    if split_of(number) is None:
        raise ManifestError(f"{path}:{lineno}: vid{number} is outside MSVD's vid1..vid1970")
    return number


def read_mapping(path: Path) -> dict[str, int]:
    """`{clip name: vid number}` from youtube_mapping.txt (CRLF or LF, final newline or not)."""
    mapping: dict[str, int] = {}
    numbers: dict[int, int] = {}
    for lineno, line in limits.iter_lines(path, ManifestError):
        if not line.strip():
            continue
        parts = line.split()
        number = _number(_VID.match(parts[-1]) if len(parts) == 2 else None, path, lineno)
        if number is None:
            raise ManifestError(f"{path}:{lineno}: expected `<VideoID>_<Start>_<End> vidN`, "
                                f"got {shorten(line)}")
        clip = parts[0]
        if clip in mapping or number in numbers:
            raise ManifestError(f"{path}:{lineno}: {truncate(clip)} / vid{number} is "
                                f"mapped twice")
        mapping[clip] = number
        numbers[number] = lineno
    if not mapping:
        raise ManifestError(f"{path}: empty mapping")
    return mapping


def read_caption_list(path: Path) -> tuple[dict[int, list[str]], int]:
    """(`{vid number: captions}`, empty captions dropped) from a `vidN<TAB>caption` file."""
    captions: dict[int, list[str]] = defaultdict(list)
    empty = 0
    for lineno, line in limits.iter_lines(path, ManifestError):
        if not line.strip():
            continue
        vid, tab, caption = line.partition("\t")
        number = _number(_VID.match(vid.strip()), path, lineno)
        if not tab or number is None:
            raise ManifestError(f"{path}:{lineno}: expected `vidN<TAB>caption`, got "
                                f"{shorten(line)}")
        kept, dropped = keep_captions([caption])
        captions[number].extend(kept)
        empty += dropped
    if not captions:
        raise ManifestError(f"{path}: no captions")
    return dict(captions), empty


def _seconds(text: str, path: Path, line: int, column: str) -> str:
    """The Start/End text as it appears in clip names (`5`, not `5.0`)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise ManifestError(f"{path}:{line}: `{column}` must be a number of seconds, "
                            f"got {shorten(text)}")
    return str(int(value)) if value.is_integer() else text.strip()


def read_corpus_csv(path: Path) -> tuple[dict[str, list[str]], dict[str, int]]:
    """(`{clip name: English captions}`, counts of rows left out: `other_language`, `empty`)."""
    rows = csv.reader(io.StringIO(limits.read_text(path, ManifestError), newline=""),
                      strict=True)
    try:
        return _read_csv_rows(rows, path)
    except csv.Error as err:  # an unterminated quote, a field over csv's 128 KiB, ...
        hint = ("; is a quote left open?" if "end of data" in str(err) or "larger" in str(err)
                else "")
        raise ManifestError(f"{path}:{rows.line_num}: not valid CSV ({err}{hint})") from None


def _read_csv_rows(rows: Iterator[list[str]], path: Path
                   ) -> tuple[dict[str, list[str]], dict[str, int]]:
    header = next(rows, None)
    if header is None:
        raise ManifestError(f"{path}: empty file")
    columns = {name.strip().lower(): i for i, name in enumerate(header)}
    absent = [c for c in CSV_COLUMNS if c.lower() not in columns]
    if absent:
        raise ManifestError(f"{path}:1: not MSVD's corpus CSV: no column {', '.join(absent)} "
                            f"(header: {', '.join(header)[:120]})")
    at = {c: columns[c.lower()] for c in CSV_COLUMNS}
    captions: dict[str, list[str]] = defaultdict(list)
    dropped = {"other_language": 0, "empty": 0}
    for row in rows:
        line = rows.line_num
        if not any(cell.strip() for cell in row):
            continue
        if len(row) <= max(at.values()):
            raise ManifestError(f"{path}:{line}: {len(row)} fields, expected {len(header)}")
        if row[at["Language"]].strip().lower() != "english":
            dropped["other_language"] += 1
            continue
        video = row[at["VideoID"]].strip()
        if not video:
            raise ManifestError(f"{path}:{line}: empty VideoID")
        start = _seconds(row[at["Start"]], path, line, "Start")
        end = _seconds(row[at["End"]], path, line, "End")
        kept, empty = keep_captions([row[at["Description"]]])
        captions[f"{video}_{start}_{end}"].extend(kept)
        dropped["empty"] += empty
    return dict(captions), dropped


def _is_msvd_file(path: Path) -> bool:
    name = path.name.lower()
    return (name == MAPPING or name.endswith(".csv")
            or (name.startswith("sents") and name.endswith(".txt")))


def _sort_files(paths: Sequence[Path]) -> tuple[Path | None, list[Path], list[Path]]:
    """(the mapping file, corpus CSVs, caption lists) among the given files and folders."""
    files = expand(paths, _is_msvd_file)
    mapping_files = [p for p in files if p.name.lower() == MAPPING or "mapping" in p.name.lower()]
    csv_files = [p for p in files if p.suffix.lower() == ".csv" and p not in mapping_files]
    list_files = [p for p in files if p not in mapping_files and p not in csv_files]
    for path in list_files:
        if path.suffix.lower() != ".txt":
            raise DatasetError(f"{path}: not an MSVD annotation file (expected the corpus CSV, "
                               f"caption lists `vidN<TAB>caption` .txt, or {MAPPING})")
    if len(mapping_files) > 1:
        raise DatasetError(f"two mapping files: {mapping_files[0]} and {mapping_files[1]}")
    if csv_files and list_files:
        raise DatasetError(f"give MSVD's captions in one form, the corpus CSV "
                           f"({csv_files[0].name}) or the caption lists ({list_files[0].name}), "
                           f"not both")
    if not csv_files and not list_files:
        raise DatasetError("no MSVD captions given: pass the corpus CSV or the sents_*.txt lists "
                           f"(with {MAPPING})")
    return (mapping_files[0] if mapping_files else None), csv_files, list_files


def _captions_from_csv(csv_files: Sequence[Path], mapping: dict[str, int] | None,
                       dropped: dict[str, int]) -> dict[int, list[str]]:
    """{vid number: English captions} from corpus CSVs, through the clip-name mapping."""
    if mapping is None:
        raise DatasetError(f"{csv_files[0]}: the corpus CSV has no vid numbers, so no standard "
                           f"split: pass {MAPPING} too")
    by_number: dict[int, list[str]] = defaultdict(list)
    for path in csv_files:
        clips, left_out = read_corpus_csv(path)
        dropped["descriptions in other languages"] += left_out["other_language"]
        dropped["empty descriptions"] += left_out["empty"]
        for clip, caps in clips.items():
            if clip in mapping:
                by_number[mapping[clip]].extend(caps)
            else:
                dropped[f"English descriptions of clips not in {MAPPING}"] += len(caps)
    return by_number


def _captions_from_lists(list_files: Sequence[Path], dropped: dict[str, int]
                         ) -> dict[int, list[str]]:
    """{vid number: captions} from `vidN<TAB>caption` lists; a video in two lists is an error
    (its captions would count twice)."""
    by_number: dict[int, list[str]] = defaultdict(list)
    origin: dict[int, Path] = {}
    for path in list_files:
        captions, empty = read_caption_list(path)
        dropped["empty captions"] += empty
        for number, caps in captions.items():
            if number in origin:
                raise ManifestError(f"{path}: vid{number} has captions in {origin[number]} too "
                                    f"(give each caption list once)")
            origin[number] = path
            by_number[number].extend(caps)
    return by_number


def _clip(number: int, captions: list[str], clip_of: dict[int, str]) -> Clip:
    """vidN with the names its video file may have (clip name, vidN, the source's window)."""
    names = [VideoName(f"vid{number}")]
    extra = {}
    if number in clip_of:
        clip = clip_of[number]
        window = source_window(clip)
        names = [VideoName(clip), *names, *([window] if window else [])]
        extra["clip"] = clip
    return Clip(f"vid{number}", split_of(number), captions, names, extra)


def read_msvd(paths: Sequence[Path]) -> Annotations:
    """The 1970 MSVD clips from the corpus CSV or the caption lists, with youtube_mapping.txt."""
    mapping_file, csv_files, list_files = _sort_files(paths)
    mapping = read_mapping(mapping_file) if mapping_file else None
    notes: list[str] = []
    dropped: dict[str, int] = defaultdict(int)
    if csv_files:
        by_number = _captions_from_csv(csv_files, mapping, dropped)
    else:
        by_number = _captions_from_lists(list_files, dropped)
    if mapping is None and list_files:
        notes.append(f"no {MAPPING}: video files are looked for as vidN.<ext> only (the "
                     f"YouTubeClips release names them <VideoID>_<Start>_<End>.avi)")
    clip_of = {n: c for c, n in mapping.items()} if mapping else {}
    for number in sorted(by_number):
        if mapping is not None and number not in clip_of:
            raise ManifestError(f"vid{number} has captions but no line in {mapping_file}")
    uncaptioned = sorted({n for n in clip_of if not by_number.get(n)}
                         | {n for n, caps in by_number.items() if not caps})
    dropped["videos without a caption"] = len(uncaptioned)
    if uncaptioned:
        notes.append(f"{len(uncaptioned)} videos have no caption and are left out "
                     f"(vid{uncaptioned[0]}, ...)")
    clips = [_clip(n, by_number[n], clip_of) for n in sorted(by_number) if by_number[n]]
    return Annotations(clips, notes, dict(dropped), dict(STANDARD))
