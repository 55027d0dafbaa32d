"""vidcap.video: sampling indices, reading by seeking or sequentially, every bad input, writing."""

from __future__ import annotations

import logging
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from vidcap.cli import main
from vidcap.config import VideoConfig
from vidcap.errors import VideoError
from vidcap.video import (crop_frames, load_clip, normalize_frames, plan_decode_runs,
                          preprocess_frames, probe_video, read_frames, read_sampled,
                          sample_frame_indices, select_frame_indices, window_frame_range,
                          write_video)

FPS = 8
BARS = 8  # frame i shows i in binary: bar b is white when bit b of i is set


def index_frames(count: int, height: int = 32, width: int = 64) -> np.ndarray:
    frames = np.full((count, height, width, 3), 0, np.uint8)
    bar = width // BARS
    for i in range(count):
        for b in range(BARS):
            if (i >> b) & 1:
                frames[i, :, b * bar:(b + 1) * bar] = 255
    return frames


def frame_index(frame: np.ndarray) -> int:
    """Read back the number a frame of `index_frames` shows (bar interiors, robust to coding)."""
    bar = frame.shape[1] // BARS
    return sum(1 << b for b in range(BARS)
               if frame[:, b * bar + 2:(b + 1) * bar - 2].mean() > 128)


def shown(frames: np.ndarray) -> list[int]:
    return [frame_index(f) for f in frames]


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """80-frame (10 s) index clips: sparse (one keyframe), dense (all), every 4th (with B-frames),
    MPEG-4 part 2; and a 5-frame clip."""
    root = tmp_path_factory.mktemp("clips")
    frames = index_frames(80)
    made = {}
    for name, keyint, codec in (("sparse", 250, None), ("dense", 1, None), ("every4", 4, None),
                                ("mpeg4", 4, "mpeg4")):
        made[name] = root / f"{name}.mp4"
        write_video(made[name], frames, FPS, keyframe_interval=keyint, codec=codec)
    made["short"] = root / "short.mp4"
    write_video(made["short"], frames[:5], FPS)
    return made


# ---------------------------------------------------------------------------------------------
# pure index logic


def test_sample_frame_indices_takes_segment_centres_and_repeats_when_short() -> None:
    assert sample_frame_indices(16, 8) == [1, 3, 5, 7, 9, 11, 13, 15]
    assert sample_frame_indices(80, 8) == [5, 15, 25, 35, 45, 55, 65, 75]
    assert sample_frame_indices(5, 8) == [0, 0, 1, 2, 2, 3, 4, 4]
    assert sample_frame_indices(1, 3) == [0, 0, 0]
    with pytest.raises(ValueError):
        sample_frame_indices(0, 8)
    with pytest.raises(ValueError):
        sample_frame_indices(8, 0)


def test_window_frame_range_uses_timestamps() -> None:
    times = [i / 8 for i in range(80)]  # 10 s at 8 fps
    assert window_frame_range(times, 10.0, None, None) == (0, 79)
    assert window_frame_range(times, 10.0, 2.0, 4.0) == (16, 31)
    assert window_frame_range(times, 10.0, 9.5, None) == (76, 79)
    assert window_frame_range(times, 10.0, 2.01, 2.05) == (16, 16)  # narrower than a frame
    assert window_frame_range(times, 10.0, 9.0, 10.3) == (72, 79)  # within the end tolerance
    variable = [0.0, 0.1, 0.15, 0.9, 1.0]  # variable frame rate: by time, not by count
    assert window_frame_range(variable, 1.1, 0.12, 0.95) == (2, 3)
    assert select_frame_indices(times, 10.0, 4, 2.0, 4.0) == [18, 22, 26, 30]


@pytest.mark.parametrize("start,end,reason", [
    (12.0, 14.0, "starts after the video ends"),
    (10.0, None, "starts after the video ends"),
    (5.0, 11.0, "ends after the video ends"),
    (-1.0, 2.0, "negative"),
    (3.0, 3.0, "not after its start"),
])
def test_window_frame_range_rejects_windows_outside_the_video(start, end, reason) -> None:
    with pytest.raises(ValueError, match=reason):
        window_frame_range([i / 8 for i in range(80)], 10.0, start, end)


def test_plan_decode_runs_picks_sequential_or_seeking() -> None:
    targets = [5, 15, 25, 35]
    assert plan_decode_runs(targets, [0]) == [(0, [5, 15, 25, 35])]  # sparse: one pass
    assert plan_decode_runs(targets, list(range(40))) == [(5, [5]), (15, [15]), (25, [25]),
                                                          (35, [35])]
    # keyframes every 8: 15 is reached by seeking to 8, but 9 follows 8 closely enough to go on
    assert plan_decode_runs([8, 9, 15], list(range(0, 40, 8)), seek_cost=4) == [(8, [8, 9, 15])]
    assert plan_decode_runs([1, 30], [0, 24], seek_cost=4) == [(0, [1]), (24, [30])]


# ---------------------------------------------------------------------------------------------
# reading


@pytest.mark.parametrize("name,keyframes,runs", [
    ("sparse", 1, 1), ("dense", 80, 8), ("every4", 20, 8), ("mpeg4", 20, 8)])
