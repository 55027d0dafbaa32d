"""Segments of a long video, captioned one at a time, and the shot cuts that bound them.

A model trained on short clips describes one short clip well; a long video is cut into segments
of about that length, each captioned from frames sampled inside it (as in training), and
neighbouring segments with the same caption merge into one cue. Modes (`plan_segments`):

- `none`: the whole video, one segment;
- `fixed`: windows of `window` seconds every `stride` seconds (`fixed_windows`);
- `shots`: the shots between scene cuts (`segments_between_cuts`), cuts found by PySceneDetect's
  adaptive content detector (`ShotDetector`, `detect_shots`);
- `auto`: the whole video when it is at most `AUTO_LONG_FACTOR` times the run's typical clip
  length, else the shots, each shot longer than that length split into parts of about it
  (`split_long`).

Boundaries sit at frame timestamps (frame k at k / fps; the last segment ends at the video's
duration), so a segment is exactly the frames `vidcap.video.read_sampled(path, T, start=, end=)`
reads for it.

Shot detection can be fed frames one at a time from any decode pass (`ShotDetector.feed`), so the
caption pass that decodes a video once can find its cuts on the way; `detect_shots` runs a pass of
its own (PySceneDetect's PyAV reader) for callers without one.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from vidcap.errors import ConfigError, VideoError

if TYPE_CHECKING:  # OpenCV and PySceneDetect load only when shots are detected
    from scenedetect.backends.pyav import VideoStreamAv

log = logging.getLogger(__name__)

SEGMENT_MODES = ("auto", "shots", "fixed", "none")
AUTO_LONG_FACTOR = 2.0
"""`auto` cuts a video into segments only when it is longer than this many typical clips."""
_EPS = 1e-6  # seconds: boundaries this close count as touching


@dataclass(frozen=True)
class Segment:
    """A stretch of video to caption, in seconds from its first frame: [start, end)."""

    start: float
    end: float

    def __post_init__(self) -> None:
        if not (self.start >= 0 and self.end > self.start):
            raise ValueError(f"a segment needs 0 <= start < end, got [{self.start}, {self.end}]")

    @property
    def duration(self) -> float:
        """end - start, seconds."""
        return self.end - self.start


@dataclass(frozen=True)
class Cue:
    """A caption shown from `start` to `end` seconds (one or more merged segments)."""

    start: float
    end: float
    text: str


# ---------------------------------------------------------------------------------------------
# frame arithmetic: plans are made in whole frames, then turned into seconds


def _check_timeline(duration: float, fps: float) -> None:
    if not math.isfinite(duration) or duration < 0:
        raise ValueError(f"duration must be a finite number >= 0, got {duration}")
    if not math.isfinite(fps) or fps <= 0:
        raise ValueError(f"fps must be a positive number, got {fps}")


def _frame_count(duration: float, fps: float) -> int:
    return max(1, round(duration * fps))


def _segments_from_bounds(bounds: Sequence[tuple[int, int]], duration: float,
                          fps: float) -> list[Segment]:
    """Frame ranges [a, b) -> Segments; frame n (the end of the video) is at `duration`."""
    n = _frame_count(duration, fps)

    def time(frame: int) -> float:
        return duration if frame >= n else frame / fps

    return [Segment(time(a), time(b)) for a, b in bounds]


def _seconds(name: str, value: float | None) -> float:
    if value is None or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"segment {name} must be a positive number of seconds, got {value}")
    return float(value)


# ---------------------------------------------------------------------------------------------
# planning


def segments_between_cuts(cuts: Iterable[float], duration: float, fps: float) -> list[Segment]:
    """The shots of a video: segments between consecutive cuts (seconds, each snapped to the
    nearest frame; cuts at or outside the video's ends are ignored). No cut: the whole video."""
    _check_timeline(duration, fps)
    if duration <= 0:
        return []
    n = _frame_count(duration, fps)
    frames = sorted({k for k in (round(c * fps) for c in cuts) if 0 < k < n})
    edges = [0, *frames, n]
    return _segments_from_bounds(list(pairwise(edges)), duration, fps)


def fixed_windows(duration: float, window: float, stride: float, fps: float) -> list[Segment]:
    """Windows of `window` seconds starting every `stride` seconds, in whole frames.

    A video no longer than one window is one segment. Windows stop at the first one that reaches
    the end (clipped there). A last window shorter than half a window is folded into the one
    before when the two touch or overlap (stride <= window); with stride > window the windows
    leave gaps, and a short last window is kept as it is. A zero-length video has no segments.
    """
    _check_timeline(duration, fps)
    window, stride = _seconds("window", window), _seconds("stride", stride)
    if duration <= 0:
        return []
    n = _frame_count(duration, fps)
    w, s = max(1, round(window * fps)), max(1, round(stride * fps))
    bounds: list[tuple[int, int]] = []
    for start in range(0, n, s):
        bounds.append((start, min(start + w, n)))
        if start + w >= n:
            break
    if len(bounds) > 1 and 2 * (bounds[-1][1] - bounds[-1][0]) < w and s <= w:
        bounds.pop()
        bounds[-1] = (bounds[-1][0], n)
    return _segments_from_bounds(bounds, duration, fps)


def split_long(shots: Sequence[Segment], clip_length: float, fps: float) -> list[Segment]:
    """Each shot split into n = max(1, round(length / clip_length)) equal parts (halves rounded
    up), inner boundaries snapped to frames; a shot is never split below one frame a part."""
    clip_length = _seconds("clip length", clip_length)
    if not math.isfinite(fps) or fps <= 0:
        raise ValueError(f"fps must be a positive number, got {fps}")
    parts: list[Segment] = []
    for shot in shots:
        first, last = round(shot.start * fps), round(shot.end * fps)
        frames = max(1, last - first)
        n = min(frames, max(1, math.floor(shot.duration / clip_length + 0.5)))
        inner = [(first + math.floor(i * frames / n + 0.5)) / fps for i in range(1, n)]
        edges = [shot.start, *inner, shot.end]
        parts += [Segment(a, b) for a, b in pairwise(edges)]
    return parts


def needs_shots(mode: str, duration: float, clip_length: float | None) -> bool:
    """Whether `plan_segments(mode, ...)` will use cuts (so the decode pass should look for them)."""
    if mode not in SEGMENT_MODES:
        raise ConfigError(f"unknown segment mode {mode!r} (expected one of "
                          f"{', '.join(SEGMENT_MODES)})")
    if mode == "auto":
        return duration > AUTO_LONG_FACTOR * _seconds("clip length", clip_length)
    return mode == "shots"


def plan_segments(mode: str, duration: float, fps: float, *, cuts: Iterable[float] = (),
                  clip_length: float | None = None, window: float | None = None,
                  stride: float | None = None) -> list[Segment]:
    """The segments of a video of `duration` seconds at `fps` for a `--segments` mode.

    `cuts` (seconds) are used by `shots` and `auto`; `clip_length` is the run's typical training
    clip duration (seconds), needed by `auto` and the default `window` of `fixed`; `stride`
    defaults to the window (tiling).
    """
    _check_timeline(duration, fps)
    uses_shots = needs_shots(mode, duration, clip_length)  # checks the mode (and auto's length)
    if duration <= 0:
        return []
    if mode == "fixed":
        window = window if window is not None else clip_length
        if window is None:
            raise ConfigError("fixed segments need a window length (or the run's clip length)")
        return fixed_windows(duration, window, stride if stride is not None else window, fps)
    if not uses_shots:
        return [Segment(0.0, duration)]
    shots = segments_between_cuts(cuts, duration, fps)
    if mode == "shots":
        return shots
    return split_long(shots, clip_length, fps)  # type: ignore[arg-type]  # auto: checked above


def _normalise(text: str) -> str:
    return " ".join(text.lower().split())


def merge_same_captions(segments: Sequence[Segment], captions: Sequence[str]) -> list[Cue]:
    """Cues from captioned segments (in time order): neighbours that touch or overlap and whose
    captions are the same up to case and whitespace become one cue (the first one's wording).
    Cues that still overlap (overlapping windows with different captions) meet half way, so at
    most one cue is on screen at a time."""
    if len(segments) != len(captions):
        raise ValueError(f"{len(segments)} segments but {len(captions)} captions")
    cues: list[Cue] = []
    for segment, caption in zip(segments, captions):
        last = cues[-1] if cues else None
        if (last is not None and _normalise(last.text) == _normalise(caption)
                and segment.start <= last.end + _EPS):
            cues[-1] = Cue(last.start, max(last.end, segment.end), last.text)
        else:
            cues.append(Cue(segment.start, segment.end, caption))
    for i in range(1, len(cues)):
        before, after = cues[i - 1], cues[i]
        if after.start < before.end:
            middle = (after.start + before.end) / 2
            cues[i - 1] = Cue(before.start, middle, before.text)
            cues[i] = Cue(middle, after.end, after.text)
    return cues


# ---------------------------------------------------------------------------------------------
# shot detection (PySceneDetect's AdaptiveDetector)


@dataclass(frozen=True)
class ShotParams:
    """PySceneDetect `AdaptiveDetector` parameters: a cut is a frame whose change from the frame
    before is large in itself (`min_content`) and large next to the changes of the frames around
    it (`threshold`).

    Tuned on long Shapes videos (8 fps, 64 and 128 px, 40 videos of seeds 5000 and 9000 each;
    checked on seeds 12000, 31337 and 2026), where a cut can be a tiny object giving way to
    another tiny object on a flat background: a change no larger than a large object's motion.
    The library's defaults (3.0, 15, hue + saturation + value, 15 frames) find 36-48% of those
    cuts; these find all of them on the tuning seeds and 98.6-100% on the others, with no false
    cut. Looser values (1.5, 2.0) do as well on the tuning seeds; the least eager values that
    find them all were kept, for natural footage, where a false cut costs less than a missed one
    anyway (same captions merge, and `auto` splits long shots regardless).
    """

    threshold: float = 2.0
    """`adaptive_threshold`: the frame's change over the mean change of the `window` frames on
    either side (library default 3.0: misses 2-3% of Shapes cuts)."""
    min_content: float = 3.0
    """`min_content_val`: the frame's change itself, a mean difference in 0..255 (library
    default 15, made for natural footage: misses 37% of Shapes cuts, which score 3-7)."""
    luma_only: bool = True
    """Compare brightness only (the HSV value channel): hue is noise in dark, grey pixels (the
    Shapes background, compression halos; shadows in real footage). With hue and saturation as
    well, about 1.5% of the detections at 64 px are false and up to 3% of the cuts missed."""
    min_shot: float = 0.5
    """`min_scene_len`, in seconds: no cut closer than this to the one before (the library's 15
    frames are 1.9 s at 8 fps, next to the 2 s of the shortest Shapes clip)."""
    window: int = 2
    """`window_width`: frames on either side averaged (library default; it must stay under half
    the shortest shot in frames: 8 at 8 fps)."""

    def __post_init__(self) -> None:
        if self.threshold <= 0 or self.min_content < 0 or self.min_shot < 0 or self.window < 1:
            raise ConfigError(f"shot detection parameters out of range: {self}")


class ShotDetector:
    """Finds hard cuts in frames fed one at a time, in presentation order, from any decode pass.

    >>> detector = ShotDetector(fps=8.0)
    >>> for index, time, frame in frames:      # uint8 (H, W, 3) RGB
    ...     detector.feed(index, time, frame)
    >>> detector.cuts()                        # seconds: the first frame of each new shot

    A cut is reported `params.window` frames after its frame has been fed. Frames wider or taller
    than 256 px are downscaled first, as PySceneDetect's own SceneManager does.
    """

    def __init__(self, fps: float, params: ShotParams | None = None) -> None:
        from scenedetect.detectors import AdaptiveDetector  # OpenCV loads only when needed

        if not math.isfinite(fps) or fps <= 0:
            raise ValueError(f"fps must be a positive number, got {fps}")
        self.params = params or ShotParams()
        self.fps = float(fps)
        self._detector = AdaptiveDetector(
            adaptive_threshold=self.params.threshold, min_content_val=self.params.min_content,
            min_scene_len=max(1, round(self.params.min_shot * fps)),
            window_width=self.params.window, luma_only=self.params.luma_only)
        self._times: dict[int, float] = {}
        self._cuts: list[float] = []
        self._last: int | None = None
        self._finished = False

    def feed(self, index: int, time: float, frame: np.ndarray, *, bgr: bool = False
             ) -> list[float]:
        """Take frame `index` (shown at `time` seconds, uint8 (H, W, 3) RGB); returns the cuts it
        settled (each `params.window` frames back). `bgr`: the frame is in OpenCV's BGR order
        already (PySceneDetect's readers)."""
        from scenedetect import FrameTimecode

        if self._finished:
            raise RuntimeError("ShotDetector.feed after cuts(): make a new detector per video")
        if self._last is not None and index <= self._last:
            raise ValueError(f"frames must come in order: frame {index} after {self._last}")
        self._last = index
        self._times[index] = float(time)
        found = self._detector.process_frame(FrameTimecode(index, self.fps),
                                             self._prepare(frame, bgr))
        new = [self._times[c.frame_num] for c in found]
        for old in [k for k in self._times if k < index - 4 * self.params.window - 2]:
            del self._times[old]
        self._cuts += new
        return new

    def cuts(self) -> list[float]:
        """All cut times (seconds), after flushing the detector; no more frames may be fed."""
        from scenedetect import FrameTimecode

        if not self._finished and self._last is not None:
            found = self._detector.post_process(FrameTimecode(self._last, self.fps))
            self._cuts += [self._times[c.frame_num] for c in found if c.frame_num in self._times]
        self._finished = True
        return list(self._cuts)

    @staticmethod
    def _prepare(frame: np.ndarray, bgr: bool) -> np.ndarray:
        import cv2
        from scenedetect.scene_manager import compute_downscale_factor

        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"expected a uint8 (H, W, 3) frame, got {frame.dtype} "
                             f"{tuple(frame.shape)}")
        height, width = frame.shape[:2]
        factor = compute_downscale_factor(max(width, height))
        if factor > 1:
            size = (max(1, round(width / factor)), max(1, round(height / factor)))
            frame = cv2.resize(frame, size, interpolation=cv2.INTER_LINEAR)
        return frame if bgr else cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)


