"""Segments of a long video, captioned one at a time, and the shot cuts that bound them.

A model trained on short clips describes one short clip well; a long video is cut into segments
of about that length, each captioned from frames sampled inside it (as in training), and
neighbouring segments with the same caption merge into one cue. Modes (`plan_segments`):

- `none`: the whole video, one segment;
- `fixed`: windows of `window` seconds every `stride` seconds (`fixed_windows`);
- `shots`: the shots between scene cuts (`segments_between_cuts`), cuts found by PySceneDetect's
  adaptive content detector (`ShotDetector`, `detect_shots`);
- `auto`: the whole video when it is at most `AUTO_LONG_FACTOR` times the run's typical clip
  length, else the shots, each shot longer than that split into the fewest equal parts no longer
  than that (`split_long`): every segment lasts between one and two clip lengths, or is a whole
  shot.

Boundaries sit at frame timestamps (frame k at k / fps; the last segment ends at the video's
duration), so a segment is exactly the frames `vidcap.video.read_sampled(path, T, start=, end=)`
reads for it.

Shot detection can be fed frames one at a time from any decode pass (`ShotDetector.feed`), so the
caption pass that decodes a video once can find its cuts on the way (fed `shot_frame`'s small
copies); `detect_shots` runs such a pass of its own for callers without one.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import numpy as np

from vidcap.errors import ConfigError
from vidcap.video import Picture, iter_frames

log = logging.getLogger(__name__)

SEGMENT_MODES = ("auto", "shots", "fixed", "none")
AUTO_LONG_FACTOR = 2.0
"""`auto` cuts a video into segments, and a shot into parts, only when it is longer than this many
typical clips."""
_EPS = 1e-6  # seconds: boundaries this close count as touching
_SPLIT_SLACK = 1e-9
"""A shot exactly AUTO_LONG_FACTOR clip lengths long (up to float error) stays whole."""


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
    """Each shot split into the fewest equal parts no longer than `AUTO_LONG_FACTOR` clip
    lengths, n = ceil(length / (AUTO_LONG_FACTOR * clip_length)): the rule `auto` applies to a
    whole video, applied to each shot. A shot up to twice the trained length stays whole (what
    the model was trained to describe: one event from start to end, seen in full), and the parts
    of a longer one last between one and two clip lengths, never less than the model was trained
    to see. Inner boundaries snap to frames; a shot is never split below one frame a part."""
    clip_length = _seconds("clip length", clip_length)
    if not math.isfinite(fps) or fps <= 0:
        raise ValueError(f"fps must be a positive number, got {fps}")
    parts: list[Segment] = []
    for shot in shots:
        first, last = round(shot.start * fps), round(shot.end * fps)
        frames = max(1, last - first)
        n = min(frames, max(1, math.ceil(shot.duration / (AUTO_LONG_FACTOR * clip_length)
                                         - _SPLIT_SLACK)))
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


SHOT_FRAME_SIDE = 256
"""Longest side, in pixels, of the frames the shot detector compares: PySceneDetect's own
SceneManager downscales wider frames to this width (its `DEFAULT_MIN_WIDTH`) before detecting,
the same size for landscape video."""


def shot_frame(picture: Picture, params: ShotParams) -> np.ndarray:
    """What the shot detector compares of a decoded picture, made by the decoder's scaler at
    `SHOT_FRAME_SIDE` (area-averaged, never enlarged): its HSV value plane (max(R, G, B),
    uint8 (h, w)) for luma-only parameters, else its RGB (h, w, 3). Every pass that feeds a
    `ShotDetector` (the caption pass, `detect_shots`) hands it this, so they find the same cuts."""
    return picture.small(SHOT_FRAME_SIDE, "value" if params.luma_only else "rgb")


class ShotDetector:
    """Finds hard cuts in frames fed one at a time, in presentation order, from any decode pass.

    >>> detector = ShotDetector(fps=8.0)
    >>> for index, time, frame in frames:      # uint8 (H, W, 3) RGB, or what `shot_frame` gives
    ...     detector.feed(index, time, frame)
    >>> detector.cuts()                        # seconds: the first frame of each new shot

    A cut is reported `params.window` frames after its frame has been fed. Frames wider or taller
    than `SHOT_FRAME_SIDE` are downscaled first (bilinear), as PySceneDetect's own SceneManager
    does; a pass does better to hand over `shot_frame`'s small copies, made by the decoder's
    scaler for a fraction of the cost of a full-size RGB frame.
    """

    def __init__(self, fps: float, params: ShotParams | None = None) -> None:
        from scenedetect.detectors import AdaptiveDetector  # OpenCV loads only when needed

        if not math.isfinite(fps) or fps <= 0:
            raise ValueError(f"fps must be a positive number, got {fps}")
        self.params = params or ShotParams()
        self.fps = float(fps)
        kind = _value_detector() if self.params.luma_only else AdaptiveDetector
        self._detector = kind(
            adaptive_threshold=self.params.threshold, min_content_val=self.params.min_content,
            min_scene_len=max(1, round(self.params.min_shot * fps)),
            window_width=self.params.window, luma_only=self.params.luma_only)
        self._times: dict[int, float] = {}
        self._cuts: list[float] = []
        self._last: int | None = None
        self._finished = False

    def feed(self, index: int, time: float, frame: np.ndarray, *, bgr: bool = False
             ) -> list[float]:
        """Take frame `index` (shown at `time` seconds): uint8 (H, W, 3) RGB (`bgr`: in OpenCV's
        BGR order), or for luma-only parameters its uint8 (H, W) HSV value plane (`shot_frame`).
        Returns the cuts it settled (each `params.window` frames back)."""
        from scenedetect import FrameTimecode

        if self._finished:
            raise RuntimeError("ShotDetector.feed after cuts(): make a new detector per video")
        if self._last is not None and index <= self._last:
            raise ValueError(f"frames must come in order: frame {index} after {self._last}")
        prepared = self._prepare(frame, bgr)
        self._last = index
        self._times[index] = float(time)
        found = self._detector.process_frame(FrameTimecode(index, self.fps), prepared)
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

    def _prepare(self, frame: np.ndarray, bgr: bool) -> np.ndarray:
        """The frame as the library's detector takes it: at most `SHOT_FRAME_SIDE` pixels, and
        its HSV value plane (luma-only) or BGR."""
        import cv2
        from scenedetect.scene_manager import compute_downscale_factor

        colour = frame.ndim == 3 and frame.shape[2] == 3
        if frame.dtype != np.uint8 or not (colour or frame.ndim == 2):
            raise ValueError(f"expected a uint8 (H, W, 3) frame or (H, W) value plane, got "
                             f"{frame.dtype} {tuple(frame.shape)}")
        if not colour and not self.params.luma_only:
            raise ValueError("shot parameters that compare hue and saturation need colour frames")
        height, width = frame.shape[:2]
        factor = compute_downscale_factor(max(width, height), SHOT_FRAME_SIDE)
        if factor > 1:
            size = (max(1, round(width / factor)), max(1, round(height / factor)))
            frame = cv2.resize(frame, size, interpolation=cv2.INTER_LINEAR)
        if self.params.luma_only:  # the HSV value: the largest channel, in RGB or BGR alike
            return np.ascontiguousarray(frame) if not colour else _value_plane(frame)
        return frame if bgr else cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)


def _value_plane(frame: np.ndarray) -> np.ndarray:
    value = np.maximum(frame[..., 0], frame[..., 1])
    return np.maximum(value, frame[..., 2], out=value)


@functools.cache
def _value_detector() -> type:
    """PySceneDetect's `AdaptiveDetector` taking HSV value planes instead of BGR frames (made on
    first use: the library loads OpenCV)."""
    import cv2
    from scenedetect.detectors import AdaptiveDetector

    class ValueAdaptiveDetector(AdaptiveDetector):
        """With luma_only=True the library scores a frame as the mean absolute change of its
        HSV value plane, which it gets by converting a BGR frame to HSV (and then scores hue and
        saturation too, weighted 0). Fed the value plane itself, this scores only that, through
        the library's scoring hook; the adaptive window, `min_content` and minimum shot length
        stay the library's. A test checks the cuts agree with the library's own path."""

        _last_value: np.ndarray | None = None

        def _calculate_frame_score(self, timecode: object, frame_img: np.ndarray) -> float:
            last, self._last_value = self._last_value, frame_img
            if last is None:
                return 0.0
            return cv2.norm(frame_img, last, cv2.NORM_L1) / frame_img.size

    return ValueAdaptiveDetector


def detect_shots(path: str | Path, params: ShotParams | None = None) -> list[float]:
    """Cut times (seconds) of a video file, from a decode pass of its own (`iter_frames`, the
    detector fed `shot_frame` copies).

    For a caller that decodes the video anyway (captioning), feeding a `ShotDetector` from that
    pass saves this one. Frames a damaged file's decoder gives back late are skipped.
    """
    path = Path(path)
    params = params or ShotParams()
    with iter_frames(path, rgb=False, keep_pictures=True) as frames:
        detector = ShotDetector(frames.info.fps or 25.0, params)
        last = -1
        for frame in frames:
            if frame.index > last and frame.picture is not None:
                detector.feed(frame.index, frame.time, shot_frame(frame.picture, params))
                last = frame.index
        cuts = detector.cuts()
        log.debug("%s: %d cuts in %d frames", path, len(cuts), frames.info.num_frames)
    return cuts
