"""What a user sees when a command fails: one line, never a bare traceback.

`guarded(command)` runs a command and turns what it raises into an exit status and one line on
standard error:

- an expected failure (bad input, a missing or unwritable file, a full disk, no memory: a
  `VidcapError`, an `OSError` naming a file, `MemoryError`) is `vidcap: error: <the problem>`,
  status 2 (batch commands return 1 themselves when only some inputs failed);
- a bug (any other exception) is `vidcap: internal error: <type>: <message>; the traceback is in
  <file>`, status 70 (`EX_SOFTWARE`): the traceback, with vidcap's version and the command, goes
  to a file under `$XDG_STATE_HOME/vidcap/` (`~/.local/state/vidcap/`), or the system's temporary
  folder when that cannot be written;
- Ctrl-C is `vidcap: interrupted`, status 130;
- standard output closed by its reader (`vidcap ... | head`) stops the command quietly with
  status 141 (128 + SIGPIPE, what a shell reports for a program its pipe stopped).

`-v` also prints the traceback of every failure. Under torchrun, rank 0 prints as above and the
other ranks prefix their line with `[rank N]` (Ctrl-C is reported by rank 0 alone).

`configure_stdout` makes printing survive any locale: a character the terminal's encoding cannot
show is written as a backslash escape (`PYTHONIOENCODING=ascii`, `LANG=C`), and a file name that
is not valid UTF-8 (decoded by Python with surrogate escapes) is written as its original bytes,
as `ls` does.
"""

from __future__ import annotations

import codecs
import errno
import os
import platform
import shlex
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

from vidcap.errors import VidcapError, truncate

EXIT_ERROR = 2
EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141
STDOUT_ERRORS = "vidcap-stdout"
"""The codec error handler of standard output (registered on import)."""

_NAMELESS_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EMFILE, errno.ENFILE,
                    errno.ENOMEM, errno.EADDRINUSE, errno.EADDRNOTAVAIL}
"""OSErrors that are the machine's state, not a bug, even when they name no file."""


def _stdout_errors(err: UnicodeError) -> tuple[str | bytes, int]:
    """A surrogate escape (a byte of a non-UTF-8 file name) -> that byte; any other character
    the encoding cannot write -> its backslash escape."""
    if not isinstance(err, UnicodeEncodeError):
        raise err
    char = err.object[err.start]
    if 0xDC80 <= ord(char) <= 0xDCFF:
        return bytes([ord(char) - 0xDC00]), err.start + 1
    return codecs.backslashreplace_errors(UnicodeEncodeError(
        err.encoding, err.object, err.start, err.start + 1, err.reason))


codecs.register_error(STDOUT_ERRORS, _stdout_errors)


def configure_stdout() -> Callable[[], None]:
    """Set standard output's error handler to `STDOUT_ERRORS`; returns what puts it back."""
    stream = sys.stdout
    before = getattr(stream, "errors", None)
    reconfigure = getattr(stream, "reconfigure", None)
    if reconfigure is None or before == STDOUT_ERRORS:
        return lambda: None
    try:
        reconfigure(errors=STDOUT_ERRORS)
    except (AttributeError, OSError, ValueError):
        return lambda: None

    def restore() -> None:
        try:
            stream.reconfigure(errors=before)
        except (AttributeError, OSError, ValueError):
            pass

    return restore


def rank() -> int:
    """This process's rank under torchrun (0 when alone)."""
    try:
        return int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0


