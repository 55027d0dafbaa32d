"""Prediction and reference files in the formats users have (what `vidcap score` reads).

Predictions, one caption per video, as
- `{"video_id": "caption", ...}` (vidcap's `predictions-<split>.json`; a one-element list is
  accepted as the caption too),
- a coco results list `[{"image_id" or "video_id": ..., "caption": ...}, ...]`,
- or JSON Lines of such objects.

References as
- a vidcap manifest (JSON Lines, `vidcap.data.manifest`; `split` keeps one split),
- a coco annotation file (`{"annotations": [{"image_id", "caption"}, ...], ...}`),
- or `{"video_id": ["reference", ...], ...}`.

Ids are compared as strings: coco's integer image ids become their decimal text. Files are read
within `vidcap.limits` (size, UTF-8, strict JSON): any problem is a MetricsError naming the file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from vidcap import limits
from vidcap.data.manifest import read_manifest, references
from vidcap.errors import MetricsError, shorten


def normalize_id(value: Any, where: str) -> str:
    """A video or image id as a string (coco's integer ids become decimal text)."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise MetricsError(f"{where}: an id must be a string or an integer, got {shorten(value)}")
    text = str(value).strip()
    if not text:
        raise MetricsError(f"{where}: empty id")
    return text


def _read_json(path: Path, what: str) -> tuple[Any, str]:
    """(decoded JSON, or None when the file is JSON Lines: several JSON values; the text)."""
    if not path.is_file():
        raise MetricsError(f"{path}: {what} file not found")
    text = limits.read_text(path, MetricsError)
    try:
        return limits.parse_json(text), text
    except json.JSONDecodeError as err:
        if err.msg == "Extra data":  # several JSON values: JSON Lines
            return None, text
    except (ValueError, RecursionError):
        pass
    return limits.loads_json(text, str(path), MetricsError), text  # raises the clean error


def _json_lines(path: Path) -> list[Any]:
    return [value for _, value in limits.iter_json_lines(path, MetricsError)]


def _caption_of(entry: dict, where: str) -> str:
    caption = entry.get("caption")
    if not isinstance(caption, str):
        raise MetricsError(f"{where}: `caption` must be a string, got {shorten(caption)}")
    return caption


def load_predictions(path: str | Path) -> dict[str, str]:
    """`{video_id: caption}` from a prediction file in any of the module's formats."""
    path = Path(path)
    data, _ = _read_json(path, "predictions")
    if data is None:
        data = _json_lines(path)
    elif isinstance(data, dict) and "caption" in data and ("video_id" in data
                                                           or "image_id" in data):
        data = [data]  # JSON Lines of one prediction, not {video_id: caption}
    predictions: dict[str, str] = {}
    if isinstance(data, dict):
        for key, value in data.items():
            vid = normalize_id(key, f"{path}: key {shorten(key)}")
            if isinstance(value, list) and len(value) == 1:
                value = value[0]
            if not isinstance(value, str):
                raise MetricsError(f"{path}: the prediction for {shorten(key)} must be one "
                                   f"caption (a string), got {shorten(value)}")
            predictions[vid] = value
    elif isinstance(data, list):
        for i, entry in enumerate(data):
            where = f"{path}: entry {i}"
            if not isinstance(entry, dict):
                raise MetricsError(f"{where}: expected an object with an id and a `caption`")
            key = next((k for k in ("video_id", "image_id") if k in entry), None)
            if key is None:
                raise MetricsError(f"{where}: no `video_id` or `image_id`")
            vid = normalize_id(entry[key], where)
            if vid in predictions:
                raise MetricsError(f"{where}: a second prediction for {shorten(vid)} (one caption "
                                   f"per video is scored)")
            predictions[vid] = _caption_of(entry, where)
    else:
        raise MetricsError(f"{path}: expected a JSON object or list of predictions")
    if not predictions:
        raise MetricsError(f"{path}: no predictions")
    return predictions


def load_references(path: str | Path, split: str | None = None) -> dict[str, list[str]]:
    """`{video_id: [reference, ...]}` from a manifest (of `split` when given), a coco annotation
    file or a `{video_id: [references]}` JSON object."""
    path = Path(path)
    data, _ = _read_json(path, "references")
    is_manifest = data is None or (isinstance(data, dict) and "video_id" in data
                                   and "captions" in data)  # JSON Lines (one line or more)
    if is_manifest:
        refs = references(read_manifest(path, split))
        if not refs:
            raise MetricsError(f"{path}: no videos in split {split!r}")
        return refs
    if split is not None:
        raise MetricsError(f"{path}: --split applies to a vidcap manifest; this is a JSON file "
                           f"without splits")
    refs: dict[str, list[str]] = {}
    if isinstance(data, dict) and isinstance(data.get("annotations"), list):  # coco annotations
        for i, entry in enumerate(data["annotations"]):
            where = f"{path}: annotations[{i}]"
            if not isinstance(entry, dict) or "image_id" not in entry:
                raise MetricsError(f"{where}: expected an object with `image_id` and `caption`")
            vid = normalize_id(entry["image_id"], where)
            refs.setdefault(vid, []).append(_caption_of(entry, where))
    elif isinstance(data, dict):
        for key, value in data.items():
            if not isinstance(value, list) or not all(isinstance(c, str) for c in value):
                raise MetricsError(f"{path}: the references of {shorten(key)} must be a list of "
                                   f"strings")
            refs[normalize_id(key, f"{path}: key {shorten(key)}")] = list(value)
    else:
        raise MetricsError(f"{path}: expected a manifest, a coco annotation file or "
                           f"{{video_id: [references]}}")
    if not refs:
        raise MetricsError(f"{path}: no references")
    return refs
