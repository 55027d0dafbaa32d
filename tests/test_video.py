"""vidcap.video: sampling indices, reading by seeking or sequentially, every bad input, writing."""

from __future__ import annotations

import logging
import os
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
from vidcap.errors import VidcapError, VideoError
from vidcap.video import (
    VIDEO_EXTENSIONS,
    crop_frames,
    iter_frames,
    iter_windows,
    load_clip,
    normalize_frames,
    plan_decode_runs,
    preprocess_frames,
    probe_video,
    read_frames,
    read_sampled,
    read_windows,
    sample_frame_indices,
    select_frame_indices,
    window_frame_range,
    write_video,
)

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


def test_a_stream_that_changes_size_midway_is_scaled_to_its_first_size(tmp_path, caplog) -> None:
    first, second = tmp_path / "a.h264", tmp_path / "b.h264"
    write_video(first, index_frames(8), FPS, keyframe_interval=4)
    write_video(second, index_frames(8, height=48, width=96), FPS, keyframe_interval=4)
    joined = tmp_path / "joined.h264"
    joined.write_bytes(first.read_bytes() + second.read_bytes())
    with caplog.at_level(logging.WARNING, logger="vidcap.video"):
        frames = read_frames(joined, 16)
    assert frames.shape == (16, 32, 64, 3) and shown(frames) == list(range(8)) * 2
    assert "from 64x32 to 96x48" in caplog.text and str(joined) in caplog.text


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
                          capture_output=True, text=True, timeout=120, check=False)
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


@pytest.mark.parametrize("shape,size", [((5, 360, 640, 3), 64), ((4, 37, 51, 3), 24),
                                        ((3, 240, 180, 3), 224), ((2, 90, 90, 3), 32)])
def test_crop_frames_gives_the_bytes_of_one_batched_float_resize(shape, size) -> None:
    """The frames training caches hold: one float antialiased bilinear resize of the whole stack,
    rounded to uint8, then the centre crop (crop_frames resizes frame by frame, to the byte)."""
    import torch.nn.functional as F

    frames = np.random.default_rng(sum(shape)).integers(0, 256, shape, dtype=np.uint8)
    h, w = shape[1:3]
    out = (max(size, round(h * size / min(h, w))), max(size, round(w * size / min(h, w))))
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float()
    x = F.interpolate(x, size=out, mode="bilinear", antialias=True, align_corners=False)
    batched = x.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    top, left = (out[0] - size) // 2, (out[1] - size) // 2
    expected = batched[:, top:top + size, left:left + size]
    assert np.array_equal(crop_frames(frames, size), expected)


def test_load_clip_gives_encoder_input(clips) -> None:
    cfg = VideoConfig(num_frames=4, image_size=16)
    x = load_clip(clips["every4"], cfg, start=2.0, end=4.0)
    assert x.shape == (4, 3, 16, 16)
    expected = preprocess_frames(read_frames(clips["every4"], 4, start=2.0, end=4.0), 16,
                                 cfg.mean, cfg.std)
    assert torch.equal(x, expected)


# ---------------------------------------------------------------------------------------------
# frames bit-identical to a plain full decode, on every kind of clip


def plain_decode(path: Path) -> list[np.ndarray]:
    """Every frame, as PyAV gives it without any of vidcap's machinery (a packet the decoder
    rejects, such as the cut-short last one of a truncated file, gives no frame)."""
    frames = []
    with av.open(str(path)) as container:
        for packet in container.demux(video=0):
            try:
                frames += [f.to_ndarray(format="rgb24") for f in packet.decode()]
            except av.error.InvalidDataError:
                continue
    return frames


@pytest.fixture(scope="module")
def kinds(tmp_path_factory, clips) -> dict[str, Path]:
    """One file of each kind the reader must get exactly right."""
    from vidcap.data.shapes import ShapesSpec, plan_clip, render_clip

    root = tmp_path_factory.mktemp("kinds")
    spec = ShapesSpec()
    shapes, _ = render_clip(plan_clip(spec, "train", 3), spec.size, spec.num_frames)
    made = {"shapes64": root / "shapes.mp4", "odd444": root / "odd.mp4",
            "raw": root / "raw.h264", "mkv": root / "bframes.mkv"}
    write_video(made["shapes64"], shapes, spec.fps)
    rng = np.random.default_rng(1)
    write_video(made["odd444"], rng.integers(0, 256, (30, 37, 51, 3), dtype=np.uint8), FPS,
                keyframe_interval=5)
    write_video(made["raw"], index_frames(40), FPS, keyframe_interval=4)
    write_video(made["mkv"], index_frames(80), FPS, keyframe_interval=5)
    made["keyint5"] = root / "keyint5.mp4"
    write_video(made["keyint5"], index_frames(80), FPS, keyframe_interval=5)
    return {**made, "intra": clips["dense"], "bframes": clips["every4"],
            "sparse": clips["sparse"], "mpeg4": clips["mpeg4"]}


