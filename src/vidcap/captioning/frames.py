"""The frames of every segment of a video: `sample_segments`, the one adapter between captioning
and video reading.

For each segment of a video's plan (`vidcap.captioning.segments.plan_segments`) it gives the
frames a model sees: segment-centre sampling over the segment's frames, exactly what
`vidcap.video.read_sampled(path, T, start=, end=)` reads, resized and centre-cropped as in
training (`crop_frames`). A video of one segment (`none`, a short video under `auto`, one fixed
window) is read with `read_sampled` itself, seeking to the frames it needs. A video of several
segments is decoded once: every frame goes past the shot detector (shot modes) and into a
buffer, and each segment's frames are taken from the buffer as soon as the pass has gone beyond
its end; frames no open segment can need are dropped on the way, so the buffer holds about one
shot (at most `BUFFER_BYTES`; frames beyond are read again with `read_sampled` afterwards).

A file that stops decoding part-way (truncated, corrupt) still gives the segments of the part
that decodes, clipped where it broke, and an error that names the file and the time it broke at.

Where the one-pass reader plugs in: `open_frames` below is the only code that decodes for the
pass. Today it is PySceneDetect's PyAV reader (the pass `detect_shots` makes); when
`vidcap.video.iter_frames(path)` lands it replaces that reader there (the same yield: index, time
in seconds from the first frame, frame; RGB, so `bgr=False`), and its truncation report replaces
the frame count check of `_Collector._decoded_end`.
"""

from __future__ import annotations

import logging
import math
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vidcap.captioning.segments import (Segment, ShotDetector, ShotParams, needs_shots,
                                        open_scene_stream, plan_segments, split_long,
                                        stream_frames)
from vidcap.errors import ConfigError, VideoError
from vidcap.video import (VideoInfo, crop_frames, probe_video, read_sampled, sample_frame_indices,
                          window_frame_range)

log = logging.getLogger(__name__)

BUFFER_BYTES = 1 << 30
"""Most bytes of decoded frames one pass holds at a time (about one shot's frames)."""
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
# the frame source: the one place that decodes for the pass


@dataclass
class FramePass:
    """An open decoding pass: its frame rate, its declared duration, and its frames."""

    fps: float
    duration: float
    """Seconds the container declares (a truncated file declares what it should hold)."""
    frames: Iterator[tuple[int, float, np.ndarray]]
    """(index, seconds from the first frame, uint8 (H, W, 3) frame), in presentation order."""
    bgr: bool = False
    """The frames are in OpenCV's BGR order (PySceneDetect's reader): the shot detector takes
    them as they are, and only the sampled frames are turned to RGB."""


@contextmanager
def open_frames(path: Path) -> Iterator[FramePass]:
    """Every frame of `path`, once, in order (PySceneDetect's PyAV reader, as `detect_shots`
    reads; a VideoError when it cannot be opened). The reader stops quietly where a file stops
    decoding; `_Collector._decoded_end` finds out from the frame count."""
    quiet = logging.getLogger("pyscenedetect")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)  # its decode warnings: the error we report says it once
    try:
        stream = open_scene_stream(path)
        yield FramePass(float(stream.frame_rate), float(stream.duration.seconds),
                        stream_frames(stream), bgr=True)
    finally:
        quiet.setLevel(level)


# ---------------------------------------------------------------------------------------------
# the adapter


def sample_segments(path: str | Path, num_frames: int, image_size: int,
                    request: SegmentRequest) -> Iterator[SegmentClip | SegmentsRead]:
    """Yield a `SegmentClip` per segment of `path`, in time order, as each is ready, then one
    `SegmentsRead`. A file that cannot be read at all raises `VideoError`."""
    path = Path(path)
    try:
        info, broken = probe_video(path), None
    except VideoError as err:
        info, broken = None, err  # perhaps a part of it decodes: the pass will tell
    if info is not None:
        planned = _plan_without_cuts(request, info)
        if planned is not None and len(planned) == 1:
            sampled = read_sampled(path, num_frames)
            yield SegmentClip(planned[0], crop_frames(sampled.frames, image_size))
            yield SegmentsRead(planned, info.duration, info.fps)
            return
    try:
        with open_frames(path) as source:
            collector = _Collector(path, num_frames, image_size, request, info, source)
            for index, time, frame in source.frames:
                yield from collector.add(index, time, frame)
            yield from collector.finish(broken)
    except VideoError:
        if broken is not None:
            raise broken from None
        raise


def _plan_without_cuts(request: SegmentRequest, info: VideoInfo) -> list[Segment] | None:
    """The plan when it needs no shot detection (None when it does)."""
    if needs_shots(request.mode, info.duration, request.clip_length):
        return None
    return _plan_at(request, info.duration, info.fps or 25.0)


