"""Where a training run stands, and the RNG states that let a resumed run repeat itself exactly."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch


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
    align_best_score: float | None = None
    """Best validation text-to-video R@1 of the align stage so far (percent)."""
    align_best_step: int | None = None
    skipped: dict[str, str] = field(default_factory=dict)
    """Unreadable videos met so far: {video_id: reason}."""


def rng_state() -> dict[str, Any]:
    """Python, NumPy and torch RNG states as tensors and plain values (loadable weights_only)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {"python": random.getstate(),
             "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss],
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what `rng_state` saved."""
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
