"""Resource caps checked before anything is allocated (frames per read, bytes of frames)."""

from __future__ import annotations

import os
from pathlib import Path

from vidcap.errors import ConfigError, VideoError


MAX_FRAME_BYTES = 2 * 1024 ** 3
"""Most bytes of frames (T x H x W x 3) one read may return; checked before decoding. The
environment variable VIDCAP_MAX_FRAME_BYTES overrides it (a whole number of bytes)."""
MAX_SAMPLED_FRAMES = 10_000
"""Most frames one read samples (`num_frames`, per window for `read_windows`); the environment
variable VIDCAP_MAX_SAMPLED_FRAMES overrides it. `iter_frames` goes through any number."""


def _cap(name: str, env: str) -> int:
    """The module constant `name`, or the environment variable `env` when it is set."""
    raw = os.environ.get(env, "").strip()
    if not raw:
        return int(globals()[name])
    try:
        value = int(raw.replace("_", ""))
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigError(f"environment variable {env}={raw!r} is not a positive whole number")
    return value


def _check_num_frames(num_frames: int) -> None:
    """ValueError unless 1 <= num_frames <= the frames-per-read cap (`MAX_SAMPLED_FRAMES`)."""
    if num_frames < 1:
        raise ValueError(f"num_frames must be at least 1, got {num_frames}")
    cap = _cap("MAX_SAMPLED_FRAMES", "VIDCAP_MAX_SAMPLED_FRAMES")
    if num_frames > cap:
        raise ValueError(f"num_frames={num_frames:,} is over the limit of {cap:,} frames per "
                         "read (vidcap.video.MAX_SAMPLED_FRAMES; raise it with the environment "
                         "variable VIDCAP_MAX_SAMPLED_FRAMES, or go through every frame with "
                         "iter_frames)")


def _check_frame_bytes(path: Path, count: int, width: int, height: int) -> None:
    need = count * width * height * 3
    cap = _cap("MAX_FRAME_BYTES", "VIDCAP_MAX_FRAME_BYTES")
    if need > cap:
        raise VideoError(path, f"reading {count:,} frames of {width}x{height} would take "
                               f"{need / 2 ** 20:,.0f} MiB, over the limit of "
                               f"{cap / 2 ** 20:,.0f} MiB (vidcap.video.MAX_FRAME_BYTES; raise it "
                               "with the environment variable VIDCAP_MAX_FRAME_BYTES=<bytes>, or "
                               "read fewer frames at a time)")
