"""Long Shapes videos: several Shapes clips joined by hard cuts, with their true segments.

The test world of segment captioning (`vidcap caption --segments`): each long video is 4 to 8
clips of the Shapes world (DESIGN.md: colours, sizes, motions, jitter, background, 8 fps, H.264),
one object a clip, joined without transition. Every clip has 16, 24 or 32 frames; its trajectory
is a function of t / (num_frames - 1), so a 32-frame clip covers the same path as a 16-frame one
twice as slowly. Neighbouring clips differ in colour, in shape and in motion, so every cut is
visible and every caption changes. Clips alternate between held-out (colour, shape) pairs and
seen ones (`(video + clip) % 2 == 0` is held out): half of all segments, seen and held-out pairs
on equal footing.

Every draw is deterministic: video `v` draws its number of clips and their lengths from
`default_rng([seed, LONG_STREAM, v])` and clip `j` its object from
`default_rng([seed, LONG_STREAM, v, j])` (given clip j - 1, which it must differ from). The
default seed (1000) and the stream tag keep these draws apart from the demo's clips (`plan_clip`,
seed 0, streams [seed, split]).

`prepare_long_shapes` writes into its folder:
- `videos/long-<v>.mp4`;
- `attributes.jsonl` and `manifest.jsonl`: one record per true segment (`long-<v>-s<j>`, the long
  video's path with its `start`/`end` window, split `test`), so `vidcap evaluate --manifest`
  scores a run on the true segments (an upper bound for segment captioning);
- `segments.jsonl` (`SEGMENTS_FILE`), one line per long video, written last:
  `{video_id, path, fps, num_frames, duration, segments: [{start, end, start_frame, end_frame,
  colour, shape, motion, held_out, captions}]}`; times in seconds (exact: frame / fps),
  `end_frame` exclusive.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from vidcap.data.manifest import VideoRecord, write_manifest
from vidcap.data.shapes import (ATTRIBUTES, HELD_OUT_PAIRS, MOTIONS, SEEN_PAIRS, ObjectPlan,
                                captions_for, check_frames, draw_trajectory, map_jobs,
                                render_clip)
from vidcap.errors import ConfigError
from vidcap.files import write_lines
from vidcap.video import write_video

LONG_SEED = 1000
"""Default seed of long videos: one the demo (seed 0) never uses."""
LONG_STREAM = 7_919
"""First-after-seed entry of every long-video RNG key (`plan_clip` uses split indices 0..2)."""
CLIP_LENGTHS = (16, 24, 32)
SEGMENTS_FILE = "segments.jsonl"


@dataclass(frozen=True)
class LongShapesSpec:
    """How to generate long Shapes videos."""

    size: int = 64
    """Frame side in pixels (frames are square)."""
    fps: int = 8
    """Frame rate of the written videos."""
    seed: int = LONG_SEED
    """Seed of every random draw; the same seed gives the same files, byte for byte."""
    clips: tuple[int, int] = (4, 8)
    """Fewest and most clips per long video (inclusive)."""
    clip_lengths: tuple[int, ...] = CLIP_LENGTHS
    """Frame counts a clip is drawn from."""

    def __post_init__(self) -> None:
        check_frames(self.size, self.fps)
        low, high = self.clips
        if not 1 <= low <= high:
            raise ConfigError(f"clips per long video must be 1 <= MIN <= MAX, got {low},{high}")
        if not self.clip_lengths or min(self.clip_lengths) < 2:
            raise ConfigError(f"clip lengths must be at least 2 frames, got {self.clip_lengths}")


@dataclass(frozen=True)
class LongClip:
    """One clip of a long video: its object, its length in frames, whether its pair is held out."""

    plan: ObjectPlan
    num_frames: int
    held_out: bool


@dataclass(frozen=True)
class TrueSegment:
    """One clip of a long video as recorded in segments.jsonl."""

    start: float
    """Seconds (start_frame / fps)."""
    end: float
    """Seconds (end_frame / fps)."""
    start_frame: int
    end_frame: int
    """Exclusive."""
    colour: str
    shape: str
    motion: str
    held_out: bool
    captions: list[str]


@dataclass(frozen=True)
class LongVideoTruth:
    """One line of segments.jsonl: a long video and its true segments."""

    video_id: str
    path: str
    """Relative to the folder of segments.jsonl, or absolute."""
    fps: float
    num_frames: int
    duration: float
    segments: list[TrueSegment] = field(default_factory=list)
    root: Path | None = None
    """Folder of the segments file it came from; a relative `path` resolves against it."""

    @property
    def video_path(self) -> Path:
        """The video file, resolved against the segments file's folder."""
        path = Path(self.path)
        return path if path.is_absolute() or self.root is None else self.root / path

    @property
    def cuts(self) -> list[float]:
        """True cut times: every segment start but the video's."""
        return [s.start for s in self.segments[1:]]

    def to_json(self) -> dict[str, Any]:
        """The JSON object of its line."""
        line = asdict(self)
        del line["root"]
        return line


