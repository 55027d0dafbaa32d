"""The frames of every segment of a video: `sample_segments`, the one adapter between captioning
and video reading.

For each segment of a video's plan (`vidcap.captioning.segments.plan_segments`) it gives the
frames a model sees: segment-centre sampling over the segment's frames, exactly what
`vidcap.video.read_sampled(path, T, start=, end=)` reads (the same timeline, the same frames,
the same RGB conversion), resized and centre-cropped as in training (`crop_frames`). A video of
one segment (`none`, a short video under `auto`, one fixed window) is read with `read_sampled`
itself, seeking to the frames it needs. A video of several segments is decoded once
(`vidcap.video.iter_frames`): every frame goes past the shot detector as a small copy made by the
decoder's scaler (shot modes), and is kept as the decoder gave it (a `Picture`, YUV) while an
open segment or shot may still sample it; a segment's frames are turned into RGB and cropped as
soon as the pass has gone beyond them, so only the sampled frames are ever converted. The buffer
holds about one shot (at most `BUFFER_BYTES`; frames beyond are read again with `read_sampled`
afterwards).

A file that stops decoding part-way (truncated, cut short, corrupt) still gives the segments of
the part that decodes in a row from the first frame, clipped where it broke, and one error that
names the file and the time it broke at.
"""

from __future__ import annotations

import logging
import math
from bisect import bisect_left
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vidcap.captioning.segments import (Segment, ShotDetector, ShotParams, needs_shots,
                                        plan_segments, shot_frame, split_long)
from vidcap.errors import ConfigError, VideoError
from vidcap.video import (FrameIterator, Picture, Truncation, VideoInfo, crop_frames, iter_frames,
                          read_sampled, sample_frame_indices, window_frame_range)

log = logging.getLogger(__name__)

BUFFER_BYTES = 1 << 30
"""Most bytes of decoded pictures one pass holds at a time (about one shot's frames, as the
decoder gave them: 4:2:0 video holds half the bytes of RGB)."""
_EPS = 1e-6


@dataclass(frozen=True)
class SegmentRequest:
    """How to cut videos into segments (`vidcap caption --segments MODE --window S --stride S`)."""

    mode: str = "auto"
    """auto, shots, fixed or none (`vidcap.captioning.segments.SEGMENT_MODES`)."""
    clip_length: float | None = None
    """The run's typical training clip, seconds: `auto` needs it; `fixed`'s default window."""
    window: float | None = None
    """`fixed` window length, seconds."""
    stride: float | None = None
    """`fixed` window step, seconds (default: the window)."""
    shots: ShotParams | None = None
    """Shot detection parameters (default `ShotParams()`)."""

    def __post_init__(self) -> None:
        needs_shots(self.mode, 0.0, self.clip_length or 1.0)  # checks the mode
        if self.mode == "auto" and self.clip_length is None:
            raise ConfigError("--segments auto needs the run's clip length")
        if (self.window is not None or self.stride is not None) and self.mode != "fixed":
            raise ConfigError("--window and --stride apply to --segments fixed only")


@dataclass
class SegmentClip:
    """One segment and the frames the model sees of it."""

    segment: Segment
    frames: np.ndarray
    """uint8 (T, S, S, 3): sampled, resized and centre-cropped."""


@dataclass
class SegmentsRead:
    """What a video gave: every segment with frames (in time order), and how it ended."""

    segments: list[Segment]
    duration: float
    """Seconds of video the segments cover (up to the break, for a video that broke)."""
    fps: float
    error: str | None = None
    """Where the video stopped decoding, or None."""


# ---------------------------------------------------------------------------------------------
# the adapter


def sample_segments(path: str | Path, num_frames: int, image_size: int,
                    request: SegmentRequest) -> Iterator[SegmentClip | SegmentsRead]:
    """Yield a `SegmentClip` per segment of `path`, in time order, as each is ready, then one
    `SegmentsRead`. A file that cannot be read at all raises `VideoError`."""
    path = Path(path)
    with iter_frames(path, rgb=False, keep_pictures=True, partial_mp4=True) as frames:
        info = frames.info
        planned = _plan_without_cuts(request, info)
        if planned is not None and len(planned) == 1:
            whole = _read_whole(path, num_frames, image_size, planned[0])
            if whole is not None:
                yield whole
                yield SegmentsRead(planned, info.duration, info.fps)
                return
        collector = _Collector(path, num_frames, image_size, request, info, frames.times)
        yield from collector.run(frames)


