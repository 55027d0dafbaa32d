"""Benchmark: `vidcap.video.read_frames` against a plain full PyAV decode of the same 8 frames.

Builds 10 s, 320x240, 30 fps clips (300 frames of a moving, textured pattern) with three keyframe
spacings: sparse (libx264's default, keyint 250: keyframes at frames 0 and 250), dense (a keyframe
every 5 frames) and intra (every frame), then times, per clip, the median of `--repeats` runs of

* baseline: open the file, decode every frame with PyAV (thread_type AUTO), keep the 8
  segment-centre frames (converted to RGB; the others are decoded, not converted);
* read_frames: `vidcap.video.read_frames(path, 8)`.

Both return the same frames (checked). Run: `.venv/bin/python bench/video_read.py`.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import av
import numpy as np

from vidcap.video import probe_video, read_frames, sample_frame_indices, write_video

FRAMES = 8
CLIPS = {"sparse (keyint 250, x264 default)": None, "dense (keyint 5)": 5, "intra (keyint 1)": 1}


def make_frames(seconds: int = 10, fps: int = 30, width: int = 320, height: int = 240) -> np.ndarray:
    """A drifting sinusoidal pattern with a moving square and light noise: (T, H, W, 3) uint8."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    frames = np.empty((seconds * fps, height, width, 3), np.uint8)
    for t in range(len(frames)):
        base = 128 + 60 * np.sin((x + 3 * t) / 17.0) * np.cos((y - 2 * t) / 23.0)
        img = np.stack([base, np.roll(base, t, axis=1), 255 - base], axis=-1)
        img += rng.normal(0, 6, img.shape).astype(np.float32)
        cx = (20 + 4 * t) % (width - 40)
        img[100:140, cx:cx + 40] = (240, 40, 40)
        frames[t] = np.clip(img, 0, 255).astype(np.uint8)
    return frames


def full_decode(path: Path, num_frames: int) -> np.ndarray:
    """Decode the whole stream, keep the segment-centre frames."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_type = "AUTO"
        decoded = list(container.decode(stream))
    keep = sample_frame_indices(len(decoded), num_frames)
    return np.stack([decoded[i].to_ndarray(format="rgb24") for i in keep])


def median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up (file cache, codec init)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    frames = make_frames()
    with tempfile.TemporaryDirectory() as tmp:
        print(f"{'clip':<36} {'keyframes':>9} {'full decode':>12} {'read_frames':>12} {'speed-up':>9}")
        for name, keyint in CLIPS.items():
            path = Path(tmp) / f"clip-{keyint}.mp4"
            write_video(path, frames, 30, keyframe_interval=keyint)
            info = probe_video(path)
            assert np.array_equal(full_decode(path, FRAMES), read_frames(path, FRAMES)), name
            base = median_seconds(lambda: full_decode(path, FRAMES), args.repeats)
            ours = median_seconds(lambda: read_frames(path, FRAMES), args.repeats)
            print(f"{name:<36} {info.num_keyframes:>9} {base * 1e3:>10.1f}ms {ours * 1e3:>10.1f}ms "
                  f"{base / ours:>8.2f}x")


if __name__ == "__main__":
    main()