def open_scene_stream(path: Path) -> VideoStreamAv:
    """PySceneDetect's PyAV reader (`VideoStreamAv`) on `path`; a VideoError naming the file
    when it cannot be opened."""
    from scenedetect.backends.pyav import VideoStreamAv
    from scenedetect.video_stream import VideoOpenFailure

    try:
        return VideoStreamAv(str(path), suppress_output=True)
    except (VideoOpenFailure, OSError, ValueError) as err:
        raise VideoError(path, f"cannot be opened for shot detection ({err})") from None


def stream_frames(stream: VideoStreamAv) -> Iterator[tuple[int, float, np.ndarray]]:
    """(index, seconds, BGR frame) of every frame an open `open_scene_stream` reader gives."""
    index = 0
    while (frame := stream.read()) is not False:
        yield index, stream.position.seconds, frame
        index += 1


def _scenedetect_frames(path: Path) -> Iterator[tuple[int, float, np.ndarray]]:
    """(index, seconds, BGR frame) of every frame, read by PySceneDetect's PyAV backend."""
    yield from stream_frames(open_scene_stream(path))


def detect_shots(path: str | Path, params: ShotParams | None = None) -> list[float]:
    """Cut times (seconds) of a video file, from a decode pass of its own.

    For a caller that decodes the video anyway (captioning), feeding a `ShotDetector` from that
    pass saves this one.
    """
    from vidcap.video import probe_video

    path = Path(path)
    info = probe_video(path)  # a VideoError naming the file when it is missing or not a video
    detector = ShotDetector(info.fps or 25.0, params)
    for index, time, frame in _scenedetect_frames(path):
        detector.feed(index, time, frame, bgr=True)
    cuts = detector.cuts()
    log.debug("%s: %d cuts in %d frames", path, len(cuts), info.num_frames)
    return cuts
