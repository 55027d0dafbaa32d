"""The checkpoints of a run directory: written atomically, the last K kept, read back for resume.

    RUN/checkpoints/<k>-<stage>-<step>/model.safetensors   weights that training changes
    RUN/checkpoints/<k>-<stage>-<step>/trainer_state.pt    optimiser, schedule, scaler, step, RNG,
                                                           data position
    RUN/best/model.safetensors + best/info.json            best validation weights
    RUN/trainer_state.pt                                   the final trainer state

A checkpoint folder is written under a temporary name and renamed into place, so a run killed at
any moment leaves only complete checkpoints behind. Weights that no stage trains (a frozen text
encoder) are not repeated in every checkpoint: they come back from the run's own model files.
What a trainer state holds is the trainer's business (`vidcap.training.state`); it is saved with
`torch.save` and read with `weights_only=True`, so a checkpoint can never run code.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Collection
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vidcap.files import atomic_path, write_json
from vidcap.models.mffcl import COMPONENTS
from vidcap.models.weights import load_weights, read_weights, save_weights
from vidcap.runs.layout import TRAINER_STATE, WEIGHTS, RunLayout


def _save_state(state: dict[str, Any], file: Path) -> None:
    with atomic_path(file) as tmp:
        torch.save(state, tmp)


def _step_of(folder: Path) -> tuple[int, int]:
    """(stage index, step) from a checkpoint folder's name `<k>-<stage>-<step>`."""
    return int(folder.name.split("-")[0]), int(folder.name.split("-")[-1])


class CheckpointManager:
    """Writes, lists, prunes and reads the checkpoints of one run (rank 0 writes)."""

    def __init__(self, run_dir: str | Path | RunLayout, keep_last: int = 2) -> None:
        self.layout = run_dir if isinstance(run_dir, RunLayout) else RunLayout(Path(run_dir))
        self.folder = self.layout.checkpoints
        self.keep_last = keep_last

    def save(self, model: nn.Module, trainer_state: dict[str, Any], *, stage_index: int,
             stage: str, step: int, exclude: Collection[str] = ()) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"{stage_index}-{stage}-{step:08d}"
        final = self.folder / name
        tmp = self.folder / f".tmp-{name}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        save_weights(model, tmp / WEIGHTS, skip=exclude)
        torch.save(trainer_state, tmp / TRAINER_STATE)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        self.prune()
        return final

    def list(self) -> list[Path]:
        """Complete checkpoints, oldest first."""
        if not self.folder.is_dir():
            return []
        found = [p for p in self.folder.iterdir()
                 if p.is_dir() and not p.name.startswith(".") and (p / TRAINER_STATE).is_file()]
        return sorted(found, key=_step_of)

    def latest(self) -> Path | None:
        found = self.list()
        return found[-1] if found else None

    def prune(self) -> None:
        for old in self.list()[:-self.keep_last]:
            shutil.rmtree(old, ignore_errors=True)
        for stale in self.folder.glob(".tmp-*"):  # left by a killed process
            shutil.rmtree(stale, ignore_errors=True)

    @staticmethod
    def load(checkpoint: Path, model: nn.Module) -> dict[str, Any]:
        """Load a checkpoint's weights into `model` and return its trainer state. Components
        absent from the checkpoint keep their weights (no stage trains them)."""
        weights = checkpoint / WEIGHTS
        load_weights(model, read_weights(weights), weights, may_lack=COMPONENTS)
        return torch.load(checkpoint / TRAINER_STATE, map_location="cpu", weights_only=True)

    def save_best(self, model: nn.Module, info: dict[str, Any],
                  exclude: Collection[str] = ()) -> None:
        save_weights(model, self.layout.best_weights, skip=exclude)
        write_json(self.layout.best_info, info)

    def save_final_state(self, trainer_state: dict[str, Any]) -> None:
        _save_state(trainer_state, self.layout.trainer_state)
