"""Optimiser and learning-rate schedules of a training stage (paper §IV-B)."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn

from vidcap.config import StageConfig, TrainConfig


def parameter_groups(named: Iterable[tuple[str, nn.Parameter]], weight_decay: float) -> list[dict]:
    """Trainable parameters in two groups: matrices decay, norms and biases (1-D) do not."""
    decay, no_decay = [], []
    for _, param in named:
        if param.requires_grad:
            (decay if param.ndim >= 2 else no_decay).append(param)
    groups = [{"params": decay, "weight_decay": weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


def build_optimizer(model: nn.Module, stage: StageConfig, train: TrainConfig) -> torch.optim.Optimizer:
    """Adam (L2 decay, as the paper) or AdamW (decoupled decay) over the trainable parameters."""
    groups = parameter_groups(model.named_parameters(), train.weight_decay)
    if not groups:
        raise ValueError("no trainable parameters in this stage")
    cls = torch.optim.AdamW if train.optimizer == "adamw" else torch.optim.Adam
    return cls(groups, lr=stage.lr)


def lr_factor(step: int, stage: StageConfig, steps_per_epoch: int = 1) -> float:
    """Multiplier of the peak learning rate at optimiser step `step` (0-based).

    inverse_time: 1 / (1 + delta * t), the paper's eq. 4, t in steps or epochs after warm-up;
    cosine: half a cosine from 1 to 0 over the steps after warm-up; constant: 1.
    Warm-up (any schedule) rises linearly from 1/warmup to 1.
    """
    if step < stage.warmup_steps:
        return (step + 1) / stage.warmup_steps
    t = step - stage.warmup_steps
    if stage.schedule == "constant":
        return 1.0
    if stage.schedule == "cosine":
        span = max(1, stage.steps - stage.warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(t, span) / span))
    if stage.decay_unit == "epoch":
        t = t // max(1, steps_per_epoch)
    return 1.0 / (1.0 + stage.decay_rate * t)


def build_scheduler(optimizer: torch.optim.Optimizer, stage: StageConfig,
                    steps_per_epoch: int = 1) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, stage, steps_per_epoch))
