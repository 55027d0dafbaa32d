"""The Shapes world (DESIGN.md): synthetic clips of coloured shapes that move, grow or shrink.

Each clip is 16 frames at 8 fps, 64x64 px by default, background RGB (20, 20, 20), one object (two
of different colours in pair mode). Objects have size s = side / 8: a circle of radius s, a square
of side 2s, an upward triangle of base 2s and height 2s, centred on the motion's point (x, y).
Motions are linear in time from the first frame to the last: `left` (x 0.75 -> 0.25 of the side),
`right`, `up` (y 0.75 -> 0.25), `down`, the other coordinate fixed and drawn from [0.3, 0.7];
`grows` (0.5 s -> 1.5 s) and `shrinks` in place (x and y drawn from [0.3, 0.7]). Each position
endpoint is jittered by up to +-0.05 of the side; sizes are not (a jitter of 0.05 of the side is
+-40% of s and would make a 0.5 s object vanish at 64 px).

Held-out (colour, shape) pairs appear only in the test split, where every even-numbered clip has
one (so seen and held-out compositions are measured on equal footing). In pair clips the second
object is always a seen pair and never overlaps the first.

Rendering is exact and deterministic: 4x4 supersampled coverage per pixel, blended in integers.
Clip `j` of a split draws everything from `numpy.random.default_rng([seed, split, j])`, so the
result does not depend on the number of workers or on the sizes of the other splits.

This module renders the world and records it (`attributes.jsonl`); judging captions against those
records (parsing, attribute and direction accuracy, attention peaks) is
`vidcap.evaluation.shapes`.
"""

from __future__ import annotations

import itertools
import json
import math
import multiprocessing
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from vidcap.data.manifest import SPLITS, VideoRecord, iter_json_lines, write_manifest
from vidcap.errors import ConfigError, DatasetError
from vidcap.files import write_lines
from vidcap.video import write_video

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 50, 50), "green": (50, 200, 80), "blue": (60, 100, 230),
    "yellow": (230, 210, 60), "white": (235, 235, 235),
}
BACKGROUND = (20, 20, 20)
SHAPES = ("circle", "square", "triangle")
MOTIONS = ("left", "right", "up", "down", "grows", "shrinks")
HELD_OUT_PAIRS = frozenset({("red", "triangle"), ("blue", "circle"), ("green", "square"),
                            ("yellow", "circle"), ("white", "triangle")})
SEEN_PAIRS = tuple(p for p in itertools.product(COLOURS, SHAPES) if p not in HELD_OUT_PAIRS)
DEFAULT_SPLITS = (2000, 200, 400)
ATTRIBUTES = "attributes.jsonl"
"""The file beside a Shapes manifest recording every clip's objects (per-frame boxes too)."""
JITTER = 0.05
SUPERSAMPLE = 4  # coverage samples per pixel side

TEMPLATES: dict[str, tuple[str, ...]] = {  # {o} is "colour shape"
    "left": ("a {o} moves to the left", "the {o} is moving left", "a {o} slides left",
             "a {o} travels from right to left", "the {o} goes left"),
    "right": ("a {o} moves to the right", "the {o} is moving right", "a {o} slides right",
              "a {o} travels from left to right", "the {o} goes right"),
    "up": ("a {o} moves up", "the {o} is moving up", "a {o} slides up",
           "a {o} travels from bottom to top", "the {o} rises"),
    "down": ("a {o} moves down", "the {o} is moving down", "a {o} slides down",
             "a {o} travels from top to bottom", "the {o} falls"),
    "grows": ("a {o} grows", "the {o} gets bigger", "a {o} is growing", "the {o} becomes larger",
              "a {o} expands"),
    "shrinks": ("a {o} shrinks", "the {o} gets smaller", "a {o} is shrinking",
                "the {o} becomes smaller", "a {o} contracts"),
}


def check_frames(size: int, fps: int) -> None:
    """ConfigError unless frames are at least 16 px and the rate at least 1 fps."""
    if size < 16:
        raise ConfigError(f"shapes size must be at least 16 px, got {size}")
    if fps < 1:
        raise ConfigError(f"shapes fps must be at least 1, got {fps}")


