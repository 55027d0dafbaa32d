"""Load test of `vidcap serve`: concurrent uploads of good and bad files from a pool of clients.

Starts `python -m vidcap serve RUN` as a child process on a free local port, with a small upload
limit and a short queue, samples the server's resident memory (psutil, every 50 ms), and sends
`--requests` uploads from `--clients` threads (one httpx client each), cycling through:

    good   a Shapes clip                       -> 200 (or 503 when the queue is full)
    text   a text file named .mp4              -> 415
    cut    the first half of a Shapes clip     -> 422
    bulk   zeros just under the upload limit   -> 415 (streamed to disk in full first)
    big    a body over --max-upload-mb         -> 413 (declared length, and a chunked body)

Then it checks that every request got one of the allowed answers (none lost, none hanging past
the client's timeout), that /healthz still answers with an empty queue, that the upload folder is
empty, and how far the server's memory is from where it started. It prints latency percentiles
(per kind and overall), peak and final memory. The tests import `run_load` and `payloads` (a
smaller load against a server in the test process).

    PYTHONPATH=src .venv/bin/python bench/serve_load.py [--run RUN] [--requests 50] [--clients 8]

Without --run it trains a throwaway shapes-tiny run (caption stage only, a few steps: speed does
not depend on what the weights say) under bench/out/serve-load/.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import httpx

ALLOWED = {"good": {200, 503}, "text": {415, 503}, "cut": {422, 503},
           "bulk": {415, 422, 503}, "big": {413, 503}, "big-chunked": {413, 503}}
"""What each kind of upload may be answered (503: the queue was full when it arrived)."""


@dataclass(frozen=True)
class Payload:
    kind: str
    filename: str
    data: bytes


@dataclass(frozen=True)
class Outcome:
    kind: str
    status: int | None
    """None: no answer (the client gave up or the connection broke)."""
    seconds: float
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status in ALLOWED[self.kind]


def payloads(clips: list[Path], limit_bytes: int) -> list[Payload]:
    """One upload of each kind per clip: good, text, cut, bulk (zeros just under the limit:
    streamed to disk, then refused as no video), big, big-chunked (in that order)."""
    out = []
    for clip in clips:
        data = clip.read_bytes()
        out += [Payload("good", clip.name, data),
                Payload("text", "notes.mp4", b"this is not a video\n" * 50),
                Payload("cut", "cut-" + clip.name, data[:len(data) // 2]),
                Payload("bulk", "bulk.mp4", b"\0" * (limit_bytes - 10_000)),
                Payload("big", "big.mp4", b"\0" * (limit_bytes + 100_000)),
                Payload("big-chunked", "big.mp4", b"\0" * (limit_bytes + 100_000))]
    return out


def _chunked_body(payload: Payload, boundary: str) -> Iterator[bytes]:
    """A multipart body as a generator: httpx sends it chunked, with no Content-Length."""
    yield (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
           f'filename="{payload.filename}"\r\nContent-Type: video/mp4\r\n\r\n').encode()
    for start in range(0, len(payload.data), 64 * 1024):
        yield payload.data[start:start + 64 * 1024]
    yield f"\r\n--{boundary}--\r\n".encode()


def send(client: httpx.Client, base_url: str, payload: Payload) -> Outcome:
    """Upload one payload to /api/caption; never raises."""
    start = time.perf_counter()
    try:
        if payload.kind == "big-chunked":
            boundary = "vidcap-load-boundary"
            response = client.post(f"{base_url}/api/caption",
                                   content=_chunked_body(payload, boundary),
                                   headers={"content-type":
                                            f"multipart/form-data; boundary={boundary}"})
        else:
            response = client.post(f"{base_url}/api/caption",
                                   files={"file": (payload.filename, payload.data, "video/mp4")})
        return Outcome(payload.kind, response.status_code, time.perf_counter() - start)
    except httpx.HTTPError as err:
        return Outcome(payload.kind, None, time.perf_counter() - start, repr(err))


def run_load(base_url: str, pool: list[Payload], *, requests: int, clients: int,
             timeout_s: float = 300.0) -> list[Outcome]:
    """Send `requests` uploads (cycling through `pool`) from `clients` threads at once."""
    local = threading.local()
    everyone: list[httpx.Client] = []
    lock = threading.Lock()

    def one(i: int) -> Outcome:
        if not hasattr(local, "client"):
            local.client = httpx.Client(timeout=timeout_s)
            with lock:
                everyone.append(local.client)
        return send(local.client, base_url, pool[i % len(pool)])

    try:
        with ThreadPoolExecutor(max_workers=clients) as threads:
            return list(threads.map(one, range(requests)))
    finally:
        for client in everyone:
            client.close()


def wait_idle(base_url: str, timeout_s: float = 120.0) -> dict:
    """Poll /healthz until nothing is running or queued; its last answer."""
    deadline = time.monotonic() + timeout_s
    while True:
        health = httpx.get(f"{base_url}/healthz", timeout=10).json()
        queue = health["queue"]
        if (queue["running"] == 0 and queue["queued"] == 0) or time.monotonic() > deadline:
            return health
        time.sleep(0.1)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


# ---------------------------------------------------------------------------------------------
# the benchmark: a server in a child process, its memory sampled


class MemorySampler:
    """Resident memory of a process (and its children), sampled every `every` seconds."""

    def __init__(self, pid: int, every: float = 0.05) -> None:
        import psutil

        self.process = psutil.Process(pid)
        self.every = every
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def rss(self) -> int:
        procs = [self.process, *self.process.children(recursive=True)]
        return sum(p.memory_info().rss for p in procs if p.is_running())

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            self.peak = max(self.peak, self.rss())

    def __enter__(self) -> Self:
        self.peak = self.rss()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(run: Path, port: int, temp_root: Path, args: argparse.Namespace
                 ) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": str(args.threads)}
    command = [sys.executable, "-m", "vidcap", "serve", str(run), "--port", str(port),
               "--max-upload-mb", str(args.max_upload_mb), "--max-queue", str(args.max_queue),
               "--timeout", str(args.timeout), "--temp-dir", str(temp_root)]
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited: {server.stderr.read()}")
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
            return server
        except httpx.HTTPError:
            time.sleep(0.2)
    server.kill()
    raise SystemExit("the server did not start within 120 s")


def throwaway_run(out: Path, manifest: Path) -> Path:
    """A shapes-tiny run trained a few caption steps on the Shapes set of `manifest`."""
    from vidcap.config import load_config
    from vidcap.training.trainer import train

    run = out / "run"
    if not (run / "model.safetensors").is_file():
        cfg = load_config("shapes-tiny", [
            f"data.manifest={manifest}", "train.stages=[caption]", "train.caption.steps=4",
            "train.caption.batch_size=8", "train.caption.warmup_steps=0",
            "train.eval_every=1000", "train.checkpoint_every=1000", "train.precision=fp32",
            "train.device=cpu"])
        train(cfg, run)
    return run


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def report(outcomes: list[Outcome], memory: dict[str, int], args: argparse.Namespace,
           health: dict, leftovers: list[Path]) -> str:
    mb = 1 / 2 ** 20
    machine = (f"machine: {cpu_name()}, {os.cpu_count()} "
               f"cores, python {platform.python_version()}; load: {os.getloadavg()[0]:.2f} "
               "(1-min average at the end)")
    load = (f"{args.requests} uploads from {args.clients} clients; server --max-queue "
            f"{args.max_queue} --max-upload-mb {args.max_upload_mb} --timeout {args.timeout}")
    lines = [machine, load, f"{'kind':<12}{'status':>7}{'n':>5}{'p50 ms':>9}{'p95 ms':>9}"]
    groups = sorted({(o.kind, o.status or 0) for o in outcomes},
                    key=lambda g: (list(ALLOWED).index(g[0]), g[1]))
    for kind, status in [*groups, ("all", "any")]:
        seconds = [o.seconds for o in outcomes
                   if kind == "all" or (o.kind, o.status or 0) == (kind, status)]
        lines.append(f"{kind:<12}{status:>7}{len(seconds):>5}"
                     f"{1000 * percentile(seconds, 0.5):>9.0f}"
                     f"{1000 * percentile(seconds, 0.95):>9.0f}")
    bad = [o for o in outcomes if not o.ok]
    rss = (f"server RSS: start {memory['start'] * mb:.0f} MB, peak {memory['peak'] * mb:.0f} "
           f"MB, after {memory['after'] * mb:.0f} MB "
           f"({(memory['after'] - memory['start']) * mb:+.0f} MB)")
    after = (f"healthy after: {health['status']}, queue {health['queue']}; files left in the "
             f"upload folder: {len(leftovers)}")
    lines += [f"unexpected answers: {len(bad)} {[(o.kind, o.status, o.error) for o in bad][:5]}",
              rss, after]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, default=None, help="run directory to serve")
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--max-queue", type=int, default=6)
    parser.add_argument("--max-upload-mb", type=float, default=1.0)
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the server")
    parser.add_argument("--out", type=Path, default=Path("bench/out/serve-load"))
    args = parser.parse_args()

    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    from vidcap.data.shapes import ShapesSpec, prepare_shapes

    manifest = prepare_shapes(out / "shapes", ShapesSpec(seed=1), splits=(32, 8, 8))
    run = args.run or throwaway_run(out, manifest)
    clips = sorted((manifest.parent / "videos").glob("*.mp4"))[:3]
    pool = payloads(clips, int(args.max_upload_mb * 1_000_000))
    temp_root = Path(tempfile.mkdtemp(prefix="serve-load-", dir=out))
    port = free_port()
    server = start_server(run, port, temp_root, args)
    base = f"http://127.0.0.1:{port}"
    try:
        send(httpx.Client(timeout=60), base, pool[0])  # warm-up: first-call costs out of the way
        with MemorySampler(server.pid) as memory:
            start_rss = memory.rss()
            outcomes = run_load(base, pool, requests=args.requests, clients=args.clients)
            health = wait_idle(base)
        time.sleep(1.0)
        figures = {"start": start_rss, "peak": memory.peak, "after": memory.rss()}
        leftovers = [p for p in temp_root.rglob("*") if p.is_file()]
        print(report(outcomes, figures, args, health, leftovers))
        return 0 if all(o.ok for o in outcomes) and not leftovers else 1
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(temp_root, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
