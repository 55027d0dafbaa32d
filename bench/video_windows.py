"""Benchmark: the frames of every scene of a 10-minute video in one pass, against one plain decode.

Writes (once, into `--cache`) a 10-minute 640x360 H.264 video at 30 fps (libx264 CRF 18, its
default keyframe placement and B-frames; the textured pattern of bench/video_read.py with a scene
cut every 7 s), then times, interleaved, the median of `--repeats` runs of

* plain decode: `for frame in container.decode(video=0)` with PyAV's defaults, no conversion;
* read_windows: `vidcap.video.read_windows(path, windows, 8)` for back-to-back 2-second windows
  (300 windows, 2,400 RGB frames returned, 1.66 GB);
* iter_windows: the same windows taken one at a time (`vidcap.video.iter_windows`, each window's
  frames let go before the next: what a captioner that handles one scene at a time holds).

The target is read_windows <= 1.5x the plain decode. Run:
`PYTHONPATH=src .venv/bin/python bench/video_windows.py [--repeats 3]`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import av

sys.path.insert(0, str(Path(__file__).resolve().parent))
from video_read import describe_machine, textured_frames, write_stream

from vidcap.video import iter_windows, probe_video, read_windows

WINDOW_S = 2.0
FRAMES = 8


def plain_decode(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cache", type=Path,
                        default=Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
                        / "vidcap-bench")
    args = parser.parse_args()
    describe_machine(avx2=False)
    path = args.cache / "long-640x360-600s.mp4"
    if not path.exists():
        print(f"writing {path} (once; about 8 minutes on 2 cores)", flush=True)
        args.cache.mkdir(parents=True, exist_ok=True)
        write_stream(path, textured_frames(600, 640, 360), None)
    info = probe_video(path)
    windows = [(WINDOW_S * k, WINDOW_S * (k + 1)) for k in range(int(info.duration // WINDOW_S))]
    print(f"{path.name}: {info.num_frames} frames, {info.width}x{info.height}, "
          f"{info.num_keyframes} keyframes; {len(windows)} windows of {WINDOW_S:g} s x {FRAMES}")
    runs = {"plain decode": lambda: plain_decode(path),
            "read_windows": lambda: len(read_windows(path, windows, FRAMES)),
            "iter_windows": lambda: sum(1 for _ in iter_windows(path, windows, FRAMES))}
    wall: dict[str, list[float]] = {name: [] for name in runs}
    cpu: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.repeats):
        for name, fn in runs.items():
            w0, c0 = time.perf_counter(), time.process_time()
            fn()
            wall[name].append(time.perf_counter() - w0)
            cpu[name].append(time.process_time() - c0)
    base_w, base_c = statistics.median(wall["plain decode"]), statistics.median(cpu["plain decode"])
    print(f"median of {args.repeats}, interleaved\n| run | wall s | CPU s (all threads) "
          "| wall ratio | CPU ratio |\n|---|---|---|---|---|")
    for name in runs:
        w, c = statistics.median(wall[name]), statistics.median(cpu[name])
        print(f"| {name} | {w:.2f} | {c:.2f} | {w / base_w:.2f} | {c / base_c:.2f} |")
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
