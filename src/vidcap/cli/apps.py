"""Application commands: `vidcap demo` (the offline demo), `vidcap ablate` (the paper's ablation
grid) and `vidcap serve` (the local web page and HTTP API)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vidcap.cli.common import (Subparsers, add_overrides, add_run, add_runtime_options,
                               attributes_table, int_list, scores_table)


def add_parsers(sub: Subparsers) -> None:
    _add_demo(sub)
    _add_ablate(sub)
    _add_serve(sub)


def _add_demo(sub: Subparsers) -> None:
    p = sub.add_parser("demo", help="offline demo: Shapes world, train, evaluate (make demo)")
    p.add_argument("--out", type=Path, default=Path("runs/demo"), help="run directory")
    p.add_argument("--preset", default="shapes-tiny", help="config preset to train")
    add_overrides(p, "a setting of the preset")
    p.add_argument("--videos", type=int, default=None,
                   help="Shapes clips to generate (default 2000/200/400)")
    p.add_argument("--seed", type=int, default=0, help="seed of the Shapes world")
    add_runtime_options(p, precision=False)  # precision: --set train.precision=...
    p.set_defaults(func=_cmd_demo)


def _cmd_demo(args: argparse.Namespace) -> int:
    from vidcap.apps.demo import run_demo

    result = run_demo(args.out, preset=args.preset, overrides=args.overrides,
                      videos=args.videos, seed=args.seed)
    scores = result.scores
    print()
    print(f"MFFCL ({args.preset}) on the Shapes test split: {scores['videos']} clips")
    print(scores_table(scores, "test"))
    print()
    print("attributes read back from the captions (% of objects):")
    print(attributes_table(scores["attributes"]))
    print()
    for sample in result.samples:
        tag = "held-out" if sample.held_out else "seen"
        print(f"[{tag:>8}] {sample.video_id}: {sample.prediction!r}")
        print(f"{'':11}reference: {sample.references[0]!r}")
    took = ", ".join(f"{k} {v:.0f} s" for k, v in result.seconds.items())
    print(f"\n({took}; everything is in {result.run_dir}/)")
    return 0


def _add_ablate(sub: Subparsers) -> None:
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
    add_overrides(p, "a setting of CONFIG for every cell")
    p.add_argument("--jobs", type=int, default=1,
                   help="cell-seeds trained at once, in separate processes (default 1)")
    p.add_argument("--cells", default=None, metavar="A,B,...",
                   help="only these cells (names: align-tau10, noalign-tau10, ..., mlp, "
                        "space-only, tokens, shuffled)")
    p.add_argument("--taus", type=int_list, default=[10, 30, 50], metavar="T1,T2,...",
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
    add_runtime_options(p, precision=False)  # with --jobs N, each job: the physical cores / N
    p.set_defaults(func=_cmd_ablate)


def _cmd_ablate(args: argparse.Namespace) -> int:
    import shlex

    from vidcap.apps.ablation.runner import run_grid

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


def _add_serve(sub: Subparsers) -> None:
    p = sub.add_parser("serve", help="local web page and HTTP API for captions and attention",
                       description="Load RUN once and serve a page (/) and an HTTP API "
                                   "(/api/caption, /api/attention, /api/search, /healthz; "
                                   "documented at /docs) for captioning uploaded videos.")
    add_run(p)
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
    p.set_defaults(func=_cmd_serve)


def _cmd_serve(args: argparse.Namespace) -> int:
    from vidcap.apps.serve.app import ServeSettings
    from vidcap.apps.serve.server import serve

    settings = ServeSettings(max_upload_mb=args.max_upload_mb, max_queue=args.max_queue,
                             timeout_s=args.timeout, temp_root=args.temp_dir)
    serve(args.run, index=args.index, host=args.host, port=args.port, settings=settings,
          device=args.device, which=args.checkpoint, precision=args.precision)
    return 0
