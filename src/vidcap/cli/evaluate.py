"""Scoring commands: `vidcap evaluate` (caption a split with a run, then score) and `vidcap
score` (a prediction file against references)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vidcap.cli.caption import (add_pipeline_options, add_segment_options, check_workers,
                                segment_request)
from vidcap.cli.common import (Subparsers, add_decode_options, add_overwrite, add_run,
                               add_take_over_lock, attributes_table, decode_overrides,
                               scores_table)
from vidcap.errors import VidcapError


def add_parsers(sub: Subparsers) -> None:
    _add_evaluate(sub)
    _add_score(sub)


def _add_evaluate(sub: Subparsers) -> None:
    p = sub.add_parser("evaluate", help="caption a split with a trained run and score it",
                       description="Caption a split of the manifest and score it (coco-caption "
                                   "metrics; Shapes attributes), or with --long DIR the long "
                                   "Shapes videos of DIR segment by segment (cut recall and "
                                   "precision, colour/shape/motion of each segment's caption). "
                                   "Captions are appended to the run's predictions-SPLIT.jsonl "
                                   "as they are made: a rerun resumes. Several processes: "
                                   "torchrun --nproc_per_node N -m vidcap evaluate ...")
    add_run(p)
    p.add_argument("--split", default="test", choices=("train", "val", "test"))
    p.add_argument("--manifest", type=Path, default=None,
                   help="manifest to read (default: the one the run trained on)")
    p.add_argument("--limit", type=int, default=None, help="only the first N videos")
    p.add_argument("--long", type=Path, default=None, metavar="DIR",
                   help="instead: the long Shapes videos of DIR (vidcap prepare shapes --long N "
                        "--out DIR), scored segment by segment")
    p.add_argument("--task", choices=("captions", "retrieval"), default="captions",
                   help="captions (default), or retrieval: text-to-video and video-to-text R@1/5/"
                        "10 and ranks in the run's aligned space (every caption a query)")
    p.add_argument("--jsfusion", type=Path, default=None, metavar="CSV",
                   help="with --task retrieval on MSR-VTT: the 1k-A protocol, JSFusion's 1,000 "
                        "test pairs (MSRVTT_JSFUSION_test.csv)")
    add_segment_options(p)
    add_pipeline_options(p)
    add_decode_options(p)
    add_take_over_lock(p)
    p.set_defaults(func=_cmd_evaluate)


def _cmd_evaluate(args: argparse.Namespace) -> int:
    """Caption and score while holding the run's lock (rank 0 holds it for all under torchrun):
    a training or another evaluation of the run is not written over."""
    from contextlib import nullcontext

    from vidcap.cli.boundary import rank
    from vidcap.runs.layout import open_run
    from vidcap.runs.lock import RunLock

    if args.limit is not None and args.limit < 1:
        raise VidcapError(f"--limit must be at least 1, got {args.limit}")
    check_workers(args.workers)
    run = open_run(args.run)  # before the lock, which would make a missing folder
    lock = RunLock(run, "evaluate", take_over=args.take_over_lock) if rank() == 0 else \
        nullcontext()
    with lock:
        if args.task == "retrieval":
            return _evaluate_retrieval(args)
        return _evaluate_long(args) if args.long is not None else _evaluate_split(args)


def _evaluate_split(args: argparse.Namespace) -> int:
    from vidcap.evaluation.evaluate import evaluate_run
    from vidcap.runs.layout import RunLayout

    if args.jsfusion is not None:
        raise VidcapError("--jsfusion applies to --task retrieval")
    if args.segments != "auto" or args.window is not None or args.stride is not None:
        raise VidcapError("--segments, --window and --stride apply to --long")
    scores = evaluate_run(args.run, split=args.split, manifest=args.manifest,
                          gen_overrides=decode_overrides(args), which=args.checkpoint,
                          device=args.device, limit=args.limit, workers=args.workers,
                          precision=args.precision)
    if scores is None:  # not rank 0
        return 0
    print(scores_table(scores, f"{args.split}"))
    if "attributes" in scores:
        print(attributes_table(scores["attributes"]))
    run = RunLayout(args.run)
    print(f"predictions and scores written to {run.predictions(args.split)}, "
          f"{run.scores(args.split)}")
    return 0 if not scores.get("failed") else 1


def _evaluate_retrieval(args: argparse.Namespace) -> int:
    from vidcap.evaluation.alignment import evaluate_retrieval
    from vidcap.runs.layout import RunLayout

    if args.long is not None:
        raise VidcapError("--long applies to --task captions")
    report = evaluate_retrieval(args.run, split=args.split, manifest=args.manifest,
                                jsfusion=args.jsfusion, which=args.checkpoint,
                                device=args.device, limit=args.limit)
    print(report["table"])
    if report.get("standard"):
        print(f"usual protocol: {report['standard']}")
    if report.get("shapes_precision"):
        print(shapes_precision_table(report["shapes_precision"]))
    print(f"written to {RunLayout(args.run).retrieval(args.split)}")
    return 0


def _evaluate_long(args: argparse.Namespace) -> int:
    from vidcap.evaluation.evaluate import LONG, evaluate_long
    from vidcap.runs.layout import RunLayout

    if args.limit is not None or args.manifest is not None:
        raise VidcapError("--limit and --manifest do not apply to --long")
    scores = evaluate_long(args.run, args.long, request=segment_request(args),
                           gen_overrides=decode_overrides(args), which=args.checkpoint,
                           device=args.device, workers=args.workers, precision=args.precision)
    if scores is None:
        return 0
    print(long_table(scores))
    run = RunLayout(args.run)
    print(f"predictions and scores written to {run.predictions(LONG)}, {run.scores(LONG)}")
    return 0 if not scores.get("failed") else 1


def long_table(scores: dict) -> str:
    """Cut recall / precision / F1, then per-segment attribute accuracy, as percentages."""
    def pct(value) -> str:
        return "    -" if value is None else f"{100 * value:5.1f}"

    cuts, seg = scores["cuts"], scores["segments"]
    mode = seg["mode"] + (f", clips of {seg['clip_length']:g} s" if seg.get("clip_length")
                          else "")
    return "\n".join([
        f"long videos: {scores['videos']} ({scores['failed']} failed), segments {mode}",
        f"cuts within +-{cuts['tolerance']:g} s: {cuts['tp'] + cuts['fn']} true, "
        f"{cuts['tp'] + cuts['fp']} found",
        f"{'':10}{'recall':>8}{'precision':>11}{'F1':>8}",
        f"{'cuts':<10}{pct(cuts['recall']):>8}{pct(cuts['precision']):>11}{pct(cuts['f1']):>8}",
        "caption on screen at each true segment's midpoint (% of segments):",
        attributes_table(scores["attributes"], unit="segments")])


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
    add_overwrite(p, "--out and --per-video files")
    p.set_defaults(func=_cmd_score)


def _cmd_score(args: argparse.Namespace) -> int:
    from vidcap.cli import outputs
    from vidcap.evaluation.score import format_table, per_video_json, score_files, scores_json
    from vidcap.files import write_json

    outputs.distinct(out=args.out, per_video=args.per_video)
    inputs = (args.predictions, args.references)
    outputs.check(args.out, outputs.scores_file, inputs=inputs, overwrite=args.overwrite)
    outputs.check(args.per_video, outputs.per_video_file, inputs=inputs,
                  overwrite=args.overwrite)
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


def shapes_precision_table(precision: dict) -> str:
    """The Shapes precision@k lines of `vidcap evaluate --task retrieval`."""
    k = precision["k"]
    lines = [f"attribute matches (colour, shape and motion all as the query says), %:",
             f"{'queries':<10}{'n':>6}{f'P@{k}':>8}{'ceiling':>9}{f'P@min({k},matching)':>20}"]
    for group, label in (("seen", "seen"), ("held_out", "held-out")):
        p = precision[group]
        if p["precision"] is not None:
            lines.append(f"{label:<10}{p['queries']:>6}{p['precision']:>8.1f}"
                         f"{p['ceiling']:>9.1f}{p['attainable']:>20.1f}")
    lines.append(f"(ceiling: the best P@{k} any ranking gets when fewer than {k} clips match a "
                 f"query; P@min({k},matching): the share of the first min({k}, matching) that "
                 "match)")
    return "\n".join(lines)
