"""vidcap.data.shapes_long: long Shapes videos are deterministic, cut where segments.jsonl says,
made of 16/24/32-frame clips that differ from their neighbours in everything, and drawn from
seeds the demo never saw."""

from __future__ import annotations

import json
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest

from vidcap.cli import main
from vidcap.data.manifest import SPLITS, read_manifest
from vidcap.data.shapes import (BACKGROUND, COLOURS, HELD_OUT_PAIRS, ObjectPlan, ShapesSpec,
                                plan_clip, read_attributes, render_clip)
from vidcap.data.shapes_long import (CLIP_LENGTHS, LongShapesSpec, plan_long_video,
                                     prepare_long_shapes)
from vidcap.errors import ConfigError
from vidcap.video import probe_video, read_frames

VIDEOS = 3


@pytest.fixture(scope="module")
def long_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("long") / "a"
    prepare_long_shapes(out, LongShapesSpec(), VIDEOS)
    return out


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_same_seed_gives_the_same_bytes_and_another_seed_does_not(long_set, tmp_path) -> None:
    again = tmp_path / "b"
    segments = prepare_long_shapes(again, LongShapesSpec(), VIDEOS, workers=2)
    assert segments == again / "segments.jsonl"
    for name in ("segments.jsonl", "manifest.jsonl", "attributes.jsonl"):
        assert (again / name).read_bytes() == (long_set / name).read_bytes(), name
    videos = sorted((long_set / "videos").iterdir())
    assert len(videos) == VIDEOS
    for video in videos:
        assert (again / "videos" / video.name).read_bytes() == video.read_bytes()
    assert not list(again.glob("**/*.tmp")) and not list(again.glob("**/.*partial*"))
    other = prepare_long_shapes(tmp_path / "c", LongShapesSpec(seed=1001), VIDEOS)
    assert other.read_bytes() != segments.read_bytes()


def _object_colour(frame: np.ndarray) -> str:
    """The palette colour nearest to the mean of the frame's fully covered object pixels."""
    distance = np.abs(frame.astype(int) - BACKGROUND).sum(axis=-1)
    pixels = frame[distance > 0.8 * distance.max()].astype(float).mean(axis=0)
    return min(COLOURS, key=lambda c: np.abs(pixels - COLOURS[c]).sum())


def test_cuts_are_where_the_segments_file_says(long_set) -> None:
    for video in _lines(long_set / "segments.jsonl"):
        path = long_set / video["path"]
        assert probe_video(path).num_frames == video["num_frames"]
        frames = read_frames(path, video["num_frames"])  # every frame, once
        segments = video["segments"]
        assert segments[0]["start_frame"] == 0 and segments[-1]["end_frame"] == len(frames)
        assert video["duration"] == len(frames) / video["fps"]
        for before, after in pairwise(segments):
            cut = after["start_frame"]
            assert before["end_frame"] == cut and after["start"] == cut / video["fps"]
            assert _object_colour(frames[cut - 1]) == before["colour"]
            assert _object_colour(frames[cut]) == after["colour"]
        for s in segments:
            assert s["end_frame"] - s["start_frame"] in CLIP_LENGTHS
            assert s["end"] == s["end_frame"] / video["fps"]
            assert s["held_out"] == ((s["colour"], s["shape"]) in HELD_OUT_PAIRS)


def test_neighbours_differ_in_colour_shape_and_motion_and_lengths_vary() -> None:
    spec = LongShapesSpec()
    videos = [plan_long_video(spec, i) for i in range(200)]
    lengths, held_out, counts = set(), [], set()
    for clips in videos:
        counts.add(len(clips))
        for a, b in pairwise(clips):
            assert a.plan.colour != b.plan.colour
            assert a.plan.shape != b.plan.shape
            assert a.plan.motion != b.plan.motion
        lengths |= {c.num_frames for c in clips}
        held_out += [c.held_out for c in clips]
        assert all(c.held_out == ((c.plan.colour, c.plan.shape) in HELD_OUT_PAIRS) for c in clips)
    assert lengths == set(CLIP_LENGTHS) and counts == set(range(4, 9))
    assert 0.45 < np.mean(held_out) < 0.55
    assert plan_long_video(spec, 7) == videos[7]  # a pure function of (spec, index)


def test_a_slower_clip_covers_the_same_path() -> None:
    plan = ObjectPlan("red", "circle", "right", (0.25, 0.5), (0.75, 0.5))
    fast, _ = render_clip([plan], 64, 16)
    slow, _ = render_clip([plan], 64, 32)
    assert np.array_equal(fast[0], slow[0]) and np.array_equal(fast[-1], slow[-1])
    assert not np.array_equal(fast[1], slow[1])


def test_long_videos_never_repeat_a_demo_clip() -> None:
    assert LongShapesSpec().seed != ShapesSpec().seed
    demo = {(p.start, p.end) for split in SPLITS for i in range(300)
            for p in plan_clip(ShapesSpec(), split, i)}
    for spec in (LongShapesSpec(), LongShapesSpec(seed=0)):  # other RNG streams, even at seed 0
        clips = [c for i in range(50) for c in plan_long_video(spec, i)]
        assert not {(c.plan.start, c.plan.end) for c in clips} & demo


def test_manifest_and_attributes_describe_each_true_segment(long_set) -> None:
    records = read_manifest(long_set / "manifest.jsonl")
    attributes = read_attributes(long_set)
    truth = _lines(long_set / "segments.jsonl")
    segments = [(v, s) for v in truth for s in v["segments"]]
    assert len(records) == len(attributes) == len(segments)
    for record, (video, segment) in zip(records, segments):
        assert record.split == "test" and record.path == video["path"]
        assert (record.start, record.end) == (segment["start"], segment["end"])
        assert record.captions == segment["captions"]
        obj = attributes[record.video_id].objects[0]
        assert (obj.colour, obj.shape, obj.motion) == \
            (segment["colour"], segment["shape"], segment["motion"])
        assert len(obj.bboxes) == segment["end_frame"] - segment["start_frame"]


def test_bad_specs_are_refused() -> None:
    with pytest.raises(ConfigError):
        LongShapesSpec(clips=(5, 4))
    with pytest.raises(ConfigError):
        LongShapesSpec(size=8)
    with pytest.raises(ConfigError):
        prepare_long_shapes("/nonexistent", LongShapesSpec(), 0)


def test_cli_prepare_shapes_long(tmp_path, capsys) -> None:
    out = tmp_path / "long"
    assert main(["prepare", "shapes", "--out", str(out), "--long", "2", "--size", "32",
                 "--clips", "2,3"]) == 0
    printed = capsys.readouterr().out
    assert "segments.jsonl" in printed and "2 long videos" in printed and "seed 1000" in printed
    assert all(2 <= len(v["segments"]) <= 3 for v in _lines(out / "segments.jsonl"))
    assert probe_video(out / "videos" / "long-00000.mp4").width == 32
    assert main(["prepare", "shapes", "--out", str(out), "--long", "2", "--videos", "4"]) == 2
    assert "--long" in capsys.readouterr().err