@dataclass(frozen=True)
class ShapesSpec:
    """How to generate a Shapes set."""

    size: int = 64
    """Frame side in pixels (frames are square)."""
    num_frames: int = 16
    """Frames per clip."""
    fps: int = 8
    """Frame rate of the written videos."""
    seed: int = 0
    """Seed of every random draw; the same seed gives the same manifest and frames."""
    pair_fraction: float = 0.0
    """Fraction of clips with two objects of different colours."""

    def __post_init__(self) -> None:
        check_frames(self.size, self.fps)
        if self.num_frames < 2:
            raise ConfigError(f"shapes num_frames must be at least 2, got {self.num_frames}")
        if not 0.0 <= self.pair_fraction <= 1.0:
            raise ConfigError(f"shapes pair_fraction must be in [0, 1], got {self.pair_fraction}")


@dataclass(frozen=True)
class ObjectPlan:
    """One object's appearance and trajectory; positions are fractions of the frame side."""

    colour: str
    shape: str
    motion: str
    start: tuple[float, float]
    end: tuple[float, float]
    scale: tuple[float, float] = (1.0, 1.0)
    """Size at the first and last frame, in units of s = side / 8."""

    def at(self, t: int, num_frames: int, side: int) -> tuple[float, float, float]:
        """Centre x, centre y and half-extent s of frame t, in pixels."""
        u = t / (num_frames - 1)
        x = (self.start[0] + (self.end[0] - self.start[0]) * u) * side
        y = (self.start[1] + (self.end[1] - self.start[1]) * u) * side
        s = (self.scale[0] + (self.scale[1] - self.scale[0]) * u) * side / 8
        return x, y, s


@dataclass(frozen=True)
class ShapeObject:
    """An object as recorded in attributes.jsonl."""

    colour: str
    shape: str
    motion: str
    bboxes: list[list[float]]
    """Per frame [x0, y0, x1, y1] in pixels; pixel (row i, col j) covers [j, j+1) x [i, i+1)."""


@dataclass(frozen=True)
class ClipAttributes:
    video_id: str
    split: str
    held_out: bool
    """Whether any object is a held-out (colour, shape) pair."""
    objects: list[ShapeObject]


# ---------------------------------------------------------------------------------------------
# drawing


def _coverage(shape: str, x: float, y: float, s: float, side: int) -> tuple[int, int, np.ndarray]:
    """Top, left and the integer coverage (0..SUPERSAMPLE**2) of the pixels the shape touches."""
    left, top = max(0, math.floor(x - s)), max(0, math.floor(y - s))
    right, bottom = min(side, math.ceil(x + s)), min(side, math.ceil(y + s))
    offsets = (np.arange(SUPERSAMPLE) + 0.5) / SUPERSAMPLE
    dx = (np.arange(left, right)[:, None] + offsets).reshape(1, -1) - x
    dy = (np.arange(top, bottom)[:, None] + offsets).reshape(-1, 1) - y
    if shape == "circle":
        inside = dx * dx + dy * dy <= s * s
    elif shape == "square":
        inside = (np.abs(dx) <= s) & (np.abs(dy) <= s)
    elif shape == "triangle":  # apex (x, y - s), base from (x - s, y + s) to (x + s, y + s)
        inside = (dy >= -s) & (dy <= s) & (np.abs(dx) <= (dy + s) / 2)
    else:
        raise ValueError(f"unknown shape {shape!r}")
    h, w = bottom - top, right - left
    return top, left, inside.reshape(h, SUPERSAMPLE, w, SUPERSAMPLE).sum(axis=(1, 3))


