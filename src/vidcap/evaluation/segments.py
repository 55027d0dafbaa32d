"""Scores of segment captioning on long Shapes videos (`vidcap prepare shapes --long N`).

Two questions, asked against the true segments of segments.jsonl:

- Are the cuts where they should be? Predicted cut times are matched one-to-one to true cut times
  within a tolerance (0.25 s: two frames at 8 fps); recall is matched / true, precision matched /
  predicted. The start and the end of a video are not cuts.
- Does the caption say what happens? For each true segment, the cue on screen at its midpoint is
  read back with the Shapes caption parser, and its colour, shape and motion compared with the
  truth, for seen and held-out (colour, shape) pairs apart (the rule of `attribute_accuracy`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from vidcap.data.manifest import iter_json_lines
from vidcap.captioning.segments import Cue
from vidcap.data.shapes import ClipAttributes, ShapeObject
from vidcap.data.shapes_long import SEGMENTS_FILE, LongVideoTruth, TrueSegment
from vidcap.errors import DatasetError, MetricsError
from vidcap.evaluation.shapes import attribute_accuracy

CUT_TOLERANCE = 0.25
"""Seconds a predicted cut may lie from a true one and still match it."""
_EPS = 1e-6


# ---------------------------------------------------------------------------------------------
# cuts


def match_cuts(predicted: Sequence[float], true: Sequence[float],
               tolerance: float = CUT_TOLERANCE) -> tuple[int, int, int]:
    """(true positives, false positives, false negatives) of a one-to-one matching of predicted
    to true cut times, each pair at most `tolerance` seconds apart, with as many pairs as possible
    (on a line, pairing the earliest unmatched cuts of both lists greedily is optimal)."""
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance}")
    p, t = sorted(predicted), sorted(true)
    i = j = matched = 0
    while i < len(p) and j < len(t):
        if p[i] < t[j] - tolerance - _EPS:
            i += 1  # too early for this true cut and every later one
        elif p[i] > t[j] + tolerance + _EPS:
            j += 1  # this true cut is out of reach of every later prediction
        else:
            matched, i, j = matched + 1, i + 1, j + 1
    return matched, len(p) - matched, len(t) - matched


def cue_cuts(cues: Sequence[Cue]) -> list[float]:
    """The cuts a list of cues shows: where one cue gives way to the next (each start but the
    first); a gap between cues counts as a cut at the next cue's start."""
    return [cue.start for cue in cues[1:]]


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def cut_scores(predicted: Mapping[str, Sequence[float]], truth: Mapping[str, LongVideoTruth],
               tolerance: float = CUT_TOLERANCE) -> dict[str, Any]:
    """Cut recall, precision and F1 over the videos of `predicted` (cut times per video_id),
    pooled over cuts. Predicted cuts at or outside a video's start and end are dropped first.
    Rates are None when undefined (no true cuts, or no predicted ones)."""
    tp = fp = fn = 0
    for video_id, cuts in predicted.items():
        video = truth.get(video_id)
        if video is None:
            raise MetricsError(f"cuts predicted for {video_id!r}, which has no true segments")
        inside = [c for c in cuts if _EPS < c < video.duration - _EPS]
        a, b, c = match_cuts(inside, video.cuts, tolerance)
        tp, fp, fn = tp + a, fp + b, fn + c
    recall, precision = _ratio(tp, tp + fn), _ratio(tp, tp + fp)
    f1 = (2 * recall * precision / (recall + precision)
          if recall is not None and precision is not None and recall + precision > 0 else None)
    return {"recall": recall, "precision": precision, "f1": f1, "tp": tp, "fp": fp, "fn": fn,
            "tolerance": tolerance, "videos": len(predicted)}


# ---------------------------------------------------------------------------------------------
# attributes


def caption_at(cues: Sequence[Cue], time: float) -> str:
    """The text of the cue on screen at `time` seconds ("" when none is)."""
    for cue in cues:
        if cue.start <= time < cue.end:
            return cue.text
    return ""


