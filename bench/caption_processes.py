"""Clips per second of `vidcap caption` over a folder of Shapes clips: one process against two
processes under torchrun (gloo on CPU), each as a whole command, in one run.

Renders `--clips` Shapes clips (64 px, 16 frames at 8 fps, seed 7) and writes a run folder with
the shapes-tiny model of random weights (its tokenizer trained on the clips' captions, the clip
length recorded from them; `generate.min_new_tokens = max_new_tokens = --new-tokens`, 8 by
default, so that every caption is as long as a Shapes caption and its end token whatever the
weights say), then runs, interleaved, `--repeats` times each (after one untimed warm-up run):

- `vidcap caption RUN VIDEOS --out R.jsonl --threads 1`        (1 process, 1 thread)
- `vidcap caption RUN VIDEOS --out R.jsonl --threads 2`        (1 process, 2 threads)
- `torchrun --standalone --nproc_per_node 2 -m vidcap caption RUN VIDEOS --out R.jsonl
  --threads 1`                                                  (2 processes, 1 thread each)

Each command keeps its defaults otherwise (`--segments auto`, the run's batch of 32, `--workers`
per `default_workers`: one decoding worker per process on 2 cores, unless `--workers`).
Measured: the wall time of the whole command (start-up included: the honest cost, paid once per
process), the captioning seconds of the summary line it prints on stderr ("N videos done, ...
S s"), and the CPU seconds of the command and all its processes (wait4); medians. Every run's
results file must hold the same captions for the same paths, in the same order, as the first.

    PYTHONPATH=src .venv/bin/python bench/caption_processes.py [--clips 300] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
       "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
SUMMARY = re.compile(r"vidcap: (\d+) videos done, (\d+) skipped as already done, (\d+) failed, "
                     r"([\d.]+) s")
BASELINE = "1 process, 1 thread"


def make_run(folder: Path, clips: int, new_tokens: int) -> tuple[Path, Path]:
    """Render the clips and write a run of the shapes-tiny model with random weights; returns
    (run folder, folder of the clips)."""
    import torch

    from vidcap.config import load_config
    from vidcap.data.manifest import read_manifest
    from vidcap.data.shapes import ShapesSpec, prepare_shapes
    from vidcap.models.mffcl import MFFCL
    from vidcap.runs.layout import open_run
    from vidcap.runs.store import record_clip_length, save_model

    torch.set_num_threads(1)
    manifest = prepare_shapes(folder / "shapes", ShapesSpec(seed=7), splits=(0, 0, clips))
    records = read_manifest(manifest)
    cfg = load_config("shapes-tiny", [f"generate.max_new_tokens={new_tokens}",
                                      f"generate.min_new_tokens={new_tokens}"])
    torch.manual_seed(0)
    model = MFFCL.build(cfg.model, cfg.video, captions=[c for r in records for c in r.captions],
                        with_text_encoder=False)
    run = folder / "run"
    save_model(model, run, cfg)
    record_clip_length(run, records)
    open_run(run)  # a run folder as `vidcap caption` wants it
    return run, folder / "shapes" / "videos"


def commands(run: Path, videos: Path, workers: int | None) -> dict[str, list[str]]:
    """The three commands, without --out."""
    python = sys.executable
    torchrun = Path(python).with_name("torchrun")
    launcher = [str(torchrun)] if torchrun.exists() else [python, "-m", "torch.distributed.run"]
    caption = ["-m", "vidcap", "caption", str(run), str(videos)]
    caption += ["--workers", str(workers)] if workers is not None else []
    return {
        BASELINE: [python, *caption, "--threads", "1"],
        "1 process, 2 threads": [python, *caption, "--threads", "2"],
        "2 processes, 1 thread each": [*launcher, "--standalone", "--nproc_per_node", "2",
                                       *caption, "--threads", "1"],
    }


def timed(command: list[str], out: Path, clips: int) -> dict[str, float]:
    """Run `command --out out`, which must caption every clip: wall, captioning and CPU seconds."""
    log = out.with_suffix(".stderr")
    start = time.perf_counter()
    with open(log, "wb") as stderr:
        process = subprocess.Popen([*command, "--out", str(out)], env=ENV,
                                   stdout=subprocess.DEVNULL, stderr=stderr)
        _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    text = log.read_text(errors="replace")
    found = SUMMARY.findall(text)
    if os.waitstatus_to_exitcode(status) != 0 or not found or int(found[-1][0]) != clips:
        raise SystemExit(f"{' '.join(command)} failed or captioned too few:\n{text[-3000:]}")
    return {"wall": wall, "captioning": float(found[-1][3]),
            "cpu": usage.ru_utime + usage.ru_stime}


def captions(results: Path) -> list[tuple[str, str]]:
    """(path, caption) of each line of a results file, in its order."""
    lines = [json.loads(line) for line in results.read_text().splitlines() if line.strip()]
    return [(line["path"], line["caption"]) for line in lines]


def measure(rows: dict[str, list[str]], folder: Path, clips: int, repeats: int
            ) -> dict[str, list[dict[str, float]]]:
    """Every row `repeats` times, interleaved, after a warm-up; checks the captions."""
    timed(rows[BASELINE], folder / "warm-up.jsonl", clips)
    reference = captions(folder / "warm-up.jsonl")
    assert len(reference) == clips, "the warm-up run did not write a result per clip"
    times: dict[str, list[dict[str, float]]] = {name: [] for name in rows}
    for repeat in range(repeats):
        for i, (name, command) in enumerate(rows.items()):
            out = folder / f"results-{repeat}-{i}.jsonl"
            times[name].append(timed(command, out, clips))
            assert captions(out) == reference, f"{name}: other captions or order than 1 process"
    return times


def table(times: dict[str, list[dict[str, float]]], clips: int) -> str:
    """The Markdown table of the medians, ratios against the baseline row."""
    median = {name: {k: statistics.median(t[k] for t in runs) for k in runs[0]}
              for name, runs in times.items()}
    base = median[BASELINE]
    head = ("| mode | wall s | clips/s (wall) | x 1 process | captioning s | clips/s (captioning) "
            "| x 1 process | CPU s |")
    lines = [head, "|---|---|---|---|---|---|---|---|"]
    for name, m in median.items():
        lines.append(f"| {name} | {m['wall']:.1f} | {clips / m['wall']:.1f} | "
                     f"**{base['wall'] / m['wall']:.2f}x** | {m['captioning']:.1f} | "
                     f"{clips / m['captioning']:.1f} | "
                     f"**{base['captioning'] / m['captioning']:.2f}x** | {m['cpu']:.1f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--new-tokens", type=int, default=8, help="tokens of every caption")
    parser.add_argument("--workers", type=int, default=None,
                        help="decoding workers per process (default: the command's)")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    load = [os.getloadavg()]
    with tempfile.TemporaryDirectory() as tmp:
        run, videos = make_run(Path(tmp), args.clips, args.new_tokens)
        times = measure(commands(run, videos, args.workers), Path(tmp), args.clips, args.repeats)
    load.append(os.getloadavg())
    import torch

    print(json.dumps({
        "clips": args.clips, "repeats": args.repeats, "new_tokens": args.new_tokens,
        "workers": args.workers or "default", "load_average": [round(x[0], 2) for x in load],
        "cpus": os.cpu_count(), "machine": platform.machine(), "torch": torch.__version__,
        "isa": os.environ.get("ATEN_CPU_CAPABILITY", "default"),
        "all_seconds": {name: [{k: round(v, 2) for k, v in t.items()} for t in runs]
                        for name, runs in times.items()}}, indent=1))
    print(table(times, args.clips))


if __name__ == "__main__":
    main()
