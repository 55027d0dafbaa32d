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


def make_frames(seconds: int = 10, fps: int = 30, width: int = 320,
                height: int = 240) -> np.ndarray:
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


def timed(fns: dict, repeats: int) -> dict[str, tuple[float, float]]:
    """Median wall and CPU seconds of each function, run interleaved so load hits all alike."""
    for fn in fns.values():
        fn()  # warm-up (file cache, codec init)
    wall: dict[str, list[float]] = {name: [] for name in fns}
    cpu: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            w0, c0 = time.perf_counter(), time.process_time()
            fn()
            wall[name].append(time.perf_counter() - w0)
            cpu[name].append(time.process_time() - c0)
    return {n: (statistics.median(wall[n]), statistics.median(cpu[n])) for n in fns}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    frames = make_frames()
    with tempfile.TemporaryDirectory() as tmp:
        print(f"median of {args.repeats}; wall ms (CPU ms, all threads) per call of 8 frames")
        print(f"{'clip':<34} {'keyframes':>9} {'full decode':>17} {'read_frames':>17} "
              f"{'speed-up wall (CPU)':>20}")
        for name, keyint in CLIPS.items():
            path = Path(tmp) / f"clip-{keyint}.mp4"
            write_video(path, frames, 30, keyframe_interval=keyint)
            info = probe_video(path)
            assert np.array_equal(full_decode(path, FRAMES), read_frames(path, FRAMES)), name
            t = timed({"base": lambda: full_decode(path, FRAMES),
                       "ours": lambda: read_frames(path, FRAMES)}, args.repeats)
            (bw, bc), (ow, oc) = t["base"], t["ours"]
            print(f"{name:<34} {info.num_keyframes:>9} {bw * 1e3:>7.1f} ({bc * 1e3:>6.1f}) "
                  f"{ow * 1e3:>7.1f} ({oc * 1e3:>6.1f}) {bw / ow:>11.2f}x ({bc / oc:.2f}x)")


if __name__ == "__main__":
    main()
