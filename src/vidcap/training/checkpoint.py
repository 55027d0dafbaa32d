"""Checkpoints of a run directory: atomic writes, the last K kept, resume, `load_run`.

    RUN/config.yaml, model.safetensors, tokenizer and sub-model files   MFFCL.save (start and end)
    RUN/checkpoints/<k>-<stage>-<step>/model.safetensors               weights that training changes
    RUN/checkpoints/<k>-<stage>-<step>/trainer_state.pt                optimiser, schedule, scaler,
                                                                        step, RNG, data position
    RUN/best/model.safetensors + best/info.json                        best validation weights
    RUN/trainer_state.pt                                                the final trainer state

A checkpoint folder is written under a temporary name and renamed into place, so a run killed at
any moment leaves only complete checkpoints behind. Weights that no stage trains (a frozen text
encoder) are not repeated in every checkpoint: they come back from the run's own model files.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from collections.abc import Collection
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from vidcap.errors import RunError
from vidcap.models.mffcl import MFFCL, unique_weights

CHECKPOINTS = "checkpoints"
WEIGHTS = "model.safetensors"
STATE = "trainer_state.pt"


def save_weights(model: nn.Module, file: Path, exclude: Collection[str] = ()) -> None:
    tmp = file.with_name(file.name + ".tmp")
    save_file(unique_weights(model, exclude), str(tmp))
    os.replace(tmp, file)


def load_weights(model: nn.Module, file: Path) -> None:
    """Load saved weights. Components absent from the file keep their weights (they were frozen
    when it was written); within a saved component every tensor must be there."""
    if not file.is_file():
        raise RunError(f"{file}: weights file not found")
    state = load_file(str(file))
    result = model.load_state_dict(state, strict=False)
    if result.unexpected_keys:
        raise RunError(f"{file}: weights do not fit this model (unexpected "
                       f"{', '.join(result.unexpected_keys[:3])} ...)")
    present = {k.split(".", 1)[0] for k in state}
    absent = {k.split(".", 1)[0] for k in model.state_dict()} - present
    lacking = [k for k in unique_weights(model, absent) if k not in state]
    if lacking:
        raise RunError(f"{file}: weights lack {len(lacking)} tensors of this model "
                       f"(e.g. {', '.join(lacking[:3])})")


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
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _atomic_torch_save(obj: Any, file: Path) -> None:
    tmp = file.with_name(file.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, file)


class CheckpointManager:
    """Writes, lists, prunes and reads the checkpoints of one run (rank 0 writes)."""

    def __init__(self, run_dir: str | Path, keep_last: int = 2) -> None:
        self.run_dir = Path(run_dir)
        self.folder = self.run_dir / CHECKPOINTS
        self.keep_last = keep_last

    def save(self, model: nn.Module, trainer_state: dict[str, Any], *, stage_index: int,
             stage: str, step: int, exclude: Collection[str] = ()) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"{stage_index}-{stage}-{step:08d}"
        final = self.folder / name
        tmp = self.folder / f".tmp-{name}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        save_weights(model, tmp / WEIGHTS, exclude)
        torch.save(trainer_state, tmp / STATE)
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
                 if p.is_dir() and not p.name.startswith(".") and (p / STATE).is_file()]
        return sorted(found, key=lambda p: (int(p.name.split("-")[0]), int(p.name.split("-")[-1])))

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
        """Load a checkpoint's weights into `model` and return its trainer state."""
        load_weights(model, checkpoint / WEIGHTS)
        return torch.load(checkpoint / STATE, map_location="cpu", weights_only=True)

    def save_best(self, model: nn.Module, info: dict[str, Any], exclude: Collection[str] = ()) -> None:
        best = self.run_dir / "best"
        best.mkdir(parents=True, exist_ok=True)
        save_weights(model, best / WEIGHTS, exclude)
        tmp = best / "info.json.tmp"
        tmp.write_text(json.dumps(info, indent=2))
        os.replace(tmp, best / "info.json")

    def save_final_state(self, trainer_state: dict[str, Any]) -> None:
        _atomic_torch_save(trainer_state, self.run_dir / STATE)


def load_run(path: str | Path, *, device: str | torch.device = "cpu", which: str = "auto") -> MFFCL:
    """The model of a run directory: `best` (validation), `final`, or `auto` (best when present)."""
    run_dir = Path(path)
    if not (run_dir / "config.yaml").is_file():
        raise RunError(f"{run_dir}: not a run directory (no config.yaml); train one with `vidcap train`")
    if which not in ("auto", "best", "final"):
        raise RunError(f"{which!r}: expected auto, best or final")
    model = MFFCL.load(run_dir, device="cpu", with_text_encoder=False)  # captioning needs none
    best = run_dir / "best" / WEIGHTS
    if which == "best" and not best.is_file():
        raise RunError(f"{run_dir}: no best checkpoint (validation never ran)")
    if which in ("auto", "best") and best.is_file():
        load_weights(model, best)
    return model.to(device).eval()
