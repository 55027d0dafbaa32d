"""vidcap.data.shapes: the synthetic world is deterministic, well split, drawn as specified,
and its captions and attributes agree with its pixels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vidcap.cli import main
from vidcap.data.manifest import read_manifest
from vidcap.data.shapes import (BACKGROUND, COLOURS, HELD_OUT_PAIRS, MOTIONS, ObjectPlan,
                                ShapesSpec, plan_clip, prepare_shapes, read_attributes,
                                render_clip, split_counts)
from vidcap.errors import ConfigError
from vidcap.video import read_frames

SPLITS = (12, 4, 14)  # 30 clips


@pytest.fixture(scope="module")
def shapes_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("shapes") / "a"
    prepare_shapes(out, ShapesSpec(seed=3, pair_fraction=0.3), splits=SPLITS)
    return out


def _decoded(root: Path) -> dict[str, np.ndarray]:
    records = read_manifest(root / "manifest.jsonl")
    return {r.video_id: read_frames(r.video_path, 16) for r in records}


def test_same_seed_gives_identical_manifest_attributes_and_frames(shapes_set, tmp_path) -> None:
    again = tmp_path / "b"
    manifest = prepare_shapes(again, ShapesSpec(seed=3, pair_fraction=0.3), splits=SPLITS,
                              workers=2)  # other processes, same result
    assert manifest == again / "manifest.jsonl"
    assert manifest.read_bytes() == (shapes_set / "manifest.jsonl").read_bytes()
    assert (again / "attributes.jsonl").read_bytes() == \
        (shapes_set / "attributes.jsonl").read_bytes()
    first, second = _decoded(shapes_set), _decoded(again)
    assert first.keys() == second.keys()
    assert all(np.array_equal(first[k], second[k]) for k in first)
    assert not list(again.glob("**/*.tmp")) and not list(again.glob("**/.*partial*"))
    other = prepare_shapes(tmp_path / "c", ShapesSpec(seed=4, pair_fraction=0.3), splits=SPLITS)
    assert other.read_bytes() != manifest.read_bytes()


def test_held_out_pairs_only_in_test_and_test_has_both(shapes_set) -> None:
    clips = read_attributes(shapes_set)
    assert len(clips) == sum(SPLITS)
    for clip in clips.values():
        pairs = {(o.colour, o.shape) for o in clip.objects}
        assert clip.held_out == bool(pairs & HELD_OUT_PAIRS)
        if clip.split != "test":
            assert not pairs & HELD_OUT_PAIRS, clip.video_id
    test = [c for c in clips.values() if c.split == "test"]
    assert sum(c.held_out for c in test) == 7 and sum(not c.held_out for c in test) == 7
    records = read_manifest(shapes_set / "manifest.jsonl")
    assert [sum(r.split == s for r in records) for s in ("train", "val", "test")] == list(SPLITS)
    assert all(len(r.captions) >= 4 for r in records)


@pytest.mark.parametrize("size", [50, 51])
def test_every_clip_decodes_to_16_frames_of_the_requested_size(tmp_path, size) -> None:
    manifest = prepare_shapes(tmp_path, ShapesSpec(size=size, seed=1), splits=(2, 1, 1))
    for record in read_manifest(manifest):
        assert read_frames(record.video_path, 16).shape == (16, size, size, 3)


def test_default_size_clips_decode_to_16_frames(shapes_set) -> None:
    assert {f.shape for f in _decoded(shapes_set).values()} == {(16, 64, 64, 3)}


def _object_pixels(frame: np.ndarray) -> np.ndarray:
    return np.abs(frame.astype(int) - BACKGROUND).sum(axis=-1) > 60  # (H, W) bool


def test_decoded_colour_and_motion_match_the_attributes(shapes_set) -> None:
    clips, frames = read_attributes(shapes_set), _decoded(shapes_set)
    singles = [c for c in clips.values() if len(c.objects) == 1]
    assert {c.objects[0].motion for c in singles} == set(MOTIONS)
    for clip in singles:
        obj, video = clip.objects[0], frames[clip.video_id]
        widths = [b[2] - b[0] for b in obj.bboxes]
        t = int(np.argmax(widths))  # the frame where the object is largest
        x0, y0, x1, y1 = obj.bboxes[t]
        centre = video[t, int((y0 + y1) / 2), int((x0 + x1) / 2)].astype(int)
        assert np.abs(centre - COLOURS[obj.colour]).max() <= 25, (clip.video_id, centre)
        masks = [_object_pixels(f) for f in video]
        ys, xs = zip(*[np.nonzero(m) for m in masks])
        cx = [x.mean() for x in xs]
        cy = [y.mean() for y in ys]
        area = [m.sum() for m in masks]
        moved = {"left": cx[0] - cx[-1], "right": cx[-1] - cx[0], "up": cy[0] - cy[-1],
                 "down": cy[-1] - cy[0]}
        if obj.motion in moved:
            assert moved[obj.motion] > 20, (clip.video_id, obj.motion, moved)  # >= 0.4 of 64 px
            other = {"left": cy, "right": cy, "up": cx, "down": cx}[obj.motion]
            assert max(other) - min(other) < 1.5
        else:
            ratio = area[-1] / area[0]
            assert ratio > 4 if obj.motion == "grows" else ratio < 0.25, (clip.video_id, ratio)


def test_bounding_boxes_contain_the_rendered_object(shapes_set) -> None:
    clips = read_attributes(shapes_set)
    for clip in clips.values():
        split, index = clip.video_id.split("-")[1], int(clip.video_id.split("-")[2])
        frames, objects = render_clip(plan_clip(ShapesSpec(seed=3, pair_fraction=0.3), split,
                                                index))
        assert [o.bboxes for o in objects] == [o.bboxes for o in clip.objects]
        for t, frame in enumerate(frames):
            inside = np.zeros(frame.shape[:2], bool)
            for obj in objects:
                x0, y0, x1, y1 = obj.bboxes[t]
                box = np.zeros_like(inside)
                box[int(np.floor(y0)):int(np.ceil(y1)), int(np.floor(x0)):int(np.ceil(x1))] = True
                ys, xs = np.nonzero(_object_pixels(frame) & box)
                assert ys.min() <= y0 + 1 and ys.max() >= y1 - 2  # the box is tight, too
                inside |= box
            assert not (_object_pixels(frame) & ~inside).any(), clip.video_id


def test_rendered_shapes_follow_the_geometry() -> None:
    still = {"start": (0.5, 0.5), "end": (0.5, 0.5)}
    def area(frame: np.ndarray) -> float:  # coverage-weighted pixel count
        return float((frame[..., 0].astype(int) - BACKGROUND[0]).sum() /
                     (COLOURS["white"][0] - BACKGROUND[0]))

    frames, _ = render_clip([ObjectPlan("white", "circle", "grows", **still)], 64, 2)
    assert area(frames[0]) == pytest.approx(np.pi * 8 ** 2, abs=2)  # radius s = 64 / 8
    frames, _ = render_clip([ObjectPlan("white", "square", "grows", **still)], 64, 2)
    assert _object_pixels(frames[0]).sum() == 16 * 16  # side 2s, pixel-aligned here
    assert area(frames[0]) == pytest.approx(16 * 16)
    frames, _ = render_clip([ObjectPlan("white", "triangle", "grows", **still)], 64, 2)
    assert area(frames[0]) == pytest.approx(16 * 16 / 2, abs=2)  # base 2s, height 2s
    rows = _object_pixels(frames[0]).sum(axis=1)
    assert rows[25] < rows[38]  # pointing up: narrow at the top, wide at the base
    assert tuple(frames[0, 0, 0]) == BACKGROUND and tuple(frames[0, 32, 32]) == COLOURS["white"]


def test_split_counts() -> None:
    assert split_counts() == (2000, 200, 400)
    assert split_counts(videos=2600) == (2000, 200, 400)
    assert split_counts(videos=30) == (23, 2, 5)
    assert split_counts(splits=(5, 0, 1)) == (5, 0, 1)
    with pytest.raises(ConfigError):
        split_counts(videos=30, splits=(1, 1, 1))
    with pytest.raises(ConfigError):
        ShapesSpec(pair_fraction=1.5)


def test_cli_prepare_shapes_prints_statistics(tmp_path, capsys) -> None:
    assert main(["prepare", "shapes", "--out", str(tmp_path), "--videos", "6", "--size", "32"]) == 0
    out = capsys.readouterr().out
    assert "manifest.jsonl" in out and "train" in out and "test" in out
    assert main(["prepare", "shapes", "--out", str(tmp_path), "--size", "4"]) == 2
    assert "at least 16 px" in capsys.readouterr().err
