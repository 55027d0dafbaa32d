"""Validation during training: greedy captions of the validation split, scored; the best weights
kept by `train.eval_metric`."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from vidcap.captioning.batch import caption_records
from vidcap.config import Config, StageConfig
from vidcap.data.manifest import VideoRecord
from vidcap.distributed import DistInfo, gather_objects
from vidcap.errors import ConfigError
from vidcap.evaluation.score import score_predictions
from vidcap.models.mffcl import MFFCL
from vidcap.runs.checkpoints import CheckpointManager
from vidcap.runs.records import MetricsLog
from vidcap.training.stage import never_trained
from vidcap.training.state import TrainState

log = logging.getLogger(__name__)


@dataclass
class Validator:
    """Validates the caption stage every `train.eval_every` steps and at its end."""

    cfg: Config
    records: list[VideoRecord]
    """The validation split (at most `train.eval_max_videos` of it)."""
    info: DistInfo
    attributes: Path | None
    """The Shapes attribute record beside the manifest, when there is one."""
    metrics: MetricsLog
    checkpoints: CheckpointManager
    precision: str = "fp32"
    """The precision training chose: validation captions under it."""

    def is_due(self, name: str, stage: StageConfig, step: int) -> bool:
        every = self.cfg.train.eval_every
        return name == "caption" and bool(self.records) and (
            bool(every and step % every == 0) or step == stage.steps)

    def validate(self, model: MFFCL, state: TrainState, name: str) -> dict[str, Any] | None:
        """Caption and score the validation split; save the weights when they are the best so
        far. Every process captions its shard; rank 0 scores and writes."""
        cfg, info = self.cfg, self.info
        gen = replace(cfg.generate, strategy="greedy")
        with torch.random.fork_rng(devices=[]):
            predictions, _ = caption_records(model, self.records, cfg, gen=gen, rank=info.rank,
                                             world_size=info.world_size, device=info.device,
                                             progress=False, precision=self.precision)
        scores = None
        if info.is_main_process and predictions:
            scores = score_predictions(predictions, self.records,
                                       attributes_file=self.attributes,
                                       scorers=cfg.train.eval_scorers)
            self._record(model, state, name, scores)
        best = gather_objects((state.best_score, state.best_step))[0]
        state.best_score, state.best_step = best
        return scores

    def _record(self, model: MFFCL, state: TrainState, name: str,
                scores: dict[str, Any]) -> None:
        metric = self.cfg.train.eval_metric
        if metric not in scores:
            raise ConfigError(f"train.eval_metric: {metric!r} is not a metric "
                              f"({', '.join(k for k in scores if k != 'attributes')})")
        self.metrics.write(event="eval", stage=name, stage_index=state.stage_index,
                           step=state.step, split=self.cfg.data.val_split, **scores)
        log.info("validation at step %d: %s", state.step, "  ".join(
            f"{k} {v:.3f}" for k, v in scores.items() if isinstance(v, float)))
        if state.best_score is None or scores[metric] > state.best_score:
            state.best_score, state.best_step = float(scores[metric]), state.step
            self.checkpoints.save_best(model, {"step": state.step, "stage": name,
                                               "metric": metric, "score": scores[metric]},
                                       exclude=never_trained(self.cfg))
