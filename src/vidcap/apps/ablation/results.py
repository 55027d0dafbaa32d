"""Reading a grid's cell-seeds back: each one's scores, direction accuracy and steps to a target,
summarised per cell as mean ± sample sd over seeds (what results.json holds)."""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from vidcap.apps.ablation.grid import Cell
from vidcap.config import Config
from vidcap.data.shapes import ClipAttributes, attributes_beside, read_attributes
from vidcap.errors import RunError
from vidcap.evaluation.shapes import AXES, direction_accuracy
from vidcap.runs.layout import RunLayout
from vidcap.runs.records import read_metrics

TEST_SPLIT = "test"
"""The split every cell-seed is scored on."""
RECORD = "ablation.json"
"""The file in each cell-seed's run directory saying what it was started with and how it ran."""
COCO = ("Bleu_4", "METEOR", "ROUGE_L", "CIDEr")
ATTRIBUTES = ("colour", "shape", "motion", "all")


def read_json(path: Path) -> Any:
    """A JSON file's content, None when there is no such file; RunError when it is not JSON."""
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise RunError(f"{path}: not valid JSON ({err})") from None


def steps_to_target(metrics: Sequence[Mapping[str, Any]], target: float, *,
                    metric: str = "CIDEr") -> int | None:
    """The caption-stage step of the first validation whose `metric` (a fraction) >= target."""
    for line in metrics:
        if line.get("event") == "eval" and line.get("stage") == "caption" \
                and isinstance(line.get(metric), (int, float)) and line[metric] >= target:
            return int(line["step"])
    return None


def _flat_scores(scores: Mapping[str, Any]) -> dict[str, float | None]:
    """{"Bleu_4": .., "held_out.all": .., ...} as percentages (x100)."""
    flat: dict[str, float | None] = {k: 100 * scores[k] for k in COCO if k in scores}
    for group, table in (scores.get("attributes") or {}).items():
        for key in ATTRIBUTES:
            value = table.get(key)
            flat[f"{group}.{key}"] = None if value is None else 100 * value
    return flat


def summarize(values: Sequence[float | None]) -> dict[str, Any]:
    """mean, sample sd (None with fewer than 2 values) and n of the values that are not None."""
    kept = [v for v in values if v is not None and not math.isnan(v)]
    if not kept:
        return {"mean": None, "sd": None, "n": 0}
    return {"mean": statistics.fmean(kept), "sd": statistics.stdev(kept) if len(kept) > 1 else None,
            "n": len(kept)}


def _pct(value: float | None) -> float | None:
    return None if value is None else 100 * value


def _seed_entry(run_dir: Path, target_cider: float | None,
                attributes: Mapping[str, ClipAttributes] | None) -> dict[str, Any] | None:
    """One scored cell-seed's figures (None when it has no test scores yet)."""
    run = RunLayout(run_dir)
    scores = read_json(run.scores(TEST_SPLIT))
    if scores is None:
        return None
    record = read_json(run_dir / RECORD) or {}
    entry: dict[str, Any] = {"scores": _flat_scores(scores),
                             "train_seconds": record.get("train_seconds"),
                             "action": record.get("action")}
    if target_cider is not None:
        entry["steps_to_target"] = steps_to_target(read_metrics(run_dir), target_cider / 100)
    predictions = read_json(run.predictions(TEST_SPLIT))
    if attributes is not None and predictions is not None:
        entry["direction"] = direction_accuracy(predictions, attributes)
    return entry


def _cell_summary(per_seed: Mapping[str, Any], target_cider: float | None) -> dict[str, Any]:
    """Every figure of a cell summarised over its seeds."""
    seeds = list(per_seed.values())
    summary = {key: summarize([s["scores"].get(key) for s in seeds])
               for key in sorted({k for s in seeds for k in s["scores"]})}
    for group in ("all", "seen"):
        for axis in AXES:
            summary[f"direction.{group}.{axis}"] = summarize(
                [_pct(s.get("direction", {}).get(group, {}).get(axis, {}).get("accuracy"))
                 for s in seeds])
    if target_cider is not None:
        reached = [s["steps_to_target"] for s in seeds if s.get("steps_to_target") is not None]
        summary["steps_to_target"] = {**summarize(reached), "reached": len(reached),
                                      "seeds": len(seeds)}
    summary["train_seconds"] = summarize([s.get("train_seconds") for s in seeds])
    return summary


def _budget(base: Config, no_align_budget: str, seeds: int) -> dict[str, Any]:
    train = base.train
    return {"align_steps": train.align.steps, "align_batch": train.align.batch_size,
            "caption_steps": train.caption.steps, "caption_batch": train.caption.batch_size,
            "no_align_budget": no_align_budget,
            "no_align_caption_steps": train.caption.steps + (
                train.align.steps if no_align_budget == "total" else 0),
            "eval_every": train.eval_every, "eval_max_videos": train.eval_max_videos,
            "precision": train.precision, "seeds": seeds}


def collect_results(out: Path, cells: Sequence[Cell], seeds: int, base: Config, *,
                    target_cider: float | None, no_align_budget: str, machine: dict[str, Any],
                    command: str | None, config: str, overrides: list[str], taus: list[int],
                    base_tau: int) -> dict[str, Any]:
    """Read every finished cell-seed back and summarise each cell over its seeds."""
    attributes_file = attributes_beside(base.data.manifest) if base.data.manifest else None
    attributes = read_attributes(attributes_file) if attributes_file is not None else None
    result_cells: dict[str, Any] = {}
    missing = []
    for cell in cells:
        per_seed: dict[str, Any] = {}
        for seed in range(seeds):
            entry = _seed_entry(out / cell.name / f"seed-{seed}", target_cider, attributes)
            if entry is None:
                missing.append(f"{cell.name}/seed-{seed}")
            else:
                per_seed[str(seed)] = entry
        result_cells[cell.name] = {"label": cell.label, "overrides": list(cell.overrides),
                                   "seeds": per_seed,
                                   "summary": _cell_summary(per_seed, target_cider)}
    return {"command": command, "config": config, "overrides": overrides,
            "manifest": base.data.manifest, "taus": taus, "base_tau": base_tau,
            "target_cider": target_cider, "machine": machine,
            "budget": _budget(base, no_align_budget, seeds),
            "written": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "missing": missing, "cells": result_cells}