KINDS = ["shapes64", "keyint5", "intra", "bframes", "sparse", "odd444", "mpeg4", "raw", "mkv"]


@pytest.mark.parametrize("kind", KINDS)
def test_sampled_frames_are_bit_identical_to_a_plain_decode(kinds, kind) -> None:
    path = kinds[kind]
    plain = plain_decode(path)
    assert probe_video(path).num_frames == len(plain)
    duration = probe_video(path).duration
    for num_frames, start, end in ((8, None, None), (5, duration / 4, duration / 2),
                                   (3, duration / 3, None), (len(plain), None, None)):
        sampled = read_sampled(path, num_frames, start=start, end=end)
        assert len(sampled.indices) == num_frames
        expected = np.stack([plain[i] for i in sampled.indices])
        assert np.array_equal(sampled.frames, expected), (kind, num_frames, start, end)


@pytest.mark.parametrize("kind", KINDS)
def test_iter_frames_gives_every_frame_bit_identical(kinds, kind) -> None:
    plain = plain_decode(kinds[kind])
    times = [f.time for f in iter_frames(kinds[kind], rgb=False)]
    frames = list(iter_frames(kinds[kind]))
    assert [f.index for f in frames] == list(range(len(plain)))
    assert [f.time for f in frames] == times and times == sorted(times) and times[0] == 0.0
    assert all(np.array_equal(f.image, p) and f.image.flags.c_contiguous
               for f, p in zip(frames, plain))


@pytest.mark.parametrize("kind", KINDS)
def test_kept_pictures_convert_later_to_the_same_frames(kinds, kind) -> None:
    """Pictures kept from a pass that converts nothing give, when converted afterwards, what a
    converting pass gives: the same RGB, the same small grey copy; small copies never grow."""
    with iter_frames(kinds[kind], rgb=False, keep_pictures=True) as frames:
        kept = list(frames)
    converted = list(iter_frames(kinds[kind], small=16))
    assert [f.index for f in kept] == [f.index for f in converted]
    for frame, plain in zip(kept, converted):
        picture = frame.picture
        assert frame.image is None and picture is not None and picture.nbytes > 0
        assert np.array_equal(picture.rgb(), plain.image)
        assert np.array_equal(picture.small(16), plain.small)
        assert picture.small(16, "rgb").shape == plain.small.shape + (3,)
        assert picture.small(16, "value").shape == plain.small.shape
        # never enlarged; unscaled, the value plane is exactly max(R, G, B) of the RGB frame
        assert np.array_equal(picture.small(100_000, "value"), plain.image.max(axis=2))
        assert picture.small(100_000).shape == plain.image.shape[:2]
    with pytest.raises(ValueError, match="kind"):
        kept[0].picture.small(16, "hsv")


@pytest.mark.parametrize("name", ["every4", "dense", "mpeg4"])
def test_seeks_land_on_the_keyframe_asked_for(clips, kinds, name) -> None:
    """Seeking by a keyframe's dts lands one GOP early on B-frame files; by its pts, on it."""
    from vidcap.video.container import _open
    from vidcap.video.decode import _Reader

    for path in (clips[name], kinds["mkv"]):
        with _open(path) as container:
            reader = _Reader(path, container)
            for k in reader.timeline.keyframes:
                first = next(reader._packets_from(k))
                assert first.pts == reader.timeline.pts[k] and first.is_keyframe


