"""Data commands: `vidcap prepare` (Shapes and the real datasets), `stats`, `inspect`."""

from __future__ import annotations

import argparse
from pathlib import Path

from vidcap.cli.common import Subparsers, add_overwrite
from vidcap.errors import VidcapError


def add_parsers(sub: Subparsers) -> None:
    _add_prepare(sub)
    stats = sub.add_parser("stats", help="print the statistics of a manifest")
    stats.add_argument("manifest", type=Path)
    stats.set_defaults(func=_cmd_stats)
    _add_inspect(sub)


def _cmd_prepare_shapes(args: argparse.Namespace) -> int:
    from vidcap.data.manifest import read_manifest
    from vidcap.data.shapes import ShapesSpec, prepare_shapes

    if args.long is not None:
        return _prepare_long_shapes(args)
    spec = ShapesSpec(size=args.size, seed=args.seed or 0, pair_fraction=args.pair_fraction)
    manifest = prepare_shapes(args.out, spec, videos=args.videos, splits=args.splits,
                              workers=args.workers)
    _print_stats(read_manifest(manifest), manifest)
    return 0


def _prepare_long_shapes(args: argparse.Namespace) -> int:
    from vidcap.data.shapes_long import LONG_SEED, LongShapesSpec, prepare_long_shapes
    from vidcap.evaluation.segments import read_long_truth

    if args.videos is not None or args.splits is not None or args.pair_fraction:
        raise VidcapError("--long makes long test videos: --videos, --splits and "
                          "--pair-fraction do not apply")
    spec = LongShapesSpec(size=args.size, seed=LONG_SEED if args.seed is None else args.seed,
                          clips=args.clips)
    path = prepare_long_shapes(args.out, spec, args.long, workers=args.workers)
    videos = read_long_truth(path)
    segments = [s for v in videos.values() for s in v.segments]
    print(f"{path}\n{len(videos)} long videos, {len(segments)} segments "
          f"({sum(s.held_out for s in segments)} of held-out pairs), seed {spec.seed}")
    return 0


def _print_stats(records: list, manifest: Path) -> None:
    from vidcap.data.manifest import summarize

    print(f"{manifest}")
    print(f"{'split':<6} {'videos':>7} {'captions':>9} {'caps/video':>11} {'words/cap':>10}")
    for split, s in summarize(records).items():
        print(f"{split:<6} {s['videos']:>7} {s['captions']:>9} {s['captions_per_video']:>11.1f} "
              f"{s['words_per_caption']:>10.1f}")


def _cmd_stats(args: argparse.Namespace) -> int:
    from vidcap.data.manifest import read_manifest

    _print_stats(read_manifest(args.manifest), args.manifest)
    return 0


