"""`vidcap` command line: the only code that reads argv.

Each subcommand parses its arguments and calls a typed library function; the commands live in
modules by area (`data`, `train`, `evaluate`, `caption`, `search`, `apps`), options and tables
they share in `common`, the checks of output paths in `outputs`. Building the parser imports
nothing heavy (no torch): each command imports what it needs when it runs. Every command runs
inside one error boundary (`boundary.guarded`): an expected failure (a `VidcapError`: a corrupt
video, a missing file, a malformed annotation; a file that cannot be read or written; no memory)
is one line and exit status 2, a bug one line naming the file that holds its traceback and status
70, Ctrl-C status 130, standard output closed by its reader status 141.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from vidcap import __version__, runtime
from vidcap.cli import apps, caption, data, evaluate, search, train
from vidcap.cli.boundary import configure_stdout, guarded
from vidcap.cli.common import apply_runtime_options

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
    """Run the command of `argv` (default: the process's arguments); its exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    restore = configure_stdout()
    try:
        return guarded(lambda: _run(argv), verbose="-v" in argv or "--verbose" in argv,
                       argv=argv)
    finally:
        restore()


def _run(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    args.argv = argv  # the command as given, for the records that quote it
    # transformers' own "Loading weights" bars would bury vidcap's; read before it is imported
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    # read when torch loads: set before any command imports it (passive only on a busy machine)
    runtime.passive_openmp_wait(getattr(args, "threads", None))
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(message)s", stream=sys.stderr)
    apply_runtime_options(args)  # torch threads set once, before any work
    return int(args.func(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