def test_one_conversion_context_per_read_on_the_calling_thread(kinds, monkeypatch) -> None:
    """`to_ndarray(format="rgb24")` builds a swscale context and thread pool per frame."""
    from vidcap import video

    made, calls = [], []

    class Counting:
        def __init__(self) -> None:
            self.inner = av.video.reformatter.VideoReformatter()
            made.append(self)

        def reformat(self, frame, **kwargs):
            calls.append(kwargs.get("threads"))
            return self.inner.reformat(frame, **kwargs)

    monkeypatch.setattr(video.convert, "VideoReformatter", Counting)
    read_frames(kinds["keyint5"], 40)
    assert len(made) <= 2 and len(calls) == 40 and set(calls) == {1}
    made.clear()
    frames = list(iter_frames(kinds["keyint5"], small=16))
    assert len(made) <= 2 and len(frames) == 80


# ---------------------------------------------------------------------------------------------
# resource caps


def test_too_many_frames_is_a_value_error_before_opening(tmp_path) -> None:
    with pytest.raises(ValueError, match="VIDCAP_MAX_SAMPLED_FRAMES") as caught:
        read_frames(tmp_path / "never-opened.mp4", 2_000_000)
    assert "2,000,000" in str(caught.value) and "10,000" in str(caught.value)
    with pytest.raises(ValueError, match="at least 1"):
        read_windows(tmp_path / "never-opened.mp4", [(0, 1)], 0)