def _splits(text: str) -> tuple[int, int, int]:
    try:
        train, val, test = (int(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected three counts, e.g. 2000,200,400")
    if min(train, val, test) < 0 or train + val + test == 0:
        raise argparse.ArgumentTypeError(f"{text!r}: counts must be non-negative, not all zero")
    return train, val, test


def _clip_range(text: str) -> tuple[int, int]:
    try:
        low, high = (int(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected MIN,MAX, e.g. 4,8")
    return low, high


def _add_prepare(sub: Subparsers) -> None:
    prepare = sub.add_parser("prepare", help="write a dataset manifest")
    kinds = prepare.add_subparsers(dest="dataset", required=True, metavar="DATASET")

    shapes = kinds.add_parser("shapes", help="generate the synthetic Shapes world (offline)")
    shapes.add_argument("--out", type=Path, required=True, help="output folder")
    shapes.add_argument("--videos", type=int, default=None,
                        help="total clips, split in the default proportions (default 2600)")
    shapes.add_argument("--splits", type=_splits, default=None, metavar="TRAIN,VAL,TEST",
                        help="clips per split (default 2000,200,400)")
    shapes.add_argument("--seed", type=int, default=None,
                        help="seed of every draw (default 0; 1000 with --long)")
    shapes.add_argument("--size", type=int, default=64, help="frame side in pixels")
    shapes.add_argument("--pair-fraction", type=float, default=0.0,
                        help="fraction of clips with two objects")
    shapes.add_argument("--workers", type=int, default=1, help="processes rendering clips")
    shapes.add_argument("--long", type=int, default=None, metavar="N",
                        help="instead: N long test videos of clips joined by hard cuts, with "
                             "their true segments (segments.jsonl)")
    shapes.add_argument("--clips", type=_clip_range, default=(4, 8), metavar="MIN,MAX",
                        help="clips per long video (default 4,8)")
    shapes.set_defaults(func=_cmd_prepare_shapes)

    for name, blurb in (("msvd", "MSVD (YouTubeClips)"), ("msrvtt", "MSR-VTT"), ("vatex", "VATEX")):
        p = kinds.add_parser(name, help=f"{blurb} from its official annotation files")
        p.add_argument("--annotations", type=Path, required=True, nargs="+",
                       help="annotation file(s) or the folder holding them")
        p.add_argument("--videos", type=Path, default=None, help="folder of the video files")
        p.add_argument("--out", type=Path, required=True, help="manifest to write")
        p.add_argument("--allow-missing", action="store_true",
                       help="write the manifest of the videos present instead of failing")
        p.add_argument("--no-videos", action="store_true",
                       help="captions-only manifest (for scoring), no video files needed")
        p.add_argument("--allow-partial", action="store_true",
                       help="write the manifest even when a split in the annotation files is not "
                            "the standard size (a truncated or edited file?)")
        add_overwrite(p, "a file at --out (a manifest vidcap wrote is replaced anyway)")
        p.set_defaults(func=_cmd_prepare_dataset)


def _cmd_prepare_dataset(args: argparse.Namespace) -> int:
    from vidcap.cli import outputs
    from vidcap.data.manifest import read_manifest
    from vidcap.data.prepare import prepare_dataset

    inputs = [*args.annotations, *([args.videos] if args.videos is not None else [])]
    outputs.check(args.out, outputs.manifest_file, inputs=inputs, overwrite=args.overwrite)

    manifest = prepare_dataset(args.dataset, args.annotations, videos=args.videos, out=args.out,
                               allow_missing=args.allow_missing, no_videos=args.no_videos,
                               allow_partial=args.allow_partial)
    _print_stats(read_manifest(manifest), manifest)
    return 0


def _add_inspect(sub: Subparsers) -> None:
    p = sub.add_parser("inspect", help="probe a video and show which frames would be sampled",
                       description="Print a video's codec, size, frame count, duration and "
                                   "keyframe spacing, then decode the frames a model would get.")
    p.add_argument("video", type=Path)
    p.add_argument("--frames", type=int, default=8, help="frames to sample (default 8)")
    p.add_argument("--start", type=float, default=None, help="window start, seconds")
    p.add_argument("--end", type=float, default=None, help="window end, seconds")
    p.set_defaults(func=_cmd_inspect)


def _cmd_inspect(args: argparse.Namespace) -> int:
    from vidcap.video import probe_video, read_sampled

    if args.frames < 1:
        raise VidcapError(f"--frames must be at least 1, got {args.frames}")
    info = probe_video(args.video)
    sampled = read_sampled(args.video, args.frames, start=args.start, end=args.end)
    print(f"{info.path}")
    print(f"  format     {info.format}, codec {info.codec}, {info.width}x{info.height}")
    print(f"  frames     {info.num_frames} in {info.duration:.3f} s ({info.fps:.3f} fps)")
    print(f"  keyframes  {info.num_keyframes} (one per {info.keyframe_interval:.1f} frames)")
    window = f"{args.start if args.start is not None else 0:g}-" + (
        f"{args.end:g} s" if args.end is not None else "end")
    print(f"  sampled    {len(sampled.indices)} frames over {window}, "
          f"{sampled.decode_runs} decode run(s)")
    print(f"  indices    {' '.join(str(i) for i in sampled.indices)}")
    print(f"  times      {' '.join(f'{t:.3f}' for t in sampled.times)}")
    return 0
