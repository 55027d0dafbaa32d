"""Training loses no work to a failure it could have seen coming: what validation needs (Java),
room on the disk and write access are checked before the first step, a checkpoint is written
before each validation, and a full disk mid-run is one clear error that keeps the last
checkpoint to resume from."""

from __future__ import annotations

import builtins
import errno
import os
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.conftest import tiny_train_config
from vidcap.errors import VidcapError
from vidcap.runs.layout import RunLayout
from vidcap.runs.records import read_metrics
from vidcap.training import validation
from vidcap.training.trainer import train

SHORT = ("train.align.steps=2", "train.caption.steps=4", "train.eval_every=2",
         "train.checkpoint_every=0")


def _train_steps(run: Path) -> list[tuple[str, int]]:
    return [(m["stage"], m["step"]) for m in read_metrics(run) if m["event"] == "train"]


def test_no_java_is_found_before_the_first_step(tiny_shapes: Path, tmp_path: Path, monkeypatch):
    # before: Java was looked for at the first validation, after 2 caption steps (and the
    # whole align stage), and the error lost them
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    with pytest.raises(VidcapError, match="Java"):
        train(tiny_train_config(tiny_shapes, *SHORT), tmp_path / "run")
    assert _train_steps(tmp_path / "run") == []


def test_a_checkpoint_is_written_before_validation(tiny_shapes: Path, tmp_path: Path,
                                                   monkeypatch):
    # before: validation ran first and the step's checkpoint after it, so a validation that
    # failed (here: the scorer) lost the steps since the last checkpoint
    def failing(*args, **kwargs):
        raise VidcapError("the scorer failed")

    monkeypatch.setattr(validation, "score_predictions", failing)
    cfg = ("train.stages=[caption]", "train.caption.steps=4", "train.eval_every=2",
           "train.checkpoint_every=0")
    with pytest.raises(VidcapError, match="the scorer failed"):
        train(tiny_train_config(tiny_shapes, *cfg), tmp_path / "run")
    names = [p.name for p in (tmp_path / "run" / "checkpoints").iterdir()
             if not p.name.startswith(".")]
    assert names == ["0-caption-00000002"]

    monkeypatch.undo()  # the scorer works again: the resumed run validates step 2 first
    train(tiny_train_config(tiny_shapes, *cfg), tmp_path / "run", resume=True)
    evals = [m["step"] for m in read_metrics(tmp_path / "run") if m["event"] == "eval"]
    assert evals == [2, 4]
    assert _train_steps(tmp_path / "run") == [("caption", s) for s in (1, 2, 3, 4)]


def test_too_little_disk_space_is_found_before_the_first_step(tiny_shapes: Path,
                                                              tmp_path: Path, monkeypatch):
    real = shutil.disk_usage

    def nearly_full(path):
        return real(path)._replace(free=100_000)  # less than one tiny checkpoint

    monkeypatch.setattr(shutil, "disk_usage", nearly_full)
    with pytest.raises(VidcapError, match="GB free"):
        train(tiny_train_config(tiny_shapes, *SHORT), tmp_path / "run")
    assert _train_steps(tmp_path / "run") == []


def _deny_writes_under(folder: Path, monkeypatch) -> None:
    """A read-only folder as a process without root sees it (root ignores chmod)."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        return
    inside = str(folder.resolve())
    real_open, real_os_open, real_mkdir = builtins.open, os.open, os.mkdir

    def denied(path) -> bool:
        return str(Path(os.fspath(path)).resolve()).startswith(inside)

    def fake_open(file, mode="r", *args, **kwargs):
        if isinstance(file, (str, os.PathLike)) and set(mode) & set("wax+") and denied(file):
            raise PermissionError(errno.EACCES, "Permission denied", str(file))
        return real_open(file, mode, *args, **kwargs)

    def fake_os_open(path, flags, *args, **kwargs):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT) and denied(path):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_os_open(path, flags, *args, **kwargs)

    def fake_mkdir(path, *args, **kwargs):
        if denied(path):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", fake_open)
    monkeypatch.setattr(os, "open", fake_os_open)
    monkeypatch.setattr(os, "mkdir", fake_mkdir)


def test_a_read_only_run_folder_is_one_clear_error(tiny_shapes: Path, tmp_path: Path,
                                                   monkeypatch):
    # before: PermissionError traceback from the first write
    folder = tmp_path / "read-only"
    folder.mkdir()
    _deny_writes_under(folder, monkeypatch)
    with pytest.raises(VidcapError, match="read-only.*(Permission denied|cannot)"):
        train(tiny_train_config(tiny_shapes, *SHORT), folder / "run")


def test_a_full_disk_mid_run_is_one_error_and_the_run_resumes(tiny_shapes: Path, tmp_path: Path,
                                                              monkeypatch):
    # before: OSError traceback from safetensors; the half-written checkpoint was cleaned up
    # only by luck
    from vidcap.models import weights

    real, calls = weights.save_file, {"n": 0}

    def fills_up(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:  # the initial model, the checkpoint at caption step 2, then this
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(*args, **kwargs)

    monkeypatch.setattr(weights, "save_file", fills_up)
    cfg = ("train.stages=[caption]", "train.caption.steps=4", "train.checkpoint_every=2",
           "train.eval_max_videos=0")
    with pytest.raises(VidcapError, match="No space left on device"):
        train(tiny_train_config(tiny_shapes, *cfg), tmp_path / "run")
    monkeypatch.undo()
    run = train(tiny_train_config(tiny_shapes, *cfg), tmp_path / "run", resume=True)
    whole = train(tiny_train_config(tiny_shapes, *cfg), tmp_path / "whole")
    a, b = load_file(RunLayout(run).weights), load_file(RunLayout(whole).weights)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
