"""Bad command lines are one line and status 2 before any work; the run lock can be taken over
from the command line (`--take-over-lock` on `vidcap train` and `vidcap evaluate`). Each test
says what happened before."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import tiny_train_config
from tests.faults.test_cli_boundary import ENV, lines_of, vidcap
from tests.faults.test_cli_outputs import one_error
from vidcap.cli import main
from vidcap.cli.boundary import EXIT_INTERNAL
from vidcap.cli.train import ignored_on_resume
from vidcap.config import save_config
from vidcap.data.manifest import read_manifest
from vidcap.runs.layout import RunLayout

QUICK = ("train.stages=[caption]", "train.caption.steps=2", "train.eval_max_videos=0")


def test_evaluate_of_a_missing_run_is_one_line_and_status_2():
    done = vidcap("evaluate", "/nonexistent")
    assert done.returncode == 2
    assert lines_of(done.stderr.decode()) == ["vidcap: error: /nonexistent: run directory not "
                                              "found"]


def test_an_injected_bug_is_one_line_naming_its_traceback_file_and_status_70(tmp_path):
    bug = ("import sys\nfrom vidcap.cli import data, main\n"
           "def broken(args):\n    return {}['missing']\n"
           "data._cmd_stats = broken\nsys.exit(main(sys.argv[1:]))\n")
    done = subprocess.run([sys.executable, "-c", bug, "stats", "m.jsonl"],
                          env={**ENV, "XDG_STATE_HOME": str(tmp_path)}, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == EXIT_INTERNAL == 70
    [line] = lines_of(done.stderr)
    assert line.startswith("vidcap: internal error: KeyError: 'missing'; the traceback is in ")
    [saved] = (tmp_path / "vidcap").iterdir()
    assert str(saved) in line and "Traceback (most recent call last)" in saved.read_text()


@pytest.mark.parametrize("command, says", [
    # before: --limit 0 captioned nothing and failed later ("no videos in split"); --limit -3
    # silently dropped the last 3 videos (records[:-3]) and scored the rest
    (["evaluate", "RUN", "--limit", "0"], "--limit must be at least 1, got 0"),
    (["evaluate", "RUN", "--limit", "-3"], "--limit must be at least 1, got -3"),
    # before: each a ValueError traceback from the DataLoader, status 1
    (["evaluate", "RUN", "--workers", "-1"], "--workers must be 0 or more, got -1"),
    (["caption", "RUN", "VIDEO", "--workers", "-2"], "--workers must be 0 or more, got -2"),
    # before: already one line (vidcap.captioning.segments checks them)
    (["caption", "RUN", "VIDEO", "--segments", "fixed", "--window", "0"],
     "window must be a positive number of seconds, got 0"),
    (["caption", "RUN", "VIDEO", "--segments", "fixed", "--window", "nan"],
     "window must be a positive number of seconds, got nan"),
    (["caption", "RUN", "VIDEO", "--segments", "fixed", "--stride", "-1"],
     "stride must be a positive number of seconds, got -1"),
    # before: the model loaded, then uvicorn's OverflowError traceback, status 1
    (["serve", "RUN", "--port", "70000"], "--port must be 0..65535, got 70000"),
])
def test_bad_option_values_are_one_line_before_any_work(tiny_run, tiny_shapes, capsys, command,
                                                        says):
    video = str(read_manifest(tiny_shapes, "test")[0].video_path)
    args = [{"RUN": str(tiny_run), "VIDEO": video}.get(a, a) for a in command]
    assert main(args) == 2
    one_error(capsys, says)
    assert not RunLayout(tiny_run).lock.exists()


def _foreign_lock(run: Path) -> Path:
    """The lock a process on another host left in `run`."""
    run.mkdir(parents=True, exist_ok=True)
    lock = RunLayout(run).lock
    lock.write_text(json.dumps({"pid": 4242, "host": "elsewhere.example", "started": time.time(),
                                "purpose": "train", "command": "vidcap train x", "token": "t"}))
    return lock


def test_evaluate_takes_over_a_lock_from_another_host_when_asked(tiny_run, tmp_path, capsys):
    # before: evaluate took no lock (it wrote predictions beside a training in progress) and
    # had no --take-over-lock
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    layout = RunLayout(run)
    for done in (layout.predictions("test"), layout.predictions_log("test"), layout.scores("test")):
        done.unlink(missing_ok=True)  # what other tests' evaluations left in the shared run
    lock = _foreign_lock(run)
    command = ["evaluate", str(run), "--limit", "1", "--workers", "0"]
    assert main(command) == 2
    one_error(capsys, "in use by pid 4242 on elsewhere.example", "--take-over-lock")
    assert lock.exists() and not layout.predictions_log("test").exists()
    assert main([*command, "--take-over-lock"]) == 0
    assert layout.scores("test").is_file() and not lock.exists()


def test_train_takes_over_a_lock_from_another_host_when_asked(tiny_shapes, tmp_path, capsys):
    # before: the only way was VIDCAP_TAKE_OVER_LOCK=1 or deleting lock.json by hand
    config = tmp_path / "tiny.yaml"
    save_config(tiny_train_config(tiny_shapes, *QUICK), config)
    run = tmp_path / "run"
    _foreign_lock(run)
    assert main(["train", str(config), "--out", str(run)]) == 2
    one_error(capsys, "another host", "--take-over-lock")
    assert main(["train", str(config), "--out", str(run), "--take-over-lock"]) == 0
    assert RunLayout(run).is_finished() and not RunLayout(run).lock.exists()


def test_resume_names_the_settings_it_does_not_apply(tiny_run, tiny_shapes):
    # before: `train --resume --set train.caption.lr=0.5` resumed with the saved config and
    # said nothing: the user believed the new learning rate was in use
    asked = ["train.caption.lr=0.5", "train.caption.steps=8", "train.device=cpu"]
    cfg = tiny_train_config(tiny_shapes, *asked)
    assert ignored_on_resume(tiny_run, cfg, asked) == ["train.caption.lr=0.5"]
    assert ignored_on_resume(tiny_run.parent / "elsewhere", cfg, asked) == []  # starts afresh

