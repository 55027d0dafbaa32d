"""Errors that reach users as one clear line (the CLI prints them and exits non-zero)."""

from __future__ import annotations

import reprlib
from pathlib import Path


class VidcapError(Exception):
    """Base of every error whose message is meant for a user, not a traceback."""


class ConfigError(VidcapError):
    """A configuration file or override is wrong; the message names the key."""


class VideoError(VidcapError):
    """A video cannot be read; the message names the file and the reason."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class ManifestError(VidcapError):
    """A manifest (or annotation file) is malformed; the message names the file and line."""


class DatasetError(VidcapError):
    """A dataset cannot be prepared (missing annotation files, missing videos, ...)."""


class MetricsError(VidcapError):
    """Scoring cannot run (no Java, mismatched ids, unreadable prediction file, ...)."""


class RunError(VidcapError):
    """A run directory is missing or incomplete."""


class _ShortRepr(reprlib.Repr):
    """`reprlib.Repr` that also never converts a huge integer to text (Python refuses past 4300
    digits, and the text would be huge anyway)."""

    def repr_int(self, x: int, level: int) -> str:
        if x.bit_length() > 256:
            return f"<an integer of {int(x.bit_length() * 0.30103) + 1} digits>"
        return super().repr_int(x, level)


_REPR = _ShortRepr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother = 3, 60, 60
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = 5


def shorten(value: object, limit: int = 80) -> str:
    """`repr(value)` for an error message, at most `limit` characters: a huge or deeply nested
    value is summarised (never expanded), so a message stays one short line."""
    text = _REPR.repr(value).replace("\n", " ")
    return text if len(text) <= limit else text[:limit - 3] + "..."


def truncate(text: str, limit: int = 80) -> str:
    """`text` cut to at most `limit` characters ("..." marks the cut), line breaks as spaces."""
    text = text.replace("\n", " ").replace("\r", " ")
    return text if len(text) <= limit else text[:limit - 3] + "..."
