"""`vidcap` command line: the only code that reads argv.

Each subcommand parses its arguments and calls a typed library function; the commands live in
modules by area (`data`, `train`, `evaluate`, `caption`, `search`, `apps`), options and tables
they share in `common`. Building the parser imports nothing heavy (no torch): each command imports
what it needs when it runs. A `VidcapError` (bad input: a corrupt video, a missing file, a malformed
annotation) is printed as one line and the exit status is 2; nothing else is caught, so real bugs
keep their traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from vidcap import __version__, runtime
from vidcap.cli import apps, caption, data, evaluate, search, train
from vidcap.cli.common import apply_runtime_options
from vidcap.errors import VidcapError

log = logging.getLogger("vidcap")

COMMAND_MODULES = (data, evaluate, train, caption, search, apps)
"""Each registers its subcommands (`add_parsers`), in the order `--help` lists them."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vidcap", description="Turn videos into sentences (MFFCL: TimeSformer + GPT-2).")
    parser.add_argument("--version", action="version", version=f"vidcap {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.add_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv  # the command as given, for the records that quote it
    # transformers' own "Loading weights" bars would bury vidcap's; read before it is imported
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    runtime.passive_openmp_wait()  # read when torch loads: set before any command imports it
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(message)s", stream=sys.stderr)
    try:
        apply_runtime_options(args)  # torch threads set once, before any work
        return int(args.func(args) or 0)
    except VidcapError as err:
        print(f"vidcap: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("vidcap: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
