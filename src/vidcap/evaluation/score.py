"""Score prediction files against reference files (what `vidcap score` runs), and the paper table.

Predictions, one caption per video, as
- `{"video_id": "caption", ...}` (vidcap's `predictions-<split>.json`; a one-element list is
  accepted as the caption too),
- a coco results list `[{"image_id" or "video_id": ..., "caption": ...}, ...]`,
- or JSON Lines of such objects.

References as
- a vidcap manifest (JSON Lines, `vidcap.data.manifest`; `split` keeps one split),
- a coco annotation file (`{"annotations": [{"image_id", "caption"}, ...], ...}`),
- or `{"video_id": ["reference", ...], ...}`.

Ids are compared as strings: coco's integer image ids become their decimal text.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vidcap.errors import MetricsError, VidcapError
from vidcap.evaluation.metrics import METRIC_KEYS, Scores, describe_mismatch, score_captions

log = logging.getLogger(__name__)

TABLE_NAMES = {"Bleu_1": "B@1", "Bleu_2": "B@2", "Bleu_3": "B@3", "Bleu_4": "B@4",
               "METEOR": "METEOR", "ROUGE_L": "ROUGE-L", "CIDEr": "CIDEr"}
"""Column titles of the paper-style table."""


def normalize_id(value: Any, where: str) -> str:
    """A video or image id as a string (coco's integer ids become decimal text)."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise MetricsError(f"{where}: an id must be a string or an integer, got {value!r}")
    text = str(value).strip()
    if not text:
        raise MetricsError(f"{where}: empty id")
    return text


def _read_json(path: Path, what: str) -> tuple[Any, str]:
    """(decoded JSON or None when the file is JSON Lines, raw text)."""
    if not path.is_file():
        raise MetricsError(f"{path}: {what} file not found")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise MetricsError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    try:
        return json.loads(text), text
    except json.JSONDecodeError as err:
        if err.msg == "Extra data":  # several JSON values: JSON Lines
            return None, text
        raise MetricsError(f"{path}: not valid JSON (line {err.lineno}: {err.msg})") from None


def _json_lines(path: Path, text: str) -> list[Any]:
    items = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                items.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise MetricsError(f"{path}:{lineno}: not valid JSON ({err.msg})") from None
    return items


def _caption_of(entry: dict, where: str) -> str:
    caption = entry.get("caption")
    if not isinstance(caption, str):
        raise MetricsError(f"{where}: `caption` must be a string, got {caption!r}")
    return caption


def load_predictions(path: str | Path) -> dict[str, str]:
    """`{video_id: caption}` from a prediction file in any of the module's formats."""
    path = Path(path)
    data, text = _read_json(path, "predictions")
    if data is None:
        data = _json_lines(path, text)
    predictions: dict[str, str] = {}
    if isinstance(data, dict):
        for key, value in data.items():
            vid = normalize_id(key, f"{path}: key {key!r}")
            if isinstance(value, list) and len(value) == 1:
                value = value[0]
            if not isinstance(value, str):
                raise MetricsError(f"{path}: the prediction for {key!r} must be one caption "
                                   f"(a string), got {value!r:.80}")
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
                raise MetricsError(f"{where}: a second prediction for {vid!r} (one caption per "
                                   f"video is scored)")
            predictions[vid] = _caption_of(entry, where)
    else:
        raise MetricsError(f"{path}: expected a JSON object or list of predictions")
    if not predictions:
        raise MetricsError(f"{path}: no predictions")
    return predictions


def load_references(path: str | Path, split: str | None = None) -> dict[str, list[str]]:
    """`{video_id: [reference, ...]}` from a manifest (of `split` when given), a coco annotation
    file or a `{video_id: [references]}` JSON object."""
    from vidcap.data.manifest import read_manifest, references

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
                raise MetricsError(f"{path}: the references of {key!r} must be a list of strings")
            refs[normalize_id(key, f"{path}: key {key!r}")] = list(value)
    else:
        raise MetricsError(f"{path}: expected a manifest, a coco annotation file or "
                           f"{{video_id: [references]}}")
    if not refs:
        raise MetricsError(f"{path}: no references")
    return refs


@dataclass
class Mismatch:
    """Ids found on one side only."""

    unreferenced: list[str] = field(default_factory=list)
    """Predicted videos that have no references."""
    unpredicted: list[str] = field(default_factory=list)
    """Referenced videos that have no prediction."""

    def __bool__(self) -> bool:
        return bool(self.unreferenced or self.unpredicted)


def match_ids(predictions: Mapping[str, str], references: Mapping[str, Sequence[str]], *,
              allow_missing: bool = False) -> tuple[dict[str, str], dict[str, list[str]], Mismatch]:
    """The predictions and references of the ids both hold. Ids on one side only are a
    MetricsError (counting and naming a few) unless `allow_missing`; then they are returned."""
    problems = describe_mismatch(list(predictions), list(references))
    if problems and not allow_missing:
        raise MetricsError("; ".join(problems) + " (--allow-missing scores the videos in both)")
    common = [v for v in references if v in predictions]
    if not common:
        raise MetricsError("predictions and references share no video id")
    mismatch = Mismatch(unreferenced=[v for v in predictions if v not in references],
                        unpredicted=[v for v in references if v not in predictions])
    return ({v: predictions[v] for v in common}, {v: list(references[v]) for v in common},
            mismatch)


@dataclass
class ScoreReport:
    """What `score_files` found."""

    scores: Scores
    mismatch: Mismatch
    warnings: list[str]
    """Sentences for the user (the ids left out with `allow_missing`)."""
    predictions: dict[str, str]
    """The predictions scored (after matching)."""


def score_files(predictions: str | Path, references: str | Path, *, split: str | None = None,
                allow_missing: bool = False, per_video: bool = False) -> ScoreReport:
    """Load, match and score a prediction file against a reference file."""
    all_preds = load_predictions(predictions)
    all_refs = load_references(references, split)
    try:
        preds, refs, mismatch = match_ids(all_preds, all_refs, allow_missing=allow_missing)
    except MetricsError as err:
        raise MetricsError(f"{predictions} vs {references}: {err}") from None
    warnings = []
    if mismatch:
        warnings.append(f"scored the {len(preds)} videos in both files; left out: "
                        + "; ".join(describe_mismatch(list(all_preds), list(all_refs))))
    scores = score_captions(preds, refs, per_video=per_video)  # logs empty predictions
    return ScoreReport(scores, mismatch, warnings, preds)


def format_table(scores: Scores, label: str | None = None) -> str:
    """The paper-style table: one header line and one row of scores ×100, one decimal."""
    keys = [k for k in METRIC_KEYS if k in scores.corpus]
    first = label if label is not None else "videos"
    widths = [max(len(TABLE_NAMES[k]), 5) for k in keys]
    head = f"{first:<10}" + "".join(f"{TABLE_NAMES[k]:>{w + 2}}" for k, w in zip(keys, widths))
    cell = label if label is not None else str(scores.num_videos)
    row = f"{cell:<10}" + "".join(f"{100 * scores.corpus[k]:>{w + 2}.1f}"
                                  for k, w in zip(keys, widths))
    return head + "\n" + row


def write_json(data: Any, path: str | Path) -> Path:
    """Write JSON (atomically: a temporary file, then rename); creates the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def scores_json(scores: Scores) -> dict[str, float]:
    """coco-caption's `{name: fraction}` (what `--out` and `scores-<split>.json` hold)."""
    return dict(scores.corpus)


def per_video_json(scores: Scores, predictions: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """`{video_id: {"caption": prediction, name: score, ...}}` (for error analysis)."""
    if scores.per_video is None:
        raise VidcapError("per-video scores were not computed (per_video=True)")
    return {vid: {"caption": predictions[vid], **row} for vid, row in scores.per_video.items()}
