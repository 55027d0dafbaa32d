"""Scoring commands: `vidcap evaluate` (caption a split with a run, then score) and `vidcap
score` (a prediction file against references)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vidcap.cli.common import (Subparsers, add_decode_options, add_run, attributes_table,
                               decode_overrides, scores_table)


def add_parsers(sub: Subparsers) -> None:
    _add_evaluate(sub)
    _add_score(sub)


def _add_evaluate(sub: Subparsers) -> None:
    p = sub.add_parser("evaluate", help="caption a split with a trained run and score it")
    add_run(p)
    p.add_argument("--split", default="test", choices=("train", "val", "test"))
    p.add_argument("--manifest", type=Path, default=None,
                   help="manifest to read (default: the one the run trained on)")
    p.add_argument("--limit", type=int, default=None, help="only the first N videos")
    add_decode_options(p)
    p.set_defaults(func=_cmd_evaluate)


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from vidcap.evaluation.evaluate import evaluate_run
    from vidcap.runs.layout import RunLayout

    scores = evaluate_run(args.run, split=args.split, manifest=args.manifest,
                          gen_overrides=decode_overrides(args), which=args.checkpoint,
                          device=args.device, limit=args.limit, precision=args.precision)
    print(scores_table(scores, f"{args.split}"))
    if "attributes" in scores:
        print(attributes_table(scores["attributes"]))
    run = RunLayout(args.run)
    print(f"predictions and scores written to {run.predictions(args.split)}, "
          f"{run.scores(args.split)}")
    return 0 if not scores.get("failed") else 1


def _add_score(sub: Subparsers) -> None:
    p = sub.add_parser("score", help="coco-caption scores of a prediction file",
                       description="BLEU-1..4, METEOR, ROUGE-L and CIDEr(-D) as coco-caption "
                                   "computes them (PTB tokenizer; needs a Java runtime).")
    p.add_argument("predictions", type=Path,
                   help="{video_id: caption} JSON, or a coco results list")
    p.add_argument("references", type=Path,
                   help="a vidcap manifest, or a coco annotation file")
    p.add_argument("--split", choices=("train", "val", "test"), default=None,
                   help="score against this split of the manifest")
    p.add_argument("--out", type=Path, default=None,
                   help="write the scores as JSON (coco-caption names, fractions)")
    p.add_argument("--per-video", type=Path, default=None, metavar="FILE",
                   help="write each video's caption and scores as JSON")
    p.add_argument("--allow-missing", action="store_true",
                   help="score the videos both files hold instead of failing on the others")
    p.set_defaults(func=_cmd_score)


def _cmd_score(args: argparse.Namespace) -> int:
    from vidcap.evaluation.score import format_table, per_video_json, score_files, scores_json
    from vidcap.files import write_json

    report = score_files(args.predictions, args.references, split=args.split,
                         allow_missing=args.allow_missing, per_video=args.per_video is not None)
    for warning in report.warnings:
        print(f"vidcap: warning: {warning}", file=sys.stderr)
    print(format_table(report.scores))
    if args.out is not None:
        write_json(args.out, scores_json(report.scores))
    if args.per_video is not None:
        write_json(args.per_video, per_video_json(report.scores, report.predictions))
    return 0
