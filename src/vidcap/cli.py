"""`vidcap` command line: the only module that reads argv.

Each subcommand parses its arguments and calls a typed library function. A `VidcapError` (bad
input: a corrupt video, a missing file, a malformed annotation) is printed as one line and the
exit status is 2; nothing else is caught, so real bugs keep their traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
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
    from vidcap.data.manifest import read_manifest

    manifest = prepare_dataset(args.dataset, args.annotations, videos=args.videos, out=args.out,
                               allow_missing=args.allow_missing, no_videos=args.no_videos)
    _print_stats(read_manifest(manifest), manifest)
    return 0


# ---------------------------------------------------------------------------------------------
# score


def _add_score(sub: argparse._SubParsersAction) -> None:
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
    from vidcap.evaluation.score import (format_table, per_video_json, score_files, scores_json,
                                         write_json)

    report = score_files(args.predictions, args.references, split=args.split,
                         allow_missing=args.allow_missing, per_video=args.per_video is not None)
    for warning in report.warnings:
        print(f"vidcap: warning: {warning}", file=sys.stderr)
    print(format_table(report.scores))
    if args.out is not None:
        write_json(scores_json(report.scores), args.out)
    if args.per_video is not None:
        write_json(per_video_json(report.scores, report.predictions), args.per_video)
    return 0


# ---------------------------------------------------------------------------------------------
# inspect


def _add_inspect(sub: argparse._SubParsersAction) -> None:
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


# ---------------------------------------------------------------------------------------------
# train, evaluate, caption, demo


def _add_decode_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("decoding (defaults: the run's `generate` section)")
    g.add_argument("--decode", choices=("greedy", "beam", "sample"), default=None,
                   help="greedy, beam search, or top-p/top-k sampling")
    g.add_argument("--num-beams", type=int, default=None)
    g.add_argument("--top-p", type=float, default=None)
    g.add_argument("--top-k", type=int, default=None)
    g.add_argument("--temperature", type=float, default=None)
    g.add_argument("--max-new-tokens", type=int, default=None)
    g.add_argument("--seed", type=int, default=None, help="seed of sampling")
    g.add_argument("--batch-size", type=int, default=None, help="videos captioned at once")


def _decode_overrides(args: argparse.Namespace) -> dict:
    names = {"decode": "strategy", "num_beams": "num_beams", "top_p": "top_p", "top_k": "top_k",
             "temperature": "temperature", "max_new_tokens": "max_new_tokens", "seed": "seed",
             "batch_size": "batch_size"}
    chosen = {field: getattr(args, arg) for arg, field in names.items()
              if getattr(args, arg) is not None}
    if "num_beams" in chosen and "strategy" not in chosen:
        chosen["strategy"] = "beam"
    return chosen


def _generate_config(base, overrides: dict):
    import dataclasses

    from vidcap.config import GenerateConfig, from_dict

    return from_dict(GenerateConfig, {**dataclasses.asdict(base), **overrides}, prefix="generate")


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train MFFCL (align, then caption) from a config",
                       description="Train the stages of CONFIG (a preset name such as "
                                   "shapes-tiny or msvd-paper, or a YAML file). Launch with "
                                   "`torchrun --nproc_per_node N -m vidcap train ...` for "
                                   "several processes.")
    p.add_argument("config", help="preset name or YAML file")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a setting, e.g. --set train.caption.lr=3e-4 (repeatable)")
    p.add_argument("--out", type=Path, default=None, help="run directory (default runs/<config>)")
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint")
    p.set_defaults(func=_cmd_train)


def _cmd_train(args: argparse.Namespace) -> int:
    from vidcap.config import load_config
    from vidcap.training.loop import train

    cfg = load_config(args.config, args.overrides)
    out = args.out or Path("runs") / Path(args.config).stem
    run_dir = train(cfg, out, resume=args.resume)
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"run saved in {run_dir}")
    return 0


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="caption a split with a trained run and score it")
    p.add_argument("run", type=Path, help="run directory written by `vidcap train`")
    p.add_argument("--split", default="test", choices=("train", "val", "test"))
    p.add_argument("--manifest", type=Path, default=None,
                   help="manifest to read (default: the one the run trained on)")
    p.add_argument("--checkpoint", choices=("auto", "best", "final"), default="auto",
                   help="weights: best on validation, final, or auto (best when present)")
    p.add_argument("--limit", type=int, default=None, help="only the first N videos")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    _add_decode_options(p)
    p.set_defaults(func=_cmd_evaluate)


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from vidcap.evaluation.evaluate import evaluate_run

    scores = evaluate_run(args.run, split=args.split, manifest=args.manifest,
                          gen_overrides=_decode_overrides(args), which=args.checkpoint,
                          device=args.device, limit=args.limit)
    print(_scores_table(scores, f"{args.split}"))
    if "attributes" in scores:
        print(_attributes_table(scores["attributes"]))
    print(f"predictions and scores written to {args.run}/predictions-{args.split}.json, "
          f"scores-{args.split}.json")
    return 0 if not scores.get("failed") else 1


def _scores_table(scores: dict, label: str) -> str:
    from vidcap.evaluation.metrics import Scores
    from vidcap.evaluation.score import format_table

    corpus = {k: v for k, v in scores.items() if isinstance(v, float)}
    return format_table(Scores(corpus=corpus, num_videos=int(scores.get("videos", 0))), label)


def _attributes_table(attributes: dict) -> str:
    def pct(value) -> str:
        return "    -" if value is None else f"{100 * value:5.1f}"

    lines = [f"{'pairs':<10}{'clips':>6}{'colour':>8}{'shape':>8}{'motion':>8}{'all 3':>8}"]
    for group, label in (("seen", "seen"), ("held_out", "held-out")):
        t = attributes[group]
        lines.append(f"{label:<10}{t['n']:>6}" + "".join(
            f"{pct(t[k]):>8}" for k in ("colour", "shape", "motion", "all")))
    return "\n".join(lines)


def _add_caption(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("caption", help="caption video files with a trained run")
    p.add_argument("run", type=Path, help="run directory written by `vidcap train`")
    p.add_argument("videos", type=Path, nargs="+", help="video files or folders of videos")
    p.add_argument("--format", choices=("text", "json", "vtt"), default="text",
                   help="text lines, a JSON list, or a WebVTT file beside each video")
    p.add_argument("--checkpoint", choices=("auto", "best", "final"), default="auto")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    _add_decode_options(p)
    p.set_defaults(func=_cmd_caption)


def _cmd_caption(args: argparse.Namespace) -> int:
    from vidcap.captioning import caption_files, find_videos, write_vtt
    from vidcap.training.checkpoint import load_run

    paths = find_videos(args.videos)
    if not paths:
        raise VidcapError(f"no video files in {', '.join(map(str, args.videos))}")
    model = load_run(args.run, device=args.device, which=args.checkpoint)
    gen = _generate_config(_run_generate_config(args.run), _decode_overrides(args))
    failed, listing = 0, []
    for result in caption_files(model, paths, model.video_cfg, gen, device=args.device):
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


def _run_generate_config(run: Path):
    from vidcap.config import load_config

    return load_config(run / "config.yaml").generate


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="offline demo: Shapes world, train, evaluate (make demo)")
    p.add_argument("--out", type=Path, default=Path("runs/demo"), help="run directory")
    p.add_argument("--preset", default="shapes-tiny", help="config preset to train")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a setting of the preset (repeatable)")
    p.add_argument("--videos", type=int, default=None,
                   help="Shapes clips to generate (default 2000/200/400)")
    p.add_argument("--seed", type=int, default=0, help="seed of the Shapes world")
    p.set_defaults(func=_cmd_demo)


def _cmd_demo(args: argparse.Namespace) -> int:
    from vidcap.demo import run_demo

    result = run_demo(args.out, preset=args.preset, overrides=args.overrides,
                      videos=args.videos, seed=args.seed)
    scores = result.scores
    print()
    print(f"MFFCL ({args.preset}) on the Shapes test split: {scores['videos']} clips")
    print(_scores_table(scores, "test"))
    print()
    print("attributes read back from the captions (% of objects):")
    print(_attributes_table(scores["attributes"]))
    print()
    for sample in result.samples:
        tag = "held-out" if sample.held_out else "seen"
        print(f"[{tag:>8}] {sample.video_id}: {sample.prediction!r}")
        print(f"{'':11}reference: {sample.references[0]!r}")
    took = ", ".join(f"{k} {v:.0f} s" for k, v in result.seconds.items())
    print(f"\n({took}; everything is in {result.run_dir}/)")
    return 0


# ---------------------------------------------------------------------------------------------
# ablate, attention (issue 6)


def _int_list(text: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected integers separated by commas")
    if not values:
        raise argparse.ArgumentTypeError(f"{text!r}: expected at least one integer")
    return values


def _add_ablate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ablate", help="train and score the paper's ablation grid (Tables IV, V)",
                       description="Train every cell of the ablation grid (contrastive stage "
                                   "on/off x tau, FFN mapper, space-only attention, token "
                                   "mapper input, shuffled frames) for each seed under one "
                                   "budget, score it on the test split, and write "
                                   "DIR/results.json and DIR/table.md. A rerun skips finished "
                                   "cell-seeds and resumes half-trained ones.")
    p.add_argument("config", help="preset name or YAML file every cell starts from")
    p.add_argument("--out", type=Path, required=True, help="folder of the grid")
    p.add_argument("--seeds", type=int, default=3, help="seeds 0..K-1 per cell (default 3)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a setting of CONFIG for every cell (repeatable)")
    p.add_argument("--jobs", type=int, default=1,
                   help="cell-seeds trained at once, in separate processes (default 1)")
    p.add_argument("--cells", default=None, metavar="A,B,...",
                   help="only these cells (names: align-tau10, noalign-tau10, ..., mlp, "
                        "space-only, tokens, shuffled)")
    p.add_argument("--taus", type=_int_list, default=[10, 30, 50], metavar="T1,T2,...",
                   help="prefix lengths of Table IV (default 10,30,50)")
    p.add_argument("--base-tau", type=int, default=None,
                   help="tau of the base cell and of the other ablations (default: the first)")
    p.add_argument("--target-cider", type=float, default=None, metavar="X",
                   help="report the caption steps until validation CIDEr (x100, as in the "
                        "tables) first reaches X")
    p.add_argument("--no-align-steps", choices=("total", "caption"), default="total",
                   help="cells without the align stage: add its steps to the caption stage "
                        "(total, default: the same optimiser steps in all) or not (caption)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: train.device)")
    p.set_defaults(func=_cmd_ablate)


def _cmd_ablate(args: argparse.Namespace) -> int:
    import shlex

    from vidcap.ablation import run_grid

    def progress(outcome, done: int, total: int) -> None:
        extra = f": {outcome.error}" if outcome.error else (
            f" in {outcome.seconds:.0f} s" if outcome.seconds else "")
        print(f"[{done}/{total}] {outcome.cell} seed {outcome.seed}: {outcome.action}{extra}",
              file=sys.stderr, flush=True)

    cells = [c.strip() for c in args.cells.split(",") if c.strip()] if args.cells else None
    result = run_grid(args.config, args.out, overrides=args.overrides, seeds=args.seeds,
                      jobs=args.jobs, cells=cells, taus=args.taus, base_tau=args.base_tau,
                      target_cider=args.target_cider, no_align_budget=args.no_align_steps,
                      device=args.device, command=shlex.join(["vidcap", *args.argv]),
                      progress=progress)
    print(result.table)
    print(f"grid written to {result.out}/table.md and results.json ({result.seconds:.0f} s)")
    if result.failed:
        print(f"vidcap: {len(result.failed)} cell-seed(s) failed: " + ", ".join(
            f"{o.cell} seed {o.seed}" for o in result.failed), file=sys.stderr)
        return 1
    return 0


def _add_attention(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("attention", help="draw the CLS-to-patch attention over a video's frames",
                       description="The paper's Fig. 5: each sampled frame above the same frame "
                                   "under the heat map of the video CLS's spatial attention to "
                                   "its patches, the generated caption as the title.")
    p.add_argument("run", type=Path, help="run directory written by `vidcap train`")
    p.add_argument("video", type=Path, help="video file")
    p.add_argument("--out", type=Path, required=True, help="PNG to write")
    p.add_argument("--layer", type=int, default=None,
                   help="encoder block, 0-based, negative from the end (default: the run's "
                        "model.encoder.attention_layer)")
    p.add_argument("--rollout", action="store_true",
                   help="attention rollout over the blocks up to --layer instead of that "
                        "block's head-averaged attention")
    p.add_argument("--checkpoint", choices=("auto", "best", "final"), default="auto")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.set_defaults(func=_cmd_attention)


def _cmd_attention(args: argparse.Namespace) -> int:
    from vidcap.visualize import render_attention

    figure = render_attention(args.run, args.video, args.out, layer=args.layer,
                              method="rollout" if args.rollout else "mean", device=args.device,
                              which=args.checkpoint)
    layout = figure.layout
    print(f"{figure.path}: {layout.width}x{layout.height} px, {len(figure.frame_indices)} frames "
          f"({' '.join(map(str, figure.frame_indices))}), block {figure.layer} "
          f"{'rollout' if figure.method == 'rollout' else 'head mean'}")
    print(f"caption: {figure.caption}")
    return 0


# ---------------------------------------------------------------------------------------------
# serve


def _add_serve(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="local web page and HTTP API for captions and attention",
                       description="Load RUN once and serve a page (/) and an HTTP API "
                                   "(/api/caption, /api/attention, /api/search, /healthz; "
                                   "documented at /docs) for captioning uploaded videos.")
    p.add_argument("run", type=Path, help="run directory written by `vidcap train`")
    p.add_argument("--index", type=Path, default=None, help="search index to serve")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--max-upload-mb", type=float, default=500.0,
                   help="largest upload accepted (default 500; larger ones get 413)")
    p.add_argument("--max-queue", type=int, default=8,
                   help="requests waiting for the model at most (default 8; more get 503)")
    p.add_argument("--timeout", type=float, default=120.0,
                   help="seconds a request may wait for and use the model (default 120; 504)")
    p.add_argument("--temp-dir", type=Path, default=None,
                   help="where the private upload folder is made (default: the system's)")
    p.add_argument("--checkpoint", choices=("auto", "best", "final"), default="auto")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.set_defaults(func=_cmd_serve)


def _cmd_serve(args: argparse.Namespace) -> int:
    from vidcap.apps.serve.app import ServeSettings
    from vidcap.apps.serve.server import serve

    settings = ServeSettings(max_upload_mb=args.max_upload_mb, max_queue=args.max_queue,
                             timeout_s=args.timeout, temp_root=args.temp_dir)
    serve(args.run, index=args.index, host=args.host, port=args.port, settings=settings,
          device=args.device, which=args.checkpoint)
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
    _add_score(sub)
    _add_inspect(sub)
    _add_train(sub)
    _add_evaluate(sub)
    _add_caption(sub)
    _add_demo(sub)
    _add_ablate(sub)
    _add_attention(sub)
    _add_serve(sub)
    stats = sub.add_parser("stats", help="print the statistics of a manifest")
    stats.add_argument("manifest", type=Path)
    stats.set_defaults(func=_cmd_stats)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv  # the command as given, for the records that quote it
    # transformers' own "Loading weights" bars would bury vidcap's; read before it is imported
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
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
