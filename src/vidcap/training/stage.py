"""One training stage set up: what it trains, its optimiser, schedule and scaler, its data, and
the objective DistributedDataParallel wraps. The trainer runs the steps; this module prepares
everything a stage needs, in an order that a resumed run repeats exactly."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from vidcap.config import Config, StageConfig
from vidcap.data.clips import ClipDataset, ResumableSampler
from vidcap.data.manifest import VideoRecord
from vidcap.distributed import DistInfo
from vidcap.errors import ConfigError
from vidcap.files import atomic_path
from vidcap.models.mffcl import COMPONENTS, MFFCL
from vidcap.training.optim import build_optimizer, build_scheduler
from vidcap.training.precision import grad_scaler
from vidcap.training.state import set_rng_state


class StageObjective(nn.Module):
    """The model's loss of one stage as a `forward`, so DistributedDataParallel can wrap it."""

    def __init__(self, model: MFFCL, stage: str) -> None:
        super().__init__()
        self.model = model
        self.stage = stage

    def forward(self, pixels: torch.Tensor, text: list[str] | torch.Tensor) -> torch.Tensor:
        if self.stage == "align":
            return self.model.align_loss(pixels, text)
        return self.model.caption_loss(pixels, text)


def trainable_components(cfg: Config, stage: str) -> set[str]:
    """What `stage` updates: its `trainable` list, plus a text encoder marked trainable (align),
    minus what the model's config never lets train (`ModelConfig.never_trainable`)."""
    chosen = set(getattr(cfg.train, stage).trainable)
    if stage == "align" and cfg.model.text_encoder.trainable:
        chosen.add("text_encoder")
    return chosen - cfg.model.never_trainable()


def never_trained(cfg: Config) -> set[str]:
    """Components no stage updates: checkpoints need not repeat their weights."""
    trained = set().union(*(trainable_components(cfg, s) for s in cfg.train.stages))
    return set(COMPONENTS) - trained


def micro_batch(cfg: Config, name: str, world_size: int) -> int:
    """Clips per process and forward pass: the stage's global batch over processes and
    accumulation steps (ConfigError when it does not split evenly)."""
    stage: StageConfig = getattr(cfg.train, name)
    micro = stage.batch_size // (world_size * cfg.train.grad_accum)
    if micro * world_size * cfg.train.grad_accum != stage.batch_size or micro < 1:
        raise ConfigError(f"train.{name}.batch_size: {stage.batch_size} does not split into "
                          f"{world_size} processes x {cfg.train.grad_accum} accumulation steps")
    return micro


@dataclass
class StageSetup:
    """Everything one stage's steps use."""

    name: str
    stage: StageConfig
    micro: int
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: torch.amp.GradScaler
    dataset: ClipDataset
    sampler: ResumableSampler
    objective: nn.Module
    params: list[nn.Parameter]
    text_table: dict[str, torch.Tensor] | None
    """Frozen text encoder: every training caption's features, computed once."""


def setup_stage(model: MFFCL, cfg: Config, name: str, info: DistInfo,
                records: list[VideoRecord], stage_index: int,
                trainer_state: dict[str, Any] | None, precision: str = "fp32") -> StageSetup:
    """Prepare stage `name` (restoring optimiser, schedule, scaler and RNG from `trainer_state`
    when resuming mid-stage); `precision` is the one chosen for `train.precision`."""
    stage: StageConfig = getattr(cfg.train, name)
    micro = micro_batch(cfg, name, info.world_size)
    trainable = trainable_components(cfg, name)
    model.train()
    if not model.set_trainable(trainable):
        raise ConfigError(f"train.{name}.trainable: {', '.join(sorted(trainable))} of this model "
                          f"have no parameters to train, but the stage has {stage.steps} steps")
    optimizer = build_optimizer(model, stage, cfg.train)
    dataset = ClipDataset(records, cfg.video, cache_dir=cfg.data.cache_dir, seed=cfg.train.seed)
    scheduler = build_scheduler(optimizer, stage, max(1, len(dataset) // stage.batch_size))
    scaler = grad_scaler(precision, info.device.type)
    if trainer_state is not None:
        optimizer.load_state_dict(trainer_state["optimizer"])
        scheduler.load_state_dict(trainer_state["scheduler"])
        scaler.load_state_dict(trainer_state["scaler"])
        set_rng_state(trainer_state["rng"][info.rank])
    text_table = None
    if name == "align" and "text_encoder" not in trainable:
        text_table = text_features(model, cfg, records, save=info.is_main_process)
    objective: nn.Module = StageObjective(model, name)
    if info.is_distributed:
        objective = DistributedDataParallel(
            objective, device_ids=[info.device.index] if info.device.type == "cuda" else None,
            find_unused_parameters=True)
    sampler = ResumableSampler(dataset, num_replicas=info.world_size, rank=info.rank,
                               seed=cfg.train.seed + stage_index, drop_last=True)
    params = [p for p in model.parameters() if p.requires_grad]
    return StageSetup(name, stage, micro, optimizer, scheduler, scaler, dataset, sampler,
                      objective, params, text_table)


def text_features(model: MFFCL, cfg: Config, records: list[VideoRecord], *,
                  save: bool) -> dict[str, torch.Tensor]:
    """Frozen text encoder: every training caption encoded once (the text-feature cache, kept in
    `data.cache_dir` when set; only `save`-ing processes write it)."""
    captions = sorted({c for r in records for c in r.captions})
    cache_file = None
    if cfg.data.cache_dir:
        digest = hashlib.sha1(("\n".join(captions) + repr(cfg.model.text_encoder))
                              .encode()).hexdigest()[:16]
        cache_file = Path(cfg.data.cache_dir) / f"text-{digest}.pt"
        if cache_file.is_file():
            return torch.load(cache_file, map_location="cpu", weights_only=True)
    table: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for start in range(0, len(captions), 256):
            chunk = captions[start:start + 256]
            table.update(zip(chunk, model.encode_text(chunk).float().cpu()))
    if cache_file is not None and save:
        with atomic_path(cache_file) as tmp:
            torch.save(table, tmp)
    return table
