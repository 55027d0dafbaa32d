"""The command line's one error boundary (`vidcap.cli.boundary`): every failure of every command
is one line on standard error and an exit status, never a bare traceback. Each test says what
happened before the boundary (main caught only VidcapError and KeyboardInterrupt)."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vidcap.cli import data as data_commands
from vidcap.cli import main
from vidcap.cli.boundary import EXIT_BROKEN_PIPE, EXIT_INTERNAL, one_line
from vidcap.errors import ConfigError

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
       "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}


def vidcap(*args: str, **kwargs) -> subprocess.CompletedProcess:
    """`python -m vidcap ARGS` as a user runs it (bytes in, bytes out)."""
    kwargs.setdefault("stdout", subprocess.PIPE)
    env = {**ENV, **kwargs.pop("env", {})}
    return subprocess.run([sys.executable, "-m", "vidcap", *args], env=env,
                          stderr=subprocess.PIPE, timeout=300, **kwargs)


def failing(monkeypatch, error: BaseException) -> None:
    """Make `vidcap stats` raise `error` (the parser binds the command when main builds it)."""
    def command(args):
        raise error

    monkeypatch.setattr(data_commands, "_cmd_stats", command)


def lines_of(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.strip()]


def test_a_bug_is_one_line_naming_the_file_that_holds_its_traceback(monkeypatch, capsys,
                                                                     tmp_path):
    # before: the RuntimeError left main: a bare traceback and exit status 1
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    failing(monkeypatch, RuntimeError("boom\nsecond line"))
    assert main(["stats", "m.jsonl"]) == EXIT_INTERNAL
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(lines_of(err)) == 1, err
    line = lines_of(err)[0]
    assert line.startswith("vidcap: internal error: RuntimeError: boom second line; "
                           "the traceback is in ")
    saved = Path(line.split("the traceback is in ")[1].split(" (please report it)")[0])
    assert saved.parent == tmp_path / "state" / "vidcap"
    report = saved.read_text()
    assert "command: vidcap stats m.jsonl" in report
    assert "Traceback (most recent call last)" in report and "RuntimeError: boom" in report


def test_the_traceback_goes_to_the_temporary_folder_when_the_state_folder_cannot_be_written(
        monkeypatch, capsys, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("XDG_STATE_HOME", str(blocker))
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    import tempfile
    monkeypatch.setattr(tempfile, "tempdir", None)  # read TMPDIR again
    failing(monkeypatch, KeyError("x"))
    assert main(["stats", "m.jsonl"]) == EXIT_INTERNAL
    err = capsys.readouterr().err
    assert f"the traceback is in {tmp_path / 'tmp'}" in err and "Traceback" not in err


def test_verbose_still_shows_the_traceback(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    failing(monkeypatch, ZeroDivisionError("oops"))
    assert main(["-v", "stats", "m.jsonl"]) == EXIT_INTERNAL
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "vidcap: internal error" in err


@pytest.mark.parametrize("error, says", [
    # before: each of these left main as a traceback, exit status 1
    (MemoryError(), "out of memory"),
    (PermissionError(errno.EACCES, "Permission denied", "/data/out.json"),
     "/data/out.json: Permission denied"),
    (IsADirectoryError(errno.EISDIR, "Is a directory", "/data/out"), "/data/out: Is a directory"),
    (FileNotFoundError(errno.ENOENT, "No such file or directory", "/data/x.mp4"),
     "/data/x.mp4: No such file or directory"),
    (OSError(errno.ENOSPC, "No space left on device"), "No space left on device"),
    (OSError(errno.EADDRINUSE, "Address already in use"), "Address already in use"),
])
def test_expected_failures_are_one_line_and_status_2(monkeypatch, capsys, error, says):
    failing(monkeypatch, error)
    assert main(["stats", "m.jsonl"]) == 2
    err = capsys.readouterr().err
    assert lines_of(err) == [lines_of(err)[0]] and "Traceback" not in err
    assert lines_of(err)[0].startswith("vidcap: error: ") and says in err


def test_interrupted_is_130(monkeypatch, capsys):
    failing(monkeypatch, KeyboardInterrupt())
    assert main(["stats", "m.jsonl"]) == 130
    assert capsys.readouterr().err.strip() == "vidcap: interrupted"


def test_other_ranks_prefix_their_line_and_rank_0_alone_reports_an_interrupt(monkeypatch,
                                                                              capsys):
    # before: every torchrun process printed the same unprefixed line
    monkeypatch.setenv("RANK", "3")
    failing(monkeypatch, ConfigError("train.device: 'banana' is not a device"))
    assert main(["stats", "m.jsonl"]) == 2
    assert capsys.readouterr().err.strip() == (
        "vidcap: [rank 3] error: train.device: 'banana' is not a device")
    failing(monkeypatch, KeyboardInterrupt())
    assert main(["stats", "m.jsonl"]) == 130
    assert capsys.readouterr().err == ""


def test_an_error_raised_in_a_dataloader_worker_is_its_own_line():
    # before: torch's re-raised ConfigError carried the worker's traceback in its message,
    # printed after "vidcap: error:" (a traceback in all but name)
    wrapped = ("Caught ConfigError in DataLoader worker process 0.\nOriginal Traceback (most "
               "recent call last):\n  File \"x.py\", line 3, in f\n    raise ConfigError(m)\n"
               "vidcap.errors.ConfigError: segments: --window must be positive, got -1\n")
    assert one_line(wrapped) == "segments: --window must be positive, got -1"
    assert one_line("a\nb  c") == "a b c"


def test_a_reader_that_stops_reading_ends_the_command_quietly(tiny_shapes: Path):
    # before (`vidcap stats M | head -c 10` with the reader gone): BrokenPipeError traceback,
    # then "Exception ignored ... BrokenPipeError" at exit, status 1
    read, write = os.pipe()
    os.close(read)
    try:
        done = vidcap("stats", str(tiny_shapes), stdout=write)
    finally:
        os.close(write)
    assert done.returncode == EXIT_BROKEN_PIPE, done.stderr
    assert done.stderr == b""


def test_head_reads_what_it_wants_and_the_command_ends_cleanly(tiny_shapes: Path):
    done = subprocess.run(["bash", "-c", f"set -o pipefail; '{sys.executable}' -m vidcap stats "
                                         f"'{tiny_shapes}' | head -c 10"],
                          env=ENV, capture_output=True, timeout=300)
    assert done.stdout == str(tiny_shapes).encode()[:10]
    assert b"Traceback" not in done.stderr and b"Exception ignored" not in done.stderr
    assert done.returncode in (0, EXIT_BROKEN_PIPE)  # 0 when head came late


def test_help_into_a_closed_pipe_is_quiet_too():
    read, write = os.pipe()
    os.close(read)
    try:
        done = vidcap("caption", "--help", stdout=write)
    finally:
        os.close(write)
    assert done.stderr == b"" and done.returncode in (0, EXIT_BROKEN_PIPE)
