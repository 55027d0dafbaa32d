"""Scoring captions: every entry point in one place.

- `score_captions`: `{video_id: caption}` against `{video_id: [references]}` -> `Scores` (clean,
  PTB-tokenize, run the scorers of `vidcap.evaluation.metrics`);
- `score_files`: a prediction file against a reference file (what `vidcap score` runs; formats
  in `vidcap.evaluation.formats`);
- `score_predictions`: a model's predictions against manifest records, with the Shapes attribute
  accuracies when the set has them (what `vidcap evaluate`, validation and the demo run).

Captions are cleaned before anything else (`vidcap.text.clean_caption`): line breaks, control and
format characters and METEOR's field separator `|||` become spaces. An empty prediction stays
empty: it is scored as a caption with no words (zero on every metric for its video, and its
references still count in BLEU's brevity penalty), and a warning says how many there were.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vidcap.data.manifest import VideoRecord, references
from vidcap.errors import MetricsError, VidcapError
from vidcap.evaluation.formats import load_predictions, load_references
from vidcap.evaluation.java import find_java, ptb_tokenize, start_meteor
from vidcap.evaluation.metrics import METRIC_KEYS, METRICS, Scores, Tokenized, run_scorers
from vidcap.text import clean_caption

log = logging.getLogger(__name__)

TABLE_NAMES = {"Bleu_1": "B@1", "Bleu_2": "B@2", "Bleu_3": "B@3", "Bleu_4": "B@4",
               "METEOR": "METEOR", "ROUGE_L": "ROUGE-L", "CIDEr": "CIDEr"}
"""Column titles of the paper-style table."""


# ---------------------------------------------------------------------------------------------
# captions


def describe_mismatch(predictions: Sequence[str], references: Sequence[str], shown: int = 3
                      ) -> list[str]:
    """Sentences counting and naming ids only predicted / only referenced ([] when they match)."""
    preds, refs = set(predictions), set(references)
    problems = []
    for ids, what in ((sorted(preds - refs, key=_natural), "prediction(s) have no references"),
                      (sorted(refs - preds, key=_natural), "video(s) with references have no "
                                                           "prediction")):
        if ids:
            named = ", ".join(repr(i) for i in ids[:shown]) + (", ..." if len(ids) > shown else "")
            problems.append(f"{len(ids)} {what} ({named})")
    return problems


def _natural(text: str) -> list[object]:
    """Sort key that puts video2 before video10."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def _chosen_metrics(metrics: Sequence[str] | None) -> tuple[str, ...]:
    chosen = tuple(METRICS if metrics is None else metrics)
    unknown = sorted(set(chosen) - set(METRICS))
    if unknown:
        raise MetricsError(f"unknown metric(s) {unknown}; known: {', '.join(METRICS)}")
    return chosen


def _clean(predictions: Mapping[str, str], references: Mapping[str, Sequence[str]]
           ) -> tuple[dict[str, list[str]], dict[str, list[str]], int]:
    """(cleaned hypotheses, cleaned non-empty references, empty predictions), ids as strings;
    MetricsError when the ids differ, or a caption is not text, or a video has no reference."""
    preds = {str(k): v for k, v in predictions.items()}
    refs = {str(k): v for k, v in references.items()}
    problems = describe_mismatch(list(preds), list(refs))
    if problems:
        raise MetricsError("predictions and references differ: " + "; ".join(problems))
    if not preds:
        raise MetricsError("nothing to score: no predictions")
    hyps_clean: dict[str, list[str]] = {}
    refs_clean: dict[str, list[str]] = {}
    for vid in refs:
        caption = preds[vid]
        if not isinstance(caption, str):
            raise MetricsError(f"the prediction for {vid!r} is not a string: {caption!r}")
        hyps_clean[vid] = [clean_caption(caption)]
        if isinstance(refs[vid], str) or not all(isinstance(r, str) for r in refs[vid]):
            raise MetricsError(f"the references of {vid!r} must be a list of strings")
        refs_clean[vid] = [c for c in (clean_caption(r) for r in refs[vid]) if c]
        if not refs_clean[vid]:
            raise MetricsError(f"video {vid!r} has no non-empty reference caption")
    empty = sum(not h[0] for h in hyps_clean.values())
    return hyps_clean, refs_clean, empty


