"""Training throughput: shapes-tiny caption steps with frames decoded on the fly vs from the cache,
and one full-size (paper preset, random weights) forward+backward at batch 1 for reference.

    .venv/bin/python bench/train_throughput.py [--steps 20] [--threads 2] [--skip-paper]

Both shapes-tiny variants run the same steps (same batches, same model start) in the same process,
so their ratio is what the cache buys; the data loading runs in the main process (num_workers=0)
unless --workers is given.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import torch  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from vidcap.config import load_config  # noqa: E402
from vidcap.data.dataset import ClipDataset, collate_samples, draw_captions  # noqa: E402
from vidcap.data.manifest import read_manifest  # noqa: E402
from vidcap.data.shapes import ShapesSpec, prepare_shapes  # noqa: E402
from vidcap.models.mffcl import MFFCL  # noqa: E402
from vidcap.training.optim import build_optimizer  # noqa: E402


def caption_steps(model: MFFCL, cfg, records, *, cache_dir: str | None, steps: int,
                  workers: int) -> tuple[float, int]:
    """Seconds and clips of `steps` caption-stage optimiser steps (data loading included)."""
    stage = cfg.train.caption
    model.train()
    model.set_trainable(stage.trainable)
    optimizer = build_optimizer(model, stage, cfg.train)
    dataset = ClipDataset(records, cfg.video, cache_dir=cache_dir, seed=0)
    loader = DataLoader(dataset, batch_size=stage.batch_size, shuffle=False, drop_last=True,
                        collate_fn=collate_samples, num_workers=workers)
    clips, done = 0, 0
    start = time.perf_counter()
    while done < steps:
        for batch in loader:
            loss = model.caption_loss(batch.pixels, draw_captions(batch, seed=0, epoch=0))
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            clips += len(batch)
            done += 1
            if done == steps:
                break
    return time.perf_counter() - start, clips


def paper_forward_backward(repeats: int) -> tuple[float, float]:
    """Median seconds of one caption-stage forward+backward of the paper preset at batch 1."""
    cfg = load_config("paper", ["model.encoder.pretrained=null", "model.decoder.pretrained=null",
                                "model.decoder.tokenizer=null", "model.decoder.vocab_size=50257",
                                "model.text_encoder.pretrained=null"])
    captions = [f"a person does thing number {i} in a room" for i in range(200)]
    model = MFFCL.build(cfg.model, cfg.video, captions=captions, with_text_encoder=False)
    model.train()
    params = sum(p.numel() for p in model.parameters()) / 1e6
    pixels = torch.randn(1, cfg.video.num_frames, 3, cfg.video.image_size, cfg.video.image_size)
    times = []
    for _ in range(repeats + 1):  # the first call warms allocators up
        start = time.perf_counter()
        model.caption_loss(pixels, ["a man is playing a guitar"]).backward()
        times.append(time.perf_counter() - start)
        model.zero_grad(set_to_none=True)
    times = sorted(times[1:])
    return times[len(times) // 2], params


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--paper-repeats", type=int, default=2)
    parser.add_argument("--skip-paper", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config("shapes-tiny")
        clips_needed = args.steps * cfg.train.caption.batch_size
        manifest = prepare_shapes(Path(tmp) / "shapes", ShapesSpec(seed=0),
                                  splits=(clips_needed, 0, 0))
        records = read_manifest(manifest, "train")
        torch.manual_seed(0)
        model = MFFCL.build(cfg.model, cfg.video, captions=[c for r in records for c in r.captions],
                            with_text_encoder=False)
        start_state = {k: v.clone() for k, v in model.state_dict().items()}
        cache = str(Path(tmp) / "cache")
        ClipDataset(records, cfg.video, cache_dir=cache)  # the cache folder, empty
        for record in records:  # fill the cache (what a first epoch does)
            ClipDataset([record], cfg.video, cache_dir=cache)[0]

        rows = []
        for label, cache_dir in (("decoded on the fly", None), ("from the frame cache", cache)):
            model.load_state_dict(start_state)
            seconds, clips = caption_steps(model, cfg, records, cache_dir=cache_dir,
                                           steps=args.steps, workers=args.workers)
            rows.append((label, seconds, clips))

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"torch {torch.__version__}, {args.threads} threads, {args.workers} loader workers")
    print(f"shapes-tiny caption stage, batch {cfg.train.caption.batch_size}, {args.steps} steps:")
    print("| frames | s/step | clips/s |")
    print("|---|---|---|")
    for label, seconds, clips in rows:
        print(f"| {label} | {seconds / args.steps:.3f} | {clips / seconds:.1f} |")
    print(f"cache speed-up: {rows[0][1] / rows[1][1]:.2f}x")
    if not args.skip_paper:
        seconds, params = paper_forward_backward(args.paper_repeats)
        print(f"paper preset ({params:.0f}M parameters, 8 x 224 px, tau 50), batch 1, "
              f"forward+backward: {seconds:.1f} s")


if __name__ == "__main__":
    main()
