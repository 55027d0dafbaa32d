"""Which files to caption: the inputs a user names, folders expanded to the videos inside."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from vidcap.video import VIDEO_EXTENSIONS


def find_videos(inputs: Sequence[str | Path]) -> list[Path]:
    """Files as given, and every video file (by extension) directly inside a given folder.

    Paths that do not exist are kept, so that the captioning step reports them like bad files.
    """
    found: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            found.extend(sorted(p for p in item.iterdir()
                                if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS))
        else:
            found.append(item)
    return found
