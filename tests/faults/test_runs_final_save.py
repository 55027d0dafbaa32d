"""A kill at any moment of the final save leaves a run that loads (the previous complete model or
the new one, never half of one) and resumes to the weights of an uninterrupted run.

Before: the final save wrote model.safetensors, then the tokenizer and the HF configs one file at
a time into the run folder; a full disk (or a kill) in between left decoder/config.json at zero
bytes, and the trained run could no longer be loaded or resumed.

How: a helper process imports vidcap once and forks one child per kill point. The child resumes a
run whose steps are all done (only the final save is left), counting each file opened for writing
and each rename from the moment the final save starts, and kills itself with SIGKILL right after
the k-th; k runs until a child gets through the whole save.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.conftest import tiny_train_config
from vidcap.config import save_config
from vidcap.errors import VidcapError
from vidcap.runs.layout import RunLayout
from vidcap.runs.store import load_run
from vidcap.training.trainer import train

CFG = ("train.stages=[caption]", "train.caption.steps=2", "train.checkpoint_every=0",
       "train.eval_max_videos=0")

HELPER = r'''
import builtins, io, json, os, shutil, signal, sys, traceback
from pathlib import Path
import torch
from vidcap.config import load_config
from vidcap.models.mffcl import MFFCL
from vidcap.training.trainer import train

config, out = sys.argv[1], Path(sys.argv[2])
cfg = lambda: load_config(config)


def arm(kill_after: int, on_save: int) -> None:
    """SIGKILL right after the kill_after-th write or rename once the on_save-th MFFCL.save
    starts (kill_after=0: as it starts)."""
    state = {"saves": 0, "armed": False, "ops": 0}
    real_save = MFFCL.save

    def tick():
        if state["armed"]:
            state["ops"] += 1
            if state["ops"] >= kill_after:
                os.kill(os.getpid(), signal.SIGKILL)

    def save(self, files):
        state["saves"] += 1
        if state["saves"] == on_save:
            state["armed"] = True
            if kill_after == 0:
                os.kill(os.getpid(), signal.SIGKILL)
        return real_save(self, files)

    def counted(fn, writes=lambda *a, **k: True):
        def wrapper(*args, **kwargs):
            result = fn(*args, **kwargs)
            if writes(*args, **kwargs):
                tick()
            return result
        return wrapper

    def is_write(file, mode="r", *args, **kwargs):
        return isinstance(file, (str, os.PathLike)) and any(c in mode for c in "wax+")

    MFFCL.save = save
    builtins.open = io.open = counted(io.open, is_write)
    os.replace = counted(os.replace)
    os.rename = counted(os.rename)


def child(run: Path, resume: bool, kill_after: int | None, on_save: int) -> int:
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            torch.set_num_threads(1)
            if kill_after is not None:
                arm(kill_after, on_save)
            train(cfg(), run, resume=resume)
        except BaseException:
            traceback.print_exc()
            code = 3
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


assert child(out / "whole", False, None, 0) == 0
assert child(out / "template", False, 0, 2) == -signal.SIGKILL  # every step done, no final save
killed = []
for k in range(1, 60):
    run = out / f"kill-{k:02d}"
    shutil.copytree(out / "template", run)
    status = child(run, True, k, 1)
    if status == 0:  # the save has fewer than k writes: done
        shutil.rmtree(run)
        break
    assert status == -signal.SIGKILL, status
    killed.append(str(run))
print(json.dumps(killed))
'''


def _weights(run: RunLayout) -> dict[str, torch.Tensor]:
    return load_file(run.weights)


def _equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_a_kill_at_any_point_of_the_final_save_leaves_a_run_that_loads_and_resumes(
        tiny_shapes: Path, tmp_path: Path):
    config = tmp_path / "tiny.yaml"
    save_config(tiny_train_config(tiny_shapes, *CFG), config)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", HELPER, str(config), str(tmp_path)], env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    killed = [RunLayout(Path(p)) for p in json.loads(done.stdout.strip().splitlines()[-1])]
    assert len(killed) >= 8, "fewer kill points than the final save has writes"

    whole = _weights(RunLayout(tmp_path / "whole"))
    initial = _weights(RunLayout(tmp_path / "template"))  # the model written at the start
    for run in killed:
        try:
            loaded = load_run(run.root, which="final")
        except VidcapError as err:
            pytest.fail(f"{run.root.name}: the run does not load after the kill: {err}")
        state = {k: v for k, v in loaded.state_dict().items() if k in whole}
        assert _equal(state, {k: v for k, v in whole.items() if k in state}) or \
            _equal(state, {k: v for k, v in initial.items() if k in state}), \
            f"{run.root.name}: neither the previous model nor the new one"
        if not run.is_finished():
            train(tiny_train_config(tiny_shapes, *CFG), run.root, resume=True)
        assert _equal(_weights(run), whole), f"{run.root.name}: resumed to other weights"
        assert not [p.name for p in run.root.iterdir() if p.name.startswith(".")], \
            f"{run.root.name}: temporary files left after the resumed run"
