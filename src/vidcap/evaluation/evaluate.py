"""`vidcap evaluate`: caption a split with a trained run and score it against the manifest.

Writes the run's `predictions-<split>.json` and `scores-<split>.json` (coco-caption scores as
fractions, the Shapes attribute accuracies when the set has them, the decoding used, and how many
videos were captioned and skipped).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from vidcap.captioning.batch import caption_records
from vidcap.data.manifest import read_manifest
from vidcap.data.shapes import attributes_beside
from vidcap.errors import RunError
from vidcap.evaluation.score import score_predictions
from vidcap.files import write_json
from vidcap.runs.layout import open_run
from vidcap.runs.store import load_run, read_config

log = logging.getLogger(__name__)


def evaluate_run(run_dir: str | Path, *, split: str = "test", manifest: str | Path | None = None,
                 gen_overrides: dict[str, Any] | None = None, which: str = "auto",
                 device: str = "cpu", limit: int | None = None,
                 precision: str = "fp32") -> dict[str, Any]:
    """Caption a split with a saved run (the model under `precision`: fp32, bf16 or fp16), write
    predictions-<split>.json and scores-<split>.json."""
    layout = open_run(run_dir)
    cfg = read_config(layout)
    manifest = Path(manifest or cfg.data.manifest)
    records = read_manifest(manifest, split)
    if limit is not None:
        records = records[:limit]
    if not records:
        raise RunError(f"{manifest}: no videos in split {split!r}")
    gen = replace(cfg.generate, **(gen_overrides or {}))
    model = load_run(layout.root, device=device, which=which)
    predictions, failed = caption_records(model, records, cfg, gen=gen, device=device,
                                          precision=precision)
    for video_id, reason in failed:
        log.warning("skipped %s: %s", video_id, reason)
    scores = score_predictions(predictions, records, attributes_file=attributes_beside(manifest))
    scores["videos"] = len(predictions)
    scores["failed"] = len(failed)
    scores["decode"] = asdict(gen)
    scores["precision"] = precision
    write_json(layout.predictions(split), predictions)
    write_json(layout.scores(split), scores)
    return scores
