"""Errors that reach users as one clear line (the CLI prints them and exits non-zero)."""

from __future__ import annotations

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