def render_clip(objects: Sequence[ObjectPlan], size: int = 64,
                num_frames: int = 16) -> tuple[np.ndarray, list[ShapeObject]]:
    """Draw the objects: uint8 (T, S, S, 3) frames and each object's per-frame bounding boxes."""
    frames = np.empty((num_frames, size, size, 3), np.int32)
    frames[:] = BACKGROUND
    full = SUPERSAMPLE * SUPERSAMPLE
    boxes: list[list[list[float]]] = [[] for _ in objects]
    for t in range(num_frames):
        for plan, obj_boxes in zip(objects, boxes):
            x, y, s = plan.at(t, num_frames, size)
            top, left, cover = _coverage(plan.shape, x, y, s, size)
            region = frames[t, top:top + cover.shape[0], left:left + cover.shape[1]]
            c = cover[..., None]
            colour = np.array(COLOURS[plan.colour])
            region[:] = (region * (full - c) + colour * c + full // 2) // full
            obj_boxes.append([round(x - s, 3), round(y - s, 3), round(x + s, 3), round(y + s, 3)])
    described = [ShapeObject(p.colour, p.shape, p.motion, b) for p, b in zip(objects, boxes)]
    return frames.astype(np.uint8), described


# ---------------------------------------------------------------------------------------------
# sampling clips


def draw_trajectory(rng: np.random.Generator, motion: str) -> tuple[tuple, tuple, tuple]:
    """(start, end, scale) of a motion, with jittered endpoints (fractions of the side)."""
    def jit(value: float) -> float:
        return value + rng.uniform(-JITTER, JITTER)

    fixed = rng.uniform(0.3, 0.7)
    if motion in ("left", "right"):
        a, b = (0.75, 0.25) if motion == "left" else (0.25, 0.75)
        return (jit(a), fixed), (jit(b), fixed), (1.0, 1.0)
    if motion in ("up", "down"):
        a, b = (0.75, 0.25) if motion == "up" else (0.25, 0.75)
        return (fixed, jit(a)), (fixed, jit(b)), (1.0, 1.0)
    point = (fixed, rng.uniform(0.3, 0.7))
    return point, point, (0.5, 1.5) if motion == "grows" else (1.5, 0.5)


def _draw_object(rng: np.random.Generator, pairs: Sequence[tuple[str, str]]) -> ObjectPlan:
    colour, shape = pairs[rng.integers(len(pairs))]
    motion = MOTIONS[rng.integers(len(MOTIONS))]
    start, end, scale = draw_trajectory(rng, motion)
    return ObjectPlan(colour, shape, motion, start, end, scale)


def _overlap(a: ObjectPlan, b: ObjectPlan, num_frames: int) -> bool:
    """Whether the objects' boxes (plus a 0.02 margin) meet in any frame (unit-side coordinates)."""
    for t in range(num_frames):
        (xa, ya, sa), (xb, yb, sb) = a.at(t, num_frames, 1), b.at(t, num_frames, 1)
        if abs(xa - xb) < sa + sb + 0.02 and abs(ya - yb) < sa + sb + 0.02:
            return True
    return False


def plan_clip(spec: ShapesSpec, split: str, index: int) -> list[ObjectPlan]:
    """The objects of clip `index` of `split`: a pure function of (spec, split, index)."""
    rng = np.random.default_rng([spec.seed, SPLITS.index(split), index])
    is_pair = rng.random() < spec.pair_fraction
    is_held_out = split == "test" and index % 2 == 0
    first = _draw_object(rng, sorted(HELD_OUT_PAIRS) if is_held_out else SEEN_PAIRS)
    if not is_pair:
        return [first]
    others = [p for p in SEEN_PAIRS if p[0] != first.colour]
    for _ in range(200):
        second = _draw_object(rng, others)
        if not _overlap(first, second, spec.num_frames):
            return [first, second]
    return [first]  # practically unreachable; keeps the clip valid


def captions_for(objects: Sequence[ObjectPlan | ShapeObject]) -> list[str]:
    """One caption per template; pair clips join the objects' captions with " and "."""
    per_object = [[tpl.format(o=f"{o.colour} {o.shape}") for tpl in TEMPLATES[o.motion]]
                  for o in objects]
    return [" and ".join(parts) for parts in zip(*per_object)]


# ---------------------------------------------------------------------------------------------
# preparing a set


def split_counts(videos: int | None = None,
                 splits: tuple[int, int, int] | None = None) -> tuple[int, int, int]:
    """Clips per split: `splits` as given, or `videos` in the default 2000/200/400 proportions."""
    if videos is not None and splits is not None:
        raise ConfigError("give the number of videos or the split sizes, not both")
    if splits is not None:
        if len(splits) != 3 or min(splits) < 0 or sum(splits) == 0:
            raise ConfigError(f"split sizes must be three non-negative counts, got {splits}")
        return tuple(int(n) for n in splits)  # type: ignore[return-value]
    if videos is None:
        return DEFAULT_SPLITS
    if videos < 1:
        raise ConfigError(f"the number of videos must be at least 1, got {videos}")
    total = sum(DEFAULT_SPLITS)
    val, test = (max(1, round(videos * n / total)) if videos >= 3 else 0
                 for n in DEFAULT_SPLITS[1:])
    return videos - val - test, val, test


def _make_clip(job: tuple[str, int], out: Path, spec: ShapesSpec) -> tuple[dict, dict]:
    split, index = job
    video_id = f"shapes-{split}-{index:05d}"
    plans = plan_clip(spec, split, index)
    frames, objects = render_clip(plans, spec.size, spec.num_frames)
    relative = f"videos/{video_id}.mp4"
    write_video(out / relative, frames, spec.fps)
    record = VideoRecord(video_id, relative, split, captions_for(plans))
    attributes = {"video_id": video_id, "split": split,
                  "held_out": any((o.colour, o.shape) in HELD_OUT_PAIRS for o in objects),
                  "objects": [asdict(o) for o in objects]}
    return record.to_json(), attributes


def prepare_shapes(out: str | Path, spec: ShapesSpec, *, videos: int | None = None,
                   splits: tuple[int, int, int] | None = None, workers: int = 1) -> Path:
    """Render a Shapes set into `out`: videos/<id>.mp4, attributes.jsonl and manifest.jsonl.

    Returns the manifest's path. The manifest is written last, atomically: its presence means the
    set is complete. `workers` > 1 renders in that many processes, with the same result.
    """
    out = Path(out)
    counts = split_counts(videos, splits)
    jobs = [(split, i) for split, n in zip(SPLITS, counts) for i in range(n)]
    (out / "videos").mkdir(parents=True, exist_ok=True)
    results = map_jobs(partial(_make_clip, out=out, spec=spec), jobs, workers, "clip")
    write_lines(out / ATTRIBUTES, [json.dumps(a) for _, a in results])
    return write_manifest([VideoRecord(**_record_fields(r)) for r, _ in results],
                          out / "manifest.jsonl")


def map_jobs(make: Callable[[Any], Any], jobs: Sequence[Any], workers: int, unit: str) -> list:
    """`[make(job) for job in jobs]` in order, in `workers` spawned processes when > 1, with a
    progress bar on a terminal."""
    results = []
    with tqdm(total=len(jobs), desc="shapes", unit=unit, disable=None) as bar:
        if workers <= 1:
            for job in jobs:
                results.append(make(job))
                bar.update()
            return results
        chunk = max(1, min(16, len(jobs) // workers))
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            for result in pool.imap(make, jobs, chunksize=chunk):
                results.append(result)
                bar.update()
    return results


def _record_fields(line: dict) -> dict:
    return {k: line[k] for k in ("video_id", "path", "split", "captions", "start", "end")}


def attributes_beside(manifest: str | Path) -> Path | None:
    """The Shapes attribute record kept beside a manifest, when there is one."""
    candidate = Path(manifest).parent / ATTRIBUTES
    return candidate if candidate.is_file() else None


def read_attributes(path: str | Path) -> dict[str, ClipAttributes]:
    """Read attributes.jsonl (or the folder holding it): {video_id: ClipAttributes}."""
    path = Path(path)
    if path.is_dir():
        path = path / ATTRIBUTES
    if not path.is_file():
        raise DatasetError(f"{path}: Shapes attributes file not found")
    clips: dict[str, ClipAttributes] = {}
    for lineno, data in iter_json_lines(path, DatasetError):
        try:
            objects = [ShapeObject(**o) for o in data["objects"]]
            clip = ClipAttributes(data["video_id"], data["split"], bool(data["held_out"]), objects)
        except (KeyError, TypeError) as err:
            raise DatasetError(f"{path}:{lineno}: malformed attributes line ({err})") from None
        clips[clip.video_id] = clip
    return clips
