"""Benchmark: `vidcap.video.read_frames(path, 8)` against decord (the anchor), torchcodec (where it
loads) and a plain full PyAV decode, on every kind of clip the reader meets.

Clips (all H.264 in MP4, libx264 with its default B-frames):

* shapes 64 px: a Shapes clip as `vidcap prepare shapes` writes it (16 frames, 8 fps, one keyframe);
* 320x240, 10 s at 30 fps (a drifting textured pattern, a moving square, light noise, a scene cut
  every 7 s): sparse (libx264's default keyframe placement, keyint 250 plus scene cuts), keyint 5,
  and all-intra (keyint 1);
* 320x240, 10 minutes at 30 fps, the same pattern, default keyframes (written once into
  `--cache`; about 3 minutes of encoding on 2 cores).

Each reader returns the same 8 segment-centre frames (checked bit for bit against decord before
timing). Per call: wall ms and process CPU ms (all threads), median of `--repeats` calls, the
readers interleaved call by call so that load from other processes hits all of them alike.

* read_frames: `vidcap.video.read_frames(path, 8)`;
* decord: `decord.VideoReader(path)` (its default threads) and `get_batch` of the same indices;
* torchcodec: `VideoDecoder(path).get_frames_at(indices)`, when the package loads;
* full decode: open, decode every frame with PyAV (`thread_type="AUTO"`), convert the 8 (not run
  on the 10-minute clip).

`--avx2` masks FFmpeg's AVX-512 code paths in PyAV's libavutil (`av_force_cpu_flags`), to read
like a machine with AVX2 only; decord bundles its own, older FFmpeg.

Run: `PYTHONPATH=src .venv/bin/python bench/video_read.py [--repeats 15] [--avx2]`.
"""

from __future__ import annotations

import argparse
import ctypes
import glob
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import av
import numpy as np

from vidcap.video import probe_video, read_frames, sample_frame_indices, write_video

FRAMES = 8
FPS = 30
_AV_CPU_FLAG_AVX512 = 0x100000
_AV_CPU_FLAG_AVX512ICL = 0x200000


