"""The checkpoints of a run directory: written whole, the last K kept, read back for resume.

    RUN/checkpoints/<k>-<stage>-<step>/model.safetensors   weights that training changes
    RUN/checkpoints/<k>-<stage>-<step>/trainer_state.pt    optimiser, schedule, scaler, step, RNG,
                                                           data position
    RUN/checkpoints/<k>-<stage>-<step>/checksums.json      sha256 of both
    RUN/best/model.safetensors + info.json + checksums.json   best validation weights
    RUN/trainer_state.pt                                   the final trainer state

A checkpoint folder is written under a temporary name and renamed into place
(`vidcap.runs.folders`), so a run killed at any moment leaves only complete checkpoints behind;
one damaged later (a bad disk, a copy cut short) is found by its checksums and resume falls back
to the previous one, saying so. Folders in checkpoints/ whose names are not `<k>-<stage>-<step>`
are not checkpoints and are left alone. Weights that no stage trains (a frozen text encoder) are
not repeated in every checkpoint: they come back from the run's own model files. What a trainer
state holds is the trainer's business (`vidcap.training.state`); it is saved with `torch.save`
and read with `weights_only=True`, so a checkpoint can never run code.
"""

from __future__ import annotations

import json
import logging
import pickle
import shutil
from collections.abc import Collection
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vidcap.errors import RunError
from vidcap.files import atomic_path, write_json
from vidcap.models.mffcl import COMPONENTS
from vidcap.models.weights import load_weights, read_weights, save_weights
from vidcap.runs import folders
from vidcap.runs.layout import TRAINER_STATE, WEIGHTS, RunLayout, parse_checkpoint_name

log = logging.getLogger(__name__)


def read_trainer_state(file: Path) -> dict[str, Any]:
    """A trainer state saved by `torch.save` (tensors and plain values only: nothing can run);
    RunError when it is unreadable."""
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise RunError(f"{file}: not a readable trainer state ({reason})") from None
    if not isinstance(state, dict) or not isinstance(state.get("state"), dict):
        raise RunError(f"{file}: not a trainer state (no 'state' entry)")
    return state


class CheckpointManager:
    """Writes, lists, prunes and reads the checkpoints of one run (rank 0 writes)."""

    def __init__(self, run_dir: str | Path | RunLayout, keep_last: int = 2) -> None:
        self.layout = run_dir if isinstance(run_dir, RunLayout) else RunLayout(Path(run_dir))
        self.folder = self.layout.checkpoints
        self.keep_last = keep_last
        self._reported: set[str] = set()

    def save(self, model: nn.Module, trainer_state: dict[str, Any], *, stage_index: int,
             stage: str, step: int, exclude: Collection[str] = ()) -> Path:
        """Write a checkpoint folder whole, then prune the old ones; RunError when it cannot be
        written (the previous checkpoints are kept)."""
        final = self.layout.checkpoint(stage_index, stage, step)
        with folders.written_whole(final) as tmp:
            save_weights(model, tmp / WEIGHTS, skip=exclude)
            torch.save(trainer_state, tmp / TRAINER_STATE)
        self.prune()
        return final

    def list(self) -> list[Path]:
        """Complete checkpoints, oldest first (other folders in checkpoints/ are ignored)."""
        if not self.folder.is_dir():
            return []
        found = []
        for path in self.folder.iterdir():
            name = parse_checkpoint_name(path.name)
            if path.name.startswith("."):
                continue
            if name is None or not path.is_dir() or not (path / TRAINER_STATE).is_file():
                self._report_stray(path)
                continue
            found.append((name.stage_index, name.step, path))
        return [path for _, _, path in sorted(found)]

    def _report_stray(self, path: Path) -> None:
        if path.name not in self._reported:
            self._reported.add(path.name)
            log.warning("%s: not a checkpoint (name or content), ignored", path)

    def latest(self) -> Path | None:
        found = self.list()
        return found[-1] if found else None

    def prune(self) -> None:
        """Remove all but the last K checkpoints, and folders killed writers left (only the
        process holding the run's lock calls this)."""
        for old in self.list()[:-self.keep_last]:
            shutil.rmtree(old, ignore_errors=True)
        for stale in self.folder.glob(".*"):
            if stale.is_dir():
                shutil.rmtree(stale, ignore_errors=True)

    @staticmethod
    def load(checkpoint: Path, model: nn.Module) -> dict[str, Any]:
        """Load a checkpoint's weights into `model` and return its trainer state. Components
        absent from the checkpoint keep their weights (no stage trains them). Everything is
        checked before the model changes: RunError for a damaged checkpoint."""
        folders.verify(checkpoint)
        weights = checkpoint / WEIGHTS
        tensors = read_weights(weights)
        state = read_trainer_state(checkpoint / TRAINER_STATE)
        load_weights(model, tensors, weights, may_lack=COMPONENTS)
        return state

    def load_latest(self, model: nn.Module) -> tuple[Path, dict[str, Any]] | None:
        """The newest checkpoint that loads (weights into `model`) and its trainer state; a
        damaged one is reported and the one before it tried. None when there is none at all;
        RunError when every one is damaged."""
        found = self.list()
        problems = []
        for checkpoint in reversed(found):
            try:
                state = self.load(checkpoint, model)
            except RunError as err:
                log.warning("cannot resume from %s: %s", checkpoint.name, err)
                problems.append(str(err))
                continue
            if problems:
                log.warning("resuming from the previous good checkpoint, %s", checkpoint)
            return checkpoint, state
        if problems:
            raise RunError(f"{self.folder}: no checkpoint can be resumed from ({problems[0]})")
        return None

    def save_best(self, model: nn.Module, info: dict[str, Any],
                  exclude: Collection[str] = (), *, folder: Path | None = None) -> None:
        """Replace best/ (or `folder`, e.g. best-align/: weights and info.json) whole."""
        with folders.written_whole(folder or self.layout.best) as tmp:
            save_weights(model, tmp / self.layout.best_weights.name, skip=exclude)
            write_json(tmp / self.layout.best_info.name, info)

    def load_best(self, model: nn.Module, folder: Path) -> bool:
        """Load the weights kept in a best folder into `model` (components it lacks keep theirs);
        False when there is none."""
        best = folders.current(folder)
        if best is None:
            return False
        folders.verify(best)
        weights = best / self.layout.best_weights.name
        load_weights(model, read_weights(weights), weights, may_lack=COMPONENTS)
        return True

    def best_info(self, folder: Path | None = None) -> dict[str, Any] | None:
        """info.json of best/ (or `folder`): step, stage, metric, score; None when absent."""
        best = folders.current(folder or self.layout.best)
        if best is None:
            return None
        try:
            return json.loads((best / self.layout.best_info.name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def save_final_state(self, trainer_state: dict[str, Any]) -> None:
        try:
            with atomic_path(self.layout.trainer_state) as tmp:
                torch.save(trainer_state, tmp)
        except OSError as err:
            raise RunError(f"{self.layout.trainer_state}: cannot be written "
                           f"({err.strerror or err})") from None
