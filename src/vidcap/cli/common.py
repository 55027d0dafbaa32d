"""Pieces several commands share: option groups, argument types, and the tables they print.

Nothing here imports torch or the models: building the parser must stay fast (`vidcap --help`).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from vidcap.runtime import PRECISIONS

log = logging.getLogger("vidcap")

Subparsers = argparse._SubParsersAction

DECODE_FIELDS = {"decode": "strategy", "num_beams": "num_beams", "top_p": "top_p",
                 "top_k": "top_k", "temperature": "temperature",
                 "max_new_tokens": "max_new_tokens", "seed": "seed", "batch_size": "batch_size"}
"""Decoding options (argparse names) -> `GenerateConfig` fields."""


def add_overrides(p: argparse.ArgumentParser, what: str = "a setting") -> None:
    """`--set KEY=VALUE` (repeatable), collected in `args.overrides`."""
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help=f"override {what}, e.g. --set train.caption.lr=3e-4 (repeatable)")


def add_run(p: argparse.ArgumentParser) -> None:
    """The positional RUN (`args.run`), with which weights of it, the device, threads and
    precision."""
    p.add_argument("run", type=Path, help="run directory written by `vidcap train`")
    add_run_options(p)


def add_run_options(p: argparse.ArgumentParser) -> None:
    """Which weights of the run, the device, and the runtime options (threads, precision)."""
    p.add_argument("--checkpoint", choices=("auto", "best", "final"), default="auto",
                   help="weights: best on validation, final, or auto (best when present)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    add_runtime_options(p)


def add_runtime_options(p: argparse.ArgumentParser, *, precision: bool = True) -> None:
    """`--threads N` (torch threads) and, for commands that run a trained model, `--precision`;
    `apply_runtime_options` acts on them before the command's work starts."""
    g = p.add_argument_group("runtime")
    g.add_argument("--threads", type=positive_int, default=None, metavar="N",
                   help="torch threads (default: the physical cores this process may use; "
                        "1 is best beside other busy jobs)")
    if precision:
        g.add_argument("--precision", choices=PRECISIONS, default="auto",
                       help="auto (default): bf16 where the hardware computes it natively "
                            "(AMX / AVX512-BF16 CPUs, recent GPUs), else fp32; fp16: CUDA only")


def apply_runtime_options(args: argparse.Namespace) -> None:
    """Set torch's threads once, before any work (commands without `--threads` are left
    alone), and turn `--precision` into the one chosen for `--device` (`args.precision`)."""
    if not hasattr(args, "threads"):
        return
    from vidcap import runtime

    threads = runtime.set_threads(args.threads)
    if getattr(args, "precision", None) is None:
        log.debug("%d torch thread(s)", threads)
        return
    device = getattr(args, "device", "cpu")
    args.precision, reason = runtime.resolve_precision(args.precision, device)
    level = logging.WARNING if runtime.emulated_bf16(args.precision, device) else logging.DEBUG
    log.log(level, "precision %s (%s), %d torch thread(s)", args.precision, reason, threads)


def positive_int(text: str) -> int:
    """An argparse type: an integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number")
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: must be at least 1")
    return value


def add_decode_options(p: argparse.ArgumentParser) -> None:
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


def decode_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The decoding options given on the command line, as `GenerateConfig` fields (`--num-beams`
    alone means beam search)."""
    chosen = {field: getattr(args, arg) for arg, field in DECODE_FIELDS.items()
              if getattr(args, arg) is not None}
    if "num_beams" in chosen and "strategy" not in chosen:
        chosen["strategy"] = "beam"
    return chosen


def run_generate_config(run: Path, overrides: dict[str, Any]):
    """The run's `generate` section with the command line's decoding options laid over it."""
    import dataclasses

    from vidcap.config import GenerateConfig, from_dict
    from vidcap.runs.store import read_config

    base = read_config(run).generate
    return from_dict(GenerateConfig, {**dataclasses.asdict(base), **overrides}, prefix="generate")


def int_list(text: str) -> list[int]:
    """`10,30,50` -> [10, 30, 50] (an argparse type)."""
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected integers separated by commas")
    if not values:
        raise argparse.ArgumentTypeError(f"{text!r}: expected at least one integer")
    return values


def scores_table(scores: dict, label: str) -> str:
    """The paper-style table of a scores-<split>.json dict."""
    from vidcap.evaluation.metrics import Scores
    from vidcap.evaluation.score import format_table

    corpus = {k: v for k, v in scores.items() if isinstance(v, float)}
    return format_table(Scores(corpus=corpus, num_videos=int(scores.get("videos", 0))), label)


def attributes_table(attributes: dict, unit: str = "clips") -> str:
    """Shapes colour / shape / motion / all-three accuracy, seen and held-out pairs (`unit`:
    what `n` counts)."""
    def pct(value) -> str:
        return "    -" if value is None else f"{100 * value:5.1f}"

    width = max(6, len(unit) + 1)
    lines = [f"{'pairs':<10}{unit:>{width}}{'colour':>8}{'shape':>8}{'motion':>8}{'all 3':>8}"]
    for group, label in (("seen", "seen"), ("held_out", "held-out")):
        t = attributes[group]
        lines.append(f"{label:<10}{t['n']:>{width}}" + "".join(
            f"{pct(t[k]):>8}" for k in ("colour", "shape", "motion", "all")))
    return "\n".join(lines)