@dataclass
class _Collector:
    """Takes the frames of one pass and hands out each segment's sampled frames when ready."""

    path: Path
    num_frames: int
    image_size: int
    request: SegmentRequest
    info: VideoInfo | None
    source: FramePass
    times: list[float] = field(default_factory=list)
    buffer: OrderedDict[int, np.ndarray] = field(default_factory=OrderedDict)
    """Decoded frames by index, oldest first, from the earliest frame an open segment needs."""
    pending: list[Segment] = field(default_factory=list)
    done: list[Segment] = field(default_factory=list)
    overflow: list[Segment] = field(default_factory=list)
    shot_start: float = 0.0
    buffered_bytes: int = 0

    def __post_init__(self) -> None:
        self.duration = self.info.duration if self.info else self.source.duration
        self.fps = (self.info.fps if self.info else 0.0) or self.source.fps or 25.0
        if not math.isfinite(self.duration) or self.duration <= 0:
            raise VideoError(self.path, "cannot tell how long the video is")
        cut = needs_shots(self.request.mode, self.duration, self.request.clip_length)
        self.detector = ShotDetector(self.fps, self.request.shots) if cut else None
        if not cut:
            self.pending = _plan_at(self.request, self.duration, self.fps)

    def add(self, index: int, time: float, frame: np.ndarray) -> Iterator[SegmentClip]:
        """Take one decoded frame; yield the segments it completes."""
        self.times.append(time)
        if time >= self._keep_from() - _EPS:
            if self.buffered_bytes + frame.nbytes <= BUFFER_BYTES:
                self.buffer[index] = frame
                self.buffered_bytes += frame.nbytes
        if self.detector is not None:
            for cut in self.detector.feed(index, time, frame, bgr=self.source.bgr):
                self._close_shot(round(cut * self.fps) / self.fps)
        yield from self._emit(time)

    def _keep_from(self) -> float:
        starts = [s.start for s in self.pending]
        if self.detector is not None:
            starts.append(self.shot_start)
        return min(starts, default=math.inf)

    def _close_shot(self, end: float) -> None:
        if end <= self.shot_start + _EPS or end >= self.duration - _EPS:
            return
        shot = Segment(self.shot_start, end)
        self.pending += self._split(shot)
        self.shot_start = end

    def _split(self, shot: Segment) -> list[Segment]:
        if self.request.mode == "auto":
            return split_long([shot], self.request.clip_length, self.fps)  # type: ignore[arg-type]
        return [shot]

    def _emit(self, reached: float, final: bool = False) -> Iterator[SegmentClip]:
        """Hand out the pending segments the pass has gone beyond (all of them when final)."""
        while self.pending and (final or reached >= self.pending[0].end - _EPS):
            segment = self.pending.pop(0)
            clip = self._take(segment)
            if clip is None:
                self.overflow.append(segment)
            else:
                self.done.append(segment)
                yield clip
        keep_from = self._keep_from()
        while self.buffer and self.times[next(iter(self.buffer))] < keep_from - _EPS:
            self.buffered_bytes -= self.buffer.popitem(last=False)[1].nbytes

    def _take(self, segment: Segment) -> SegmentClip | None:
        first, last = window_frame_range(self.times, self.duration, segment.start, segment.end)
        indices = [first + i for i in sample_frame_indices(last - first + 1, self.num_frames)]
        if any(i not in self.buffer for i in indices):
            return None
        frames = crop_frames(np.stack([self.buffer[i] for i in indices]), self.image_size)
        if self.source.bgr:  # resizing treats channels alike: swap them on the small crops
            frames = np.ascontiguousarray(frames[..., ::-1])
        return SegmentClip(segment, frames)

    def finish(self, broken: VideoError | None) -> Iterator[SegmentClip | SegmentsRead]:
        """After the last frame: close the last shot, clip at a break, hand out the rest."""
        if self.detector is not None:
            for cut in self.detector.cuts():
                if cut > self.shot_start + _EPS:
                    self._close_shot(round(cut * self.fps) / self.fps)
        decoded, error = self._decoded_end(broken)
        if self.detector is not None and decoded > self.shot_start + _EPS:
            self.pending += self._split(Segment(self.shot_start, decoded))
        self.pending = [Segment(s.start, min(s.end, decoded)) for s in self.pending
                        if s.start < decoded - _EPS]
        self.duration = min(self.duration, decoded) if error else self.duration
        yield from self._emit(decoded, final=True)
        yield from self._read_overflow()
        order = sorted(self.done, key=lambda s: s.start)
        yield SegmentsRead(order, self.duration, self.fps, error)

    def _decoded_end(self, broken: VideoError | None) -> tuple[float, str | None]:
        """Where the decoded part ends (seconds), and the error when that is short of the
        whole video."""
        if not self.times:
            raise broken or VideoError(self.path, "no decodable frames")
        end = self.times[-1] + 1 / self.fps
        expected = self.info.num_frames if self.info else round(self.duration * self.fps)
        if broken is None and len(self.times) >= expected:
            return self.duration, None
        reason = broken.reason if broken else "truncated or corrupt data"
        return min(end, self.duration), (
            f"{self.path}: {reason}: decoding stopped at {end:.3f} s (frame {len(self.times)} "
            f"of {expected}, {self.duration:.3f} s); the captions cover the part before")

    def _read_overflow(self) -> Iterator[SegmentClip]:
        """Segments whose frames did not fit in the buffer: read again, seeking."""
        for segment in self.overflow:
            log.debug("%s: reading [%.3f, %.3f] s again (buffer full)", self.path,
                      segment.start, segment.end)
            sampled = read_sampled(self.path, self.num_frames, start=segment.start,
                                   end=segment.end)
            self.done.append(segment)
            yield SegmentClip(segment, crop_frames(sampled.frames, self.image_size))


def _plan_at(request: SegmentRequest, duration: float, fps: float) -> list[Segment]:
    """`plan_segments` for a mode that needs no cuts."""
    return plan_segments(request.mode, duration, fps, clip_length=request.clip_length,
                         window=request.window, stride=request.stride)
