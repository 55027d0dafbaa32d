"""Validation during training, every `train.eval_every` steps and at the end of a stage:

- caption stage: greedy captions of the validation split, scored; the best weights kept (best/)
  by `train.eval_metric`;
- align stage (`train.align_eval`): text-to-video and video-to-text retrieval of the validation
  split in the aligned space (no captions generated); the best weights by text-to-video R@1 kept
  in best-align/ when `train.align_keep_best` asks for them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from vidcap.captioning.batch import caption_records
from vidcap.config import Config, StageConfig
from vidcap.data.manifest import VideoRecord
from vidcap.distributed import DistInfo, gather_objects, on_main
from vidcap.errors import ConfigError
from vidcap.evaluation.alignment import embed_set
from vidcap.evaluation.retrieval import caption_set, retrieval_metrics
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
        wanted = name == "caption" or (name == "align" and self.cfg.train.align_eval)
        return wanted and bool(self.records) and (
            bool(every and step % every == 0) or step == stage.steps)

    def validate(self, model: MFFCL, state: TrainState, name: str) -> dict[str, Any] | None:
        """Validate stage `name` (module docstring); rank 0 scores and writes."""
        if name == "align":
            return self.validate_alignment(model, state)
        return self.validate_captions(model, state, name)

    def validate_alignment(self, model: MFFCL, state: TrainState) -> dict[str, Any] | None:
        """Retrieval on the validation split (rank 0: every process would compute the same);
        the best weights by text-to-video R@1 kept when asked."""
        scores = on_main(lambda: self._retrieval(model, state))
        best = gather_objects((state.align_best_score, state.align_best_step))[0]
        state.align_best_score, state.align_best_step = best
        return scores

    def _retrieval(self, model: MFFCL, state: TrainState) -> dict[str, Any]:
        was_training = model.training
        model.eval()
        try:
            with torch.random.fork_rng(devices=[]), torch.no_grad():
                embedded = embed_set(model, caption_set(self.records, name="validation"),
                                     self.cfg, batch_size=self.cfg.generate.batch_size)
        finally:
            model.train(was_training)
        result = retrieval_metrics(embedded.texts @ embedded.videos.T, embedded.video_of_text)
        scores = {f"{d}_{k}": round(float(getattr(m, key)), 4)
                  for d, m in (("t2v", result.t2v), ("v2t", result.v2t))
                  for k, key in (("r1", "r1"), ("r5", "r5"), ("r10", "r10"),
                                 ("medr", "median_rank"))}
        self.metrics.write(event="eval", stage="align", stage_index=state.stage_index,
                           step=state.step, split=self.cfg.data.val_split, **scores)
        log.info("align validation at step %d: text->video R@1 %.1f  R@5 %.1f  R@10 %.1f",
                 state.step, scores["t2v_r1"], scores["t2v_r5"], scores["t2v_r10"])
        if state.align_best_score is None or scores["t2v_r1"] > state.align_best_score:
            state.align_best_score, state.align_best_step = scores["t2v_r1"], state.step
            if self.cfg.train.align_keep_best:
                self.checkpoints.save_best(
                    model, {"step": state.step, "stage": "align", "stage_index": state.stage_index,
                            "metric": "t2v_r1", "score": scores["t2v_r1"]},
                    exclude=never_trained(self.cfg), folder=self.checkpoints.layout.best_align)
        return scores

    def validate_captions(self, model: MFFCL, state: TrainState, name: str
                          ) -> dict[str, Any] | None:
        """Caption and score the validation split; save the weights when they are the best so
        far. Every process captions its shard; rank 0 scores and writes."""
        cfg, info = self.cfg, self.info
        gen = replace(cfg.generate, strategy="greedy")
        with torch.random.fork_rng(devices=[]):
            predictions, _ = caption_records(model, self.records, cfg, gen=gen, rank=info.rank,
                                             world_size=info.world_size, device=info.device,
                                             progress=False, precision=self.precision)
        scores = None
        if predictions:  # rank 0 scores and writes; a failure there stops every process
            scores = on_main(lambda: self._score(model, state, name, predictions))
        best = gather_objects((state.best_score, state.best_step))[0]
        state.best_score, state.best_step = best
        return scores

    def _score(self, model: MFFCL, state: TrainState, name: str,
               predictions: dict[str, str]) -> dict[str, Any]:
        scores = score_predictions(predictions, self.records, attributes_file=self.attributes,
                                   scorers=self.cfg.train.eval_scorers)
        self._record(model, state, name, scores)
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
                                               "stage_index": state.stage_index,
                                               "metric": metric, "score": scores[metric]},
                                       exclude=never_trained(self.cfg))
