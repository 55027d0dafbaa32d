"""Writing files so that a reader never sees half of one, and no write destroys anything.

Every file vidcap writes (manifests, weights, checkpoints, predictions, scores, caches, videos) is
written under a temporary name in its target folder and renamed into place: a process killed, or
a disk that fills, mid-write leaves the old file (or none), never a truncated one. The temporary
name keeps the extension, so writers that look at it (NumPy's `.npy`, FFmpeg's container guess)
behave as for the final name. A write that fails (no space, no permission, a read-only folder)
raises `WriteError`, which names the file and is both a `VidcapError` (one line for the user) and
an `OSError`.

Before a command writes a file the user named, `check_output` makes sure that writing it destroys
nothing: never through or over a symbolic link, never over something that is not a regular file,
never over an input of the command, never over binary data when the output is text, and never
over a file vidcap did not write unless asked (`overwrite`, the commands' `--overwrite`).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from vidcap.errors import VidcapError


class OutputError(VidcapError):
    """An output cannot be written without destroying something, or cannot be written at all;
    the message names the file."""


class WriteError(OutputError, OSError):
    """Writing a file failed (no space left, no permission, a read-only folder): one line naming
    the file, and still an `OSError` (errno, strerror) for callers that catch those."""

    def __init__(self, path: str | Path, err: OSError, folder: Path | None = None) -> None:
        """`folder`: the folder that could not be made or written, when not the file's own."""
        super().__init__(err.errno, err.strerror or str(err), str(path))
        where = "" if folder is None else f": {folder}"
        self.message = f"{path}: cannot be written ({err.strerror or err}{where})"

    def __str__(self) -> str:
        return self.message


def temporary_name(path: Path) -> Path:
    """The name `path` is written under before the rename: hidden, unique to this process."""
    return path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")


_TEMPORARY = re.compile(r"\..+\.(\d+)\.tmp(\.[^.]*)?")


def stale_temporaries(folder: str | Path) -> list[Path]:
    """Temporary files in `folder` (named like `temporary_name`'s) whose process is gone: what
    a process killed mid-write leaves behind."""
    found = []
    for path in Path(folder).glob(".*.tmp*"):
        match = _TEMPORARY.fullmatch(path.name)
        if match and path.is_file() and not _is_running(int(match[1])):
            found.append(path)
    return found


def _is_running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # another user's process, or a platform without signals: keep its file
    return True


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write `path` through; on success it is flushed to disk and
    renamed over `path`, on any failure it is removed and `path` is left as it was. An OSError
    of the write itself (the folder, the temporary file, the rename) becomes a `WriteError`
    naming `path`."""
    path = Path(path)
    tmp = temporary_name(path)
    try:
        with _naming_errors(path, tmp):
            path.parent.mkdir(parents=True, exist_ok=True)
            yield tmp
            _fsync(tmp)
            os.replace(tmp, path)
    finally:
        if tmp.is_file():
            tmp.unlink()


@contextmanager
def _naming_errors(path: Path, tmp: Path) -> Iterator[None]:
    """OSErrors about `path`, `tmp`, one of their folders, or no file at all (a failed write())
    raised as `WriteError(path)`; others (a file read while writing) pass unchanged."""
    try:
        yield
    except WriteError:
        raise
    except OSError as err:
        named = None if err.filename is None else Path(os.fspath(err.filename))
        if named is not None and named not in (path, tmp) and named not in path.parents:
            raise
        raise WriteError(path, err, named if named in path.parents else None) from err


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_text(path: str | Path, text: str) -> Path:
    """Write UTF-8 text atomically; creates the folder."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


def write_json(path: str | Path, data: Any) -> Path:
    """Write JSON atomically (two-space indent, UTF-8 as is, a final newline); creates the
    folder."""
    return write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def write_lines(path: str | Path, lines: Iterable[str]) -> Path:
    """Write text lines (each gets a newline) atomically: JSON Lines files, lists."""
    path = Path(path)
    with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8") as out:
        for line in lines:
            out.write(line + "\n")
    return path


# ---------------------------------------------------------------------------------------------
# before writing an output the user named

Own = Callable[[Path], bool]
"""Whether an existing file at an output path is one vidcap wrote, which it may replace."""


def looks_binary(path: str | Path) -> bool:
    """Whether a file holds binary data (a NUL byte in its first 4 KiB: videos, images,
    weights, archives), not text."""
    with open(path, "rb") as f:
        return b"\x00" in f.read(4096)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)


def _inside(path: Path, folder: Path) -> bool:
    return Path(os.path.abspath(folder)) in Path(os.path.abspath(path)).parents


def check_output(path: str | Path, *, inputs: Iterable[str | Path] = (),
                 overwrite: bool | None = False, own: Own | None = None,
                 binary: bool = False) -> Path:
    """Check that writing the output `path` (through `atomic_path`) destroys nothing; an
    `OutputError` naming it otherwise. Refused always: a symbolic link at `path` (nothing is
    written through a link, nor over one), anything but a regular file, one of `inputs` (a file,
    or a file inside an input folder unless `own` recognises it), and binary data when the output
    is text (`binary` False). An existing file that `own` does not recognise as vidcap's is
    refused unless `overwrite` (None: the command has no --overwrite). Then the folder is checked
    to be writable (a file created and removed there): a `WriteError` naming `path` if not."""
    path = Path(path)
    if path.is_symlink():
        raise OutputError(f"{path}: is a symbolic link; vidcap writes neither through links nor "
                          "over them (remove it, or choose another path)")
    if path.exists():
        _check_existing(path, [Path(p) for p in inputs], overwrite, own, binary)
    _check_folder(path)
    return path


def _check_existing(path: Path, inputs: list[Path], overwrite: bool | None, own: Own | None,
                    binary: bool) -> None:
    if path.is_dir():
        raise OutputError(f"{path}: is a folder, not a regular file; name a file to write")
    if not path.is_file():
        raise OutputError(f"{path}: exists and is not a regular file (a device, a pipe?); not "
                          "writing over it")
    for given in inputs:
        if _same_file(path, given):
            raise OutputError(f"{path}: is an input of this command; not writing over it")
    is_own = own is not None and own(path)
    folder = next((f for f in inputs if f.is_dir() and _inside(path, f)), None)
    if folder is not None and not is_own:
        raise OutputError(f"{path}: is in the input folder {folder}; not writing over it")
    if is_own:
        return
    if not binary and looks_binary(path):
        raise OutputError(f"{path}: exists and looks like media or other binary data, not "
                          "text; not writing over it")
    if not overwrite:
        hint = "--overwrite replaces it" if overwrite is not None else \
            "remove it, or choose another path"
        raise OutputError(f"{path}: exists and was not written by vidcap; not overwriting it "
                          f"({hint})")


def _check_folder(path: Path) -> None:
    """WriteError when the output's folder (or the nearest existing folder above it, where
    `atomic_path` would create the rest) cannot be written."""
    folder = path.parent
    while not os.path.lexists(folder) and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise OutputError(f"{path}: {folder} is not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".vidcap-probe-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise WriteError(path, err, folder) from None
