"""Caption every video of a split with a model, score against the manifest's references.

`caption_records` is shared by `vidcap evaluate`, validation during training and the demo; it
shards the videos over the processes of a distributed run and gathers the captions on every rank.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from vidcap.config import Config, GenerateConfig, load_config
from vidcap.data.dataset import ClipDataset, collate_samples
from vidcap.data.manifest import VideoRecord, read_manifest, references
from vidcap.errors import RunError
from vidcap.training.distributed import gather_objects

log = logging.getLogger(__name__)


def caption_records(model: torch.nn.Module, records: Sequence[VideoRecord], cfg: Config, *,
                    gen: GenerateConfig | None = None, rank: int = 0, world_size: int = 1,
                    device: torch.device | str = "cpu", progress: bool = True,
                    ) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """({video_id: caption}, [(video_id, error)]) over all `records`, gathered from every rank."""
    gen = gen or cfg.generate
    shard = list(records)[rank::world_size]
    dataset = ClipDataset(shard, cfg.video, cache_dir=cfg.data.cache_dir, seed=cfg.train.seed)
    loader = DataLoader(dataset, batch_size=gen.batch_size, collate_fn=collate_samples,
                        num_workers=cfg.data.num_workers)
    was_training = model.training
    model.eval()
    captions: dict[str, str] = {}
    failed: list[tuple[str, str]] = []
    bar = tqdm(total=len(shard), desc="captioning", unit="video", leave=False,
               disable=None if (progress and rank == 0) else True)
    with torch.no_grad():
        for batch in loader:
            failed.extend(batch.failed)
            if len(batch):
                texts = model.generate(batch.pixels.to(device), gen)
                captions.update(zip(batch.video_ids, texts))
            bar.update(len(batch) + len(batch.failed))
    bar.close()
    model.train(was_training)
    merged: dict[str, str] = {}
    merged_failed: list[tuple[str, str]] = []
    for part_captions, part_failed in gather_objects((captions, failed)):
        merged.update(part_captions)
        merged_failed.extend(part_failed)
    return merged, merged_failed


def score_predictions(predictions: dict[str, str], records: Sequence[VideoRecord], *,
                      attributes_file: Path | None = None,
                      scorers: Sequence[str] | None = None) -> dict[str, Any]:
    """coco-caption scores (fractions, coco key names) and, for Shapes, attribute accuracies."""
    from vidcap.evaluation.metrics import score_captions

    refs = {k: v for k, v in references(records).items() if k in predictions}
    scores: dict[str, Any] = dict(score_captions(predictions, refs, metrics=scorers).corpus)
    if attributes_file is not None and attributes_file.is_file():
        from vidcap.data.shapes import attribute_accuracy, read_attributes

        scores["attributes"] = attribute_accuracy(predictions, read_attributes(attributes_file))
    return scores


def attributes_beside(manifest: str | Path) -> Path | None:
    """The Shapes attribute record kept beside a manifest, when there is one."""
    candidate = Path(manifest).parent / "attributes.jsonl"
    return candidate if candidate.is_file() else None


def evaluate_run(run_dir: str | Path, *, split: str = "test", manifest: str | Path | None = None,
                 gen_overrides: dict[str, Any] | None = None, which: str = "auto",
                 device: str = "cpu", limit: int | None = None) -> dict[str, Any]:
    """Caption a split with a saved run, write predictions-<split>.json and scores-<split>.json."""
    from vidcap.training.checkpoint import load_run

    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise RunError(f"{run_dir}: not a run directory (no config.yaml)")
    cfg = load_config(run_dir / "config.yaml")
    manifest = Path(manifest or cfg.data.manifest)
    records = read_manifest(manifest, split)
    if limit is not None:
        records = records[:limit]
    if not records:
        raise RunError(f"{manifest}: no videos in split {split!r}")
    gen = replace(cfg.generate, **(gen_overrides or {}))
    model = load_run(run_dir, device=device, which=which)
    predictions, failed = caption_records(model, records, cfg, gen=gen, device=device)
    for video_id, reason in failed:
        log.warning("skipped %s: %s", video_id, reason)
    scores = score_predictions(predictions, records, attributes_file=attributes_beside(manifest))
    scores["videos"] = len(predictions)
    scores["failed"] = len(failed)
    scores["decode"] = asdict(gen)
    _write_json(run_dir / f"predictions-{split}.json", predictions)
    _write_json(run_dir / f"scores-{split}.json", scores)
    return scores


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False))
    os.replace(tmp, path)
