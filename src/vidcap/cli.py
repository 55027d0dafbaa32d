"""`vidcap` command line: the only module that reads argv.

Each subcommand parses its arguments and calls a typed library function. A `VidcapError` (bad
input: a corrupt video, a missing file, a malformed annotation) is printed as one line and the
exit status is 2; nothing else is caught, so real bugs keep their traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from vidcap import __version__
from vidcap.errors import VidcapError

log = logging.getLogger("vidcap")


# ---------------------------------------------------------------------------------------------
# prepare


def _cmd_prepare_shapes(args: argparse.Namespace) -> int:
    from vidcap.data.manifest import read_manifest
    from vidcap.data.shapes import ShapesSpec, prepare_shapes

    spec = ShapesSpec(size=args.size, seed=args.seed, pair_fraction=args.pair_fraction)
    manifest = prepare_shapes(args.out, spec, videos=args.videos, splits=args.splits,
                              workers=args.workers)
    _print_stats(read_manifest(manifest), manifest)
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


def _add_prepare(sub: argparse._SubParsersAction) -> None:
    prepare = sub.add_parser("prepare", help="write a dataset manifest")
    kinds = prepare.add_subparsers(dest="dataset", required=True, metavar="DATASET")

    shapes = kinds.add_parser("shapes", help="generate the synthetic Shapes world (offline)")
    shapes.add_argument("--out", type=Path, required=True, help="output folder")
    shapes.add_argument("--videos", type=int, default=None,
                        help="total clips, split in the default proportions (default 2600)")
    shapes.add_argument("--splits", type=_splits, default=None, metavar="TRAIN,VAL,TEST",
                        help="clips per split (default 2000,200,400)")
    shapes.add_argument("--seed", type=int, default=0)
    shapes.add_argument("--size", type=int, default=64, help="frame side in pixels")
    shapes.add_argument("--pair-fraction", type=float, default=0.0,
                        help="fraction of clips with two objects")
    shapes.add_argument("--workers", type=int, default=1, help="processes rendering clips")
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
        p.set_defaults(func=_cmd_prepare_dataset)


def _cmd_prepare_dataset(args: argparse.Namespace) -> int:
    from vidcap.data.datasets import prepare_dataset

    prepare_dataset(args.dataset, args.annotations, videos=args.videos, out=args.out,
                    allow_missing=args.allow_missing, no_videos=args.no_videos)
    return 0


# ---------------------------------------------------------------------------------------------
# main


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vidcap", description="Turn videos into sentences (MFFCL: TimeSformer + GPT-2).")
    parser.add_argument("--version", action="version", version=f"vidcap {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_prepare(sub)
    stats = sub.add_parser("stats", help="print the statistics of a manifest")
    stats.add_argument("manifest", type=Path)
    stats.set_defaults(func=_cmd_stats)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(message)s", stream=sys.stderr)
    try:
        return int(args.func(args) or 0)
    except VidcapError as err:
        print(f"vidcap: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("vidcap: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