def say(line: str) -> None:
    """`vidcap: <line>` on standard error (`vidcap: [rank N] ...` on ranks other than 0); a
    closed standard error is ignored."""
    where = "" if rank() == 0 else f"[rank {rank()}] "
    try:
        print(f"vidcap: {where}{line}", file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass


def guarded(command: Callable[[], int | None], *, verbose: bool = False,
            argv: Sequence[str] = ()) -> int:
    """Run `command` and return its exit status; every failure becomes one line on standard
    error and a status (the module's docstring)."""
    try:
        status = int(command() or 0)
        sys.stdout.flush()  # a closed pipe shows here, not at exit
        return status
    except SystemExit:  # argparse: --help, --version, usage errors
        try:
            sys.stdout.flush()
        except BrokenPipeError:
            silence_stdout()
        raise
    except KeyboardInterrupt:
        if rank() == 0:
            say("interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError as err:
        if not stdout_closed():
            return internal_error(err, verbose, argv)
        silence_stdout()
        return EXIT_BROKEN_PIPE
    except Exception as err:  # noqa: BLE001 - the boundary: every failure ends here
        message = expected_message(err)
        if message is None:
            return internal_error(err, verbose, argv)
        if verbose:
            traceback.print_exc()
        say(f"error: {message}")
        return EXIT_ERROR


def expected_message(err: BaseException) -> str | None:
    """The one line of an expected failure; None for a bug."""
    if isinstance(err, VidcapError):
        return one_line(str(err))
    if isinstance(err, MemoryError):
        return ("out of memory; use smaller batches (--batch-size, train.*.batch_size), fewer "
                "--workers, or a machine with more memory")
    if isinstance(err, OSError):
        strerror = err.strerror or str(err)
        if err.filename is not None:
            also = f" -> {os.fsdecode(err.filename2)}" if err.filename2 is not None else ""
            return one_line(f"{os.fsdecode(err.filename)}{also}: {strerror}")
        if err.errno in _NAMELESS_ERRNOS:
            return one_line(strerror)
    return None


def one_line(message: str) -> str:
    """`message` on one line. An error a DataLoader worker raised carries the worker's
    traceback in its text ("Caught ConfigError in DataLoader worker process 0. Original
    Traceback ..."): its last line, the worker's own message, is kept."""
    if "\nOriginal Traceback" in message:
        last = message.rstrip().splitlines()[-1]
        kind, sep, rest = last.partition(": ")
        message = rest if sep and " " not in kind else last
    return " ".join(message.split())


def internal_error(err: BaseException, verbose: bool, argv: Sequence[str]) -> int:
    """Report a bug: the traceback to a file (and to standard error with -v), one line."""
    text = "".join(traceback.format_exception(type(err), err, err.__traceback__))
    saved = save_traceback(text, argv)
    if verbose or saved is None:
        try:
            sys.stderr.write(text)
        except (OSError, ValueError):
            pass
    where = f"the traceback is in {saved}" if saved else "the traceback is above"
    say(f"internal error: {type(err).__name__}: {truncate(str(err), 200)}; {where} "
        "(please report it)")
    return EXIT_INTERNAL


def _state_folder() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local",
                                                            "state")
    return Path(base) / "vidcap"


def save_traceback(text: str, argv: Sequence[str]) -> Path | None:
    """Write a bug's report (versions, the command, the traceback) to a new file under
    `$XDG_STATE_HOME/vidcap/`, else the temporary folder; its path (None if neither works)."""
    from vidcap import __version__

    stamp = time.strftime("%Y%m%d-%H%M%S")
    report = (f"vidcap {__version__}, Python {platform.python_version()}, "
              f"{platform.platform()}, rank {rank()}\n"
              f"command: {shlex.join(['vidcap', *argv])}\n\n{text}")
    for folder in (_state_folder(), Path(tempfile.gettempdir())):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(prefix=f"vidcap-traceback-{stamp}-", suffix=".txt",
                                        dir=folder)
            with os.fdopen(fd, "w", encoding="utf-8", errors="backslashreplace") as out:
                out.write(report)
            return Path(name)
        except OSError:
            continue
    return None


def stdout_closed() -> bool:
    """Whether standard output is a pipe whose reader has gone."""
    import select

    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poller.poll(0))
    except (AttributeError, OSError, ValueError):
        return False


def silence_stdout() -> None:
    """Point standard output at the null device, so that the interpreter's last flush of what
    is still buffered does not fail again at exit."""
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, sys.stdout.fileno())
        os.close(null)
    except (AttributeError, OSError, ValueError):
        pass
