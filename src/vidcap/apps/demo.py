"""The offline demo (`make demo`): Shapes world -> both training stages -> test-split scores.

Everything lands in one run directory (default `runs/demo/`): the generated clips under `shapes/`,
the frame cache under `cache/`, and the run itself (config, weights, metrics, curves, predictions,
scores). A finished demo run is replaced by a fresh one; an interrupted one is resumed.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vidcap.config import load_config
from vidcap.data.manifest import read_manifest
from vidcap.data.shapes import ClipAttributes, ShapesSpec, prepare_shapes, read_attributes
from vidcap.evaluation.evaluate import evaluate_run
from vidcap.files import write_json
from vidcap.runs.checkpoints import CheckpointManager
from vidcap.runs.layout import RunLayout
from vidcap.runtime import resolve_precision
from vidcap.training.trainer import train

log = logging.getLogger(__name__)

KEEP = ("shapes", "cache")


@dataclass
class DemoSample:
    video_id: str
    held_out: bool
    prediction: str
    references: list[str]


@dataclass
class DemoResult:
    run_dir: Path
    scores: dict[str, Any]
    samples: list[DemoSample]
    seconds: dict[str, float] = field(default_factory=dict)


def _clear_finished_run(out: Path) -> None:
    for item in out.iterdir():
        if item.name in KEEP:
            continue
        shutil.rmtree(item) if item.is_dir() else item.unlink()


def run_demo(out: str | Path = "runs/demo", *, preset: str = "shapes-tiny",
             overrides: Sequence[str] = (), videos: int | None = None, seed: int = 0,
             num_samples: int = 8) -> DemoResult:
    """Prepare Shapes (once), train the preset, evaluate on the test split."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}
    shapes_dir = out / "shapes"
    manifest = shapes_dir / "manifest.jsonl"
    started = time.perf_counter()
    spec = ShapesSpec(seed=seed)
    if not manifest.is_file():
        log.info("generating the Shapes world in %s", shapes_dir)
        prepare_shapes(shapes_dir, spec, videos=videos)
    seconds["prepare"] = time.perf_counter() - started

    cfg = load_config(preset, [f"data.manifest={manifest}", f"data.cache_dir={out / 'cache'}",
                               *overrides])
    run = RunLayout(out)
    resume = bool(CheckpointManager(run).list()) and not run.is_finished()
    if run.is_finished() or not resume:
        _clear_finished_run(out)
    started = time.perf_counter()
    train(cfg, out, resume=resume)
    seconds["train"] = time.perf_counter() - started

    started = time.perf_counter()
    precision, _ = resolve_precision(cfg.train.precision, "cpu")  # as training decided it
    scores = evaluate_run(out, split=cfg.data.test_split, precision=precision)
    seconds["evaluate"] = time.perf_counter() - started

    predictions = json.loads(run.predictions(cfg.data.test_split).read_text())
    attributes = read_attributes(shapes_dir)
    records = read_manifest(manifest, cfg.data.test_split)
    samples = _pick_samples(records, predictions, attributes, num_samples)
    scores["seconds"] = {k: round(v, 1) for k, v in seconds.items()}
    write_json(run.scores(cfg.data.test_split), scores)
    return DemoResult(out, scores, samples, seconds)


def _pick_samples(records, predictions: dict[str, str], attributes: dict[str, ClipAttributes],
                  count: int) -> list[DemoSample]:
    """Half from seen (colour, shape) pairs, half from held-out pairs, in manifest order."""
    seen, held = [], []
    for record in records:
        if record.video_id not in predictions:
            continue
        clip = attributes.get(record.video_id)
        held_out = clip is not None and clip.held_out
        sample = DemoSample(record.video_id, held_out, predictions[record.video_id],
                            record.captions[:2])
        (held if held_out else seen).append(sample)
    half = count // 2
    return seen[:count - min(half, len(held))] + held[:half]