def test_frame_bytes_are_capped_before_decoding(tmp_path, monkeypatch) -> None:
    """A 4000x3000 video read at 100 frames would take 3.4 GiB: refused, saying how to allow it."""
    path = tmp_path / "huge.mp4"
    with av.open(str(path), "w") as out:  # write_video's careful settings take seconds here
        stream = out.add_stream("libx264", rate=FPS, options={"preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = 4000, 3000, "yuv420p"
        for i in range(2):
            frame = av.VideoFrame.from_ndarray(np.zeros((4500, 4000), np.uint8), format="yuv420p")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    with pytest.raises(VideoError, match="VIDCAP_MAX_FRAME_BYTES") as caught:
        read_frames(path, 100)
    assert "100 frames of 4000x3000" in str(caught.value) and "2,048 MiB" in str(caught.value)
    assert read_frames(path, 2).shape == (2, 3000, 4000, 3)
    monkeypatch.setenv("VIDCAP_MAX_FRAME_BYTES", str(2 * 3000 * 4000 * 3 - 1))
    with pytest.raises(VideoError, match="over the limit of 69 MiB"):
        read_frames(path, 2)


def test_frame_byte_cap_counts_every_window_of_read_windows(clips, monkeypatch) -> None:
    one = 8 * 32 * 64 * 3  # 8 frames of 64x32
    monkeypatch.setenv("VIDCAP_MAX_FRAME_BYTES", str(2 * one))
    windows = [(0, 2), (2, 4), (4, 6)]
    assert read_frames(clips["every4"], 8).shape == (8, 32, 64, 3)
    with pytest.raises(VideoError, match="24 frames of 64x32"):
        read_windows(clips["every4"], windows, 8)
    assert len(list(iter_windows(clips["every4"], windows, 8))) == 3  # one window at a time
    monkeypatch.setenv("VIDCAP_MAX_FRAME_BYTES", "lots")
    with pytest.raises(VidcapError, match="VIDCAP_MAX_FRAME_BYTES='lots'"):
        read_frames(clips["every4"], 8)


# ---------------------------------------------------------------------------------------------
# display rotation (phone videos)


def write_turned(path: Path, frames: np.ndarray, degrees: float, hflip: bool = False) -> None:
    """Frames as stored, with a display matrix saying: turn `degrees` counter-clockwise, then
    mirror left-right (PyAV's `set_display_rotation`)."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv444p"
        stream.set_display_rotation(degrees, hflip=hflip)
        for i, array in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(array, format="rgb24")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


@pytest.mark.parametrize("degrees", [90, 180, 270, 0])
@pytest.mark.parametrize("hflip", [False, True])
@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_rotated_videos_are_read_upright(tmp_path, degrees, hflip, suffix) -> None:
    frames = np.random.default_rng(2).integers(0, 256, (6, 24, 40, 3), dtype=np.uint8)
    frames[:, :8, :8] = 255  # a corner mark
    path = tmp_path / f"turned{suffix}"
    write_turned(path, frames, degrees, hflip)
    expected = [np.rot90(f, degrees // 90) for f in plain_decode(path)]  # counter-clockwise
    expected = [f[:, ::-1] if hflip else f for f in expected]
    got = read_frames(path, 6)
    assert np.array_equal(got, np.stack(expected))
    assert got.shape[1:3] == ((40, 24) if degrees in (90, 270) else (24, 40))
    with iter_frames(path, small=10) as it:
        first = next(it)
    assert np.array_equal(first.image, expected[0]) and max(first.small.shape) == 10
    assert first.small.shape[0] > first.small.shape[1] if degrees in (90, 270) else True


def test_a_portrait_phone_video_comes_out_portrait(tmp_path) -> None:
    """Phones store a portrait video landscape and mark it "turn 90 degrees clockwise"."""
    portrait = index_frames(8, height=128, width=64)  # bars side by side, 64 wide, 128 high
    stored = np.stack([np.rot90(f, 1) for f in portrait])  # turned on its side: 128 wide
    path = tmp_path / "phone.mp4"
    write_turned(path, stored, -90)
    frames = read_frames(path, 8)
    assert frames.shape == (8, 128, 64, 3)
    assert shown(frames) == list(range(8))


def test_an_odd_display_angle_is_read_as_stored_with_a_warning(tmp_path, caplog) -> None:
    frames = np.random.default_rng(3).integers(0, 256, (3, 24, 40, 3), dtype=np.uint8)
    path = tmp_path / "tilted.mp4"
    write_turned(path, frames, 30)
    with caplog.at_level(logging.WARNING, logger="vidcap.video"):
        got = read_frames(path, 3)
    assert np.array_equal(got, np.stack(plain_decode(path)))
    assert str(path) in caplog.text and "not a multiple of 90 degrees" in caplog.text


# ---------------------------------------------------------------------------------------------
# truncated files


@pytest.fixture(scope="module")
def complete(tmp_path_factory) -> dict[str, Path]:
    """80-frame index clips in containers that state their length in their header, with noise
    so that the frames, not the header, are most of the file."""
    root = tmp_path_factory.mktemp("complete")
    noise = np.random.default_rng(4).integers(-40, 41, (80, 32, 64, 3))
    frames = np.clip(index_frames(80) + noise, 0, 255).astype(np.uint8)
    made = {}
    for suffix, codec in ((".mkv", "libx264"), (".webm", "libvpx"), (".avi", "mpeg4"),
                          (".flv", "flv"), (".wmv", "wmv2"), (".mp4", "libx264")):
        made[suffix] = root / f"clip{suffix}"
        write_video(made[suffix], frames, FPS, keyframe_interval=8, codec=codec)
    return made


@pytest.mark.parametrize("suffix", [".mkv", ".webm", ".avi", ".flv", ".wmv", ".mp4"])
def test_complete_files_are_not_called_truncated(complete, caplog, suffix) -> None:
    with caplog.at_level(logging.WARNING, logger="vidcap.video"):
        info = probe_video(complete[suffix])
        frames = read_frames(complete[suffix], 8)
    assert info.num_frames == 80 and info.truncation is None and caplog.text == ""
    assert shown(frames) == [5, 15, 25, 35, 45, 55, 65, 75]


@pytest.mark.parametrize("suffix", [".mkv", ".webm", ".avi", ".flv"])
@pytest.mark.parametrize("keep", [0.3, 0.55, 0.8, 0.95])
def test_truncated_files_warn_where_they_break_and_read_what_is_there(
        complete, tmp_path, caplog, suffix, keep) -> None:
    data = complete[suffix].read_bytes()
    path = tmp_path / f"cut{suffix}"
    path.write_bytes(data[:int(len(data) * keep)])
    with caplog.at_level(logging.WARNING, logger="vidcap.video"):
        info = probe_video(path)
    present = info.num_frames
    assert 0 < present < 80 and info.truncation is not None
    assert info.truncation.frames == present
    assert caplog.text.count(f"{path}: truncated file") == 1
    assert f"the data ends after {present} frames, at {info.duration:.3f} s" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="vidcap.video"):
        sampled = read_sampled(path, 8)
    assert "truncated file" in caplog.text
    assert shown(sampled.frames) == sampled.indices  # the frames asked for, not neighbours
    plain = plain_decode(path)
    assert np.array_equal(sampled.frames, np.stack([plain[i] for i in sampled.indices]))
    with iter_frames(path, rgb=False) as it:
        assert it.truncation == info.truncation and len(list(it)) == present


@pytest.mark.parametrize("keep", [0.05, 0.3, 0.6, 0.9, 0.99])
def test_truncated_mp4_files_stay_errors(complete, tmp_path, keep) -> None:
    """An MP4's index lists every frame, so a cut file is an error, as it always was."""
    data = complete[".mp4"].read_bytes()
    path = tmp_path / "cut.mp4"
    path.write_bytes(data[:int(len(data) * keep)])
    for read in (probe_video, lambda p: read_frames(p, 8), iter_frames):
        with pytest.raises(VideoError, match="truncated or corrupt data"):
            read(path)


@pytest.mark.parametrize("keep", [0.3, 0.6, 0.9])
def test_a_cut_mp4_is_read_as_far_as_it_goes_when_asked(complete, tmp_path, keep) -> None:
    """`iter_frames(partial_mp4=True)`: a cut MP4 is a truncated file read up to where its data
    ends, the frames those a plain decode gives."""
    data = complete[".mp4"].read_bytes()
    path = tmp_path / "cut.mp4"
    path.write_bytes(data[:int(len(data) * keep)])
    plain = plain_decode(path)
    with iter_frames(path, partial_mp4=True) as frames:
        got = list(frames)
        truncation = frames.truncation
    assert truncation is not None and truncation.frames < 80 and "80 frames" in truncation.announced
    assert 0 < len(got) <= truncation.frames and len(got) <= len(plain)
    assert all(np.array_equal(f.image, p) for f, p in zip(got, plain))
    assert shown([f.image for f in got]) == list(range(len(got)))


def test_a_file_cut_inside_its_header_is_still_an_error(complete, tmp_path) -> None:
    path = tmp_path / "head.mkv"
    path.write_bytes(complete[".mkv"].read_bytes()[:300])
    with pytest.raises(VideoError):
        read_frames(path, 8)


# ---------------------------------------------------------------------------------------------
# paths


def test_symlink_loops_broken_links_pipes_say_so(tmp_path) -> None:
    (tmp_path / "a.mp4").symlink_to(tmp_path / "b.mp4")
    (tmp_path / "b.mp4").symlink_to(tmp_path / "a.mp4")
    (tmp_path / "gone.mp4").symlink_to(tmp_path / "deleted.mp4")
    os.mkfifo(tmp_path / "pipe.mp4")  # opening it to read would wait for a writer forever
    for name, reason in (("a.mp4", "symbolic link loop"), ("gone.mp4", "broken symbolic link"),
                         ("pipe.mp4", "not a regular file"), ("none.mp4", "file not found")):
        for read in (probe_video, lambda p: read_frames(p, 4), iter_frames):
            with pytest.raises(VideoError, match=reason):
                read(tmp_path / name)


def test_permission_denied_says_so(clips, tmp_path) -> None:
    path = tmp_path / "locked.mp4"
    path.write_bytes(clips["sparse"].read_bytes())
    path.chmod(0)
    is_root = os.geteuid() == 0
    if is_root:  # root reads anything: check as nobody (effective id only, restored below)
        os.seteuid(65534)
    try:
        with pytest.raises(VideoError, match="permission denied"):
            read_frames(path, 4)
    finally:
        if is_root:
            os.seteuid(0)


def test_non_utf8_file_names_are_read_and_named(clips, complete, tmp_path, caplog) -> None:
    name = os.fsdecode(b"clip-\xe9\xff.mp4")  # Latin-1 bytes: not UTF-8
    path = tmp_path / name
    path.write_bytes(clips["every4"].read_bytes())
    assert shown(read_frames(path, 4, start=2, end=4)) == [18, 22, 26, 30]
    assert len(list(iter_frames(path, rgb=False))) == 80
    cut = tmp_path / os.fsdecode(b"cut-\xe9.mkv")
    cut.write_bytes(complete[".mkv"].read_bytes()[:-5000])
    with caplog.at_level(logging.WARNING, logger="vidcap.video"):
        probe_video(cut)
    assert "truncated file" in caplog.text
    done = subprocess.run([sys.executable, "-m", "vidcap", "inspect", str(path)],
                          capture_output=True, timeout=120, check=False)
    assert done.returncode == 0 and b"clip-\xe9\xff.mp4" in done.stdout
    path.write_bytes(b"not a video" * 10)
    done = subprocess.run([sys.executable, "-m", "vidcap", "inspect", str(path)],
                          capture_output=True, timeout=120, check=False)
    assert done.returncode == 2 and b"Traceback" not in done.stderr


# ---------------------------------------------------------------------------------------------
# one pass for long videos


def test_iter_frames_converts_only_what_is_asked_for(clips) -> None:
    every4 = clips["every4"]
    frames = list(iter_frames(every4, rgb=lambda index, time: index % 10 == 0 and time < 5))
    assert [f.index for f in frames if f.image is not None] == [0, 10, 20, 30]
    assert [shown(f.image[None])[0] for f in frames if f.image is not None] == [0, 10, 20, 30]
    assert [f.time for f in frames] == pytest.approx([i / FPS for i in range(80)])
    bare = list(iter_frames(every4, rgb=False, small=16))
    assert all(f.image is None and f.small.shape == (8, 16) and f.small.dtype == np.uint8
               for f in bare)
    full = np.stack([f.image for f in iter_frames(every4)])
    grey = full.astype(float).mean(-1).reshape(80, 8, 4, 16, 4).mean((2, 4))  # 4x4 means
    assert np.abs(np.stack([f.small for f in bare]) - grey).max() < 12  # luma of the same frame
    with iter_frames(every4) as it:
        assert it.info.num_frames == 80 and it.truncation is None and it.decode_errors == 0
    with pytest.raises(ValueError):
        iter_frames(every4, small=0)


@pytest.mark.parametrize("name", ["text", "audio", "junk", "half", "missing"])
def test_iter_frames_raises_only_video_errors(bad_files, name) -> None:
    path, reason = bad_files[name]
    with pytest.raises(VideoError, match=reason):
        for _ in iter_frames(path):
            pass


WINDOWS = [(0.0, 2.0), (2.0, 4.0), (1.5, 2.5), (9.0, 10.0), (0.0, 10.0), (3.3, 3.4), (7.0, 9.0)]


@pytest.mark.parametrize("kind", ["sparse", "intra", "bframes", "mpeg4", "raw", "mkv"])
def test_read_windows_equals_read_sampled_per_window(kinds, kind) -> None:
    windows = [(s * 40 / 80 if kind == "raw" else s, e * 40 / 80 if kind == "raw" else e)
               for s, e in WINDOWS]
    together = read_windows(kinds[kind], windows, 6)
    assert len(together) == len(windows)
    for (start, end), got in zip(windows, together):
        alone = read_sampled(kinds[kind], 6, start=start, end=end)
        assert got.indices == alone.indices and got.times == alone.times
        assert np.array_equal(got.frames, alone.frames)
    streamed = list(iter_windows(kinds[kind], windows, 6))
    assert all(np.array_equal(a.frames, b.frames) for a, b in zip(streamed, together))


def test_read_windows_decodes_once(clips, monkeypatch) -> None:
    """All windows come from one forward pass: no frame is decoded twice, the file is opened
    once."""
    from vidcap import video

    opened, decoded = [], []
    real_open, real_decode = video.decode._open, video.decode._Reader._decode

    def counting_open(path):
        opened.append(path)
        return real_open(path)

    def counting_decode(self, ctx, packet, drain=False):
        for frame in real_decode(self, ctx, packet, drain):
            decoded.append(frame.pts)
            yield frame

    monkeypatch.setattr(video.decode, "_open", counting_open)
    monkeypatch.setattr(video.decode._Reader, "_decode", counting_decode)
    windows = [(2.0 * k, 2.0 * k + 2.0) for k in range(5)]
    assert len(read_windows(clips["sparse"], windows, 8)) == 5
    assert len(opened) == 1 and len(decoded) == len(set(decoded)) <= 80


def test_read_windows_names_a_bad_window(clips) -> None:
    with pytest.raises(VideoError, match=r"window 1 \(12.0, 14.0\): .*starts after the video"):
        read_windows(clips["sparse"], [(0.0, 2.0), (12.0, 14.0)], 4)
    assert read_windows(clips["sparse"], [], 4) == []


def test_video_extensions_are_lower_case_and_unique() -> None:
    assert VIDEO_EXTENSIONS[:3] == (".mp4", ".avi", ".mkv") and ".ts" in VIDEO_EXTENSIONS
    assert all(e == e.lower() and e.startswith(".") for e in VIDEO_EXTENSIONS)
    assert len(set(VIDEO_EXTENSIONS)) == len(VIDEO_EXTENSIONS)
