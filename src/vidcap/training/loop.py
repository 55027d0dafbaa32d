"""Two-stage training (paper §III-B, §IV-B): `align` (video-text InfoNCE), then `caption`.

One code path for 1 and N processes (torchrun): each process reads its shard of every epoch,
DistributedDataParallel averages gradients, the contrastive loss gathers features from all ranks,
rank 0 alone logs and writes. A checkpoint holds everything needed to continue exactly where the
run stopped: weights, optimiser, schedule, scaler, RNG states, stage, step, epoch and data position.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from vidcap.config import Config, StageConfig, load_config, save_config
from vidcap.data.dataset import Batch, ClipDataset, ResumableSampler, collate_samples, draw_captions
from vidcap.data.manifest import VideoRecord, read_manifest
from vidcap.errors import ConfigError, DatasetError, RunError
from vidcap.evaluation.evaluate import attributes_beside, caption_records, score_predictions
from vidcap.models.mffcl import COMPONENTS, MFFCL
from vidcap.training.checkpoint import CheckpointManager, rng_state, set_rng_state
from vidcap.training.distributed import (DistInfo, all_reduce_mean, barrier, gather_objects,
                                         setup_distributed, teardown_distributed)
from vidcap.training.optim import build_optimizer, build_scheduler
from vidcap.training.records import MetricsLog, plot_curves

log = logging.getLogger(__name__)


def autocast(precision: str, device_type: str) -> contextlib.AbstractContextManager:
    """The autocast of `train.precision` on a device: bf16 anywhere, fp16 on CUDA only (on CPU
    it runs in fp32), fp32 as is."""
    if precision == "bf16":
        return torch.autocast(device_type, dtype=torch.bfloat16)
    if precision == "fp16" and device_type == "cuda":
        return torch.autocast(device_type, dtype=torch.float16)
    return contextlib.nullcontext()


@dataclass
class TrainState:
    """Where a run stands; saved in every checkpoint."""

    stage_index: int = 0
    step: int = 0
    """Optimiser steps completed in the current stage."""
    epoch: int = 0
    position: int = 0
    """Samples of this rank's shard already consumed in the current epoch."""
    best_score: float | None = None
    best_step: int | None = None
    skipped: dict[str, str] = field(default_factory=dict)
    """Unreadable videos met so far: {video_id: reason}."""


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
    minus a decoder or text encoder marked `trainable: false`."""
    chosen = set(getattr(cfg.train, stage).trainable)
    if stage == "align" and cfg.model.text_encoder.trainable:
        chosen.add("text_encoder")
    if not cfg.model.text_encoder.trainable:
        chosen.discard("text_encoder")
    if not cfg.model.decoder.trainable:
        chosen.discard("decoder")
    return chosen


def never_trained(cfg: Config) -> set[str]:
    """Components no stage updates: checkpoints need not repeat their weights."""
    trained = set().union(*(trainable_components(cfg, s) for s in cfg.train.stages))
    return set(COMPONENTS) - trained


def train(cfg: Config, run_dir: str | Path, *, resume: bool = False) -> Path:
    """Train all stages of `cfg` into `run_dir` (resuming from its latest checkpoint if asked)."""
    info = setup_distributed(cfg.train.device)
    try:
        return Trainer(cfg, Path(run_dir), info, resume=resume).run()
    finally:
        teardown_distributed()


class Trainer:
    def __init__(self, cfg: Config, run_dir: Path, info: DistInfo, *, resume: bool) -> None:
        self.run_dir = run_dir
        self.info = info
        self.checkpoints = CheckpointManager(run_dir, cfg.train.keep_last)
        if resume and self.finished(run_dir):
            raise RunError(f"{run_dir}: this run has already finished")
        latest = self.checkpoints.latest() if resume else None
        if latest is not None:
            cfg = load_config(run_dir / "config.yaml")
            log.info("resuming from %s", latest)
        elif not resume and self.checkpoints.list():
            raise RunError(f"{run_dir}: holds a run already; pass --resume to continue it or "
                           "choose another --out")
        self.cfg = cfg
        if not cfg.data.manifest:
            raise ConfigError("data.manifest: no manifest given (set data.manifest=PATH)")
        manifest = Path(cfg.data.manifest).resolve()
        self.cfg.data.manifest = str(manifest)
        records = read_manifest(manifest)
        self.train_records = [r for r in records if r.split == cfg.data.train_split]
        self.val_records = [r for r in records if r.split == cfg.data.val_split]
        if cfg.train.eval_max_videos is not None:
            self.val_records = self.val_records[:cfg.train.eval_max_videos]
        if not self.train_records:
            raise DatasetError(f"{manifest}: no videos in split {cfg.data.train_split!r}")
        self.attributes = attributes_beside(manifest)
        self.metrics = MetricsLog(run_dir, enabled=info.is_main_process)
        self.model, self.state, self.trainer_state = self._model_and_state(latest)

    @staticmethod
    def finished(run_dir: Path) -> bool:
        return (run_dir / "trainer_state.pt").is_file()

    # -- set-up ---------------------------------------------------------------------------------

    def _model_and_state(self, latest: Path | None) -> tuple[MFFCL, TrainState, dict | None]:
        cfg = self.cfg
        if latest is None and self.info.is_main_process:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            torch.manual_seed(cfg.train.seed)
            captions = [c for r in self.train_records for c in r.captions]
            built = MFFCL.build(cfg.model, cfg.video, captions=captions)
            built.save(self.run_dir)
            save_config(cfg, self.run_dir / "config.yaml")
            del built
        barrier()
        # every rank (and a resumed run) starts from the same saved files
        model = MFFCL.load(self.run_dir, device="cpu")
        trainer_state = None
        state = TrainState()
        if latest is not None:
            trainer_state = CheckpointManager.load(latest, model)
            state = TrainState(**trainer_state["state"])
            self.metrics.truncate_after(state.stage_index, state.step)
        torch.manual_seed(cfg.train.seed + self.info.rank)
        return model.to(self.info.device), state, trainer_state

    # -- the run --------------------------------------------------------------------------------

    def run(self) -> Path:
        stages = self.cfg.train.stages
        while self.state.stage_index < len(stages):
            self._run_stage(stages[self.state.stage_index])
            self.state = replace(self.state, stage_index=self.state.stage_index + 1, step=0,
                                 epoch=0, position=0)
            self.trainer_state = None
        if self.info.is_main_process:
            self.model.save(self.run_dir)
            save_config(self.cfg, self.run_dir / "config.yaml")
            self.checkpoints.save_final_state({"state": asdict(self.state)})
            plot_curves(self.run_dir, metric=self.cfg.train.eval_metric)
            if self.state.skipped:
                log.warning("%d unreadable videos were skipped in training: %s",
                            len(self.state.skipped), ", ".join(list(self.state.skipped)[:5]))
        barrier()
        return self.run_dir

    def _run_stage(self, name: str) -> None:
        cfg, info, state = self.cfg, self.info, self.state
        stage: StageConfig = getattr(cfg.train, name)
        if state.step >= stage.steps:
            return
        micro = stage.batch_size // (info.world_size * cfg.train.grad_accum)
        if micro * info.world_size * cfg.train.grad_accum != stage.batch_size or micro < 1:
            raise ConfigError(f"train.{name}.batch_size: {stage.batch_size} does not split into "
                              f"{info.world_size} processes x {cfg.train.grad_accum} accumulation steps")
        trainable = trainable_components(cfg, name)
        self.model.train()
        self.model.set_trainable(trainable)
        optimizer = build_optimizer(self.model, stage, cfg.train)
        dataset = ClipDataset(self.train_records, cfg.video, cache_dir=cfg.data.cache_dir,
                              seed=cfg.train.seed)
        steps_per_epoch = max(1, len(dataset) // stage.batch_size)
        scheduler = build_scheduler(optimizer, stage, steps_per_epoch)
        use_fp16 = cfg.train.precision == "fp16" and info.device.type == "cuda"
        scaler = torch.amp.GradScaler("cuda", enabled=use_fp16)
        if self.trainer_state is not None:
            optimizer.load_state_dict(self.trainer_state["optimizer"])
            scheduler.load_state_dict(self.trainer_state["scheduler"])
            scaler.load_state_dict(self.trainer_state["scaler"])
            set_rng_state(self.trainer_state["rng"][info.rank])
        text_table = self._text_features(name, trainable)
        objective: nn.Module = StageObjective(self.model, name)
        if info.is_distributed:
            objective = DistributedDataParallel(
                objective, device_ids=[info.device.index] if info.device.type == "cuda" else None,
                find_unused_parameters=True)
        sampler = ResumableSampler(dataset, num_replicas=info.world_size, rank=info.rank,
                                   seed=cfg.train.seed + state.stage_index, drop_last=True)
        params = [p for p in self.model.parameters() if p.requires_grad]
        bar = tqdm(total=stage.steps, initial=state.step, desc=name, unit="step",
                   disable=None if info.is_main_process else True, dynamic_ncols=True)
        window_clips, window_start, window_losses = 0, time.perf_counter(), []
        while state.step < stage.steps:
            sampler.set_position(state.epoch, state.position)
            # its own generator: creating the iterator must not draw from the global RNG (a
            # resumed run creates it at another moment, and dropout would then differ)
            loader = DataLoader(dataset, batch_size=micro, sampler=sampler, drop_last=True,
                                collate_fn=collate_samples, num_workers=cfg.data.num_workers,
                                generator=torch.Generator().manual_seed(
                                    cfg.train.seed * 1000 + state.epoch))
            batches = iter(loader)
            epoch_skipped: dict[str, str] = {}
            exhausted = False
            while state.step < stage.steps:
                group = self._take(batches, cfg.train.grad_accum)
                if group is None:
                    exhausted = True
                    break
                losses, clips = [], 0
                state.position += micro * len(group)
                for i, batch in enumerate(group):
                    epoch_skipped.update(batch.failed)
                    if not self._all_ranks_have_data(batch):
                        continue
                    captions = draw_captions(batch, seed=cfg.train.seed + state.stage_index,
                                             epoch=state.epoch)
                    text: list[str] | torch.Tensor = captions
                    if text_table is not None:
                        text = torch.stack([text_table[c] for c in captions]).to(info.device)
                    last = i == len(group) - 1
                    sync = contextlib.nullcontext() if last or not info.is_distributed \
                        else objective.no_sync()
                    with sync, self._autocast():
                        loss = objective(batch.pixels.to(info.device, non_blocking=True), text)
                    scaler.scale(loss / len(group)).backward()
                    losses.append(float(loss.detach()))
                    clips += len(batch)
                if not losses:
                    optimizer.zero_grad(set_to_none=True)
                    continue
                if cfg.train.grad_clip > 0:
                    scaler.unscale_(optimizer)
                    torch.nn.utils.clip_grad_norm_(params, cfg.train.grad_clip)
                scaler.step(optimizer)
                scaler.update()
                optimizer.zero_grad(set_to_none=True)
                lr = scheduler.get_last_lr()[0]
                scheduler.step()
                state.step += 1
                bar.update(1)
                window_clips += clips * info.world_size
                window_losses.append(sum(losses) / len(losses))
                if state.step % cfg.train.log_every == 0 or state.step == stage.steps:
                    loss_value = all_reduce_mean(sum(window_losses) / len(window_losses), info.device)
                    rate = window_clips / max(1e-9, time.perf_counter() - window_start)
                    bar.set_postfix(loss=f"{loss_value:.3f}", lr=f"{lr:.2e}", clips_s=f"{rate:.0f}")
                    self.metrics.write(event="train", stage=name, stage_index=state.stage_index,
                                       step=state.step, epoch=state.epoch, loss=loss_value, lr=lr,
                                       clips_per_s=round(rate, 2))
                    window_clips, window_start, window_losses = 0, time.perf_counter(), []
                self._maybe_validate(name, stage)
                if (cfg.train.checkpoint_every and state.step % cfg.train.checkpoint_every == 0) \
                        or state.step == stage.steps:
                    self._checkpoint(name, optimizer, scheduler, scaler)
            if exhausted:  # this epoch's data ran out: report what was unreadable, go on
                self._end_epoch(name, epoch_skipped)
        bar.close()

    # -- pieces ---------------------------------------------------------------------------------

    @staticmethod
    def _take(batches: Iterator[Batch], count: int) -> list[Batch] | None:
        group = []
        for _ in range(count):
            batch = next(batches, None)
            if batch is None:
                return None  # a partial accumulation at the end of an epoch is dropped
            group.append(batch)
        return group

    def _all_ranks_have_data(self, batch: Batch) -> bool:
        """False when this or any other process got a batch of only unreadable videos."""
        has = len(batch) > 0
        if not self.info.is_distributed:
            return has
        flag = torch.tensor([1.0 if has else 0.0], device=self.info.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MIN)
        return bool(flag.item())

    def _autocast(self) -> contextlib.AbstractContextManager:
        return autocast(self.cfg.train.precision, self.info.device.type)

    def _text_features(self, stage: str, trainable: set[str]) -> dict[str, torch.Tensor] | None:
        """Frozen text encoder: encode every training caption once (the text-feature cache)."""
        if stage != "align" or "text_encoder" in trainable:
            return None
        captions = sorted({c for r in self.train_records for c in r.captions})
        cache_file = None
        if self.cfg.data.cache_dir:
            import hashlib

            digest = hashlib.sha1(("\n".join(captions) + repr(self.cfg.model.text_encoder))
                                  .encode()).hexdigest()[:16]
            cache_file = Path(self.cfg.data.cache_dir) / f"text-{digest}.pt"
            if cache_file.is_file():
                return torch.load(cache_file, map_location="cpu", weights_only=True)
        table: dict[str, torch.Tensor] = {}
        with torch.no_grad():
            for start in range(0, len(captions), 256):
                chunk = captions[start:start + 256]
                table.update(zip(chunk, self.model.encode_text(chunk).float().cpu()))
        if cache_file is not None and self.info.is_main_process:
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache_file.with_name(cache_file.name + ".tmp")
            torch.save(table, tmp)
            tmp.replace(cache_file)
        return table

    def _end_epoch(self, stage: str, skipped: dict[str, str]) -> None:
        state = self.state
        merged: dict[str, str] = {}
        for part in gather_objects(skipped):
            merged.update(part)
        if merged:
            state.skipped.update(merged)
            log.warning("%s epoch %d: skipped %d unreadable video(s): %s", stage, state.epoch,
                        len(merged), "; ".join(f"{reason}" for reason in list(merged.values())[:3]))
            self.metrics.write(event="skipped", stage=stage, stage_index=state.stage_index,
                               step=state.step, epoch=state.epoch, count=len(merged),
                               videos=sorted(merged))
        state.epoch += 1
        state.position = 0

    def _maybe_validate(self, name: str, stage: StageConfig) -> None:
        every = self.cfg.train.eval_every
        due = name == "caption" and self.val_records and (
            (every and self.state.step % every == 0) or self.state.step == stage.steps)
        if due:
            self.validate(name)

    def validate(self, name: str) -> dict[str, Any] | None:
        """Greedy captions of the validation split, scored; the best weights are kept."""
        cfg, info, state = self.cfg, self.info, self.state
        gen = replace(cfg.generate, strategy="greedy")
        with torch.random.fork_rng(devices=[]):
            predictions, _ = caption_records(self.model, self.val_records, cfg, gen=gen,
                                             rank=info.rank, world_size=info.world_size,
                                             device=info.device, progress=False)
        scores = None
        if info.is_main_process and predictions:
            scores = score_predictions(predictions, self.val_records,
                                       attributes_file=self.attributes,
                                       scorers=cfg.train.eval_scorers)
            metric = cfg.train.eval_metric
            if metric not in scores:
                raise ConfigError(f"train.eval_metric: {metric!r} is not a metric "
                                  f"({', '.join(k for k in scores if k != 'attributes')})")
            self.metrics.write(event="eval", stage=name, stage_index=state.stage_index,
                               step=state.step, split=cfg.data.val_split, **scores)
            log.info("validation at step %d: %s", state.step, "  ".join(
                f"{k} {v:.3f}" for k, v in scores.items() if isinstance(v, float)))
            if state.best_score is None or scores[metric] > state.best_score:
                state.best_score, state.best_step = float(scores[metric]), state.step
                self.checkpoints.save_best(self.model, {"step": state.step, "stage": name,
                                                        "metric": metric, "score": scores[metric]},
                                           exclude=never_trained(cfg))
        best = gather_objects((state.best_score, state.best_step))[0]
        state.best_score, state.best_step = best
        return scores

    def _checkpoint(self, name: str, optimizer, scheduler, scaler) -> None:
        rng = gather_objects(rng_state())
        if self.info.is_main_process:
            trainer_state = {"state": asdict(self.state), "optimizer": optimizer.state_dict(),
                             "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(),
                             "rng": rng}
            self.checkpoints.save(self.model, trainer_state, stage_index=self.state.stage_index,
                                  stage=name, step=self.state.step,
                                  exclude=never_trained(self.cfg))
        barrier()