# ---------------------------------------------------------------------------------------------
# planning


def _draw_clip(rng: np.random.Generator, previous: ObjectPlan | None, held_out: bool,
               num_frames: int) -> LongClip:
    """An object whose colour, shape and motion all differ from `previous`."""
    pairs = [p for p in (sorted(HELD_OUT_PAIRS) if held_out else SEEN_PAIRS)
             if previous is None or (p[0] != previous.colour and p[1] != previous.shape)]
    motions = [m for m in MOTIONS if previous is None or m != previous.motion]
    colour, shape = pairs[rng.integers(len(pairs))]
    motion = motions[rng.integers(len(motions))]
    start, end, scale = draw_trajectory(rng, motion)
    return LongClip(ObjectPlan(colour, shape, motion, start, end, scale), num_frames, held_out)


def plan_long_video(spec: LongShapesSpec, index: int) -> list[LongClip]:
    """The clips of long video `index`: a pure function of (spec, index)."""
    rng = np.random.default_rng([spec.seed, LONG_STREAM, index])
    count = int(rng.integers(spec.clips[0], spec.clips[1] + 1))
    lengths = [spec.clip_lengths[k] for k in rng.integers(len(spec.clip_lengths), size=count)]
    clips: list[LongClip] = []
    for j, num_frames in enumerate(lengths):
        clip_rng = np.random.default_rng([spec.seed, LONG_STREAM, index, j])
        previous = clips[-1].plan if clips else None
        clips.append(_draw_clip(clip_rng, previous, (index + j) % 2 == 0, int(num_frames)))
    return clips


def long_video_id(index: int) -> str:
    """`long-<index>`, five digits."""
    return f"long-{index:05d}"


# ---------------------------------------------------------------------------------------------
# rendering and writing


def _make_long_video(index: int, out: Path, spec: LongShapesSpec
                     ) -> tuple[LongVideoTruth, list[VideoRecord], list[dict]]:
    video_id = long_video_id(index)
    relative = f"videos/{video_id}.mp4"
    chunks, segments, records, attributes = [], [], [], []
    frame = 0
    for j, clip in enumerate(plan_long_video(spec, index)):
        frames, objects = render_clip([clip.plan], spec.size, clip.num_frames)
        chunks.append(frames)
        captions = captions_for([clip.plan])
        start, end = frame / spec.fps, (frame + clip.num_frames) / spec.fps
        p = clip.plan
        segments.append(TrueSegment(start, end, frame, frame + clip.num_frames, p.colour,
                                    p.shape, p.motion, clip.held_out, captions))
        segment_id = f"{video_id}-s{j:02d}"
        records.append(VideoRecord(segment_id, relative, "test", captions, start, end))
        attributes.append({"video_id": segment_id, "split": "test", "held_out": clip.held_out,
                           "objects": [asdict(o) for o in objects]})
        frame += clip.num_frames
    write_video(out / relative, np.concatenate(chunks), spec.fps)
    truth = LongVideoTruth(video_id, relative, float(spec.fps), frame, frame / spec.fps,
                           segments)
    return truth, records, attributes


def prepare_long_shapes(out: str | Path, spec: LongShapesSpec, videos: int,
                        workers: int = 1) -> Path:
    """Render `videos` long Shapes videos into `out`; returns the path of segments.jsonl.

    Writes videos/, then attributes.jsonl and manifest.jsonl (one record per true segment), then
    segments.jsonl, each atomically: the presence of segments.jsonl means the set is complete.
    `workers` > 1 renders in that many processes, with the same result.
    """
    if videos < 1:
        raise ConfigError(f"the number of long videos must be at least 1, got {videos}")
    out = Path(out)
    (out / "videos").mkdir(parents=True, exist_ok=True)
    results = map_jobs(partial(_make_long_video, out=out, spec=spec), list(range(videos)),
                       workers, "video")
    write_lines(out / ATTRIBUTES, [json.dumps(a) for _, _, rows in results for a in rows])
    write_manifest([r for _, records, _ in results for r in records], out / "manifest.jsonl")
    return write_lines(out / SEGMENTS_FILE,
                       [json.dumps(truth.to_json()) for truth, _, _ in results])
