"""Captions per second of MFFCL generation: greedy and beam 3, with and without GPT-2's KV cache.

Two models, random weights (speed does not depend on what the weights say):
- `tiny`: the whole shapes-tiny model (TimeSformer + mapper + GPT-2, 8 frames of 64 px), clips in,
  captions out, through `MFFCL.generate`;
- `paper decoder`: GPT-2 124M at the paper's size (50257-token vocabulary, width 768, 12 layers)
  reading a prefix of tau = 50 random vectors, through `CaptionDecoder.generate_ids` (the video
  encoder is not part of decoding).

Every caption is exactly `--new-tokens` long (min_new_tokens = max_new_tokens), so every mode
does the same work. Modes are interleaved and each figure is the best of `--repeats` runs.

    .venv/bin/python bench/generate.py [--batch 8] [--new-tokens 20] [--repeats 3] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable

import torch

from vidcap.config import GenerateConfig, load_config
from vidcap.models.decoder import CaptionDecoder
from vidcap.models.mffcl import MFFCL
from vidcap.models.tokenizer import train_caption_tokenizer

CAPTIONS = [f"a {c} {s} {m}" for c in ("red", "green", "blue", "yellow", "white")
            for s in ("circle", "square", "triangle")
            for m in ("moves to the left", "moves to the right", "moves up", "moves down",
                      "grows", "shrinks")]
MODES = [("greedy", True), ("greedy", False), ("beam", True), ("beam", False)]


def timed(run: Callable[[], object], results: list[float]) -> None:
    start = time.perf_counter()
    run()
    results.append(time.perf_counter() - start)


def measure(name: str, generate: Callable[[GenerateConfig], object], batch: int, new_tokens: int,
            repeats: int) -> list[tuple[str, str, float]]:
    times: dict[tuple[str, bool], list[float]] = {mode: [] for mode in MODES}
    for strategy, use_cache in MODES:  # warm-up
        generate(GenerateConfig(strategy=strategy, num_beams=3, use_cache=use_cache,
                                max_new_tokens=2, min_new_tokens=2, batch_size=batch))
    for _ in range(repeats):
        for strategy, use_cache in MODES:
            gen = GenerateConfig(strategy=strategy, num_beams=3, use_cache=use_cache,
                                 max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                                 batch_size=batch)
            timed(lambda: generate(gen), times[(strategy, use_cache)])
    rows = []
    for strategy, use_cache in MODES:
        rate = batch / min(times[(strategy, use_cache)])
        rows.append((name, f"{strategy if strategy == 'greedy' else 'beam 3'}, "
                           f"{'cache' if use_cache else 'no cache'}", rate))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--new-tokens", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    cfg = load_config("shapes-tiny")
    tiny = MFFCL.build(cfg.model, cfg.video, captions=CAPTIONS, with_text_encoder=False).eval()
    clips = torch.randn(args.batch, cfg.video.num_frames, 3, cfg.video.image_size,
                        cfg.video.image_size)
    rows = measure("tiny (shapes-tiny, whole model)", lambda gen: tiny.generate(clips, gen),
                   args.batch, args.new_tokens, args.repeats)
    del tiny

    paper = load_config("paper", ["model.decoder.pretrained=null", "model.decoder.tokenizer=null"])
    tokenizer = train_caption_tokenizer(CAPTIONS, vocab_size=400)
    decoder = CaptionDecoder(paper.model.decoder, tokenizer, vocab_size=50257).eval()
    prefix = torch.randn(args.batch, paper.model.mapper.num_queries, 768)
    rows += measure("paper decoder (GPT-2 124M, tau=50)",
                    lambda gen: decoder.generate_ids(prefix, gen),
                    args.batch, args.new_tokens, args.repeats)

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"batch {args.batch}, {args.new_tokens} new tokens, best of {args.repeats}, "
          f"{args.threads} torch threads, {os.cpu_count()} CPUs ({platform.machine()}), "
          f"torch {torch.__version__}, load average {load:.2f} at the end")
    print("| model | decoding | captions/s | vs. no cache |")
    print("|---|---|---|---|")
    for i, (name, mode, rate) in enumerate(rows):
        base = rows[i + 1][2] if "no cache" not in mode else rate
        print(f"| {name} | {mode} | {rate:.1f} | {rate / base:.2f}x |")


if __name__ == "__main__":
    main()
