"""`vidcap serve` from the command line: bad starts in one line (exit 2), and a real start in a
child process that answers, captions and cleans up after itself when stopped."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from vidcap.cli import main


@pytest.mark.parametrize("extra, words", [
    (["--index", "clips.index"], "clips.index: no search index here"),
    (["--max-queue", "-1"], "--max-queue must be non-negative, got -1"),
    (["--timeout", "0"], "--timeout must be positive, got 0"),
    (["--max-upload-mb", "-5"], "--max-upload-mb must be positive, got -5"),
])
def test_bad_starts_fail_in_one_line(tiny_run: Path, capsys, extra, words):
    assert main(["serve", str(tiny_run), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("vidcap: error:") and "\n" not in err and words in err


def test_a_folder_that_is_no_run_fails_in_one_line(tmp_path: Path, capsys):
    assert main(["serve", str(tmp_path)]) == 2
    assert "not a run directory" in capsys.readouterr().err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(base: str, server: subprocess.Popen, limit_s: float = 120) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        assert server.poll() is None, server.communicate()[1]
        try:
            if httpx.get(f"{base}/healthz", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise AssertionError("vidcap serve did not answer")


@pytest.mark.slow  # a fresh Python imports torch and transformers: 10-40 s on 2 shared cores
def test_serve_starts_on_localhost_captions_and_cleans_up_on_stop(tiny_run: Path, clips,
                                                                  tmp_path: Path):
    port, temp = _free_port(), tmp_path / "temp"
    temp.mkdir()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    server = subprocess.Popen([sys.executable, "-m", "vidcap", "serve", str(tiny_run),
                               "--port", str(port), "--temp-dir", str(temp)],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_for(base, server)
        answer = httpx.post(f"{base}/api/caption", timeout=120,
                            files={"file": ("a.mp4", clips[0].read_bytes(), "video/mp4")})
        assert answer.status_code == 200 and answer.json()["caption"]
        assert len(list(temp.iterdir())) == 1  # the private upload folder, while it runs
    finally:
        server.send_signal(signal.SIGINT)
        _, err = server.communicate(timeout=60)
    assert server.returncode == 0, err
    assert f"http://127.0.0.1:{port}/" in err
    assert list(temp.iterdir()) == []  # removed on shutdown
