"""What reading a video gives back: its description and the frames taken from it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

if TYPE_CHECKING:
    from vidcap.video.convert import Picture


@dataclass(frozen=True)
class Truncation:
    """A file whose data ends before what its header announces, or inside its last frame."""

    frames: int
    """Frames present: what is read."""
    end_time: float
    """Seconds from the first frame to the end of the last frame present."""
    announced: str
    """What the file promised, in words ("90 frames", "3.000 s", "a complete last frame")."""

    def describe(self, path: str | Path) -> str:
        """The warning logged for `path`: what it announces, where its data ends."""
        return (f"{path}: truncated file (it announces {self.announced}; the data ends after "
                f"{self.frames} frames, at {self.end_time:.3f} s); reading the frames present")


@dataclass(frozen=True)
class VideoInfo:
    """What `probe_video` learns from a demux pass (nothing is decoded)."""

    path: str
    format: str
    codec: str
    width: int
    height: int
    """Size of the coded picture; frames of a video with a 90/270 degree display rotation are
    returned upright, i.e. `height` wide and `width` high."""
    num_frames: int
    duration: float
    """Seconds from the first frame's timestamp to the end of the last frame."""
    fps: float
    """Mean frame rate, num_frames / duration (robust to variable frame rate)."""
    num_keyframes: int
    keyframe_interval: float
    """Mean number of frames per keyframe (1 = every frame is a keyframe)."""
    truncation: Truncation | None = None
    """Set when the data ends early (`num_frames` counts the frames present)."""


class SampledFrames(NamedTuple):
    frames: np.ndarray
    """uint8 (T, H, W, 3) RGB."""
    indices: list[int]
    """Index of each sampled frame in presentation order (T of them, repeats allowed)."""
    times: list[float]
    """Timestamp of each sampled frame, seconds from the start of the video."""
    decode_runs: int
    """How many seek-and-decode runs the reader used (1 = one sequential pass)."""


class DecodedFrame(NamedTuple):
    """One frame from `iter_frames`."""

    index: int
    """Position in presentation order (the index `read_sampled` uses)."""
    time: float
    """Seconds from the first frame (its timestamp, as in `SampledFrames.times`)."""
    image: np.ndarray | None
    """uint8 (H, W, 3) RGB, upright; None for frames not asked for (`rgb`)."""
    small: np.ndarray | None
    """uint8 (h, w) grey copy whose longer side is `small` pixels (at most the frame's); None
    unless asked for."""
    picture: Picture | None = None
    """The decoded picture, kept to convert later (`iter_frames(keep_pictures=True)`)."""
