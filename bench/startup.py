"""Start-up: how long a fresh `vidcap` process takes before it has done anything useful.

    .venv/bin/python bench/startup.py [--repeats 5] [--run RUN --clip CLIP]

Each row runs in fresh processes, `--repeats` times, the rows interleaved so that load on a
shared machine hits them alike; reported: the median wall time and the median CPU time of the
process (user + system, from wait4). Import is single-threaded, so on a quiet machine wall time
is about CPU time; on a shared one CPU time is the figure to compare.

- `import torch`: the floor of any command that runs a model;
- `torch + transformers models`: importing GPT-2 and TimeSformer's classes (transformers 5 brings
  torch._dynamo, torch.distributed's tensor and checkpoint modules, sympy and, when installed,
  scipy.optimize along): the floor of a command that builds the model;
- `vidcap --help`: building the parser (imports no torch);
- `vidcap caption RUN CLIP`: the whole command on one clip (a tiny run is trained first unless
  --run and --clip are given), `--threads 1`.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
       "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}


def timed(command: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one run of `command`, which must succeed."""
    start = time.perf_counter()
    process = subprocess.Popen(command, env=ENV, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(command)} failed: {process.stderr.read().decode()[-2000:]}")
    return wall, usage.ru_utime + usage.ru_stime


def tiny_run(folder: Path) -> tuple[Path, Path]:
    """A tiny trained run and one of its clips (as the tests build them)."""
    sys.path[:0] = [str(ROOT / "src"), str(ROOT)]
    import torch

    from tests.conftest import tiny_train_config
    from vidcap.data.shapes import ShapesSpec, prepare_shapes
    from vidcap.training.trainer import train

    torch.set_num_threads(1)
    manifest = prepare_shapes(folder / "shapes", ShapesSpec(size=32, seed=3), splits=(32, 8, 8))
    run = train(tiny_train_config(manifest, "train.eval_max_videos=0"), folder / "run")
    return run, next((folder / "shapes" / "videos").glob("*.mp4"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--run", type=Path, default=None)
    parser.add_argument("--clip", type=Path, default=None)
    args = parser.parse_args()
    python = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        run, clip = (args.run, args.clip) if args.run else tiny_run(Path(tmp))
        rows = {
            "import torch": [python, "-c", "import torch"],
            "torch + transformers models": [
                python, "-c", "from transformers import GPT2LMHeadModel, TimesformerModel"],
            "vidcap --help": [python, "-m", "vidcap", "--help"],
            "vidcap caption RUN CLIP": [python, "-m", "vidcap", "caption", str(run), str(clip),
                                        "--threads", "1"],
        }
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in rows}
        load = [os.getloadavg()[0]]
        for _ in range(args.repeats):
            for name, command in rows.items():
                times[name].append(timed(command))
        load.append(os.getloadavg()[0])
    print(f"machine: {platform.machine()}, {os.cpu_count()} logical CPUs, Python "
          f"{platform.python_version()}; load average {load[0]:.1f} at the start, {load[1]:.1f} "
          f"at the end; median of {args.repeats} fresh processes per row")
    print("| what | wall s | CPU s |")
    print("|---|---|---|")
    for name, pairs in times.items():
        wall = statistics.median(p[0] for p in pairs)
        cpu = statistics.median(p[1] for p in pairs)
        print(f"| {name} | {wall:.2f} | {cpu:.2f} |")


if __name__ == "__main__":
    main()
