"""Precision: shapes-tiny align steps, caption steps and greedy generation in fp32 and bf16, with
the CPU's native bf16 and as an AVX2 machine runs them (`ATEN_CPU_CAPABILITY=avx2
ONEDNN_MAX_CPU_ISA=AVX2`, plus `MKL_ENABLE_INSTRUCTIONS=AVX2` so that fp32 matrix products are
capped too), and what `precision: auto` chooses in each.

    .venv/bin/python bench/precision.py [--steps 4] [--repeats 2] [--rounds 3] [--threads 1]
                                        [--modes native,avx2] [--align-batches 64,32]
                                        [--set KEY=VALUE ...]

Each mode runs in its own processes (the variables must be set before torch loads), the modes
alternating `--rounds` times so that load on a shared machine hits them alike. Inside a process,
the model (random weights, the preset's sizes) and a fixed random batch are built once; then
fp32 and bf16 blocks of `--steps` optimiser steps (forward, backward, clipping, AdamW, as the
trainer runs them; the frozen text encoder's cached outputs are random stand-ins) alternate
`--repeats` times. Reported: the median block over all rounds, seconds per step. Data loading is
left out (the demo reads frames from its cache after the first epoch). Generation: greedy
captions of one caption-stage batch, every caption `max_new_tokens` long, seconds per batch.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

MODES = {
    "native": {},
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2",
             "MKL_ENABLE_INSTRUCTIONS": "AVX2"},
}
CAPS = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA",
        "MKL_ENABLE_INSTRUCTIONS")
CAPTIONS = [f"a {c} {s} moves {d}" for c in ("red", "green", "blue", "white")
            for s in ("circle", "square", "triangle") for d in ("left", "right", "up", "down")]


def measure(args: argparse.Namespace) -> dict:
    """In this process: per-step seconds of each stage and per-batch generation, fp32 and bf16."""
    import torch

    from vidcap import runtime
    from vidcap.config import load_config
    from vidcap.models.mffcl import MFFCL

    torch.set_num_threads(args.threads)
    cfg = load_config("shapes-tiny", args.set)
    torch.manual_seed(0)
    model = MFFCL.build(cfg.model, cfg.video, captions=CAPTIONS, with_text_encoder=False)
    rows: dict = {"capability": runtime.cpu_capability(),
                  "auto": runtime.resolve_precision("auto", "cpu"), "threads": args.threads,
                  "stages": {}}
    batches = [int(b) for b in args.align_batches.split(",")] if args.align_batches else \
        [cfg.train.align.batch_size]
    plan = [("align", b) for b in batches] + [("caption", cfg.train.caption.batch_size)]
    for stage, batch in plan:
        rows["stages"][f"{stage}, batch {batch}"] = interleaved(
            step_block(model, cfg, stage, batch), args)
    model.eval()
    size, frames = cfg.video.image_size, cfg.video.num_frames
    gen_pixels = torch.randn(cfg.train.caption.batch_size, frames, 3, size, size)
    tokens = cfg.generate.max_new_tokens

    def generate(precision: str, repeats: int) -> float:
        start = time.perf_counter()
        for _ in range(repeats):
            with runtime.autocast(precision, "cpu"):
                model.generate(gen_pixels, cfg.generate, strategy="greedy",
                               min_new_tokens=tokens, batch_size=len(gen_pixels))
        return (time.perf_counter() - start) / repeats

    rows["stages"][f"generate, batch {len(gen_pixels)}"] = interleaved(generate, args)
    return rows


def step_block(model, cfg, stage: str, batch: int):
    """block(precision, steps) -> seconds per optimiser step of `stage` at `batch` clips."""
    import torch

    from vidcap import runtime
    from vidcap.training.optim import build_optimizer

    size, frames = cfg.video.image_size, cfg.video.num_frames
    pixels = torch.randn(batch, frames, 3, size, size)
    text = torch.randn(batch, 384) if stage == "align" else \
        [CAPTIONS[i % len(CAPTIONS)] for i in range(batch)]
    model.train()
    model.set_trainable(getattr(cfg.train, stage).trainable)
    optimizer = build_optimizer(model, getattr(cfg.train, stage), cfg.train)
    params = [p for p in model.parameters() if p.requires_grad]

    def block(precision: str, steps: int) -> float:
        start = time.perf_counter()
        for _ in range(steps):
            with runtime.autocast(precision, "cpu"):
                loss = (model.align_loss(pixels, text) if stage == "align"
                        else model.caption_loss(pixels, text))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, cfg.train.grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        return (time.perf_counter() - start) / steps

    return block


def interleaved(block, args: argparse.Namespace) -> dict[str, list[float]]:
    """Seconds of `block(precision, steps)` per repeat, fp32 and bf16 alternating (after one
    warm-up step of each)."""
    times: dict[str, list[float]] = {"fp32": [], "bf16": []}
    for precision in times:
        block(precision, 1)
    for _ in range(args.repeats):
        for precision in times:
            times[precision].append(block(precision, args.steps))
    return times


def run_rounds(args: argparse.Namespace) -> dict[str, dict]:
    """Every mode's rows, the processes of the modes alternating; medians over all blocks."""
    results: dict[str, dict] = {}
    for _ in range(args.rounds):
        for mode in args.modes.split(","):
            rows = run_mode(mode, args)
            merged = results.setdefault(mode, {"capability": rows["capability"],
                                               "auto": rows["auto"], "stages": {}})
            for stage, by_precision in rows["stages"].items():
                for precision, times in by_precision.items():
                    merged["stages"].setdefault(stage, {}).setdefault(precision, []).extend(times)
    for rows in results.values():
        rows["stages"] = {stage: {p: statistics.median(t) for p, t in by_precision.items()}
                          for stage, by_precision in rows["stages"].items()}
    return results


def run_mode(mode: str, args: argparse.Namespace) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in CAPS}
    env.update(MODES[mode])
    env.setdefault("HF_HUB_OFFLINE", "1")
    command = [sys.executable, __file__, "--child", "--steps", str(args.steps),
               "--repeats", str(args.repeats), "--threads", str(args.threads),
               "--align-batches", args.align_batches]
    for item in args.set:
        command += ["--set", item]
    out = subprocess.run(command, env=env, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def report(results: dict[str, dict], args: argparse.Namespace) -> str:
    base = results.get("native", next(iter(results.values())))
    lines = [f"machine: {platform.machine()}, {os.cpu_count()} logical CPUs, load average "
             f"{os.getloadavg()[0]:.1f} at the end; {args.threads} torch thread(s); "
             f"{args.steps} steps per block, median of {args.repeats * args.rounds} blocks "
             f"({args.rounds} processes per mode); settings: {' '.join(args.set) or 'preset'}",
             "",
             "| mode | capability | auto chooses | stage | fp32 s | bf16 s | bf16 / fp32 "
             "| fp32 / native fp32 |", "|---|---|---|---|---|---|---|---|"]
    for mode, rows in results.items():
        for stage, times in rows["stages"].items():
            fp32, bf16 = times["fp32"], times["bf16"]
            lines.append(f"| {mode} | {rows['capability']} | {rows['auto'][0]} | {stage} "
                         f"| {fp32:.3f} | {bf16:.3f} | {bf16 / fp32:.2f}x "
                         f"| {fp32 / base['stages'][stage]['fp32']:.2f}x |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--modes", default="native,avx2")
    parser.add_argument("--align-batches", default="", metavar="B1,B2",
                        help="align-stage batch sizes to time (default: the preset's)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a setting of shapes-tiny (e.g. train.align.batch_size=32)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args)))
        return
    print(report(run_rounds(args), args))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    main()
