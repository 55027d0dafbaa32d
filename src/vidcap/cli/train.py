"""`vidcap train`: both stages of MFFCL from a config, resumable, on 1 or N processes."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from vidcap.cli.common import Subparsers, add_overrides, add_runtime_options, add_take_over_lock

if TYPE_CHECKING:  # building the parser imports nothing heavy
    from vidcap.config import Config

APPLIED_ON_RESUME = ("train.device",)
"""Settings a resumed run takes from the command line (the device it runs on); every other
setting comes from the run's config.yaml."""


def add_parsers(sub: Subparsers) -> None:
    p = sub.add_parser("train", help="train MFFCL (align, then caption) from a config",
                       description="Train the stages of CONFIG (a preset name such as "
                                   "shapes-tiny or msvd-paper, or a YAML file). Launch with "
                                   "`torchrun --nproc_per_node N -m vidcap train ...` for "
                                   "several processes.")
    p.add_argument("config", help="preset name or YAML file")
    add_overrides(p)
    p.add_argument("--out", type=Path, default=None, help="run directory (default runs/<config>)")
    p.add_argument("--resume", action="store_true",
                   help="continue from the latest checkpoint, with the run's own config.yaml "
                        "(--set other than train.device is not applied, and a warning says so)")
    add_take_over_lock(p)
    add_runtime_options(p, precision=False)  # precision: --set train.precision=...
    p.set_defaults(func=_cmd_train)


def _cmd_train(args: argparse.Namespace) -> int:
    from vidcap.cli.boundary import rank
    from vidcap.config import load_config
    from vidcap.training.trainer import train

    cfg = load_config(args.config, args.overrides)
    out = args.out or Path("runs") / Path(args.config).stem
    if args.resume and args.overrides and rank() == 0:
        ignored = ignored_on_resume(out, cfg, args.overrides)
        if ignored:
            print(f"vidcap: warning: {out} resumes with its own config.yaml; not applied: "
                  + ", ".join(f"--set {o}" for o in ignored), file=sys.stderr, flush=True)
    run_dir = train(cfg, out, resume=args.resume, take_over_lock=args.take_over_lock)
    if rank() == 0:
        print(f"run saved in {run_dir}")
    return 0


def ignored_on_resume(out: Path, cfg: Config, overrides: list[str]) -> list[str]:
    """The `overrides` (already applied in `cfg`) that resuming the run in `out` will not apply:
    it continues from a checkpoint with the run's config.yaml, so an override is ignored unless
    it gives the value the run already has or is one of `APPLIED_ON_RESUME`. Nothing when there
    is no checkpoint to resume from (training starts afresh with the command's config)."""
    from vidcap.config import parse_override, to_dict
    from vidcap.runs.checkpoints import CheckpointManager
    from vidcap.runs.layout import RunLayout
    from vidcap.runs.store import read_config

    layout = RunLayout(out)
    if not layout.holds_training() or not CheckpointManager(layout).list():
        return []
    saved, wanted = to_dict(read_config(layout)), to_dict(cfg)
    ignored = []
    for text in overrides:
        keys, _ = parse_override(text)
        if ".".join(keys).startswith(APPLIED_ON_RESUME):
            continue
        if not _same(_get(wanted, keys), _get(saved, keys)):
            ignored.append(text)
    return ignored


def _same(wanted: object, saved: object) -> bool:
    """Equal values; paths (the run saves data.manifest absolute) equal when they resolve to
    the same file."""
    if isinstance(wanted, str) and isinstance(saved, str) and wanted and saved:
        return Path(wanted).resolve() == Path(saved).resolve()
    return wanted == saved


def _get(data: dict, keys: list[str]) -> object:
    for key in keys:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data
