"""Commands that run a trained model on videos: `vidcap caption` and `vidcap attention`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from vidcap.cli.common import (Subparsers, add_decode_options, add_run, decode_overrides,
                               run_generate_config)
from vidcap.errors import VidcapError


def add_parsers(sub: Subparsers) -> None:
    _add_caption(sub)
    _add_attention(sub)


def _add_caption(sub: Subparsers) -> None:
    p = sub.add_parser("caption", help="caption video files with a trained run")
    add_run(p)
    p.add_argument("videos", type=Path, nargs="+", help="video files or folders of videos")
    p.add_argument("--format", choices=("text", "json", "vtt"), default="text",
                   help="text lines, a JSON list, or a WebVTT file beside each video")
    add_decode_options(p)
    p.set_defaults(func=_cmd_caption)


def _cmd_caption(args: argparse.Namespace) -> int:
    from vidcap.captioning.batch import caption_files
    from vidcap.captioning.inputs import find_videos
    from vidcap.captioning.subtitles import write_vtt
    from vidcap.runs.store import load_run

    paths = find_videos(args.videos)
    if not paths:
        raise VidcapError(f"no video files in {', '.join(map(str, args.videos))}")
    model = load_run(args.run, device=args.device, which=args.checkpoint)
    gen = run_generate_config(args.run, decode_overrides(args))
    failed, listing = 0, []
    for result in caption_files(model, paths, model.video_cfg, gen, device=args.device,
                                precision=args.precision):
        if not result.ok:
            failed += 1
            print(f"vidcap: error: {result.error}", file=sys.stderr)
            continue
        if args.format == "text":
            print(f"{result.path}\t{result.caption}", flush=True)
        elif args.format == "json":
            listing.append({"video": str(result.path), "caption": result.caption})
        else:
            print(f"{write_vtt(result.path, result.caption)}\t{result.caption}", flush=True)
    if args.format == "json":
        print(json.dumps(listing, indent=2, ensure_ascii=False))
    if failed:
        print(f"vidcap: {failed} of {len(paths)} video(s) could not be captioned", file=sys.stderr)
    return 1 if failed else 0


def _add_attention(sub: Subparsers) -> None:
    p = sub.add_parser("attention", help="draw the CLS-to-patch attention over a video's frames",
                       description="The paper's Fig. 5: each sampled frame above the same frame "
                                   "under the heat map of the video CLS's spatial attention to "
                                   "its patches, the generated caption as the title.")
    add_run(p)
    p.add_argument("video", type=Path, help="video file")
    p.add_argument("--out", type=Path, required=True, help="PNG to write")
    p.add_argument("--layer", type=int, default=None,
                   help="encoder block, 0-based, negative from the end (default: the run's "
                        "model.encoder.attention_layer)")
    p.add_argument("--rollout", action="store_true",
                   help="attention rollout over the blocks up to --layer instead of that "
                        "block's head-averaged attention")
    p.set_defaults(func=_cmd_attention)


def _cmd_attention(args: argparse.Namespace) -> int:
    from vidcap.visualize import render_attention

    figure = render_attention(args.run, args.video, args.out, layer=args.layer,
                              method="rollout" if args.rollout else "mean", device=args.device,
                              which=args.checkpoint, precision=args.precision)
    layout = figure.layout
    print(f"{figure.path}: {layout.width}x{layout.height} px, {len(figure.frame_indices)} frames "
          f"({' '.join(map(str, figure.frame_indices))}), block {figure.layer} "
          f"{'rollout' if figure.method == 'rollout' else 'head mean'}")
    print(f"caption: {figure.caption}")
    return 0
