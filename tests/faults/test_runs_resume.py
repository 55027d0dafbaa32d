"""Training into an existing run folder: never over a finished run without --resume, resuming
past a damaged checkpoint (saying so) and past folders in checkpoints/ that are not checkpoints,
and never from a config.yaml cut short."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.conftest import tiny_train_config
from vidcap.errors import VidcapError
from vidcap.runs.layout import RunLayout
from vidcap.runs.records import read_metrics
from vidcap.training.trainer import train

CFG = ("train.stages=[caption]", "train.caption.steps=6", "train.checkpoint_every=2",
       "train.eval_max_videos=0", "train.keep_last=3")


@pytest.fixture(scope="module")
def whole(tiny_shapes: Path, tmp_path_factory) -> RunLayout:
    """A finished caption-only run with checkpoints at steps 2, 4 and 6."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return RunLayout(train(tiny_train_config(tiny_shapes, *CFG),
                               tmp_path_factory.mktemp("whole") / "run"))
    finally:
        torch.set_num_threads(threads)


def _unfinished(whole: RunLayout, tmp_path: Path) -> RunLayout:
    """A copy of the run as if killed after its last checkpoint, before the final save."""
    run = RunLayout(Path(shutil.copytree(whole.root, tmp_path / "run")))
    run.trainer_state.unlink()
    return run


def _same_weights(a: RunLayout, b: RunLayout) -> bool:
    x, y = load_file(a.weights), load_file(b.weights)
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


def test_training_over_a_finished_run_without_resume_is_refused(whole: RunLayout,
                                                                tiny_shapes: Path,
                                                                tmp_path: Path):
    # before: with checkpoints/ gone, a new training silently replaced the model and best/
    run = RunLayout(Path(shutil.copytree(whole.root, tmp_path / "run")))
    shutil.rmtree(run.checkpoints)
    before = run.weights.read_bytes()
    with pytest.raises(VidcapError, match="holds a run already"):
        train(tiny_train_config(tiny_shapes, *CFG, "train.seed=5"), run.root)
    assert run.weights.read_bytes() == before


def test_a_damaged_latest_checkpoint_falls_back_to_the_previous(whole: RunLayout,
                                                                tiny_shapes: Path,
                                                                tmp_path: Path, caplog):
    # before: torch.load's traceback on the damaged trainer_state.pt, and no way on
    run = _unfinished(whole, tmp_path)
    state = run.checkpoints / "0-caption-00000006" / "trainer_state.pt"
    state.write_bytes(state.read_bytes()[:100])
    with caplog.at_level(logging.WARNING):
        train(tiny_train_config(tiny_shapes, *CFG), run.root, resume=True)
    assert "0-caption-00000006" in caplog.text and "previous" in caplog.text
    assert _same_weights(run, whole)  # steps 5 and 6 trained again, to the same weights
    steps = [m["step"] for m in read_metrics(run.root) if m["event"] == "train"]
    assert steps == [1, 2, 3, 4, 5, 6]


def test_folders_in_checkpoints_that_are_not_checkpoints_are_left_alone(
        whole: RunLayout, tiny_shapes: Path, tmp_path: Path):
    # before: ValueError (int('backup')) parsing the names: a traceback on every --resume
    run = _unfinished(whole, tmp_path)
    for name in ("backup", "x-y-z", "notes"):
        shutil.copytree(run.checkpoints / "0-caption-00000002", run.checkpoints / name)
    (run.checkpoints / "README").write_text("my notes")
    train(tiny_train_config(tiny_shapes, *CFG), run.root, resume=True)
    assert _same_weights(run, whole)
    assert (run.checkpoints / "backup").is_dir() and (run.checkpoints / "README").is_file()


def test_resume_refuses_a_config_cut_short(whole: RunLayout, tiny_shapes: Path,
                                           tmp_path: Path):
    # before: the missing sections were filled with defaults and saved back over the file
    run = _unfinished(whole, tmp_path)
    lines = run.config.read_text().splitlines()
    cut = "\n".join(lines[:lines.index("train:")]) + "\n"
    run.config.write_text(cut)
    with pytest.raises(VidcapError, match="config.yaml.*incomplete"):
        train(tiny_train_config(tiny_shapes, *CFG), run.root, resume=True)
    assert run.config.read_text() == cut


def test_a_relative_cache_dir_is_stored_absolute(tiny_shapes: Path, tmp_path: Path,
                                                 monkeypatch):
    # before: data.cache_dir stayed relative, so a resume or `vidcap evaluate` started from
    # another folder read and wrote another cache
    monkeypatch.chdir(tmp_path)
    run = train(tiny_train_config(tiny_shapes, "data.cache_dir=cache", "train.stages=[caption]",
                                  "train.caption.steps=1", "train.eval_max_videos=0"),
                tmp_path / "run")
    from vidcap.runs.store import read_config

    assert read_config(run).data.cache_dir == str(tmp_path / "cache")


@pytest.mark.parametrize("setting, message", [
    ("train.caption.trainable=[]", "train.caption.trainable: nothing to train"),
    ("train.device=banana", "train.device: 'banana' is not a device"),
])
def test_bad_training_settings_are_refused_before_anything_is_written(
        tiny_shapes: Path, tmp_path: Path, setting: str, message: str):
    # before: "optimizer got an empty parameter list" after the whole align stage; torch's
    # RuntimeError for the device (tracebacks both)
    with pytest.raises(VidcapError, match=message):
        train(tiny_train_config(tiny_shapes, setting), tmp_path / "run")
    assert not RunLayout(tmp_path / "run").is_run()


def test_cuda_without_cuda_is_one_clear_error(tiny_shapes: Path, tmp_path: Path):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(VidcapError, match="no CUDA device"):
        train(tiny_train_config(tiny_shapes, "train.device=cuda"), tmp_path / "run")
