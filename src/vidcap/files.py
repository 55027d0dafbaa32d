"""Writing files so that a reader never sees half of one.

Every file vidcap writes (manifests, weights, checkpoints, predictions, scores, caches, videos) is
written under a temporary name in its target folder and renamed into place: a process killed, or
a disk that fills, mid-write leaves the old file (or none), never a truncated one. The temporary
name keeps the extension, so writers that look at it (NumPy's `.npy`, FFmpeg's container guess)
behave as for the final name.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


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
    renamed over `path`, on any failure it is removed and `path` is left as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(path)
    try:
        yield tmp
        _fsync(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.is_file():
            tmp.unlink()


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
