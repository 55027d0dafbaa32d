"""vidcap.captioning.segments: segment plans on hand-made timelines, caption merging, and shot detection on
long Shapes videos (unseen seeds, 64 and 128 px) and on camera-like footage without cuts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from vidcap.data.shapes_long import LongShapesSpec, prepare_long_shapes
from vidcap.errors import ConfigError, VideoError
from vidcap.evaluation.segments import match_cuts
from vidcap.captioning.segments import (Cue, Segment, ShotDetector, ShotParams, detect_shots,
                             fixed_windows, merge_same_captions, needs_shots, plan_segments,
                             segments_between_cuts, shot_frame, split_long)
from vidcap.video import iter_frames, read_sampled, write_video


def spans(segments: list[Segment]) -> list[tuple[float, float]]:
    return [(s.start, s.end) for s in segments]


# ---------------------------------------------------------------------------------------------
# planning


def test_segments_between_cuts_snaps_to_frames_and_ignores_the_ends() -> None:
    assert spans(segments_between_cuts([], 10, 8)) == [(0, 10)]
    assert spans(segments_between_cuts([8.0, 4.0], 10, 8)) == [(0, 4), (4, 8), (8, 10)]
    assert spans(segments_between_cuts([4.06, 4.0, 0.0, -1, 10.0, 12], 10, 8)) == \
        [(0, 4), (4, 10)]
    assert segments_between_cuts([1.0], 0, 8) == []


@pytest.mark.parametrize("duration,window,stride,expected", [
    (10, 4, 4, [(0, 4), (4, 8), (8, 10)]),  # last window half a window: kept
    (9, 4, 4, [(0, 4), (4, 9)]),  # last window 1 s < 2 s: folded into the one before
    (3, 4, 4, [(0, 3)]),  # shorter than one window: the whole video
    (4, 4, 4, [(0, 4)]),
    (10, 4, 2, [(0, 4), (2, 6), (4, 8), (6, 10)]),  # overlapping: stop at the first reaching the end
    (10, 2, 3, [(0, 2), (3, 5), (6, 8), (9, 10)]),  # stride > window: gaps
    (9.5, 2, 3, [(0, 2), (3, 5), (6, 8), (9, 9.5)]),  # with gaps a short tail stays apart
    (0.5, 0.01, 0.01, [(k / 8, (k + 1) / 8) for k in range(4)]),  # a window is at least a frame
    (10.03, 5, 5, [(0, 5), (5, 10.03)]),  # the last segment ends at the video's duration
    (0, 4, 4, []),  # zero-length video
])
def test_fixed_windows(duration, window, stride, expected) -> None:
    assert spans(fixed_windows(duration, window, stride, 8)) == expected


@pytest.mark.parametrize("window,stride", [(0, 1), (1, 0), (-1, 1), (float("nan"), 1)])
def test_fixed_windows_refuse_empty_lengths(window, stride) -> None:
    with pytest.raises(ConfigError):
        fixed_windows(10, window, stride, 8)


def test_split_long_cuts_only_shots_over_two_clip_lengths_into_parts_of_one_to_two() -> None:
    shots = [Segment(0, 4), Segment(4, 5), Segment(5, 11)]
    # 4 s is two 2-s clips: whole; 6 s: the fewest parts of at most 4 s, two of 3 s
    assert spans(split_long(shots, 2, 8)) == [(0, 4), (4, 5), (5, 8), (8, 11)]
    assert spans(split_long([Segment(0, 3)], 2, 8)) == [(0, 3)]  # a slow 1.5-clip event: whole
    assert spans(split_long([Segment(0, 4.125)], 2, 8)) == [(0, 2.125), (2.125, 4.125)]  # on
    assert spans(split_long([Segment(0, 5)], 1, 1)) == [(0, 2), (2, 3), (3, 5)]  # to frames
    assert spans(split_long([Segment(0, 20)], 2, 8)) == [(0, 4), (4, 8), (8, 12), (12, 16),
                                                         (16, 20)]
    assert spans(split_long([Segment(1, 1.25)], 0.01, 8)) == [(1, 1.125), (1.125, 1.25)]
    for shot in (Segment(0, 7.9), Segment(0, 8.1), Segment(0, 30), Segment(0, 61)):
        parts = split_long([shot], 2, 100)
        assert all(2 - 0.01 <= p.duration <= 4 + 0.01 for p in parts)  # one to two clips
    with pytest.raises(ConfigError):
        split_long(shots, 0, 8)


def test_plan_segments_per_mode() -> None:
    cuts = [4.0, 8.0]
    assert spans(plan_segments("none", 20, 8, cuts=cuts)) == [(0, 20)]
    assert spans(plan_segments("shots", 20, 8, cuts=cuts)) == [(0, 4), (4, 8), (8, 20)]
    assert spans(plan_segments("auto", 20, 8, cuts=cuts, clip_length=4)) == \
        [(0, 4), (4, 8), (8, 14), (14, 20)]
    # auto on a video no longer than two training clips: the whole video, as in training
    assert spans(plan_segments("auto", 8, 8, cuts=[4.0], clip_length=4)) == [(0, 8)]
    assert spans(plan_segments("fixed", 10, 8, clip_length=4)) == [(0, 4), (4, 8), (8, 10)]
    assert spans(plan_segments("fixed", 10, 8, window=5, stride=2.5)) == \
        [(0, 5), (2.5, 7.5), (5, 10)]
    assert plan_segments("shots", 0, 8, cuts=cuts) == []
    assert needs_shots("shots", 1, None) and not needs_shots("fixed", 100, 2)
    assert needs_shots("auto", 8.1, 4) and not needs_shots("auto", 8, 4)
    for mode, kwargs in (("auto", {}), ("fixed", {}), ("scenes", {"clip_length": 2})):
        with pytest.raises(ConfigError):
            plan_segments(mode, 20, 8, **kwargs)


def test_segments_are_whole_frames_the_reader_takes(tmp_path) -> None:
    path = tmp_path / "count.mp4"
    frames = np.zeros((20, 32, 32, 3), np.uint8)
    frames[:, :, :, 0] = (np.arange(20) * 12)[:, None, None]  # frame k is red k * 12
    write_video(path, frames, 8)
    for segment in split_long([Segment(0, 2.5)], 0.5, 8):  # 3 parts of 7, 6, 7 frames
        first, last = round(segment.start * 8), round(segment.end * 8)
        sampled = read_sampled(path, last - first, start=segment.start, end=segment.end)
        assert sampled.indices == list(range(first, last))


def test_merge_same_captions() -> None:
    segments = [Segment(0, 2), Segment(2, 4), Segment(4, 6), Segment(6, 8), Segment(9, 10)]
    captions = ["a red circle grows", "A red  circle grows ", "a blue square moves up",
                "a blue square moves up", "a blue square moves up"]
    assert merge_same_captions(segments, captions) == [
        Cue(0, 4, "a red circle grows"), Cue(4, 8, "a blue square moves up"),
        Cue(9, 10, "a blue square moves up")]  # a gap is never bridged
    overlapping = [Segment(0, 4), Segment(2, 6), Segment(4, 8)]
    assert merge_same_captions(overlapping, ["a", "b", "b"]) == [Cue(0, 3, "a"), Cue(3, 8, "b")]
    assert merge_same_captions([], []) == []
    with pytest.raises(ValueError):
        merge_same_captions(segments, captions[:2])


# ---------------------------------------------------------------------------------------------
# shot detection


def _scores(root: Path, **detect) -> tuple[float, float]:
    tp = fp = fn = 0
    for line in (root / "segments.jsonl").read_text().splitlines():
        video = json.loads(line)
        cuts = detect_shots(root / video["path"], **detect)
        a, b, c = match_cuts(cuts, [s["start"] for s in video["segments"][1:]], 0.25)
        tp, fp, fn = tp + a, fp + b, fn + c
    return tp / (tp + fn), tp / (tp + fp)


@pytest.mark.slow
@pytest.mark.parametrize("size,videos", [(64, 6), (128, 3)])
def test_shot_detection_finds_the_cuts_of_long_shapes_videos(tmp_path, size, videos) -> None:
    prepare_long_shapes(tmp_path, LongShapesSpec(size=size, seed=31337), videos)
    recall, precision = _scores(tmp_path)
    assert recall >= 0.95 and precision >= 0.95, (recall, precision)
    # PySceneDetect's stock parameters miss cuts between small objects on a flat background
    stock = _scores(tmp_path, params=ShotParams(threshold=3.0, min_content=15.0, luma_only=False,
                                                   min_shot=1.9))
    assert stock[0] < recall


def test_fed_frames_give_the_same_cuts_as_a_pass_of_its_own(tmp_path) -> None:
    root = tmp_path / "long"
    prepare_long_shapes(root, LongShapesSpec(seed=4242, clips=(3, 3)), 1)
    video = json.loads((root / "segments.jsonl").read_text())
    sampled = read_sampled(root / video["path"], video["num_frames"])  # every frame
    detector = ShotDetector(fps=8.0)
    found = []
    for index, (time, frame) in enumerate(zip(sampled.times, sampled.frames)):
        found += detector.feed(index, time, frame)
    assert detector.cuts() == found == detect_shots(root / video["path"])
    assert found == [s["start"] for s in video["segments"][1:]]
    with pytest.raises(RuntimeError):
        detector.feed(999, 99.0, sampled.frames[0])
    with pytest.raises(ValueError):
        ShotDetector(8.0).feed(0, 0.0, sampled.frames[0].astype(np.float32))
    fresh = ShotDetector(8.0)
    fresh.feed(3, 0.375, sampled.frames[0])
    with pytest.raises(ValueError):
        fresh.feed(3, 0.375, sampled.frames[1])  # not after the frame before


def _texture(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A smooth random colour field with some fine grain: camera-like content."""
    import cv2

    coarse = rng.integers(0, 256, (height // 24, width // 24, 3), dtype=np.uint8)
    smooth = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC).astype(int)
    return np.clip(smooth + rng.normal(0, 6, smooth.shape), 0, 255).astype(np.uint8)


def _camera(texture: np.ndarray, rng: np.random.Generator, frames: int, dx: float,
            zoom: float) -> np.ndarray:
    """A 320x240 view panning `dx` px a frame and zooming in by `zoom` a frame, sensor noise."""
    import cv2

    out = []
    for t in range(frames):
        scale = 1 + zoom * t
        w, h = 320 / scale, 240 / scale
        x = 40 + dx * t + (320 - w) / 2
        y = 40 + (240 - h) / 2
        view = texture[int(y):int(y + h), int(x):int(x + w)]
        view = cv2.resize(view, (320, 240), interpolation=cv2.INTER_LINEAR).astype(int)
        out.append(np.clip(view + rng.normal(0, 2, view.shape), 0, 255).astype(np.uint8))
    return np.stack(out)


def test_slow_pans_zooms_and_noise_are_not_cuts_but_a_cut_between_them_is(tmp_path) -> None:
    rng = np.random.default_rng(0)
    first, second = _texture(rng, 480, 640), _texture(rng, 480, 640)
    pan = _camera(first, rng, 40, dx=2.0, zoom=0.0)  # 1.33 s at 30 fps each
    zoom = _camera(second, rng, 40, dx=0.0, zoom=0.01)
    write_video(tmp_path / "cut.mp4", np.concatenate([pan, zoom]), 30)
    assert detect_shots(tmp_path / "cut.mp4") == [pytest.approx(40 / 30, abs=1e-6)]
    eager = ShotParams(threshold=1.2, min_content=0.5)  # the test can tell a jumpy detector
    assert len(detect_shots(tmp_path / "cut.mp4", eager)) > 1


def test_growing_object_is_not_a_cut(tmp_path) -> None:
    from vidcap.data.shapes import ObjectPlan, render_clip

    plan = ObjectPlan("green", "circle", "grows", (0.5, 0.5), (0.5, 0.5), (0.2, 3.5))
    frames, _ = render_clip([plan], 128, 48)
    write_video(tmp_path / "grow.mp4", frames, 8)
    assert detect_shots(tmp_path / "grow.mp4") == []


def test_detect_shots_names_a_file_that_is_not_a_video(tmp_path) -> None:
    bad = tmp_path / "notes.mp4"
    bad.write_text("not a video")
    with pytest.raises(VideoError, match="notes.mp4"):
        detect_shots(bad)
    with pytest.raises(ConfigError):
        ShotParams(window=0)


def _library_cuts(path: Path, params: ShotParams) -> list[float]:
    """The cuts PySceneDetect finds on its own: its PyAV reader, its SceneManager (which
    downscales), its `AdaptiveDetector` on BGR frames with the same parameters."""
    from scenedetect import SceneManager, open_video
    from scenedetect.detectors import AdaptiveDetector

    video = open_video(str(path), backend="pyav")
    manager = SceneManager()
    manager.add_detector(AdaptiveDetector(
        adaptive_threshold=params.threshold, min_content_val=params.min_content,
        min_scene_len=max(1, round(params.min_shot * video.frame_rate)),
        window_width=params.window, luma_only=params.luma_only))
    manager.detect_scenes(video)
    return [start.seconds for start, _ in manager.get_scene_list()[1:]]


@pytest.mark.parametrize("params", [ShotParams(), ShotParams(threshold=1.2, min_content=0.5)])
def test_value_plane_detection_finds_the_cuts_the_library_finds(tmp_path, params) -> None:
    """`detect_shots` scores the decoder's small HSV value plane instead of letting the library
    convert full BGR frames: the same cuts, on camera-like content larger than the detector's
    size (downscaled) and on long Shapes videos (not)."""
    rng = np.random.default_rng(3)
    first, second = _texture(rng, 480, 640), _texture(rng, 480, 640)
    frames = np.concatenate([_camera(first, rng, 40, dx=2.0, zoom=0.0),
                             _camera(second, rng, 40, dx=0.0, zoom=0.01)])
    write_video(tmp_path / "camera.mp4", frames, 30)
    prepare_long_shapes(tmp_path / "long", LongShapesSpec(size=128, seed=99, clips=(3, 4)), 1)
    video = json.loads((tmp_path / "long" / "segments.jsonl").read_text())
    for path in (tmp_path / "camera.mp4", tmp_path / "long" / video["path"]):
        ours = detect_shots(path, params)
        assert ours == pytest.approx(_library_cuts(path, params), abs=1e-6), path
    assert detect_shots(tmp_path / "camera.mp4", ShotParams()) == [pytest.approx(40 / 30)]


def test_rgb_frames_and_value_planes_give_the_same_cuts(tmp_path) -> None:
    """A detector fed full RGB frames (turned into value planes itself) and one fed the small
    copies `shot_frame` makes from the decoder's pictures agree."""
    root = tmp_path / "long"
    prepare_long_shapes(root, LongShapesSpec(size=96, seed=7, clips=(3, 4)), 1)
    path = root / json.loads((root / "segments.jsonl").read_text())["path"]
    params = ShotParams()
    fed_rgb, fed_small = ShotDetector(8.0, params), ShotDetector(8.0, params)
    with iter_frames(path, keep_pictures=True) as frames:
        for frame in frames:
            fed_rgb.feed(frame.index, frame.time, frame.image)
            fed_small.feed(frame.index, frame.time, shot_frame(frame.picture, params))
    assert fed_rgb.cuts() == fed_small.cuts() != []
    with pytest.raises(ValueError, match="colour frames"):
        ShotDetector(8.0, ShotParams(luma_only=False)).feed(0, 0.0, np.zeros((8, 8), np.uint8))