def _plan_without_cuts(request: SegmentRequest, info: VideoInfo) -> list[Segment] | None:
    """The plan when it needs no shot detection (None when it does)."""
    if needs_shots(request.mode, info.duration, request.clip_length):
        return None
    return _plan_at(request, info.duration, info.fps or 25.0)


def _read_whole(path: Path, num_frames: int, image_size: int,
                segment: Segment) -> SegmentClip | None:
    """The one segment of a video, read by seeking; None when that fails (the pass will say
    where the file breaks and keep the part before)."""
    try:
        sampled = read_sampled(path, num_frames)
    except VideoError as err:
        log.debug("%s: %s; decoding it whole instead", path, err.reason)
        return None
    return SegmentClip(segment, crop_frames(sampled.frames, image_size))


@dataclass(frozen=True)
class _Planned:
    """A segment and its frames: the first one (index) and the ones sampled."""

    segment: Segment
    first: int
    picks: list[int]


@dataclass
class _Collector:
    """Takes the frames of one pass and hands out each segment's sampled frames when ready."""

    path: Path
    num_frames: int
    image_size: int
    request: SegmentRequest
    info: VideoInfo
    times: list[float]
    """Every frame's timestamp, by index (the timeline `read_sampled` samples from)."""
    buffer: dict[int, Picture] = field(default_factory=dict)
    """Decoded pictures by index, oldest first, from the earliest frame an open segment needs."""
    pending: list[_Planned] = field(default_factory=list)
    done: list[Segment] = field(default_factory=list)
    overflow: list[Segment] = field(default_factory=list)
    shot_start: float = 0.0
    shot_first: int = 0
    buffered_bytes: int = 0
    decoded: int = 0
    """Frames decoded in a row from the first (the index the next frame must have)."""

    def __post_init__(self) -> None:
        self.duration, self.fps = self.info.duration, self.info.fps or 25.0
        if not math.isfinite(self.duration) or self.duration <= 0:
            raise VideoError(self.path, "cannot tell how long the video is")
        self.params = self.request.shots or ShotParams()
        cut = needs_shots(self.request.mode, self.duration, self.request.clip_length)
        self.detector = ShotDetector(self.fps, self.params) if cut else None
        if not cut:
            self.pending = [self._plan(s) for s in _plan_at(self.request, self.duration,
                                                            self.fps)]

    def run(self, frames: FrameIterator) -> Iterator[SegmentClip | SegmentsRead]:
        """Take every frame of the pass, up to the first one lost; then hand out the rest."""
        failure = None
        try:
            for frame in frames:
                if frame.index != self.decoded or frame.picture is None:
                    break  # a frame the decoder lost: the captions stop where it broke
                yield from self._add(frame.index, frame.time, frame.picture)
        except VideoError as err:
            failure = err.reason
        yield from self._finish(failure, frames.truncation)

    def _add(self, index: int, time: float, picture: Picture) -> Iterator[SegmentClip]:
        """Take one decoded frame; yield the segments it completes."""
        self.decoded = index + 1
        if index >= self._keep_from() and self.buffered_bytes + picture.nbytes <= BUFFER_BYTES:
            self.buffer[index] = picture
            self.buffered_bytes += picture.nbytes
        if self.detector is not None:
            for cut in self.detector.feed(index, time, shot_frame(picture, self.params)):
                self._close_shot(round(cut * self.fps) / self.fps)
        yield from self._emit(index)

    def _plan(self, segment: Segment) -> _Planned:
        first, last = window_frame_range(self.times, self.duration, segment.start, segment.end)
        picks = [first + i for i in sample_frame_indices(last - first + 1, self.num_frames)]
        return _Planned(segment, first, picks)

    def _keep_from(self) -> int:
        firsts = [p.first for p in self.pending]
        if self.detector is not None:
            firsts.append(self.shot_first)
        return min(firsts, default=len(self.times))

    def _close_shot(self, end: float) -> None:
        if end <= self.shot_start + _EPS or end >= self.duration - _EPS:
            return
        self.pending += [self._plan(s) for s in self._split(Segment(self.shot_start, end))]
        self.shot_start, self.shot_first = end, bisect_left(self.times, end - _EPS)

    def _split(self, shot: Segment) -> list[Segment]:
        if self.request.mode == "auto":
            return split_long([shot], self.request.clip_length, self.fps)  # type: ignore[arg-type]
        return [shot]

    def _emit(self, reached: int, final: bool = False) -> Iterator[SegmentClip]:
        """Hand out the pending segments whose frames the pass has reached (all when final)."""
        while self.pending and (final or self.pending[0].picks[-1] <= reached):
            planned = self.pending.pop(0)
            clip = self._take(planned)
            if clip is None:
                self.overflow.append(planned.segment)
            else:
                self.done.append(planned.segment)
                yield clip
        keep_from = self._keep_from()
        while self.buffer and (oldest := next(iter(self.buffer))) < keep_from:
            self.buffered_bytes -= self.buffer.pop(oldest).nbytes

    def _take(self, planned: _Planned) -> SegmentClip | None:
        """The segment's frames from the buffer (RGB only now), or None when some are not in it."""
        if any(i not in self.buffer for i in planned.picks):
            return None
        rgb = {i: self.buffer[i].rgb() for i in dict.fromkeys(planned.picks)}
        frames = crop_frames(np.stack([rgb[i] for i in planned.picks]), self.image_size)
        return SegmentClip(planned.segment, frames)

    def _finish(self, failure: str | None,
                truncation: Truncation | None) -> Iterator[SegmentClip | SegmentsRead]:
        """After the last frame: clip at a break, close the last shot, hand out the rest."""
        end, error = self._decoded_end(failure, truncation)
        self.duration = end
        if self.detector is not None:
            for cut in self.detector.cuts():
                if cut > self.shot_start + _EPS:
                    self._close_shot(round(cut * self.fps) / self.fps)
            if end > self.shot_start + _EPS:
                self.pending += [self._plan(s) for s in self._split(Segment(self.shot_start, end))]
        self.pending = [p if p.segment.end <= end else self._plan(Segment(p.segment.start, end))
                        for p in self.pending if p.segment.start < end - _EPS]
        yield from self._emit(self.decoded, final=True)
        unread = yield from self._read_overflow()
        error = error or unread
        order = sorted(self.done, key=lambda s: s.start)
        yield SegmentsRead(order, self.duration, self.fps, error)

    def _decoded_end(self, failure: str | None,
                     truncation: Truncation | None) -> tuple[float, str | None]:
        """Where the decoded part ends (seconds), and the error when that is short of what the
        file should hold."""
        total = len(self.times)
        if not self.decoded:
            raise VideoError(self.path, failure or "no decodable frames (the first frame cannot "
                                                   "be decoded)")
        if self.decoded < total or failure is not None:
            end = self.times[self.decoded] if self.decoded < total else self.duration
            reason = failure or "truncated or corrupt data"
            where = (f"frame {self.decoded} of {total} cannot be decoded" if self.decoded < total
                     else f"after its last frame, {total}")
        elif truncation is not None:
            end, reason = self.duration, f"truncated file (it announces {truncation.announced})"
            where = f"its data ends after {truncation.frames} frames"
        else:
            return self.duration, None
        return end, (f"{self.path}: {reason}: decoding stopped at {end:.3f} s ({where}); the "
                     "captions cover the part before")

    def _read_overflow(self) -> Generator[SegmentClip, None, str | None]:
        """Segments whose frames did not fit in the buffer: read again, seeking. Returns the
        error of the first that cannot be read (it is left out)."""
        error = None
        for segment in self.overflow:
            log.debug("%s: reading [%.3f, %.3f] s again (buffer full)", self.path,
                      segment.start, segment.end)
            try:
                sampled = read_sampled(self.path, self.num_frames, start=segment.start,
                                       end=segment.end)
            except VideoError as err:
                error = error or (f"{err}: the frames of [{segment.start:.3f}, "
                                  f"{segment.end:.3f}] s cannot be read again; that segment "
                                  "has no caption")
                continue
            self.done.append(segment)
            yield SegmentClip(segment, crop_frames(sampled.frames, self.image_size))
        return error


def _plan_at(request: SegmentRequest, duration: float, fps: float) -> list[Segment]:
    """`plan_segments` for a mode that needs no cuts."""
    return plan_segments(request.mode, duration, fps, clip_length=request.clip_length,
                         window=request.window, stride=request.stride)
