"""Turning decoded frames into arrays: RGB through one swscale context per stream, small copies
for shot detection, and the display rotation applied (phone videos); a decoded picture kept to
convert later (`Picture`)."""

from __future__ import annotations

import logging
import math
import struct
from collections.abc import Callable, Sequence
from pathlib import Path

import av
import numpy as np
from av.sidedata.sidedata import Type as SideDataType
from av.video.reformatter import VideoReformatter


log = logging.getLogger(__name__)


_ORIENT: dict[str, Callable[[np.ndarray], np.ndarray]] = {  # views, no copies
    "clock": lambda a: np.rot90(a, -1),  # a quarter turn clockwise
    "cclock": lambda a: np.rot90(a, 1),
    "transpose": lambda a: a.swapaxes(0, 1),  # ffmpeg's transpose=cclock_flip
    "antitranspose": lambda a: a[::-1, ::-1].swapaxes(0, 1),  # transpose=clock_flip
    "hflip": lambda a: a[:, ::-1],
    "vflip": lambda a: a[::-1],
}


def _orientation_ops(matrix: Sequence[int]) -> tuple[str, ...] | None:
    """The `_ORIENT` steps that show a frame as its display matrix says (FFmpeg's 3x3 layout,
    16.16 fixed point), by the rule ffmpeg and ffplay autorotate with; None when the matrix
    turns by an angle that is not a multiple of 90 degrees."""
    a, b, c, d = matrix[0], matrix[1], matrix[3], matrix[4]
    scale_x, scale_y = math.hypot(a, c), math.hypot(b, d)
    if not scale_x or not scale_y:
        return None
    clockwise = round(math.degrees(math.atan2(b / scale_y, a / scale_x))) % 360
    if clockwise == 90:
        return ("transpose",) if c > 0 else ("clock",)
    if clockwise == 180:
        return (("hflip",) if a < 0 else ()) + (("vflip",) if d < 0 else ())
    if clockwise == 270:
        return ("antitranspose",) if c < 0 else ("cclock",)
    if clockwise == 0:
        return ("vflip",) if d < 0 else ()
    return None


SMALL_KINDS = ("grey", "value", "rgb")
"""What a small copy holds: luma (grey), the HSV value max(R, G, B) (what PySceneDetect's
luma-only detectors compare), or the three RGB channels."""
_SMALL_FORMATS = {"grey": "gray", "value": "gbrp", "rgb": "rgb24"}


def _plane(plane: av.video.plane.VideoPlane) -> np.ndarray:
    """A view of one 8-bit plane as uint8 (h, w)."""
    rows = np.frombuffer(plane, np.uint8, count=plane.line_size * plane.height)
    return rows.reshape(plane.height, plane.line_size)[:, :plane.width]


class _Converter:
    """Decoded frames to numpy for one stream: one swscale context per output kind, reused for
    every frame on the calling thread, and the frame's display matrix applied (upright)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._rgb = VideoReformatter()
        self._small: dict[str, VideoReformatter] = {}
        self._matrix: bytes | None = None
        self._steps: tuple[str, ...] = ()
        self._size: tuple[int, int] | None = None
        self._resized = False

    def rgb(self, frame: av.VideoFrame) -> np.ndarray:
        """uint8 (H, W, 3) RGB, the bytes `frame.to_ndarray(format="rgb24")` gives, upright.
        Every frame has the size of the first (a stream that changes size midway is scaled back
        to it, so that its frames stack)."""
        width, height = self._size = self._size or (frame.width, frame.height)
        if (frame.width, frame.height) != self._size and not self._resized:
            self._resized = True
            log.warning("%s: the frame size changes midway, from %dx%d to %dx%d; such frames are "
                        "scaled to %dx%d", self.path, width, height, frame.width, frame.height,
                        width, height)
        rgb = self._rgb.reformat(frame, width=width, height=height, format="rgb24", threads=1)
        return self._upright(frame, rgb.to_ndarray())

    def small(self, frame: av.VideoFrame, side: int, kind: str = "grey") -> np.ndarray:
        """uint8, area-averaged so that the longer side is `side` pixels (never enlarged),
        upright: (h, w) for `grey` and `value`, (h, w, 3) for `rgb` (`SMALL_KINDS`)."""
        if kind not in _SMALL_FORMATS:
            raise ValueError(f"unknown small copy kind {kind!r} (expected one of "
                             f"{', '.join(SMALL_KINDS)})")
        scale = min(1.0, side / max(frame.width, frame.height))
        width, height = max(1, round(frame.width * scale)), max(1, round(frame.height * scale))
        reformatter = self._small.get(kind)
        if reformatter is None:
            reformatter = self._small[kind] = VideoReformatter()
        small = reformatter.reformat(frame, width=width, height=height,
                                     format=_SMALL_FORMATS[kind], interpolation="AREA", threads=1)
        if kind == "value":  # planar G, B, R: the maximum of three planes, no interleaving
            green, blue, red = (_plane(p) for p in small.planes)
            array = np.maximum(green, blue)
            np.maximum(array, red, out=array)
        else:
            array = small.to_ndarray()
        return self._upright(frame, array)

    def _upright(self, frame: av.VideoFrame, array: np.ndarray) -> np.ndarray:
        matrix = next((bytes(data) for data in frame.side_data
                       if data.type is SideDataType.DISPLAYMATRIX), None)
        if matrix != self._matrix:
            self._matrix, self._steps = matrix, self._steps_for(matrix)
        for step in self._steps:
            array = _ORIENT[step](array)
        return array

    def _steps_for(self, matrix: bytes | None) -> tuple[str, ...]:
        if matrix is None or len(matrix) < 36:
            return ()
        steps = _orientation_ops(struct.unpack("=9i", matrix[:36]))
        if steps is None:
            log.warning("%s: its display matrix turns the picture by an angle that is not a "
                        "multiple of 90 degrees; frames are read as stored, not turned", self.path)
            return ()
        return steps


class Picture:
    """A decoded frame as the decoder gave it (YUV: half the bytes of RGB for 4:2:0 video), kept
    to convert later, when it is known to be needed (`iter_frames(keep_pictures=True)`).

    It holds the decoder's buffers, not a copy; conversions go through the pass's converter, on
    the calling thread, so `rgb()` gives the bytes `DecodedFrame.image` would have held.
    """

    __slots__ = ("_frame", "_converter", "nbytes")

    def __init__(self, frame: av.VideoFrame, converter: _Converter) -> None:
        self._frame, self._converter = frame, converter
        self.nbytes: int = sum(plane.buffer_size for plane in frame.planes)
        """Bytes of picture data held."""

    def rgb(self) -> np.ndarray:
        """uint8 (H, W, 3) RGB, upright (as `iter_frames` converts)."""
        return np.ascontiguousarray(self._converter.rgb(self._frame))

    def small(self, side: int, kind: str = "grey") -> np.ndarray:
        """A small copy whose longer side is `side` pixels, never enlarged (`SMALL_KINDS`)."""
        return np.ascontiguousarray(self._converter.small(self._frame, side, kind))