def _tokenize(hyps: dict[str, list[str]], refs: dict[str, list[str]]
              ) -> tuple[Tokenized, Tokenized]:
    """PTB-tokenize references and hypotheses in one run of the tokenizer."""
    tokenized = ptb_tokenize({**{f"r{v}": c for v, c in refs.items()},
                              **{f"h{v}": c for v, c in hyps.items()}})
    gts = {v: tokenized[f"r{v}"] for v in refs}
    res = {v: tokenized[f"h{v}"] for v in refs}
    if not any(w for refs_v in gts.values() for r in refs_v for w in r.split()):
        raise MetricsError("the references hold no words after tokenization")
    return gts, res


def score_captions(predictions: Mapping[str, str], references: Mapping[str, Sequence[str]], *,
                   per_video: bool = False, metrics: Sequence[str] | None = None) -> Scores:
    """coco-caption scores of `{video_id: caption}` against `{video_id: [reference, ...]}`.

    Both must hold the same ids (MetricsError counting and naming the differences otherwise;
    `match_ids` keeps the common ones). `metrics` picks among `METRICS` (default all). CIDEr's
    IDF comes from the references of the set being scored (see `vidcap.evaluation.metrics`).
    """
    find_java()  # fail first, in one sentence, where there is no Java runtime
    chosen = _chosen_metrics(metrics)
    hyps, refs, empty = _clean(predictions, references)
    if "meteor" in chosen:
        start_meteor()  # its JVM loads METEOR's tables while the captions are tokenized
    if empty:
        log.warning("%d of %d predictions are empty; each scores as a caption with no words",
                    empty, len(refs))
    seconds: dict[str, float] = {}
    clock = time.perf_counter()
    gts, res = _tokenize(hyps, refs)
    seconds["tokenize"] = time.perf_counter() - clock
    ids = list(refs)
    corpus, video_scores, stats = run_scorers(ids, gts, res, chosen, seconds)
    table = None
    if per_video:
        table = {vid: {k: video_scores[k][i] for k in corpus} for i, vid in enumerate(ids)}
    return Scores(corpus=corpus, num_videos=len(ids), per_video=table, bleu_stats=stats,
                  seconds=seconds, empty_predictions=empty)


def score_predictions(predictions: dict[str, str], records: Sequence[VideoRecord], *,
                      attributes_file: Path | None = None,
                      scorers: Sequence[str] | None = None) -> dict[str, Any]:
    """coco-caption scores (fractions, coco key names) of a model's predictions against the
    manifest records they caption and, for Shapes, the attribute accuracies."""
    refs = {k: v for k, v in references(records).items() if k in predictions}
    scores: dict[str, Any] = dict(score_captions(predictions, refs, metrics=scorers).corpus)
    if attributes_file is not None and attributes_file.is_file():
        from vidcap.data.shapes import read_attributes
        from vidcap.evaluation.shapes import attribute_accuracy

        scores["attributes"] = attribute_accuracy(predictions, read_attributes(attributes_file))
    return scores


# ---------------------------------------------------------------------------------------------
# files


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


def scores_json(scores: Scores) -> dict[str, float]:
    """coco-caption's `{name: fraction}` (what `--out` and `scores-<split>.json` hold)."""
    return dict(scores.corpus)


def per_video_json(scores: Scores, predictions: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """`{video_id: {"caption": prediction, name: score, ...}}` (for error analysis)."""
    if scores.per_video is None:
        raise VidcapError("per-video scores were not computed (per_video=True)")
    return {vid: {"caption": predictions[vid], **row} for vid, row in scores.per_video.items()}
