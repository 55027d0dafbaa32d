"""Two-stage training (paper §III-B, §IV-B): `align` (video-text InfoNCE), then `caption`.

One code path for 1 and N processes (torchrun): each process reads its shard of every epoch,
DistributedDataParallel averages gradients, the contrastive loss gathers features from all ranks,
rank 0 alone logs and writes, holding the run's lock (`vidcap.runs.lock`) from start to end. A
checkpoint holds everything needed to continue exactly where the run stopped: weights, optimiser,
schedule, scaler, RNG states, stage, step, epoch and data position; one is written before every
validation, so a failing validation loses no step. What can be checked before the first step is
(`vidcap.training.checks`), and an epoch that yields no step stops the run instead of looping.
Each stage is prepared by `vidcap.training.stage` and validated by `vidcap.training.validation`;
this module runs the steps.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from vidcap.config import Config, StageConfig
from vidcap.data.clips import Batch, collate_samples, draw_captions
from vidcap.data.manifest import VideoRecord, read_manifest
from vidcap.data.shapes import attributes_beside
from vidcap.distributed import (DistInfo, all_reduce_mean, barrier, broadcast_object,
                                gather_objects, on_main, setup_distributed, teardown_distributed)
from vidcap.errors import ConfigError, DatasetError, RunError
from vidcap.models.mffcl import MFFCL
from vidcap.runs import folders
from vidcap.runs.checkpoints import CheckpointManager
from vidcap.runs.layout import RunLayout
from vidcap.runs.lock import RunLock
from vidcap.runs.records import MetricsLog, plot_curves
from vidcap.runs.store import load_model, read_config, record_clip_length, save_model
from vidcap.runtime import emulated_bf16
from vidcap.training.checks import check_disk_space, check_java, check_stages
from vidcap.training.precision import autocast, training_precision
from vidcap.training.stage import StageSetup, never_trained, setup_stage
from vidcap.training.state import TrainState, rng_state
from vidcap.training.validation import Validator

log = logging.getLogger(__name__)


def train(cfg: Config, run_dir: str | Path, *, resume: bool = False,
          take_over_lock: bool = False) -> Path:
    """Train all stages of `cfg` into `run_dir` (resuming from its latest checkpoint if asked).
    Rank 0 holds the run's lock throughout; `take_over_lock` takes it whatever holds it (a lock
    of a dead process on this host is taken over anyway)."""
    info = setup_distributed(cfg.train.device)
    lock = RunLock(run_dir, "train", take_over=take_over_lock)
    try:
        on_main(lock.acquire)
        return Trainer(cfg, Path(run_dir), info, resume=resume).run()
    finally:
        lock.release()
        teardown_distributed()


@dataclass
class LossWindow:
    """Losses and clips since the last log line."""

    clips: int = 0
    losses: list[float] = field(default_factory=list)
    start: float = field(default_factory=time.perf_counter)

    def add(self, clips: int, loss: float) -> None:
        self.clips += clips
        self.losses.append(loss)

    def mean_loss(self) -> float:
        return sum(self.losses) / len(self.losses)

    def clips_per_second(self) -> float:
        return self.clips / max(1e-9, time.perf_counter() - self.start)


class Trainer:
    def __init__(self, cfg: Config, run_dir: Path, info: DistInfo, *, resume: bool) -> None:
        self.layout = RunLayout(run_dir)
        self.info = info
        self.checkpoints = CheckpointManager(self.layout, cfg.train.keep_last)
        resuming = self._check_folder(resume)
        if resuming:
            cfg = read_config(self.layout)
        self.cfg = cfg
        self.precision, self.precision_reason = training_precision(cfg.train.precision,
                                                                   info.device)
        self.train_records, val_records = self._records()
        check_stages(cfg, self.train_records, info.world_size)
        on_main(lambda: check_java(cfg, val_records))
        if info.is_main_process and not self.layout.clip_stats.is_file():
            record_clip_length(self.layout, self.train_records)  # for segment captioning
        self.metrics = MetricsLog(run_dir, enabled=info.is_main_process)
        self.validator = Validator(cfg, val_records, info, attributes_beside(cfg.data.manifest),
                                   self.metrics, self.checkpoints, self.precision)
        self.model, self.state, self.trainer_state = self._model_and_state(resuming)
        self._record_runtime()

    # -- set-up ---------------------------------------------------------------------------------

    def _check_folder(self, resume: bool) -> bool:
        """Refuse to train over a run without --resume; repair what a killed writer left.
        Whether there are checkpoints to resume from."""
        root = self.layout.root
        if resume and self.layout.is_finished():
            raise RunError(f"{root}: this run has already finished")
        if not resume and self.layout.holds_training():
            raise RunError(f"{root}: holds a run already; pass --resume to continue it or "
                           "choose another --out")
        on_main(lambda: folders.repair_run(self.layout))
        found = bool(self.checkpoints.list())
        if resume and not found:
            log.info("%s: no checkpoint to resume from; training from the start", root)
        return resume and found

    def _records(self) -> tuple[list[VideoRecord], list[VideoRecord]]:
        """The training and validation records of the manifest (its path and the cache folder
        made absolute: a resumed run or another command may start elsewhere)."""
        data = self.cfg.data
        if not data.manifest:
            raise ConfigError("data.manifest: no manifest given (set data.manifest=PATH)")
        manifest = Path(data.manifest).resolve()
        data.manifest = str(manifest)
        if data.cache_dir:
            data.cache_dir = str(Path(data.cache_dir).resolve())
        records = read_manifest(manifest)
        train = [r for r in records if r.split == data.train_split]
        val = [r for r in records if r.split == data.val_split]
        if self.cfg.train.eval_max_videos is not None:
            val = val[:self.cfg.train.eval_max_videos]
        if not train:
            raise DatasetError(f"{manifest}: no videos in split {data.train_split!r}")
        return train, val

    def _write_initial_model(self) -> None:
        cfg = self.cfg
        torch.manual_seed(cfg.train.seed)
        captions = [c for r in self.train_records for c in r.captions]
        save_model(MFFCL.build(cfg.model, cfg.video, captions=captions), self.layout, cfg,
                   note=self._runtime_note())

    def _model_and_state(self, resuming: bool) -> tuple[MFFCL, TrainState, dict | None]:
        if not resuming:
            on_main(self._write_initial_model)
        barrier()
        # every rank (and a resumed run) starts from the same saved files
        model = load_model(self.layout, device="cpu")
        on_main(lambda: check_disk_space(self.layout, model, self.cfg))
        trainer_state = None
        state = TrainState()
        if resuming:
            found = self.checkpoints.load_latest(model)
            if found is None:
                raise RunError(f"{self.layout.checkpoints}: no checkpoint to resume from")
            latest, trainer_state = found
            log.info("resuming from %s", latest)
            state = TrainState(**trainer_state["state"])
            self._restore_best(state)
            self._restore_best(state, align=True)
            self.metrics.truncate_after(state.stage_index, state.step)
        torch.manual_seed(self.cfg.train.seed + self.info.rank)
        return model.to(self.info.device), state, trainer_state

    def _restore_best(self, state: TrainState, *, align: bool = False) -> None:
        """The best score validated at or before the checkpoint's step (a validation runs just
        after its step's checkpoint, so the checkpoint itself does not hold it); `align`: the
        align stage's, from best-align/."""
        info = self.checkpoints.best_info(self.layout.best_align if align else None)
        if not info or "step" not in info or "score" not in info:
            return
        position = (int(info.get("stage_index", state.stage_index)), int(info["step"]))
        if position <= (state.stage_index, state.step):
            best = float(info["score"]), int(info["step"])
            if align:
                state.align_best_score, state.align_best_step = best
            else:
                state.best_score, state.best_step = best

    def _runtime_note(self) -> str:
        """The head of config.yaml: what `train.precision` became on this machine, and why."""
        return (f"train.precision: {self.cfg.train.precision} ran as {self.precision} on "
                f"{self.info.device}: {self.precision_reason}.\n"
                "(written by vidcap train; each session's choice and torch threads are a "
                "`runtime` line of metrics.jsonl)")

    def _record_runtime(self) -> None:
        """Say how this session computes: in the log and as a `runtime` line of metrics.jsonl."""
        threads = torch.get_num_threads()
        emulated = emulated_bf16(self.precision, self.info.device)
        wait = os.environ.get("OMP_WAIT_POLICY", "default").lower()
        log.log(logging.WARNING if emulated else logging.INFO,
                "precision %s (train.precision %s; %s), %d torch thread(s) on %s, OpenMP wait "
                "%s", self.precision, self.cfg.train.precision, self.precision_reason, threads,
                self.info.device, wait)
        self.metrics.write(event="runtime", stage_index=self.state.stage_index,
                           step=self.state.step, precision=self.precision,
                           requested=self.cfg.train.precision, reason=self.precision_reason,
                           device=str(self.info.device), threads=threads, openmp_wait=wait,
                           processes=self.info.world_size)

    # -- the run --------------------------------------------------------------------------------

    def run(self) -> Path:
        stages = self.cfg.train.stages
        while self.state.stage_index < len(stages):
            self._run_stage(stages[self.state.stage_index])
            if stages[self.state.stage_index] == "align" and self.cfg.train.align_keep_best:
                self._start_from_align_best()
            self.state = replace(self.state, stage_index=self.state.stage_index + 1, step=0,
                                 epoch=0, position=0)
            self.trainer_state = None
        on_main(self._finish)
        return self.layout.root

    def _start_from_align_best(self) -> None:
        """The next stage starts from the align stage's best weights (every rank loads them)."""
        barrier()
        if self.checkpoints.load_best(self.model, self.layout.best_align):
            log.info("the caption stage starts from the align stage's best weights (step %s, "
                     "text->video R@1 %s)", self.state.align_best_step,
                     self.state.align_best_score)

    def _finish(self) -> None:
        """The final save (rank 0): the model folder swapped in whole, the curves, then the final
        trainer state, which marks the run finished; a kill before it is resumed from the last
        checkpoint and saves again."""
        save_model(self.model, self.layout, self.cfg, note=self._runtime_note())
        plot_curves(self.layout.root, metric=self.cfg.train.eval_metric)
        self.checkpoints.save_final_state({"state": asdict(self.state)})
        if self.state.skipped:
            log.warning("%d unreadable videos were skipped in training: %s",
                        len(self.state.skipped), ", ".join(list(self.state.skipped)[:5]))

    def _run_stage(self, name: str) -> None:
        stage = getattr(self.cfg.train, name)
        self._validate_if_missed(name, stage)
        if self.state.step >= stage.steps:
            return
        setup = setup_stage(self.model, self.cfg, name, self.info, self.train_records,
                            self.state.stage_index, self.trainer_state, self.precision)
        bar = tqdm(total=stage.steps, initial=self.state.step, desc=name, unit="step",
                   disable=None if self.info.is_main_process else True, dynamic_ncols=True)
        window = LossWindow()
        while self.state.step < stage.steps:
            whole_epoch, steps_before = self.state.position == 0, self.state.step
            exhausted, skipped = self._run_epoch(setup, bar, window)
            if exhausted:  # this epoch's data ran out: report what was unreadable, go on
                unreadable = self._end_epoch(name, skipped)
                if whole_epoch and self.state.step == steps_before:
                    raise DatasetError(self._no_step_message(name, len(setup.dataset),
                                                             unreadable))
        bar.close()

    def _no_step_message(self, name: str, clips: int, unreadable: dict[str, str]) -> str:
        what = f"{self.cfg.data.manifest}: a whole epoch of stage {name} gave no training step"
        if unreadable and len(unreadable) >= clips:
            return (f"{what}: all {clips} training clips are unreadable (e.g. "
                    f"{next(iter(unreadable.values()))})")
        return (f"{what}: {len(unreadable)} of its {clips} training clips are unreadable, and "
                f"the others are fewer than one batch of "
                f"{getattr(self.cfg.train, name).batch_size}")

    def _validate_if_missed(self, name: str, stage: StageConfig) -> None:
        """A resumed run whose checkpoint was written just before a validation that never
        finished (the process was killed) validates first."""
        state = self.state
        if state.step == 0 or not self.validator.is_due(name, stage, state.step):
            return
        missed = broadcast_object(self.info.is_main_process and not self.metrics.has_line(
            "eval", state.stage_index, state.step))
        if missed:
            log.info("validating step %d, which the interrupted run did not finish", state.step)
            self.validator.validate(self.model, state, name)

    def _epoch_batches(self, setup: StageSetup) -> Iterator[Batch]:
        state, seed = self.state, self.cfg.train.seed
        setup.sampler.set_position(state.epoch, state.position)
        # its own generator: creating the iterator must not draw from the global RNG (a resumed
        # run creates it at another moment, and dropout would then differ)
        loader = DataLoader(setup.dataset, batch_size=setup.micro, sampler=setup.sampler,
                            drop_last=True, collate_fn=collate_samples,
                            num_workers=self.cfg.data.num_workers,
                            generator=torch.Generator().manual_seed(seed * 1000 + state.epoch))
        return iter(loader)

    def _run_epoch(self, setup: StageSetup, bar: tqdm, window: LossWindow
                   ) -> tuple[bool, dict[str, str]]:
        """Steps until the stage ends or this epoch's data runs out: (ran out, unreadable
        videos met)."""
        cfg, state = self.cfg, self.state
        batches = self._epoch_batches(setup)
        skipped: dict[str, str] = {}
        while state.step < setup.stage.steps:
            group = self._take(batches, cfg.train.grad_accum)
            if group is None:
                return True, skipped
            state.position += setup.micro * len(group)
            losses, clips = self._accumulate(setup, group, skipped)
            if not losses:
                setup.optimizer.zero_grad(set_to_none=True)
                continue
            lr = self._optimizer_step(setup)
            state.step += 1
            bar.update(1)
            window.add(clips * self.info.world_size, sum(losses) / len(losses))
            if state.step % cfg.train.log_every == 0 or state.step == setup.stage.steps:
                self._log(setup.name, window, lr, bar)
                window = LossWindow()
            validate = self.validator.is_due(setup.name, setup.stage, state.step)
            if validate or state.step == setup.stage.steps or (
                    cfg.train.checkpoint_every and state.step % cfg.train.checkpoint_every == 0):
                self._checkpoint(setup)  # before validating: a failing validation loses no step
            if validate:
                self.validator.validate(self.model, state, setup.name)
        return False, skipped

    def _accumulate(self, setup: StageSetup, group: list[Batch], skipped: dict[str, str]
                    ) -> tuple[list[float], int]:
        """Forward and backward over the micro-batches of one optimiser step: (losses, clips)."""
        cfg, info, state = self.cfg, self.info, self.state
        losses, clips = [], 0
        for i, batch in enumerate(group):
            skipped.update(batch.failed)
            if not self._all_ranks_have_data(batch):
                continue
            captions = draw_captions(batch, seed=cfg.train.seed + state.stage_index,
                                     epoch=state.epoch)
            text: list[str] | torch.Tensor = captions
            if setup.text_table is not None:
                text = torch.stack([setup.text_table[c] for c in captions]).to(info.device)
            last = i == len(group) - 1
            sync = contextlib.nullcontext() if last or not info.is_distributed \
                else setup.objective.no_sync()
            with sync, autocast(self.precision, info.device.type):
                loss = setup.objective(batch.pixels.to(info.device, non_blocking=True), text)
            setup.scaler.scale(loss / len(group)).backward()
            losses.append(float(loss.detach()))
            clips += len(batch)
        return losses, clips

    def _optimizer_step(self, setup: StageSetup) -> float:
        """Clip, step, update the scaler and the schedule; the learning rate that was used."""
        if self.cfg.train.grad_clip > 0:
            setup.scaler.unscale_(setup.optimizer)
            torch.nn.utils.clip_grad_norm_(setup.params, self.cfg.train.grad_clip)
        setup.scaler.step(setup.optimizer)
        setup.scaler.update()
        setup.optimizer.zero_grad(set_to_none=True)
        lr = setup.scheduler.get_last_lr()[0]
        setup.scheduler.step()
        return lr

    def _log(self, name: str, window: LossWindow, lr: float, bar: tqdm) -> None:
        state = self.state
        loss_value = all_reduce_mean(window.mean_loss(), self.info.device)
        rate = window.clips_per_second()
        bar.set_postfix(loss=f"{loss_value:.3f}", lr=f"{lr:.2e}", clips_s=f"{rate:.0f}")
        self.metrics.write(event="train", stage=name, stage_index=state.stage_index,
                           step=state.step, epoch=state.epoch, loss=loss_value, lr=lr,
                           clips_per_s=round(rate, 2))

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

    def _end_epoch(self, stage: str, skipped: dict[str, str]) -> dict[str, str]:
        """Report the epoch's unreadable videos (all processes'), which it returns; next epoch."""
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
        return merged

    def _checkpoint(self, setup: StageSetup) -> None:
        rng = gather_objects(rng_state())
        trainer_state: dict[str, Any] = {
            "state": asdict(self.state), "optimizer": setup.optimizer.state_dict(),
            "scheduler": setup.scheduler.state_dict(), "scaler": setup.scaler.state_dict(),
            "rng": rng}
        on_main(lambda: self.checkpoints.save(
            self.model, trainer_state, stage_index=self.state.stage_index, stage=setup.name,
            step=self.state.step, exclude=never_trained(self.cfg)))