def test_read_frames_returns_the_sampled_frames(clips, caplog, name, keyframes, runs) -> None:
    info = probe_video(clips[name])
    assert (info.num_frames, info.num_keyframes, info.width, info.height) == (80, keyframes, 64, 32)
    assert info.duration == pytest.approx(10.0) and info.fps == pytest.approx(8.0)
    with caplog.at_level(logging.DEBUG, logger="vidcap.video"):
        sampled = read_sampled(clips[name], 8)
    assert "missed by the plan" not in caplog.text  # seeks landed where planned
    assert sampled.frames.shape == (8, 32, 64, 3) and sampled.frames.dtype == np.uint8
    assert sampled.indices == [5, 15, 25, 35, 45, 55, 65, 75]
    assert shown(sampled.frames) == sampled.indices
    assert sampled.decode_runs == runs


@pytest.mark.parametrize("name", ["sparse", "dense", "every4"])
def test_read_frames_within_a_window(clips, name) -> None:
    frames = read_frames(clips[name], 4, start=2.0, end=4.0)
    assert shown(frames) == [18, 22, 26, 30]
    assert shown(read_frames(clips[name], 3, start=9.0)) == [73, 76, 78]


def test_read_frames_repeats_frames_of_a_short_clip(clips) -> None:
    assert shown(read_frames(clips["short"], 8)) == [0, 0, 1, 2, 2, 3, 4, 4]


@pytest.mark.parametrize("suffix,codec", [
    (".mkv", "libx264"), (".avi", "mpeg4"), (".ts", "libx264"),
    (".h264", "libx264"),  # raw stream: no timestamps, no seeking; decoded in order
])
def test_read_frames_in_other_containers(tmp_path, suffix, codec) -> None:
    path = tmp_path / f"clip{suffix}"
    write_video(path, index_frames(80), FPS, keyframe_interval=4, codec=codec)
    assert probe_video(path).num_frames == 80
    assert shown(read_frames(path, 8)) == [5, 15, 25, 35, 45, 55, 65, 75]
    assert shown(read_frames(path, 4, start=2.0, end=4.0)) == [18, 22, 26, 30]


def test_read_frames_follows_timestamps_of_a_variable_frame_rate_video(tmp_path) -> None:
    path = tmp_path / "vfr.mp4"
    stamps_ms = [0, 100, 150, 400, 900, 1000, 1050, 1500]  # irregular frame times
    frames = index_frames(len(stamps_ms))
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=20)
        stream.width, stream.height, stream.pix_fmt = 64, 32, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        for array, ms in zip(frames, stamps_ms):
            frame = av.VideoFrame.from_ndarray(array, format="rgb24")
            frame.pts, frame.time_base = ms, Fraction(1, 1000)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    sampled = read_sampled(path, 2, start=0.3, end=1.2)  # frames at 0.4, 0.9, 1.0, 1.05 s
    assert sampled.indices == [4, 6] and shown(sampled.frames) == [4, 6]
    assert sampled.times == pytest.approx([0.9, 1.05])


# ---------------------------------------------------------------------------------------------
# bad inputs


def _junk_packets(path: Path) -> None:
    """A video stream whose packets no decoder accepts."""
    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("h264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = 64, 32, "yuv420p"
        for i in range(5):
            packet = av.Packet(rng.bytes(300))
            packet.pts = packet.dts = i
            packet.time_base, packet.stream = Fraction(1, FPS), stream
            out.mux(packet)


def _audio_only(path: Path) -> None:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=16000)
        for i in range(8):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp",
                                               layout="mono")
            frame.sample_rate, frame.pts = 16000, i * 1024
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


