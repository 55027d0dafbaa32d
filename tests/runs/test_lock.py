"""vidcap.runs.lock: one writer per run folder."""

import json
import socket
import subprocess
import sys

import pytest

from vidcap.errors import RunError
from vidcap.runs.layout import RunLayout
from vidcap.runs.lock import RunLock, read_owner


def test_the_lock_names_its_owner_and_keeps_a_second_out(tmp_path):
    run = tmp_path / "run"
    with RunLock(run, "train") as first:
        owner = read_owner(RunLayout(run).lock)
        assert owner.host == socket.gethostname() and owner.purpose == "train"
        with pytest.raises(RunError, match=rf"in use by pid {owner.pid} on .*train since"):
            RunLock(run, "evaluate").acquire()
        assert first.held
    assert not RunLayout(run).lock.exists()
    assert [p.name for p in run.iterdir()] == []  # no temporary file left


def test_a_stale_lock_is_taken_over_and_a_foreign_one_only_when_asked(tmp_path, caplog):
    run = tmp_path / "run"
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    lock = RunLock(run, "train").acquire()
    data = json.loads(RunLayout(run).lock.read_text())
    RunLayout(run).lock.write_text(json.dumps({**data, "pid": gone.pid, "token": "other"}))
    lock.release()  # not ours any more: left alone
    assert RunLayout(run).lock.exists()
    RunLock(run, "train").acquire().release()
    assert f"taking over the lock of pid {gone.pid}" in caplog.text

    RunLayout(run).lock.write_text(json.dumps({**data, "host": "elsewhere"}))
    with pytest.raises(RunError, match="another host"):
        RunLock(run, "train").acquire()
    RunLock(run, "train", take_over=True).acquire().release()
    RunLayout(run).lock.write_text("garbage")
    with pytest.raises(RunError, match="unreadable lock"):
        RunLock(run, "train").acquire()


def test_a_folder_that_cannot_be_made_is_one_clear_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunError, match="cannot write into the run folder"):
        RunLock(tmp_path / "file" / "run", "train").acquire()
