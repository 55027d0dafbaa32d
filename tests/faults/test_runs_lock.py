"""One writer per run folder: a second `vidcap train` (or an evaluation) on a run in use is
refused with a message naming the owner; a lock whose process is gone is taken over. Before,
nothing kept a second process out: a second `vidcap train --out` on a running run deleted the
first run's in-progress checkpoint (the first died) and both wrote into one metrics.jsonl."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import tiny_train_config
from vidcap.config import save_config
from vidcap.errors import VidcapError
from vidcap.runs.layout import RunLayout
from vidcap.training.trainer import train

QUICK = ("train.stages=[caption]", "train.caption.steps=2", "train.eval_max_videos=0")


def _lock(run: Path, pid: int, host: str | None = None) -> Path:
    """The lock file a process `pid` on `host` would have left (the format vidcap writes)."""
    run.mkdir(parents=True, exist_ok=True)
    file = RunLayout(run).lock
    file.write_text(json.dumps({"pid": pid, "host": host or socket.gethostname(),
                                "started": time.time(), "purpose": "train",
                                "command": "vidcap train x", "token": "t"}))
    return file


@pytest.fixture
def live_pid():
    """A process that stays alive for the test."""
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    yield sleeper.pid
    sleeper.kill()
    sleeper.wait()


def _dead_pid() -> int:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    return gone.pid


def test_a_run_in_use_is_refused_naming_the_owner(tiny_shapes: Path, tmp_path: Path, live_pid):
    _lock(tmp_path / "run", live_pid)
    with pytest.raises(VidcapError, match=rf"in use by pid {live_pid} on {socket.gethostname()}"):
        train(tiny_train_config(tiny_shapes, *QUICK), tmp_path / "run")
    assert not RunLayout(tmp_path / "run").is_run()


def test_a_lock_of_a_dead_process_is_taken_over_with_a_log_line(tiny_shapes: Path,
                                                                 tmp_path: Path, caplog):
    pid = _dead_pid()
    lock = _lock(tmp_path / "run", pid)
    with caplog.at_level(logging.WARNING):
        train(tiny_train_config(tiny_shapes, *QUICK), tmp_path / "run")
    assert f"taking over the lock of pid {pid}" in caplog.text
    assert not lock.exists()  # released at the end


def test_a_lock_from_another_host_needs_an_explicit_take_over(tiny_shapes: Path, tmp_path: Path,
                                                              monkeypatch):
    _lock(tmp_path / "run", 4242, host="elsewhere.example")
    with pytest.raises(VidcapError, match="another host.*--take-over-lock"):
        train(tiny_train_config(tiny_shapes, *QUICK), tmp_path / "run")
    monkeypatch.setenv("VIDCAP_TAKE_OVER_LOCK", "1")
    train(tiny_train_config(tiny_shapes, *QUICK), tmp_path / "run")
    assert RunLayout(tmp_path / "run").is_finished()


def test_evaluation_takes_the_same_lock(tiny_run: Path, live_pid):
    from vidcap.runs.lock import RunLock

    with RunLock(tiny_run, "evaluate") as held:
        assert json.loads(RunLayout(tiny_run).lock.read_text())["pid"] == os.getpid()
        with pytest.raises(VidcapError, match=f"in use by pid {os.getpid()}.*evaluate"):
            RunLock(tiny_run, "train").acquire()
        assert held.held
    assert not RunLayout(tiny_run).lock.exists()


@pytest.mark.slow
def test_a_second_train_on_a_running_run_is_refused_and_the_first_finishes(tiny_shapes: Path,
                                                                           tmp_path: Path):
    config = tmp_path / "tiny.yaml"
    steps = 600  # the first trains while the second starts (imports torch): 150 raced on CI
    save_config(tiny_train_config(tiny_shapes, "train.stages=[caption]",
                                  f"train.caption.steps={steps}", "train.checkpoint_every=10",
                                  "train.log_every=1", "train.eval_max_videos=0"), config)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    run = tmp_path / "run"

    def vidcap(*args: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "vidcap", "train", str(config), "--out",
                                 str(run), *args], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    first = vidcap()
    deadline = time.time() + 300
    while not (run / "metrics.jsonl").is_file() and first.poll() is None \
            and time.time() < deadline:
        time.sleep(0.05)
    second = vidcap("--resume")
    assert second.wait(timeout=300) == 2
    err = second.stderr.read()
    assert f"in use by pid {first.pid}" in err and "Traceback" not in err
    assert first.wait(timeout=300) == 0, first.stderr.read()
    logged = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()
             if json.loads(line)["event"] == "train"]
    assert logged == list(range(1, steps + 1))



@pytest.mark.slow
def test_under_torchrun_a_run_in_use_stops_every_process(tiny_shapes: Path, tmp_path: Path,
                                                         live_pid):
    # rank 0 takes the lock; the other rank must stop with it, not wait at a barrier for ever
    config = tmp_path / "tiny.yaml"
    save_config(tiny_train_config(tiny_shapes, *QUICK), config)
    _lock(tmp_path / "run", live_pid)
    torchrun = Path(sys.executable).with_name("torchrun")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "vidcap",
                           "train", str(config), "--out", str(tmp_path / "run")], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    assert done.stderr.count(f"in use by pid {live_pid}") >= 2  # both ranks say why
    assert not RunLayout(tmp_path / "run").is_run()
