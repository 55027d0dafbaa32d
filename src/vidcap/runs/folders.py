"""Folders of several files (a model, a checkpoint, the best weights) written whole.

A folder is filled under a hidden temporary name beside its place, every file's sha256 is recorded
in its `checksums.json`, and it is renamed into place:

    RUN/.model.new-<pid>/   being filled (a killed writer leaves it; `repair` removes it)
    RUN/.model.old-<pid>/   the previous folder, only between the two renames of a swap

Replacing a folder takes two renames (the current one aside, the new one in; POSIX has no
portable exchange of two folders). A process killed between them leaves no `model/` but a
complete `.model.old-*`: `current` finds it for readers, and `repair` (a writer holding the run's
lock) renames it back. So a reader sees the previous complete folder or the new one, never half.
`verify` checks a folder against its checksums: a truncated, zero-byte or bit-flipped file is one
clear error naming it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

from vidcap.errors import RunError
from vidcap.files import stale_temporaries, write_json
from vidcap.runs.layout import CHECKSUMS, RunLayout

log = logging.getLogger(__name__)


def _aside(final: Path, kind: str) -> Path:
    return final.with_name(f".{final.name}.{kind}-{os.getpid()}")


def _asides(final: Path, kind: str) -> list[Path]:
    """Folders left beside `final` by writers (any process), newest first."""
    found = [p for p in final.parent.glob(f".{final.name}.{kind}-*") if p.is_dir()]
    return sorted(found, key=lambda p: p.stat().st_mtime_ns, reverse=True)


@contextmanager
def written_whole(final: str | Path) -> Iterator[Path]:
    """Yield an empty temporary folder to fill; on success its checksums are written, its files
    flushed to disk and it replaces `final`; on failure it is removed and `final` stays as it was.
    An OSError (disk full, read-only folder) becomes a RunError naming the folder."""
    final = Path(final)
    tmp = _aside(final, "new")
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        yield tmp
        write_checksums(tmp)
        _swap_in(tmp, final)
    except OSError as err:
        raise RunError(f"{final}: cannot be written ({err.strerror or err}); what was there "
                       "before is kept") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _swap_in(tmp: Path, final: Path) -> None:
    old = _aside(final, "old")
    if final.exists():
        os.rename(final, old)
    os.rename(tmp, final)
    _fsync_dir(final.parent)
    shutil.rmtree(old, ignore_errors=True)


def _fsync_dir(folder: Path) -> None:
    """Flush the renames in `folder` to disk (best effort: not every system opens folders)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def current(final: str | Path) -> Path | None:
    """The complete folder to read for `final`: itself, or the previous one when a swap was cut
    between its two renames; None when there is neither."""
    final = Path(final)
    if final.is_dir():
        return final
    olds = _asides(final, "old") if final.parent.is_dir() else []
    return olds[0] if olds else None


def repair(final: str | Path) -> None:
    """Undo what a killed writer left beside `final` (only for a process holding the run's lock):
    the previous folder renamed back when the swap was cut, temporary folders removed."""
    final = Path(final)
    if not final.parent.is_dir():
        return
    olds = _asides(final, "old")
    if olds and not final.exists():
        log.warning("%s: a replacement was interrupted; the previous folder is put back", final)
        os.rename(olds.pop(0), final)
    for left in olds + _asides(final, "new"):
        shutil.rmtree(left, ignore_errors=True)


def repair_run(layout: RunLayout) -> None:
    """What a process killed while writing the run left: `repair` of the model and best folders,
    and the temporary files of its atomic writes removed (only for the lock's holder)."""
    for folder in (layout.model_dir, layout.best):
        repair(folder)
    if layout.root.is_dir():
        for left in stale_temporaries(layout.root):
            log.info("removing %s, left by a process that was killed while writing", left)
            left.unlink(missing_ok=True)


def _sha256(file: Path, *, flush: bool = False) -> str:
    with file.open("rb") as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()
        if flush:  # files written by other libraries (save_pretrained) reach the disk too
            os.fsync(f.fileno())
    return digest


def write_checksums(folder: Path) -> None:
    """Record the sha256 of every file under `folder` in its checksums.json."""
    files = [p for p in sorted(folder.rglob("*")) if p.is_file() and p.name != CHECKSUMS]
    sums = {p.relative_to(folder).as_posix(): _sha256(p, flush=True) for p in files}
    write_json(folder / CHECKSUMS, {"sha256": sums})


def _recorded(folder: Path) -> dict[str, str]:
    file = folder / CHECKSUMS
    if not file.is_file():
        raise RunError(f"{file}: missing, so the files of {folder} cannot be checked (a folder "
                       "not written whole by vidcap, or by an older version)")
    try:
        sums = json.loads(file.read_text(encoding="utf-8"))["sha256"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise RunError(f"{file}: unreadable ({err})") from None
    if not isinstance(sums, dict) or not all(isinstance(v, str) for v in sums.values()):
        raise RunError(f"{file}: unreadable (expected {{\"sha256\": {{file: digest}}}})")
    return sums


def verify(folder: str | Path) -> None:
    """RunError naming the first file of `folder` that is missing or differs from the checksum
    recorded when the folder was written."""
    folder = Path(folder)
    for name, digest in _recorded(folder).items():
        relative = PurePosixPath(name)
        if relative.is_absolute() or ".." in relative.parts:
            raise RunError(f"{folder / CHECKSUMS}: names a file outside its folder ({name})")
        file = folder / relative
        if not file.is_file():
            raise RunError(f"{file}: missing (listed in {CHECKSUMS})")
        if _sha256(file) != digest:
            raise RunError(f"{file}: damaged: its sha256 differs from the one recorded when it "
                           "was written (truncated, bit-flipped or edited)")