def textured_frames(seconds: float, width: int, height: int,
                    scene_s: int = 7) -> Iterator[np.ndarray]:
    """A drifting sinusoidal texture (a new one every `scene_s` s), a moving square, noise."""
    rng = np.random.default_rng(0)
    noise = rng.integers(-6, 7, (8, height, width, 3)).astype(np.int16)
    y, x = np.mgrid[0:height, 0:width + 3 * scene_s * FPS].astype(np.float32)
    texture = np.zeros(0)
    for t in range(round(seconds * FPS)):
        scene, k = divmod(t, scene_s * FPS)
        if k == 0:
            base = 128 + 60 * np.sin(x / (11 + 7 * (scene % 5)) + scene) * np.cos(
                y / (17 + 5 * (scene % 3)))
            texture = np.stack([base, np.roll(base, 40 * scene, axis=1), 255 - base],
                               -1).astype(np.int16)
        img = texture[:, 3 * k:3 * k + width] + noise[t % len(noise)]
        cx = (20 + 4 * t) % (width - 40)
        img[height // 2 - 20:height // 2 + 20, cx:cx + 40] = ((scene * 70) % 256, 40, 200)
        yield np.clip(img, 0, 255).astype(np.uint8)


def write_stream(path: Path, frames: Iterator[np.ndarray], keyint: int | None) -> None:
    """H.264 (libx264 CRF 18, its default B-frames) frame by frame: a long video never sits in
    memory whole. `keyint`: a keyframe every that many frames, else libx264's own placement."""
    tmp = path.with_name(f".{path.name}.partial.mp4")
    with av.open(str(tmp), "w") as out:
        stream = out.add_stream("libx264", rate=FPS)
        params = f"keyint={keyint}:min-keyint={keyint}:scenecut=0" if keyint else ""
        stream.options = {"crf": "18", **({"x264-params": params} if params else {})}
        for i, array in enumerate(frames):
            if i == 0:
                stream.width, stream.height, stream.pix_fmt = array.shape[1], array.shape[0], \
                    "yuv420p"
            frame = av.VideoFrame.from_ndarray(array, format="rgb24")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    os.replace(tmp, path)


def make_clips(tmp: Path, cache: Path) -> dict[str, Path]:
    from vidcap.data.shapes import ShapesSpec, plan_clip, render_clip

    spec = ShapesSpec()
    shapes, _ = render_clip(plan_clip(spec, "train", 0), spec.size, spec.num_frames)
    clips = {"shapes 64 px (16 frames)": tmp / "shapes.mp4"}
    write_video(clips["shapes 64 px (16 frames)"], shapes, spec.fps)
    for name, keyint in (("sparse", None), ("keyint 5", 5), ("all-intra", 1)):
        clips[f"320x240 10 s, {name}"] = tmp / f"clip-{keyint}.mp4"
        write_stream(clips[f"320x240 10 s, {name}"], textured_frames(10, 320, 240), keyint)
    long = cache / "long-320x240-600s.mp4"
    if not long.exists():
        print(f"writing {long} (once; minutes)", flush=True)
        cache.mkdir(parents=True, exist_ok=True)
        write_stream(long, textured_frames(600, 320, 240), None)
    clips["320x240 10 min, sparse"] = long
    return clips


def decord_reader() -> Callable[[Path], np.ndarray]:
    import decord

    def read(path: Path) -> np.ndarray:
        vr = decord.VideoReader(str(path))
        return vr.get_batch(sample_frame_indices(len(vr), FRAMES)).asnumpy()

    return read


def torchcodec_reader() -> tuple[Callable[[Path], np.ndarray] | None, str]:
    """The reader, or None and why torchcodec is not measured."""
    try:
        from torchcodec.decoders import VideoDecoder
    except Exception as err:  # noqa: BLE001 - any failure to load means "not measured"
        root = err
        while root.__cause__ or root.__context__:  # the library that is missing, not the wrapper
            root = root.__cause__ or root.__context__
        return None, f"{type(err).__name__}: {str(err)[:120]}; because {str(root)[:120]}"

    def read(path: Path) -> np.ndarray:
        decoder = VideoDecoder(str(path), dimension_order="NHWC")
        indices = sample_frame_indices(decoder.metadata.num_frames, FRAMES)
        return decoder.get_frames_at(indices).data.numpy()

    return read, ""


def full_decode(path: Path) -> np.ndarray:
    """Decode the whole stream, keep the segment-centre frames."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_type = "AUTO"
        decoded = list(container.decode(stream))
    keep = sample_frame_indices(len(decoded), FRAMES)
    return np.stack([decoded[i].to_ndarray(format="rgb24") for i in keep])


def timed(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, tuple[float, float]]:
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


def mask_avx512() -> None:
    """Make PyAV's FFmpeg use at most AVX2 (its DSP code picks paths when codecs open)."""
    lib = glob.glob(str(Path(av.__file__).parent.parent / "av.libs" / "libavutil-*.so*"))
    avutil = ctypes.CDLL(lib[0])
    flags = avutil.av_get_cpu_flags()
    avutil.av_force_cpu_flags(flags & ~(_AV_CPU_FLAG_AVX512 | _AV_CPU_FLAG_AVX512ICL))


def describe_machine(avx2: bool) -> None:
    model = next((line.split(":", 1)[1].strip() for line in
                  Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")),
                 platform.processor())
    print(f"machine: {os.cpu_count()} CPUs ({model}), PyAV {av.__version__} "
          f"(FFmpeg {av.ffmpeg_version_info}){', AVX-512 masked' if avx2 else ''}; "
          f"load average {os.getloadavg()[0]:.2f}")


def row(name: str, path: Path, readers: dict[str, Callable[[Path], np.ndarray]],
        repeats: int) -> str:
    reference = readers["decord"](path)
    for reader in readers.values():
        assert np.array_equal(reader(path), reference), f"{name}: frames differ"
    t = timed({reader: (lambda fn=fn: fn(path)) for reader, fn in readers.items()}, repeats)
    (ow, oc), (dw, dc) = t["read_frames"], t["decord"]
    cells = [f"{t[r][0] * 1e3:.1f} ({t[r][1] * 1e3:.1f})" if r in t else "-"
             for r in ("read_frames", "decord", "torchcodec", "full decode")]
    info = probe_video(path)
    return (f"| {name} | {info.num_frames} | {info.num_keyframes} | {' | '.join(cells)} | "
            f"{oc / dc:.2f} | {ow / dw:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--cache", type=Path,
                        default=Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
                        / "vidcap-bench")
    parser.add_argument("--avx2", action="store_true", help="mask FFmpeg's AVX-512 paths")
    args = parser.parse_args()
    if args.avx2:
        mask_avx512()
    describe_machine(args.avx2)
    torchcodec, why = torchcodec_reader()
    if torchcodec is None:
        print(f"torchcodec: not measured, it does not load here ({why})")
    with tempfile.TemporaryDirectory() as tmp:
        clips = make_clips(Path(tmp), args.cache)
        print(f"median of {args.repeats} (10-minute clip: of {max(3, args.repeats // 5)}); wall ms "
              "(CPU ms, all threads) per call of 8 frames; ratios: read_frames / decord")
        print("| clip | frames | keyframes | read_frames | decord | torchcodec | full decode "
              "| CPU ratio | wall ratio |\n|---|---|---|---|---|---|---|---|---|")
        for name, path in clips.items():
            readers: dict[str, Callable[[Path], np.ndarray]] = {
                "read_frames": lambda p: read_frames(p, FRAMES), "decord": decord_reader()}
            if torchcodec is not None:
                readers["torchcodec"] = torchcodec
            is_long = "10 min" in name
            if not is_long:
                readers["full decode"] = full_decode
            print(row(name, path, readers, max(3, args.repeats // 5) if is_long else args.repeats),
                  flush=True)
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