def segment_attribute_accuracy(cues_per_video: Mapping[str, Sequence[Cue]],
                               truth: Mapping[str, LongVideoTruth]) -> dict[str, dict[str, Any]]:
    """Colour, shape, motion and all-three accuracy of the cue covering each true segment's
    midpoint, over the videos of `cues_per_video`, seen and held-out pairs apart (`n` counts
    segments; a segment no cue covers is wrong on everything)."""
    predictions: dict[str, str] = {}
    attributes: dict[str, ClipAttributes] = {}
    for video_id, cues in cues_per_video.items():
        video = truth.get(video_id)
        if video is None:
            raise MetricsError(f"captions for {video_id!r}, which has no true segments")
        for j, segment in enumerate(video.segments):
            key = f"{video_id}#{j}"
            predictions[key] = caption_at(cues, (segment.start + segment.end) / 2)
            obj = ShapeObject(segment.colour, segment.shape, segment.motion, [])
            attributes[key] = ClipAttributes(key, "test", segment.held_out, [obj])
    return attribute_accuracy(predictions, attributes)


# ---------------------------------------------------------------------------------------------
# reading segments.jsonl


def _number(data: Mapping[str, Any], key: str, where: str) -> float:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise DatasetError(f"{where}: `{key}` must be a number, got {value!r}")
    return value


def _segment(data: Any, where: str) -> TrueSegment:
    if not isinstance(data, dict):
        raise DatasetError(f"{where}: a segment must be a JSON object")
    try:
        segment = TrueSegment(**data)
    except TypeError as err:
        raise DatasetError(f"{where}: malformed segment ({err})") from None
    start, end = _number(data, "start", where), _number(data, "end", where)
    if not 0 <= start < end:
        raise DatasetError(f"{where}: segment [{start}, {end}] s is empty or negative")
    for key in ("colour", "shape", "motion"):
        if not isinstance(data[key], str):
            raise DatasetError(f"{where}: `{key}` must be a string")
    return segment


def _video(data: Any, where: str, root: Path) -> LongVideoTruth:
    if not isinstance(data, dict):
        raise DatasetError(f"{where}: expected a JSON object")
    missing = [k for k in ("video_id", "path", "fps", "num_frames", "duration", "segments")
               if k not in data]
    if missing:
        raise DatasetError(f"{where}: missing field {', '.join(repr(k) for k in missing)}")
    fps, duration = _number(data, "fps", where), _number(data, "duration", where)
    if fps <= 0 or duration <= 0:
        raise DatasetError(f"{where}: `fps` and `duration` must be positive")
    if not isinstance(data["segments"], list) or not data["segments"]:
        raise DatasetError(f"{where}: `segments` must be a non-empty list")
    segments = [_segment(s, f"{where}: segment {i}") for i, s in enumerate(data["segments"])]
    for i in range(1, len(segments)):
        if segments[i].start < segments[i - 1].end - _EPS:
            raise DatasetError(f"{where}: segment {i} starts before segment {i - 1} ends")
    if segments[-1].end > duration + _EPS:
        raise DatasetError(f"{where}: the last segment ends after the video ({duration} s)")
    return LongVideoTruth(str(data["video_id"]), str(data["path"]), float(fps),
                          int(_number(data, "num_frames", where)), float(duration), segments,
                          root)


def read_long_truth(path: str | Path) -> dict[str, LongVideoTruth]:
    """Read segments.jsonl (or the folder holding it): {video_id: LongVideoTruth}. A malformed
    line is a `DatasetError` naming the file and the line."""
    path = Path(path)
    if path.is_dir():
        path = path / SEGMENTS_FILE
    if not path.is_file():
        raise DatasetError(f"{path}: long-video segments file not found "
                           "(written by `vidcap prepare shapes --long N`)")
    videos: dict[str, LongVideoTruth] = {}
    for lineno, data in iter_json_lines(path, DatasetError):
        video = _video(data, f"{path}:{lineno}", path.parent)
        if video.video_id in videos:
            raise DatasetError(f"{path}:{lineno}: video_id {video.video_id!r} repeats")
        videos[video.video_id] = video
    if not videos:
        raise DatasetError(f"{path}: no long videos in the segments file")
    return videos
