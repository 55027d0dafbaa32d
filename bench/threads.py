"""Threads: shapes-tiny greedy captioning with 1 torch thread, with the physical cores, and with
the physical cores under OpenMP's passive waiting, each in a fresh process.

    .venv/bin/python bench/threads.py [--clips 256] [--repeats 3] [--precision fp32]

On a shared machine this is the "beside other jobs" case: PyTorch's OpenMP threads spin while
they wait for each other, and a thread whose core is taken by another process holds the others
up at every operation. Random weights (speed does not depend on what they say), every caption
`generate.max_new_tokens` long, batches of `generate.batch_size`; the rows alternate
`--repeats` times and the median is reported.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import sys, time, torch
from vidcap import runtime
from vidcap.config import load_config
from vidcap.models.mffcl import MFFCL
threads, clips, precision = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
runtime.set_threads(threads)
cfg = load_config("shapes-tiny")
torch.manual_seed(0)
captions = [f"a red circle moves {d}" for d in ("left", "right", "up", "down")]
model = MFFCL.build(cfg.model, cfg.video, captions=captions, with_text_encoder=False).eval()
size = cfg.video.image_size
pixels = torch.randn(clips, cfg.video.num_frames, 3, size, size)
gen = cfg.generate
with runtime.autocast(precision, "cpu"):
    model.generate(pixels[:gen.batch_size], gen, min_new_tokens=gen.max_new_tokens)  # warm-up
    start = time.perf_counter()
    model.generate(pixels, gen, min_new_tokens=gen.max_new_tokens)
print(time.perf_counter() - start)
"""


def run(threads: int, passive: bool, args: argparse.Namespace) -> float:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS",
                                                            "OMP_WAIT_POLICY")}
    env.update(HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT / "src"))
    if passive:
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    out = subprocess.run([sys.executable, "-c", CHILD, str(threads), str(args.clips),
                          args.precision], env=env, check=True, capture_output=True, text=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16"))
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    from vidcap.runtime import physical_cores

    cores = physical_cores()
    rows = {"1 thread": (1, False), f"{cores} threads": (cores, False),
            f"{cores} threads, OMP_WAIT_POLICY=PASSIVE": (cores, True)}
    times: dict[str, list[float]] = {name: [] for name in rows}
    load = [os.getloadavg()[0]]
    for _ in range(args.repeats):
        for name, (threads, passive) in rows.items():
            times[name].append(run(threads, passive, args))
    load.append(os.getloadavg()[0])
    print(f"machine: {platform.machine()}, {os.cpu_count()} logical CPUs, {cores} physical "
          f"cores; load average {load[0]:.1f} at the start, {load[1]:.1f} at the end; "
          f"{args.clips} clips, {args.precision}, median of {args.repeats}")
    print("| torch threads | seconds | clips/s | vs 1 thread |")
    print("|---|---|---|---|")
    one = statistics.median(times["1 thread"])
    for name, values in times.items():
        seconds = statistics.median(values)
        print(f"| {name} | {seconds:.1f} | {args.clips / seconds:.1f} | {one / seconds:.2f}x |")


if __name__ == "__main__":
    main()
