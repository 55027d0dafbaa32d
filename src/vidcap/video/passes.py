"""One pass over a whole file, every frame once (`iter_frames`): for shot detection and anything
else that must see every frame."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Self

import av
import numpy as np

from vidcap.errors import VideoError
from vidcap.video.types import DecodedFrame, Truncation
from vidcap.video.container import _ffmpeg_reason, _open
from vidcap.video.decode import _Reader


log = logging.getLogger(__name__)


class FrameIterator(Iterator[DecodedFrame]):
    """The frames of one video in presentation order, decoded once (what `iter_frames` returns).

    `info` (with `info.truncation`: where a cut file's data ends) is known before the first
    frame; `decode_errors` counts the packets the decoder rejected so far, whose frames are
    missing from the sequence (a warning says so at the end). `close()`, or a `with` block,
    releases the file before the end.
    """

    def __init__(self, reader: _Reader, frames: Iterator[DecodedFrame], stack: ExitStack) -> None:
        self.info = reader.info()
        self._reader, self._frames, self._stack = reader, frames, stack

    @property
    def truncation(self) -> Truncation | None:
        return self.info.truncation

    @property
    def decode_errors(self) -> int:
        return self._reader.errors

    def __next__(self) -> DecodedFrame:
        return next(self._frames)

    def close(self) -> None:
        self._frames.close()
        self._stack.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _decoded_frames(reader: _Reader, rgb: bool | Callable[[int, float], bool],
                    small: int | None) -> Iterator[DecodedFrame]:
    times, count = reader.timeline.times, 0
    try:
        for index, frame in reader.every_frame():
            time = times[index]
            is_wanted = rgb(index, time) if callable(rgb) else rgb
            image = np.ascontiguousarray(reader.converter.rgb(frame)) if is_wanted else None
            thumb = np.ascontiguousarray(reader.converter.small(frame, small)) if small else None
            count += 1
            yield DecodedFrame(index, time, image, thumb)
    except (av.FFmpegError, OSError) as err:
        reason = _ffmpeg_reason(err)
        raise VideoError(reader.path, f"truncated or corrupt data ({reason})") from None
    if not count:
        raise VideoError(reader.path, "no decodable frames (the decoder rejected every packet)")
    if reader.errors:
        log.warning("%s: the decoder rejected %d packets; their frames are missing", reader.path,
                    reader.errors)


def iter_frames(path: str | Path, *, rgb: bool | Callable[[int, float], bool] = True,
                small: int | None = None) -> FrameIterator:
    """Every frame of a video, decoded once, in presentation order: `DecodedFrame(index, time,
    image, small)`, with the same fast RGB conversion and upright turn as `read_sampled`.

    rgb: True converts every frame to RGB; False none (index and time only, plus `small`); a
        function (index, time) -> bool converts only the frames it accepts (colour conversion
        is the costly part after decoding).
    small: when given, each frame also gets a grey copy whose longer side is `small` pixels
        (area-averaged by swscale: cheap), e.g. for a shot detector.

    The file is opened and demuxed now (a bad file is a VideoError here; a truncated one logs a
    warning and sets `.truncation`); frames are decoded as they are taken. Errors while decoding
    are VideoErrors too: no PyAV exception escapes.
    """
    if small is not None and small < 1:
        raise ValueError(f"small must be at least 1 pixel, got {small}")
    path = Path(path)
    with ExitStack() as stack:
        reader = _Reader(path, stack.enter_context(_open(path)))
        return FrameIterator(reader, _decoded_frames(reader, rgb, small), stack.pop_all())
