"""`vidcap train`: both stages of MFFCL from a config, resumable, on 1 or N processes."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from vidcap.cli.common import Subparsers, add_overrides, add_runtime_options


def add_parsers(sub: Subparsers) -> None:
    p = sub.add_parser("train", help="train MFFCL (align, then caption) from a config",
                       description="Train the stages of CONFIG (a preset name such as "
                                   "shapes-tiny or msvd-paper, or a YAML file). Launch with "
                                   "`torchrun --nproc_per_node N -m vidcap train ...` for "
                                   "several processes.")
    p.add_argument("config", help="preset name or YAML file")
    add_overrides(p)
    p.add_argument("--out", type=Path, default=None, help="run directory (default runs/<config>)")
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint")
    add_runtime_options(p, precision=False)  # precision: --set train.precision=...
    p.set_defaults(func=_cmd_train)


def _cmd_train(args: argparse.Namespace) -> int:
    from vidcap.config import load_config
    from vidcap.training.trainer import train

    cfg = load_config(args.config, args.overrides)
    out = args.out or Path("runs") / Path(args.config).stem
    run_dir = train(cfg, out, resume=args.resume)
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"run saved in {run_dir}")
    return 0