@pytest.fixture(scope="module")
def bad_files(clips, tmp_path_factory) -> dict[str, tuple[Path, str]]:
    """name -> (file, the reason its VideoError must start with)."""
    root = tmp_path_factory.mktemp("bad")
    data = clips["sparse"].read_bytes()
    files = {
        "missing": (root / "nothing.mp4", "file not found"),
        "text": (root / "notes.mp4", "not a media file"),
        "empty": (root / "empty.mp4", "not a media file"),
        "audio": (root / "speech.mp4", "no video stream"),
        "junk": (root / "junk.mp4", "no decodable frames"),
        "half": (root / "half.mp4", "truncated or corrupt data"),  # index kept, data cut
        "head": (root / "head.mp4", "truncated or corrupt data"),  # cut inside the index
        "open": (root / "open.mp4", "truncated or corrupt data"),  # no box sizes to tell
    }
    files["text"][0].write_text("this is a shopping list, not a video\n" * 20)
    files["empty"][0].write_bytes(b"")
    _audio_only(files["audio"][0])
    _junk_packets(files["junk"][0])
    files["half"][0].write_bytes(data[:len(data) // 2])
    files["head"][0].write_bytes(data[:200])
    # media data box rewritten as "to the end of the file", then cut: only the index can tell
    mdat = data.index(b"mdat") - 4
    unsized = data[:mdat] + bytes(4) + data[mdat + 4:]
    files["open"][0].write_bytes(unsized[:mdat + (len(data) - mdat) // 2])
    return files


@pytest.mark.parametrize("name", ["missing", "text", "empty", "audio", "junk", "half", "head",
                                  "open"])
def test_each_bad_file_is_one_video_error(bad_files, name) -> None:
    path, reason = bad_files[name]
    with pytest.raises(VideoError) as caught:
        read_frames(path, 8)
    assert caught.value.reason.startswith(reason)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)
    if name != "junk":  # its packets demux fine; only decoding fails
        with pytest.raises(VideoError, match=reason):
            probe_video(path)


def test_a_window_past_the_end_is_a_video_error(clips) -> None:
    with pytest.raises(VideoError, match="starts after the video ends"):
        read_frames(clips["sparse"], 8, start=12.0, end=15.0)


@pytest.mark.parametrize("name", ["text", "audio", "junk", "half"])
def test_cli_inspect_reports_bad_files_in_one_line(bad_files, capsys, name) -> None:
    path, reason = bad_files[name]
    assert main(["inspect", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"vidcap: error: {path}: {err[0].split(': ', 3)[-1]}"]
    assert reason in err[0]


def test_cli_inspect_prints_info_and_indices(clips, capsys) -> None:
    assert main(["inspect", str(clips["dense"]), "--frames", "4", "--start", "2", "--end",
                 "4"]) == 0
    out = capsys.readouterr().out
    assert "80 in 10.000 s" in out and "indices    18 22 26 30" in out
    assert main(["inspect", str(clips["dense"]), "--start", "20"]) == 2
    assert "starts after the video ends" in capsys.readouterr().err


def test_python_m_vidcap_inspect_has_no_traceback(bad_files) -> None:
    path, _ = bad_files["text"]
    done = subprocess.run([sys.executable, "-m", "vidcap", "inspect", str(path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip() == f"vidcap: error: {path}: not a media file " \
                                  "(no audio or video format recognised)"
    assert "Traceback" not in done.stderr


# ---------------------------------------------------------------------------------------------
# writing and preprocessing


def test_write_video_handles_odd_sizes_and_rejects_bad_arrays(tmp_path) -> None:
    frames = np.random.default_rng(0).integers(0, 255, (3, 37, 51, 3), dtype=np.uint8)
    for codec in ("libx264", "mpeg4"):
        path = tmp_path / f"odd-{codec}.mp4"
        write_video(path, frames, FPS, codec=codec)
        assert read_frames(path, 3).shape == (3, 37, 51, 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["odd-libx264.mp4", "odd-mpeg4.mp4"]
    with pytest.raises(ValueError):
        write_video(tmp_path / "bad.mp4", frames.astype(np.float32), FPS)


def test_preprocess_frames_resizes_shorter_side_crops_and_normalises() -> None:
    frames = np.full((2, 40, 80, 3), 51, np.uint8)  # 51 / 255 = 0.2
    frames[:, :, 38:42] = 255  # a white column at the horizontal centre
    x = preprocess_frames(frames, 20, mean=[0.2, 0.2, 0.2], std=[0.5, 0.5, 0.5])
    assert x.shape == (2, 3, 20, 20) and x.dtype == torch.float32
    assert x[:, :, :, 0].abs().max() < 1e-5  # background: (0.2 - 0.2) / 0.5
    centre = x[0, 0, 10]
    assert centre.argmax() in (9, 10) and centre.max() > 0.8  # the column survived, centred
    same = preprocess_frames(frames[:, :, 20:60], 40, [0.0] * 3, [1.0] * 3)  # no resize needed
    assert torch.allclose(same * 255, torch.from_numpy(frames[:, :, 20:60]).permute(0, 3, 1, 2)
                          .float(), atol=1e-3)


def test_crop_frames_keeps_uint8_and_preprocess_is_crop_then_normalize() -> None:
    frames = np.random.default_rng(0).integers(0, 256, (3, 48, 100, 3), dtype=np.uint8)
    cropped = crop_frames(frames, 24)  # 48x100 -> 24x50 -> centre 24x24
    assert cropped.shape == (3, 24, 24, 3) and cropped.dtype == np.uint8
    assert np.array_equal(crop_frames(frames, 48), frames[:, :, 26:74])  # no resize: exact
    x = preprocess_frames(frames, 24, [0.5] * 3, [0.25] * 3)
    assert torch.equal(x, normalize_frames(cropped, [0.5] * 3, [0.25] * 3))
    assert torch.allclose(normalize_frames(cropped, [0.5] * 3, [0.25] * 3)[1, 2, 3, 4],
                          torch.tensor((cropped[1, 3, 4, 2] / 255 - 0.5) / 0.25).float())


def test_load_clip_gives_encoder_input(clips) -> None:
    cfg = VideoConfig(num_frames=4, image_size=16)
    x = load_clip(clips["every4"], cfg, start=2.0, end=4.0)
    assert x.shape == (4, 3, 16, 16)
    expected = preprocess_frames(read_frames(clips["every4"], 4, start=2.0, end=4.0), 16,
                                 cfg.mean, cfg.std)
    assert torch.equal(x, expected)
