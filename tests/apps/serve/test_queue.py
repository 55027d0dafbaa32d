"""The model queue under a real uvicorn server: a full queue answers 503 with Retry-After, a
request out of time answers 504 while the event loop keeps answering, a job that ran out of time
while waiting never runs, and the upload folder empties when the last job ends.

The engine is the real one behind a gate the test opens (the only stand-in in these tests: a
generation on the tiny model is too quick to hold the queue otherwise)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from tests.apps.serve.conftest import files_under, live_server
from vidcap.apps.serve.app import ServeSettings, create_app
from vidcap.apps.serve.engine import CaptionOptions, ModelEngine


class GatedEngine:
    """`engine`, except that `caption` waits for `gate` before captioning."""

    def __init__(self, engine: ModelEngine) -> None:
        self.engine = engine
        self.gate = threading.Event()
        self.entered = 0
        self.stopped: list[bool] = []

    def caption(self, video: Path, options: CaptionOptions, *, stop=None):
        self.entered += 1
        self.gate.wait(120)
        self.stopped.append(stop is not None and stop.is_set())
        return self.engine.caption(video, options, stop=stop)

    def __getattr__(self, name: str):
        return getattr(self.engine, name)


def until(condition: Callable[[], bool], what: str, limit_s: float = 60) -> None:
    """Wait for `condition` (a bound against hangs, not a timing check)."""
    deadline = time.monotonic() + limit_s
    while not condition():
        assert time.monotonic() < deadline, f"still waiting for {what}"
        time.sleep(0.02)


def post_clip(base: str, clip: Path) -> httpx.Response:
    return httpx.post(f"{base}/api/caption", timeout=120,
                      files={"file": (clip.name, clip.read_bytes(), "video/mp4")})


def queue_of(base: str) -> dict:
    return httpx.get(f"{base}/healthz", timeout=30).json()["queue"]


def test_full_queue_is_503_with_retry_after_and_health_answers_while_busy(engine, clips,
                                                                          temp_root):
    gated = GatedEngine(engine)
    app = create_app(gated, ServeSettings(temp_root=temp_root, max_queue=1))
    with live_server(app) as base, ThreadPoolExecutor(2) as pool:
        first = pool.submit(post_clip, base, clips[0])
        until(lambda: gated.entered == 1, "the first job to start")
        second = pool.submit(post_clip, base, clips[1])
        until(lambda: queue_of(base) == {"running": 1, "queued": 1, "max_queue": 1},
              "the second request to wait")  # /healthz answers while the model is busy
        refused = post_clip(base, clips[2])
        assert refused.status_code == 503
        assert int(refused.headers["retry-after"]) >= 1
        assert "--max-queue 1" in refused.json()["detail"]
        gated.gate.set()
        answers = [first.result(), second.result()]
    assert [a.status_code for a in answers] == [200, 200]
    for answer, clip in zip(answers, clips):
        assert answer.json() == engine.caption(clip, CaptionOptions()).model_dump()
    assert files_under(temp_root) == []


def test_out_of_time_is_504_the_waiting_job_never_runs_and_files_go_after(engine, clips,
                                                                          temp_root):
    gated = GatedEngine(engine)
    app = create_app(gated, ServeSettings(temp_root=temp_root, max_queue=2, timeout_s=0.5))
    with live_server(app) as base:
        with ThreadPoolExecutor(2) as pool:
            running = pool.submit(post_clip, base, clips[0])
            until(lambda: gated.entered == 1, "the first job to start")
            waiting = pool.submit(post_clip, base, clips[1])
            answers = [running.result(), waiting.result()]
        assert [a.status_code for a in answers] == [504, 504]
        assert all("did not finish within 0.5 s" in a.json()["detail"] for a in answers)
        # the running generation cannot be stopped: its upload stays until it ends
        assert queue_of(base) == {"running": 1, "queued": 0, "max_queue": 2}
        assert len(files_under(temp_root)) == 1
        gated.gate.set()
        until(lambda: queue_of(base)["running"] == 0, "the orphaned job to end")
        until(lambda: files_under(temp_root) == [], "its upload to be removed")
        assert gated.entered == 1  # the request that ran out of time while waiting never ran
        assert gated.stopped == [True]  # the running one was told its time was up
