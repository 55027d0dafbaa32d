"""A long video captioned scene by scene: what `vidcap caption --segments auto` costs besides the
model, against one plain PyAV decode of the file.

Writes (once; kept at `--video`) a `--minutes`-long 640x360 H.264 video at 30 fps: scenes of 2 to
8 s, each a textured background of its own with a square crossing it, joined by hard cuts. Then
times, as the median of `--repeats` interleaved runs (wall and CPU seconds, all threads):

* decode: a plain PyAV pass, every frame converted to RGB (the baseline: one decode);
* decode + detect: the same pass feeding every frame to the shot detector (its own cost);
* segments: `vidcap.captioning.frames.sample_segments(path, 8, 64, auto, clip 2 s)` run to the
  end, which is everything `caption --segments auto` does before the model (probe, the decode
  pass with shot detection, the sampled frames of every segment, cropped);

and, apart: the model (shapes-tiny, random weights) captioning those segments, and the whole
`caption_files` call (one decoding worker, so the pass overlaps the model).

    PYTHONPATH=src .venv/bin/python bench/long_video.py [--minutes 10] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

from vidcap.captioning.batch import caption_files
from vidcap.captioning.frames import SegmentClip, SegmentRequest, sample_segments
from vidcap.captioning.segments import ShotDetector
from vidcap.config import load_config
from vidcap.video import normalize_frames, probe_video

WIDTH, HEIGHT, FPS = 640, 360, 30


def scene_background(rng: np.random.Generator) -> np.ndarray:
    """A smooth random colour field with grain, 640x360."""
    coarse = rng.integers(0, 256, (HEIGHT // 40 + 1, WIDTH // 40 + 1, 3)).astype(np.float32)
    rows = np.linspace(0, coarse.shape[0] - 1, HEIGHT)
    cols = np.linspace(0, coarse.shape[1] - 1, WIDTH)
    r0, c0 = rows.astype(int), cols.astype(int)
    r1, c1 = np.minimum(r0 + 1, coarse.shape[0] - 1), np.minimum(c0 + 1, coarse.shape[1] - 1)
    fr, fc = (rows - r0)[:, None, None], (cols - c0)[None, :, None]
    field = (coarse[r0][:, c0] * (1 - fr) * (1 - fc) + coarse[r1][:, c0] * fr * (1 - fc)
             + coarse[r0][:, c1] * (1 - fr) * fc + coarse[r1][:, c1] * fr * fc)
    return np.clip(field + rng.normal(0, 4, field.shape), 0, 255).astype(np.uint8)


def write_long_video(path: Path, minutes: float, seed: int = 0) -> list[float]:
    """Render and encode the video (libx264 veryfast: a bench input, made quickly); its cuts."""
    rng = np.random.default_rng(seed)
    total, cuts, frame_index = int(minutes * 60 * FPS), [], 0
    tmp = path.with_name(path.name + ".tmp.mp4")
    with av.open(str(tmp), "w") as out:
        stream = out.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.options = {"preset": "veryfast", "crf": "23"}
        while frame_index < total:
            length = min(total - frame_index, int(rng.integers(2 * FPS, 8 * FPS + 1)))
            background, colour = scene_background(rng), rng.integers(0, 256, 3)
            y = int(rng.integers(40, HEIGHT - 100))
            for t in range(length):
                frame = background.copy()
                x = int(20 + (WIDTH - 100) * t / length)
                frame[y:y + 60, x:x + 60] = colour
                video_frame = av.VideoFrame.from_ndarray(frame, format="rgb24")
                video_frame.pts, video_frame.time_base = frame_index, Fraction(1, FPS)
                out.mux(stream.encode(video_frame))
                frame_index += 1
            cuts.append(frame_index / FPS)
        out.mux(stream.encode(None))
    tmp.rename(path)
    return cuts[:-1]


def decode(path: Path, detector: ShotDetector | None = None) -> int:
    """One plain PyAV pass, every frame to RGB (and fed to `detector`); the frame count."""
    count = 0
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            rgb = frame.to_ndarray(format="rgb24")
            if detector is not None:
                detector.feed(count, float(frame.time), rgb)
            count += 1
    return count


def segments(path: Path, request: SegmentRequest) -> list[SegmentClip]:
    return [e for e in sample_segments(path, 8, 64, request) if isinstance(e, SegmentClip)]


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def timed_cpu(fn, cpu: list[float]) -> float:
    """Wall seconds of `fn()`; its CPU seconds (every thread of this process) go into `cpu`
    (steadier than wall time on a machine shared with other jobs)."""
    start = time.process_time()
    wall = timed(fn)
    cpu.append(time.process_time() - start)
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--video", type=Path, default=Path("/tmp/vidcap-bench-long.mp4"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    load = [os.getloadavg()]
    if not args.video.exists():
        print(f"writing {args.video} ...", flush=True)
        write_long_video(args.video, args.minutes)
    info = probe_video(args.video)
    request = SegmentRequest("auto", clip_length=2.0)
    runs = {"decode": lambda: decode(args.video),
            "decode_detect": lambda: decode(args.video, ShotDetector(info.fps)),
            "segments": lambda: segments(args.video, request)}
    times: dict[str, list[float]] = {k: [] for k in runs}
    cpu: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(args.repeats):
        for name, run in runs.items():
            times[name].append(timed_cpu(run, cpu[name]))
    clips = segments(args.video, request)
    cfg = load_config("shapes-tiny")
    from vidcap.models.mffcl import MFFCL

    model = MFFCL.build(cfg.model, cfg.video, captions=["a red square moves to the right"],
                        with_text_encoder=False).eval()
    pixels = torch.stack([normalize_frames(c.frames, cfg.video.mean, cfg.video.std)
                          for c in clips])
    model_seconds = timed(lambda: model.generate(pixels, cfg.generate))
    whole = timed(lambda: list(caption_files(model, [args.video], cfg.video, cfg.generate,
                                             request=request, workers=1)))
    load.append(os.getloadavg())
    median = {k: statistics.median(v) for k, v in times.items()}
    median_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    print(json.dumps({
        "video": {"frames": info.num_frames, "seconds": round(info.duration, 2),
                  "size": f"{info.width}x{info.height}", "keyframes": info.num_keyframes},
        "segments": len(clips), "seconds": {k: round(v, 2) for k, v in median.items()},
        "segments_over_decode": round(median["segments"] / median["decode"], 2),
        "detect_over_decode": round(median["decode_detect"] / median["decode"], 2),
        "model_seconds": round(model_seconds, 2),
        "caption_files_seconds": round(whole, 2),
        "caption_over_decode_plus_model": round(whole / (median["decode"] + model_seconds), 2),
        "all_seconds": {k: [round(x, 2) for x in v] for k, v in times.items()},
        "cpu_seconds": {k: round(v, 2) for k, v in median_cpu.items()},
        "cpu_segments_over_decode": round(median_cpu["segments"] / median_cpu["decode"], 2),
        "cpu_detect_over_decode": round(median_cpu["decode_detect"] / median_cpu["decode"], 2),
        "all_cpu_seconds": {k: [round(x, 2) for x in v] for k, v in cpu.items()},
        "load_average": [round(x[0], 2) for x in load], "cpus": os.cpu_count(),
        "machine": platform.machine()}, indent=1))


if __name__ == "__main__":
    main()
