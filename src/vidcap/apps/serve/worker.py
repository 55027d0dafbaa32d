"""One model, one worker thread, a bounded queue in front of it and a time limit per request.

A request first takes a place (`ModelWorker.place`): there are `max_queue + 1` of them (the one the
model is working on and `max_queue` waiting, uploads in progress included); when none is free the
request is refused at once with 503 and a Retry-After estimated from the recent job times, before
its body is read. The model's work runs in the worker thread, so the event loop keeps answering
(health checks, uploads, refusals) while a clip is captioned.

How the time limit is enforced: the clock starts when the upload is complete and counts the wait
in the queue plus the model's work. When it runs out the client gets 504 at once. A job still
waiting is cancelled and never runs. A running generation cannot be interrupted mid-way (PyTorch
has no safe way to stop a thread), so it finishes in the worker and its result is dropped: its
place in the queue and its files are kept until then, which keeps the queue's count honest. The
job is also handed a `threading.Event` that is set at the deadline, which work made of several
steps (a long video captioned segment by segment) checks between steps to stop early.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import TypeVar

from vidcap.apps.serve.errors import QueueFull, TimedOut
from vidcap.apps.serve.uploads import RequestFiles

log = logging.getLogger(__name__)

T = TypeVar("T")
Job = Callable[[threading.Event], T]
"""The model's work for one request; the event is set when its time is up."""


class Place:
    """A request's place in the queue, given back when the request and its job are over."""

    def __init__(self, worker: ModelWorker) -> None:
        self._worker = worker
        self._job: Future | None = None
        self._left = False

    def lend_to(self, job: Future) -> None:
        self._job = job

    def leave(self) -> None:
        if self._left:
            return
        self._left = True
        if self._job is None:
            self._worker._release()
        else:
            self._job.add_done_callback(lambda _job: self._worker._release())


class ModelWorker:
    """Runs jobs one at a time in a dedicated thread; at most `max_queue` wait for it."""

    def __init__(self, max_queue: int, timeout_s: float) -> None:
        if max_queue < 0:
            raise ValueError(f"max_queue must be non-negative, got {max_queue}")
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, got {timeout_s}")
        self.max_queue = max_queue
        self.timeout_s = timeout_s
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vidcap-model")
        self._lock = threading.Lock()
        self._admitted = 0  # places taken: uploading, waiting or running
        self._running = 0
        self._mean_s = 1.0  # running mean of job times, for Retry-After

    @contextmanager
    def place(self) -> Iterator[Place]:
        """Take a place in the queue for the body of the `with` (QueueFull when none is free)."""
        with self._lock:
            if self._admitted > self.max_queue:
                waiting = self._admitted - self._running
                retry = max(1, math.ceil(self._mean_s * (waiting + 1)))
                raise QueueFull(f"the server is busy: {self._admitted} requests are already "
                                f"queued or running (vidcap serve --max-queue "
                                f"{self.max_queue}); try again in about {retry} s",
                                headers={"Retry-After": str(retry)})
            self._admitted += 1
        place = Place(self)
        try:
            yield place
        finally:
            place.leave()

    def _release(self) -> None:
        with self._lock:
            self._admitted -= 1

    async def run(self, place: Place, files: RequestFiles | None, job: Job[T]) -> T:
        """Run `job` in the worker thread and wait for it, at most `timeout_s` seconds.

        The place and the files (if any) stay taken until the job is over, even when the answer
        is a timeout that goes out before it.
        """
        stop = threading.Event()
        future = self._pool.submit(self._timed, job, stop)
        place.lend_to(future)
        if files is not None:
            files.lend_to(future)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), self.timeout_s)
        except TimeoutError:
            stop.set()
            state = "was still waiting (cancelled)" if future.cancel() else \
                "is still running (it will finish and its result will be dropped)"
            log.warning("a request ran out of time after %g s; its job %s", self.timeout_s, state)
            raise TimedOut(f"the model did not finish within {self.timeout_s:g} s (vidcap serve "
                           "--timeout); the server is busy or the video is long") from None

    def _timed(self, job: Job[T], stop: threading.Event) -> T:
        with self._lock:
            self._running += 1
        start = time.perf_counter()
        try:
            return job(stop)
        finally:
            took = time.perf_counter() - start
            with self._lock:
                self._running -= 1
                self._mean_s = 0.8 * self._mean_s + 0.2 * took

    def stats(self) -> dict[str, int]:
        """`running` (0 or 1), `queued` (places taken by requests not running: uploading or
        waiting) and `max_queue`."""
        with self._lock:
            return {"running": self._running, "queued": self._admitted - self._running,
                    "max_queue": self.max_queue}

    def close(self) -> None:
        """Cancel waiting jobs and let the worker thread end after the running one."""
        self._pool.shutdown(wait=False, cancel_futures=True)
