"""Training throughput: shapes-tiny align and caption steps, frames decoded on the fly vs cached,
and one full-size (paper preset, random weights) forward+backward at batch 1 for reference.

    .venv/bin/python bench/train_throughput.py [--steps 20] [--threads 2] [--skip-paper]

Each pair of rows runs the same steps (same batches, same model start) in the same process, so
their ratio is what the cache buys; data loading runs in the main process (num_workers=0) unless
--workers is given.
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
from vidcap.data.clips import ClipDataset, collate_samples, draw_captions  # noqa: E402
from vidcap.data.manifest import read_manifest  # noqa: E402
from vidcap.data.shapes import ShapesSpec, prepare_shapes  # noqa: E402
from vidcap.models.decoder import CaptionDecoder  # noqa: E402
from vidcap.models.mffcl import MFFCL  # noqa: E402
from vidcap.training.precision import autocast, training_precision  # noqa: E402
from vidcap.training.optim import build_optimizer  # noqa: E402


def stage_steps(model: MFFCL, cfg, records, stage_name: str, *, cache_dir: str | None,
                steps: int, workers: int) -> tuple[float, int]:
    """Seconds and clips of `steps` optimiser steps of a stage (data loading included), in the
    preset's precision, with its trainable components; the align stage reads random stand-ins
    for the frozen text encoder's cached outputs."""
    stage = getattr(cfg.train, stage_name)
    model.train()
    model.set_trainable(stage.trainable)
    optimizer = build_optimizer(model, stage, cfg.train)
    dataset = ClipDataset(records, cfg.video, cache_dir=cache_dir, seed=0)
    loader = DataLoader(dataset, batch_size=stage.batch_size, shuffle=False, drop_last=True,
                        collate_fn=collate_samples, num_workers=workers)
    text = torch.randn(stage.batch_size, 384)
    clips, done = 0, 0
    start = time.perf_counter()
    while done < steps:
        for batch in loader:
            with autocast(cfg.train.precision, "cpu"):  # as the trainer runs it
                if stage_name == "align":
                    loss = model.align_loss(batch.pixels, text[:len(batch)])
                else:
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
    # GPT-2's own 50,257-token vocabulary (the BPE trained on 200 captions is far smaller)
    model.decoder = CaptionDecoder(cfg.model.decoder, model.tokenizer, vocab_size=50257)
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
        biggest = max(cfg.train.align.batch_size, cfg.train.caption.batch_size)
        manifest = prepare_shapes(Path(tmp) / "shapes", ShapesSpec(seed=0),
                                  splits=(args.steps * biggest, 0, 0))
        records = read_manifest(manifest, "train")
        torch.manual_seed(0)
        model = MFFCL.build(cfg.model, cfg.video, captions=[c for r in records for c in r.captions],
                            with_text_encoder=False)
        start_state = {k: v.clone() for k, v in model.state_dict().items()}
        cache = str(Path(tmp) / "cache")
        for record in records:  # fill the cache (what the first epoch does)
            ClipDataset([record], cfg.video, cache_dir=cache)[0]

        rows = []
        for stage_name in ("align", "caption"):
            for label, cache_dir in (("decoded on the fly", None), ("frame cache", cache)):
                model.load_state_dict(start_state)
                seconds, clips = stage_steps(model, cfg, records, stage_name, cache_dir=cache_dir,
                                             steps=args.steps, workers=args.workers)
                rows.append((stage_name, label, seconds, clips))

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"torch {torch.__version__}, {args.threads} threads, {args.workers} loader workers, "
          f"precision {training_precision(cfg.train.precision, 'cpu')[0]} "
          f"(train.precision {cfg.train.precision})")
    print(f"shapes-tiny, {args.steps} steps per row (align batch {cfg.train.align.batch_size}, "
          f"caption batch {cfg.train.caption.batch_size}, trainable as in the preset):")
    print("| stage | frames | s/step | clips/s | cache speed-up |")
    print("|---|---|---|---|---|")
    for i, (stage_name, label, seconds, clips) in enumerate(rows):
        ratio = f"{rows[i - 1][2] / seconds:.2f}x" if i % 2 else ""
        print(f"| {stage_name} | {label} | {seconds / args.steps:.3f} | {clips / seconds:.1f} "
              f"| {ratio} |")
    if not args.skip_paper:
        seconds, params = paper_forward_backward(args.paper_repeats)
        print(f"paper preset ({params:.0f}M parameters, 8 x 224 px, tau 50), batch 1, "
              f"forward+backward: {seconds:.1f} s")


if __name__ == "__main__":
    main()
