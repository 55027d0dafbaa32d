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
from vidcap.video.convert import Picture
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

    @property
    def times(self) -> list[float]:
        """Every frame's timestamp (seconds from the first frame), by index: the timeline
        `read_sampled` samples from (with `info.duration`). Do not modify."""
        return self._reader.timeline.times

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
                    small: int | None, keep_pictures: bool) -> Iterator[DecodedFrame]:
    times, count, converter = reader.timeline.times, 0, reader.converter
    try:
        for index, frame in reader.every_frame():
            time = times[index]
            is_wanted = rgb(index, time) if callable(rgb) else rgb
            image = np.ascontiguousarray(converter.rgb(frame)) if is_wanted else None
            thumb = np.ascontiguousarray(converter.small(frame, small)) if small else None
            count += 1
            yield DecodedFrame(index, time, image, thumb,
                               Picture(frame, converter) if keep_pictures else None)
    except (av.FFmpegError, OSError) as err:
        reason = _ffmpeg_reason(err)
        raise VideoError(reader.path, f"truncated or corrupt data ({reason})") from None
    if not count:
        raise VideoError(reader.path, "no decodable frames (the decoder rejected every packet)")
    if reader.errors and count < len(times):  # a damaged packet left out of the timeline is no loss
        log.warning("%s: the decoder rejected %d packets; %d of %d frames are missing",
                    reader.path, reader.errors, len(times) - count, len(times))


def iter_frames(path: str | Path, *, rgb: bool | Callable[[int, float], bool] = True,
                small: int | None = None, keep_pictures: bool = False,
                partial_mp4: bool = False) -> FrameIterator:
    """Every frame of a video, decoded once, in presentation order: `DecodedFrame(index, time,
    image, small, picture)`, with the same fast RGB conversion and upright turn as
    `read_sampled`.

    rgb: True converts every frame to RGB; False none (index and time only, plus `small`); a
        function (index, time) -> bool converts only the frames it accepts (colour conversion
        is the costly part after decoding).
    small: when given, each frame also gets a grey copy whose longer side is `small` pixels
        (never enlarged; area-averaged by swscale: cheap), e.g. for a shot detector.
    keep_pictures: each frame also carries its decoded picture (`DecodedFrame.picture`, a
        `Picture`), to convert later (`rgb()`, `small()`) once the caller knows it needs it:
        for a caller that learns only afterwards which frames it wants. A picture holds
        the decoder's buffers (about half an RGB frame's bytes) for as long as it is kept.
    partial_mp4: an MP4/MOV file cut short (its index lists frames its data does not hold) is
        read as far as its data goes, as a truncated file (`.truncation` set), where every
        other reader refuses it: for a pass that keeps what it can of a long recording.

    The file is opened and demuxed now (a bad file is a VideoError here; a truncated one logs a
    warning and sets `.truncation`); frames are decoded as they are taken. Errors while decoding
    are VideoErrors too: no PyAV exception escapes.
    """
    if small is not None and small < 1:
        raise ValueError(f"small must be at least 1 pixel, got {small}")
    path = Path(path)
    with ExitStack() as stack:
        container = stack.enter_context(_open(path, partial_mp4=partial_mp4))
        reader = _Reader(path, container, partial_mp4=partial_mp4)
        frames = _decoded_frames(reader, rgb, small, keep_pictures)
        return FrameIterator(reader, frames, stack.pop_all())
