"""Captions per second of `vidcap caption` over Shapes clips: decoding pipelined in a worker
process while the model generates, against decoding in turn (serial), in one run.

Renders `--clips` Shapes clips (64 px, 16 frames at 8 fps, seed 7), builds the shapes-tiny model
(random weights: speed does not depend on what they say, except for when a caption ends, so
every caption is made exactly `--new-tokens` long, 8 by default: a Shapes caption such as "a red
circle moves to the left" and its end token; or `--run` a trained run, as it comes), then times
`vidcap.captioning.batch.caption_files` over all the clips with the command's defaults
(`--segments auto`, the run's batch size 32) with `--workers 0` (serial) and `--workers N`
(pipelined), interleaved, `--repeats` times each; the ratio of the median rates is the figure.
It also times reading alone and the model alone, whose sum is what serial costs and whose
maximum is what a perfect pipeline costs. Captions of both modes are checked equal.

    PYTHONPATH=src .venv/bin/python bench/caption_pipeline.py [--clips 400] [--workers 1]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from vidcap.captioning.batch import FileSource, caption_files
from vidcap.captioning.frames import SegmentRequest
from vidcap.config import load_config
from vidcap.data.shapes import ShapesSpec, prepare_shapes

CAPTIONS = [f"a {c} {s} {m}" for c in ("red", "green", "blue", "yellow", "white")
            for s in ("circle", "square", "triangle")
            for m in ("moves to the left", "moves up", "grows", "shrinks")]


def load_model(run: str | None):
    if run:
        from vidcap.runs.store import load_run

        return load_run(run)
    from vidcap.models.mffcl import MFFCL

    cfg = load_config("shapes-tiny")
    torch.manual_seed(0)
    return MFFCL.build(cfg.model, cfg.video, captions=CAPTIONS, with_text_encoder=False).eval()


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=400)
    parser.add_argument("--workers", type=int, default=1, help="decoding workers, pipelined")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--run", default=None, help="a trained run instead of random weights")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the model")
    parser.add_argument("--new-tokens", type=int, default=8,
                        help="tokens per caption with random weights (0: as generated)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model(args.run)
    gen = load_config("shapes-tiny").generate
    if args.new_tokens and not args.run:
        gen = replace(gen, max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens)
    request = SegmentRequest("auto", clip_length=2.0)
    load = [os.getloadavg()]
    with tempfile.TemporaryDirectory() as tmp:
        prepare_shapes(tmp, ShapesSpec(seed=7), splits=(0, 0, args.clips))
        paths = sorted(str(p) for p in (Path(tmp) / "videos").iterdir())
        source = FileSource(paths, model.video_cfg, request)

        def read_all():
            return [list(source.read(i)) for i in range(len(source))]

        def run(workers: int):
            return [r.caption for r in caption_files(model, paths, model.video_cfg, gen,
                                                     request=request, workers=workers)]

        times: dict[str, list[float]] = {"serial": [], "pipelined": [], "read": [], "model": []}
        run(args.workers)  # warm-up: imports, caches
        for _ in range(args.repeats):
            seconds, clips = timed(read_all)
            times["read"].append(seconds)
            pixels = torch.stack([events[0].pixels for events in clips])
            times["model"].append(timed(lambda: model.generate(pixels, gen))[0])
            seconds, serial = timed(lambda: run(0))
            times["serial"].append(seconds)
            seconds, pipelined = timed(lambda: run(args.workers))
            times["pipelined"].append(seconds)
            assert serial == pipelined, "the two modes gave different captions"
        load.append(os.getloadavg())
    median = {k: statistics.median(v) for k, v in times.items()}
    print(json.dumps({
        "clips": args.clips, "workers": args.workers, "repeats": args.repeats,
        "new_tokens": gen.max_new_tokens, "model": args.run or "shapes-tiny, random weights",
        "captions_per_s": {"serial": round(args.clips / median["serial"], 1),
                           "pipelined": round(args.clips / median["pipelined"], 1)},
        "speed_up": round(median["serial"] / median["pipelined"], 2),
        "seconds": {k: round(v, 2) for k, v in median.items()},
        "ideal_speed_up": round((median["read"] + median["model"])
                                / max(median["read"], median["model"]), 2),
        "all_seconds": {k: [round(x, 2) for x in v] for k, v in times.items()},
        "load_average": [round(x[0], 2) for x in load], "cpus": os.cpu_count(),
        "machine": platform.machine(), "torch": torch.__version__,
        "isa": os.environ.get("ATEN_CPU_CAPABILITY", "default")}, indent=1))


if __name__ == "__main__":
    main()
