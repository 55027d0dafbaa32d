"""Search commands: `vidcap index` (embed videos into a text-to-video index) and `vidcap search`
(ranked videos for a sentence)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vidcap.cli.caption import add_segment_options, segment_request
from vidcap.cli.common import Subparsers, add_run, add_run_options


def add_parsers(sub: Subparsers) -> None:
    _add_index(sub)
    _add_search(sub)


def _add_index(sub: Subparsers) -> None:
    p = sub.add_parser("index", help="embed videos into a text-to-video search index",
                       description="Embed VIDEOS with RUN's aligned video-text space and store "
                                   "them in INDEX (created when missing): long videos segment by "
                                   "segment, with their time ranges. Only new or changed files "
                                   "are embedded; unreadable ones are counted and named.")
    add_run(p)
    p.add_argument("videos", type=Path, nargs="+", help="video files or folders of videos")
    p.add_argument("--out", type=Path, required=True, help="the index folder")
    p.add_argument("--caption", action="store_true",
                   help="also caption every video and store the caption with its vector")
    p.add_argument("--retry-failed", action="store_true",
                   help="try again files that failed before, even if unchanged")
    add_segment_options(p)
    p.set_defaults(func=_cmd_index)


def _cmd_index(args: argparse.Namespace) -> int:
    from vidcap.captioning.inputs import find_videos
    from vidcap.search.embedder import ModelEmbedder
    from vidcap.search.index import Index

    files = find_videos(args.videos)
    embedder = ModelEmbedder.load(args.run, device=args.device, which=args.checkpoint,
                                  request=segment_request(args), caption=args.caption)
    with Index.open_or_create(args.out, embedder) as index:
        report = index.add(files, retry_failed=args.retry_failed)
        stats = index.stats()
    for path, error in report.failed:
        print(f"vidcap: error: {error}" if path in error else f"vidcap: error: {path}: {error}",
              file=sys.stderr)
    print(f"{args.out}: {report.summary()}; {stats.files} files, {stats.segments} vectors")
    return 1 if report.failed else 0


def _add_search(sub: Subparsers) -> None:
    p = sub.add_parser("search", help="find the videos of an index that match a sentence",
                       description="Rank the videos (and time ranges) of INDEX by how well they "
                                   "match TEXT in the aligned space of the run that built it.")
    p.add_argument("index", type=Path, help="index folder written by `vidcap index`")
    p.add_argument("text", help="what to look for, e.g. \"a red circle moves left\"")
    p.add_argument("-k", type=int, default=10, help="results to show (default 10)")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.add_argument("--exact", action="store_true",
                   help="exact search even where the index is approximate (large indexes)")
    add_run_options(p)
    p.set_defaults(func=_cmd_search)


def _cmd_search(args: argparse.Namespace) -> int:
    from vidcap.errors import VidcapError
    from vidcap.search.embedder import ModelEmbedder
    from vidcap.search.index import Index
    from vidcap.search.output import format_hits, hits_json

    if args.k < 1:
        raise VidcapError(f"-k must be at least 1, got {args.k}")
    with Index.open_with(args.index,
                         lambda fp: ModelEmbedder.load(fp.run, device=args.device,
                                                       which=args.checkpoint)) as index:
        hits = index.search(args.text, args.k, exact=args.exact)
    print(hits_json(hits, args.k) if args.format == "json" else format_hits(hits, args.k))
    return 0
