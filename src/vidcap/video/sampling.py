"""Which frames to read: segment-centre sampling in a clip or window, and how to group the
wanted frames into seek-and-decode runs. Pure index logic, no file is opened."""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Sequence


SEEK_COST_FRAMES = 4
"""What one seek costs, in decoded frames (flushing the decoder, restarting at a keyframe)."""
WINDOW_END_TOLERANCE_S = 0.5
"""A window may end this far past the last frame (annotation rounding); it is clipped there."""
_EPS = 1e-6  # seconds: timestamps this close count as equal


def sample_frame_indices(num_available: int, num_frames: int) -> list[int]:
    """Segment-centre sampling: frame i of T sits at the centre of the i-th of T equal segments
    of `num_available` frames, i.e. floor((i + 0.5) * n / T); repeats when n < T."""
    if num_available < 1:
        raise ValueError(f"need at least one frame to sample from, got {num_available}")
    if num_frames < 1:
        raise ValueError(f"num_frames must be at least 1, got {num_frames}")
    return [(2 * i + 1) * num_available // (2 * num_frames) for i in range(num_frames)]


def window_frame_range(times: Sequence[float], duration: float, start: float | None,
                       end: float | None) -> tuple[int, int]:
    """First and last (inclusive) frame index whose timestamp lies in [start, end) seconds.

    `times` are the sorted frame timestamps (seconds from the first frame). A window narrower than
    one frame gives the frame on screen at `start`. A window outside the video is a ValueError
    whose message says why; one ending less than `WINDOW_END_TOLERANCE_S` past the end is clipped.
    """
    if not times:
        raise ValueError("the video has no frames")
    s = 0.0 if start is None else float(start)
    e = duration if end is None else float(end)
    if not (math.isfinite(s) and math.isfinite(e)):
        raise ValueError(f"window [{s}, {e}] s is not a pair of finite numbers")
    if s < 0:
        raise ValueError(f"window start {s:g} s is negative")
    if s >= duration - _EPS:
        raise ValueError(f"window [{s:g}, {e:g}] s starts after the video ends ({duration:.3f} s)")
    if e <= s:
        raise ValueError(f"window end {e:g} s is not after its start {s:g} s")
    if e > duration + WINDOW_END_TOLERANCE_S:
        raise ValueError(f"window [{s:g}, {e:g}] s ends after the video ends ({duration:.3f} s)")
    first = bisect_left(times, s - _EPS)
    last = bisect_left(times, e - _EPS) - 1
    if last < first:
        first = last = max(bisect_right(times, s + _EPS) - 1, 0)
    return first, last


def select_frame_indices(times: Sequence[float], duration: float, num_frames: int,
                         start: float | None = None, end: float | None = None) -> list[int]:
    """The T frame indices `read_frames` returns: segment-centre sampling inside the window."""
    first, last = window_frame_range(times, duration, start, end)
    return [first + i for i in sample_frame_indices(last - first + 1, num_frames)]


def plan_decode_runs(targets: Sequence[int], keyframes: Sequence[int],
                     seek_cost: float = SEEK_COST_FRAMES) -> list[tuple[int, list[int]]]:
    """Group wanted frame indices into runs `(start_frame, [targets])`.

    Each run seeks to `start_frame` (the keyframe at or before its first target) and decodes
    forward through its targets. A target joins the current run when no keyframe lies between the
    decoder's position and it, or when decoding on (target - position frames) costs no more than
    seeking (target - keyframe frames + `seek_cost`). `keyframes` are sorted indices.
    """
    runs: list[tuple[int, list[int]]] = []
    position = -1
    for target in sorted(set(targets)):
        k = bisect_right(keyframes, target) - 1
        keyframe = keyframes[k] if k >= 0 else 0
        if runs and (keyframe <= position or target - position <= target - keyframe + seek_cost):
            runs[-1][1].append(target)
        else:
            runs.append((keyframe, [target]))
        position = target
    return runs
