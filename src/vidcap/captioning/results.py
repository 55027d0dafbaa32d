"""Results as JSON Lines, appended one line per video as soon as it is done, resumable.

`ResultsLog(path, key)` is a file of JSON objects, one a line, each naming its video in the field
`key` (`path` for `vidcap caption --out`, `video_id` for `vidcap evaluate`). A job opens a
`session`: the lines already there are the videos done (a rerun skips them, so an interrupted job
loses nothing it finished and never writes a video twice); a last line torn by a kill (no final
newline) is cut off and its video done again. A file that is not such a log is refused untouched.

Several processes (torchrun) each append to a part file of their own (`<name>.part-<rank>`); at
the end rank 0 appends the parts to the log in rank order (each rank holds a contiguous block of
the inputs, so the log ends in input order, as one process would have written it) and deletes
them. Parts left by a killed job are folded in at the start of the next one. While a job runs,
rank 0 holds an exclusive lock on the log, so two jobs never append to one file.

A log may start with a settings line (`{"settings": {...}}`, `vidcap evaluate`'s logs in a run):
when the settings differ from the job's, the log is started afresh instead of resumed.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from vidcap.captioning.inputs import path_key
from vidcap.distributed import barrier
from vidcap.errors import VidcapError

log = logging.getLogger(__name__)

SETTINGS = "settings"
"""The field of a log's optional first line, holding the settings its results were made with."""


class ResultsError(VidcapError):
    """A results file cannot be used (not a results log, locked, unwritable)."""


def _repair_tail(handle: BinaryIO, path: Path) -> int:
    """Cut a torn last line (no final newline) off an open file; returns the bytes cut."""
    size = handle.seek(0, os.SEEK_END)
    if size == 0:
        return 0
    handle.seek(max(0, size - 1))
    if handle.read(1) == b"\n":
        return 0
    position, chunk = size, 1 << 16
    while position > 0:  # find the last newline, reading backwards
        start = max(0, position - chunk)
        handle.seek(start)
        found = handle.read(position - start).rfind(b"\n")
        if found >= 0:
            keep = start + found + 1
            break
        position = start
    else:
        keep = 0
    os.truncate(handle.fileno(), keep)
    log.info("%s: the last line was cut short (an interrupted job); its video is done again", path)
    return size - keep


def _decode(line: bytes, path: Path, lineno: int, key: str) -> dict[str, Any]:
    try:
        data = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError):
        data = None
    if not isinstance(data, dict) or not (isinstance(data.get(key), str) or
                                          (lineno == 1 and SETTINGS in data)):
        raise ResultsError(f"{path}:{lineno}: not a vidcap results line (a JSON object with "
                           f"\"{key}\"); vidcap appends only to its own results files: choose "
                           "another output")
    return data


def read_results(path: str | Path, key: str) -> Iterator[dict[str, Any]]:
    """The result lines of a log (not its settings line), in order; a torn last line is left
    out. A line that is not a result is a `ResultsError` naming the file and the line."""
    path = Path(path)
    with path.open("rb") as lines:
        for lineno, line in enumerate(lines, start=1):
            if not line.endswith(b"\n"):
                return  # torn by a kill: not a result yet
            if line.strip():
                data = _decode(line, path, lineno, key)
                if SETTINGS not in data:
                    yield data


def _settings_of(path: Path, key: str) -> dict[str, Any] | None:
    with path.open("rb") as lines:
        first = lines.readline()
    if not first.endswith(b"\n"):
        return None
    return _decode(first, path, 1, key).get(SETTINGS)


class Appender:
    """Writes one JSON line per result, each flushed to the file as soon as it is written."""

    def __init__(self, handle: BinaryIO) -> None:
        self.handle = handle

    def write(self, record: dict[str, Any]) -> None:
        """Append `record` as one line (ASCII JSON: any path survives the round trip)."""
        data = memoryview((json.dumps(record) + "\n").encode("ascii"))
        while data:  # an unbuffered write may take part of the bytes
            written = self.handle.write(data)
            data = data[written:]
        self.handle.flush()


class ResultsLog:
    """A JSON Lines results file and its per-rank parts (see the module's docstring)."""

    def __init__(self, path: str | Path, key: str, settings: dict[str, Any] | None = None
                 ) -> None:
        self.path = Path(path)
        self.key = key
        self.settings = settings

    def part(self, rank: int) -> Path:
        """The part file of `rank` in a job of several processes."""
        return self.path.with_name(f"{self.path.name}.part-{rank:05d}")

    def leftover_parts(self) -> list[Path]:
        """Part files in the log's folder, in rank order (left by a killed job, or not merged
        yet)."""
        pattern = re.compile(re.escape(self.path.name) + r"\.part-(\d+)$")
        if not self.path.parent.is_dir():
            return []
        found = [(int(m.group(1)), p) for p in self.path.parent.iterdir()
                 if (m := pattern.match(p.name))]
        return [p for _, p in sorted(found)]

    def done_keys(self) -> set[bytes]:
        """`path_key` of every video the log holds."""
        if not self.path.is_file():
            return set()
        return {path_key(r[self.key]) for r in read_results(self.path, self.key)}

    @contextmanager
    def session(self, rank: int = 0, world_size: int = 1) -> Iterator[tuple[set[bytes], Appender]]:
        """(keys already done, an appender for this process). Every rank enters; on a normal
        exit the parts are merged into the log (rank 0)."""
        handle = self._open_main() if rank == 0 else None
        try:
            if handle is not None:
                self._prepare(handle)
            barrier()
            done = self.done_keys()
            if world_size == 1:
                yield done, Appender(handle)
            else:
                with self.part(rank).open("wb", buffering=0) as part:
                    yield done, Appender(part)
            barrier()
            if handle is not None:
                self._fold_parts(handle, self.done_keys())
                os.fsync(handle.fileno())
            barrier()
        finally:
            if handle is not None:
                handle.close()  # releases the lock

    def _open_main(self) -> BinaryIO:
        if self.path.is_symlink():
            raise ResultsError(f"{self.path}: is a symbolic link; vidcap does not append "
                               "through links: choose another output")
        if self.path.exists() and not self.path.is_file():
            raise ResultsError(f"{self.path}: is not a regular file: choose another output")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle = open(self.path, "a+b", buffering=0)  # noqa: SIM115 - held for the session
        except OSError as err:
            raise ResultsError(f"{self.path}: cannot write the results ({err.strerror})") from None
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise ResultsError(f"{self.path}: another vidcap job is writing these results") \
                from None
        return handle

    def _prepare(self, handle: BinaryIO) -> None:
        """Rank 0, under the lock: repair the tail, check every line, start afresh when the
        settings changed, fold leftover parts in."""
        _repair_tail(handle, self.path)
        done = self.done_keys()  # checks every line
        if self.settings is not None and _settings_of(self.path, self.key) != self.settings:
            if done:
                log.info("%s: made with other settings; starting it afresh", self.path)
            for part in self.leftover_parts():
                part.unlink()
            os.truncate(handle.fileno(), 0)
            Appender(handle).write({SETTINGS: self.settings})
            done = set()
        self._fold_parts(handle, done)

    def _fold_parts(self, handle: BinaryIO, done: set[bytes]) -> None:
        """Append the complete lines of every part, in rank order, skipping videos already in
        the log; then delete the parts."""
        appender = Appender(handle)
        for part in self.leftover_parts():
            for record in read_results(part, self.key):
                key = path_key(record[self.key])
                if key not in done:
                    done.add(key)
                    appender.write(record)
            part.unlink()
