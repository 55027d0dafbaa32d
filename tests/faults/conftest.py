"""Helpers of the fault tests: bad inputs a careless user or an attacker would give, each of
which once gave a traceback, a hang, exhausted memory, a silently wrong result or an unhelpful
message. Every test here reproduces one such input; it fails on the code before the hardening
(the comment in each says what happened) and passes after."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from vidcap.errors import VidcapError

MAX_MESSAGE = 400
"""A message longer than this embeds content it should have cut."""


def clean(err: pytest.ExceptionInfo, *parts: str) -> str:
    """The error's message, checked to be what the CLI prints as one short line naming the
    file and the problem: a VidcapError, one line, short, holding each of `parts`."""
    message = str(err.value)
    assert isinstance(err.value, VidcapError), f"{type(err.value).__name__}: {message[:200]}"
    assert "\n" not in message and len(message) <= MAX_MESSAGE, message[:MAX_MESSAGE * 2]
    for part in parts:
        assert part in message, f"{part!r} not in {message!r}"
    return message


def write(path: Path, data: str | bytes) -> Path:
    """Write `data` (text as UTF-8) to `path`, creating the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def zipped(members: dict[str, bytes | str], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    """A zip archive of `members` (deflated unless told), in memory."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


DEEP_JSON = "[" * 100_000 + "]" * 100_000
"""JSON nested 100k deep: Python's parser raised RecursionError."""
HUGE_INT = "1" * 5000
"""An integer Python refuses to convert from text (over 4300 digits): ValueError."""
