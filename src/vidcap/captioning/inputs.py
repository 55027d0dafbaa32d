"""Which files to caption: the inputs a user names, streamed.

Inputs are files (taken as given, even without a video extension), folders (the video files
inside, by extension; with `recursive`, in every sub-folder too) and text files listing paths
(`iter_listed`, one a line, read lazily: a list of millions of paths never passes through argv or
memory at once). Folders are walked in name order, so the same inputs give the same sequence
every time; hidden entries (a leading dot, as vidcap's own temporary files have) are left out, and
symbolic links to folders are not followed.

`TodoList` keeps the paths still to caption in a temporary file with an array of line offsets
(8 bytes a path), so that decoding workers can read path `i` without the whole list in memory.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np

from vidcap.errors import VidcapError
from vidcap.video import VIDEO_EXTENSIONS


def is_video_name(name: str) -> bool:
    """Whether a file name has one of `VIDEO_EXTENSIONS` (any case)."""
    return os.path.splitext(name)[1].lower() in VIDEO_EXTENSIONS


def _walk(folder: Path, recursive: bool) -> Iterator[Path]:
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as err:
        raise VidcapError(f"{folder}: cannot list the folder ({err.strerror})") from None
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if entry.is_dir(follow_symlinks=False):
            if recursive:
                yield from _walk(Path(entry.path), recursive)
        elif entry.is_file() and is_video_name(entry.name):
            yield Path(entry.path)


def iter_inputs(inputs: Iterable[str | Path], *, recursive: bool = False) -> Iterator[Path]:
    """Files as given, and the video files of each folder (its sub-folders too if `recursive`).

    Paths that do not exist are kept, so that captioning reports them like unreadable files.
    """
    for item in map(Path, inputs):
        if item.is_dir():
            yield from _walk(item, recursive)
        else:
            yield item


def find_videos(inputs: Sequence[str | Path], *, recursive: bool = False) -> list[Path]:
    """`iter_inputs` as a list."""
    return list(iter_inputs(inputs, recursive=recursive))


def iter_listed(list_file: str | Path) -> Iterator[str]:
    """The paths of a text file, one a line (`-`: standard input), read lazily. Blank lines and
    lines starting with `#` are skipped; relative paths are relative to the current folder, as
    on the command line."""
    if str(list_file) == "-":
        yield from _lines(sys.stdin)
        return
    path = Path(list_file)
    try:
        with path.open(encoding="utf-8") as lines:
            yield from _lines(lines)
    except FileNotFoundError:
        raise VidcapError(f"{path}: list of paths not found") from None
    except UnicodeDecodeError:
        raise VidcapError(f"{path}: not a text file of paths (not UTF-8)") from None
    except IsADirectoryError:
        raise VidcapError(f"{path}: is a folder, not a text file of paths") from None


def _lines(lines: Iterable[str]) -> Iterator[str]:
    for line in lines:
        text = line.rstrip("\r\n")
        if text.strip() and not text.lstrip().startswith("#"):
            yield text


def path_key(text: str) -> bytes:
    """A 16-byte digest that stands for a path (or id) in the sets of done and seen inputs: a
    tenth of the memory of the strings, with no collision in practice (2^-128 per pair)."""
    return hashlib.blake2b(text.encode("utf-8", "surrogateescape"), digest_size=16).digest()


class TodoList(Sequence[str]):
    """Strings (paths) written once to a temporary file, then read back by index in any process.

    >>> with TodoList.build(paths) as todo:
    ...     todo[3], len(todo)
    """

    def __init__(self, file: Path, offsets: np.ndarray) -> None:
        self.file = file
        self.offsets = offsets
        self._fd: int | None = None
        self._pid = 0

    @classmethod
    def build(cls, items: Iterable[str], folder: str | Path | None = None) -> TodoList:
        """Write `items` to a new temporary file (in `folder`, default the system's)."""
        fd, name = tempfile.mkstemp(prefix="vidcap-todo-", suffix=".txt", dir=folder)
        offsets = [0]
        try:
            with os.fdopen(fd, "wb") as out:
                for item in items:
                    data = item.encode("utf-8", "surrogateescape")
                    if b"\n" in data:
                        raise VidcapError(f"{item!r}: a path with a line break cannot be "
                                          "captioned")
                    out.write(data + b"\n")
                    offsets.append(offsets[-1] + len(data) + 1)
        except BaseException:
            os.unlink(name)
            raise
        return cls(Path(name), np.asarray(offsets, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if not -len(self) <= index < len(self):
            raise IndexError(index)
        index %= len(self)
        if self._fd is None or self._pid != os.getpid():  # each (forked) process opens its own
            self._fd, self._pid = os.open(self.file, os.O_RDONLY), os.getpid()
        start, end = int(self.offsets[index]), int(self.offsets[index + 1])
        return os.pread(self._fd, end - start - 1, start).decode("utf-8", "surrogateescape")

    def __getstate__(self) -> dict:
        return {"file": self.file, "offsets": self.offsets, "_fd": None, "_pid": 0}

    def close(self) -> None:
        """Close and delete the temporary file."""
        if self._fd is not None and self._pid == os.getpid():
            os.close(self._fd)
        self._fd = None
        self.file.unlink(missing_ok=True)

    def __enter__(self) -> TodoList:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
