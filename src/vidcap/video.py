"""Video files in and out, through PyAV (FFmpeg inside its wheel; never a system ffmpeg).

Reading samples T frames by uniform segment-centre sampling: frame i of T is the one at the centre
of the i-th of T equal segments of the clip (or of its [start, end] window), so a clip shorter
than T repeats frames. How the frames are decoded is chosen per file and per request:

1. A demux pass (no decoding) lists every packet: presentation timestamps, keyframe flags. That is
   the frame count and timeline; container metadata (`stream.frames`, `duration`) is not trusted.
2. `plan_decode_runs` groups the wanted frames into runs. A run seeks to the keyframe before its
   first frame and decodes forward; the next wanted frame joins the run when no later keyframe
   lies before it, or when decoding on costs less than seeking again. Sparse keyframes (libx264's
   default of one per 250 frames) give one sequential run; dense keyframes give a seek per frame.
3. While decoding, packets whose frame is not wanted are sent with `skip_frame=NONREF`, so the
   decoder drops the non-reference (B-)frames nobody asked for.

Every failure reaches the caller as a `VideoError(path, reason)`; no PyAV exception escapes.
"""

from __future__ import annotations

import logging
import math
from bisect import bisect_left, bisect_right
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import av
import numpy as np

from vidcap.errors import VideoError
from vidcap.files import atomic_path

if TYPE_CHECKING:  # torch is imported where it is used: probing and writing videos need none
    import torch

    from vidcap.config import VideoConfig

log = logging.getLogger(__name__)

VIDEO_EXTENSIONS: tuple[str, ...] = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".mpg",
                                     ".mpeg", ".flv", ".wmv", ".3gp", ".ogv", ".ts")
"""File extensions, in lower case, treated as videos (folders searched, datasets matched); earlier
ones are preferred when two files share a stem."""
SEEK_COST_FRAMES = 4
"""What one seek costs, in decoded frames (flushing the decoder, restarting at a keyframe)."""
WINDOW_END_TOLERANCE_S = 0.5
"""A window may end this far past the last frame (annotation rounding); it is clipped there."""
THREADED_MIN_PIXELS = 256 * 256
"""Frames at least this large are decoded with FFmpeg's frame+slice threads; smaller ones (Shapes
clips) on one thread, where a thread pool costs more than it saves (measured: 64x64 clips 2.3 ms
single-threaded vs 3.1 ms threaded; 320x240 ones 300 vs 240 ms for a full pass)."""
_EPS = 1e-6  # seconds: timestamps this close count as equal
_MP4_FAMILY = ("mov", "mp4")
_MP4_MAGIC = ((4, b"ftyp"), (4, b"moov"), (4, b"mdat"), (4, b"free"), (4, b"wide"), (4, b"skip"))
_CONTAINER_MAGIC = _MP4_MAGIC + (  # signatures of video containers: "corrupt", not "not media"
    (0, b"\x1a\x45\xdf\xa3"), (0, b"RIFF"), (0, b"FLV"), (0, b"OggS"), (0, b"\x00\x00\x01\xba"),
    (0, b"\x00\x00\x01\xb3"), (0, b"\x30\x26\xb2\x75"), (0, b"\x00\x00\x00\x01"),
)


@dataclass(frozen=True)
class VideoInfo:
    """What `probe_video` learns from a demux pass (nothing is decoded)."""

    path: str
    format: str
    codec: str
    width: int
    height: int
    num_frames: int
    duration: float
    """Seconds from the first frame's timestamp to the end of the last frame."""
    fps: float
    """Mean frame rate, num_frames / duration (robust to variable frame rate)."""
    num_keyframes: int
    keyframe_interval: float
    """Mean number of frames per keyframe (1 = every frame is a keyframe)."""


class SampledFrames(NamedTuple):
    frames: np.ndarray
    """uint8 (T, H, W, 3) RGB."""
    indices: list[int]
    """Index of each sampled frame in presentation order (T of them, repeats allowed)."""
    times: list[float]
    """Timestamp of each sampled frame, seconds from the start of the video."""
    decode_runs: int
    """How many seek-and-decode runs the reader used (1 = one sequential pass)."""


# ---------------------------------------------------------------------------------------------
# pure index logic


def sample_frame_indices(num_available: int, num_frames: int) -> list[int]:
    """Segment-centre sampling: frame i of T sits at the centre of the i-th of T equal segments
    of `num_available` frames, i.e. floor((i + 0.5) * n / T); repeats when n < T."""
    if num_available < 1:
        raise ValueError(f"need at least one frame to sample from, got {num_available}")
    if num_frames < 1:
        raise ValueError(f"num_frames must be at least 1, got {num_frames}")
    return [(2 * i + 1) * num_available // (2 * num_frames) for i in range(num_frames)]


def window_frame_range(times: Sequence[float], duration: float, start: float | None,
                       end: float | None) -> tuple[int, int]:
    """First and last (inclusive) frame index whose timestamp lies in [start, end) seconds.

    `times` are the sorted frame timestamps (seconds from the first frame). A window narrower than
    one frame gives the frame on screen at `start`. A window outside the video is a ValueError
    whose message says why; one ending less than `WINDOW_END_TOLERANCE_S` past the end is clipped.
    """
    if not times:
        raise ValueError("the video has no frames")
    s = 0.0 if start is None else float(start)
    e = duration if end is None else float(end)
    if not (math.isfinite(s) and math.isfinite(e)):
        raise ValueError(f"window [{s}, {e}] s is not a pair of finite numbers")
    if s < 0:
        raise ValueError(f"window start {s:g} s is negative")
    if s >= duration - _EPS:
        raise ValueError(f"window [{s:g}, {e:g}] s starts after the video ends ({duration:.3f} s)")
    if e <= s:
        raise ValueError(f"window end {e:g} s is not after its start {s:g} s")
    if e > duration + WINDOW_END_TOLERANCE_S:
        raise ValueError(f"window [{s:g}, {e:g}] s ends after the video ends ({duration:.3f} s)")
    first = bisect_left(times, s - _EPS)
    last = bisect_left(times, e - _EPS) - 1
    if last < first:
        first = last = max(bisect_right(times, s + _EPS) - 1, 0)
    return first, last


def select_frame_indices(times: Sequence[float], duration: float, num_frames: int,
                         start: float | None = None, end: float | None = None) -> list[int]:
    """The T frame indices `read_frames` returns: segment-centre sampling inside the window."""
    first, last = window_frame_range(times, duration, start, end)
    return [first + i for i in sample_frame_indices(last - first + 1, num_frames)]


def plan_decode_runs(targets: Sequence[int], keyframes: Sequence[int],
                     seek_cost: float = SEEK_COST_FRAMES) -> list[tuple[int, list[int]]]:
    """Group wanted frame indices into runs `(start_frame, [targets])`.

    Each run seeks to `start_frame` (the keyframe at or before its first target) and decodes
    forward through its targets. A target joins the current run when no keyframe lies between the
    decoder's position and it, or when decoding on (target - position frames) costs no more than
    seeking (target - keyframe frames + `seek_cost`). `keyframes` are sorted indices.
    """
    runs: list[tuple[int, list[int]]] = []
    position = -1
    for target in sorted(set(targets)):
        k = bisect_right(keyframes, target) - 1
        keyframe = keyframes[k] if k >= 0 else 0
        if runs and (keyframe <= position or target - position <= target - keyframe + seek_cost):
            runs[-1][1].append(target)
        else:
            runs.append((keyframe, [target]))
        position = target
    return runs


# ---------------------------------------------------------------------------------------------
# opening and scanning


@dataclass(frozen=True)
class _Timeline:
    pts: list[int]  # presentation order
    seek_ts: list[int]  # per frame: min(pts, dts) of its packet, a safe backward-seek target
    keyframes: list[int]  # sorted frame indices
    times: list[float]  # seconds from the first frame
    duration: float
    is_timed: bool  # every packet has a presentation timestamp (raw .h264 streams have none)


class _Unseekable(Exception):
    """The demuxer cannot seek (raw elementary streams): decode in order from a fresh open."""


def _looks_like_container(path: Path, magics: Sequence[tuple[int, bytes]] = _CONTAINER_MAGIC
                          ) -> bool:
    with path.open("rb") as f:
        head = f.read(16)
    return any(head[off:off + len(magic)] == magic for off, magic in magics)


def _mp4_cut_box(path: Path) -> str | None:
    """For an MP4/MOV file, the top-level box the file ends inside of (a truncated file), or None.

    MP4 is a sequence of boxes (32-bit size, 4-byte type; size 1: a 64-bit size follows; size 0:
    to the end of the file); a box that claims more bytes than remain means the file was cut.
    """
    size = path.stat().st_size
    offset = 0
    with path.open("rb") as f:
        while offset + 8 <= size:
            f.seek(offset)
            head = f.read(16)
            box_size, kind = int.from_bytes(head[:4], "big"), head[4:8]
            if box_size == 1 and len(head) == 16:
                box_size = int.from_bytes(head[8:16], "big")
            elif box_size == 0:
                return None
            if box_size < 8:
                return None  # not box structure after all; leave the verdict to FFmpeg
            if offset + box_size > size:
                return kind.decode("latin-1")
            offset += box_size
    return None


def _ffmpeg_reason(err: BaseException) -> str:
    return getattr(err, "strerror", None) or str(err)


@contextmanager
def _open(path: Path) -> Iterator[av.container.InputContainer]:
    """Open a media file; every failure, now or while reading it, becomes a VideoError."""
    if not path.exists():
        raise VideoError(path, "file not found")
    if path.is_dir():
        raise VideoError(path, "is a directory, not a video file")
    if path.stat().st_size == 0:
        raise VideoError(path, "not a media file (it is empty)")
    if _looks_like_container(path, _MP4_MAGIC) and (box := _mp4_cut_box(path)) is not None:
        raise VideoError(path, f"truncated or corrupt data (the file ends inside its {box!r} box)")
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except PermissionError:
        raise VideoError(path, "permission denied") from None
    except (av.FFmpegError, OSError, UnicodeDecodeError) as err:
        if _looks_like_container(path):
            raise VideoError(path, "truncated or corrupt data (the container cannot be parsed: "
                                   f"{_ffmpeg_reason(err)})") from None
        raise VideoError(path, "not a media file (no audio or video format recognised)") from None
    try:
        with container:
            yield container
    except (av.FFmpegError, OSError) as err:
        raise VideoError(path, f"truncated or corrupt data ({_ffmpeg_reason(err)})") from None


def _video_stream(container: av.container.InputContainer,
                  path: Path) -> av.video.stream.VideoStream:
    cover_art = av.stream.Disposition.attached_pic  # an MP3's album cover is no video
    streams = [s for s in container.streams.video if not s.disposition & cover_art]
    if not streams:
        raise VideoError(path, "no video stream (the file holds only "
                               f"{', '.join(sorted({s.type for s in container.streams})) or 'no'} "
                               "streams)")
    return streams[0]


def _scan(container: av.container.InputContainer, stream: av.video.stream.VideoStream,
          path: Path) -> _Timeline:
    """Demux every packet of the stream (no decoding) and build the frame timeline."""
    packets: list[tuple[int | None, int | None, bool, int]] = []
    for packet in container.demux(stream):
        if packet.size == 0:  # the flush packet PyAV yields at the end
            continue
        if packet.is_corrupt:
            raise VideoError(path, f"truncated or corrupt data (packet {len(packets)} is damaged)")
        packets.append((packet.pts, packet.dts, packet.is_keyframe, packet.duration or 0))
    if any(name in container.format.name for name in _MP4_FAMILY):
        listed = sum(1 for entry in stream.index_entries if not entry.is_discard)
        if listed > len(packets):
            raise VideoError(path, f"truncated or corrupt data (the index lists {listed} frames, "
                                   f"the file holds {len(packets)})")
    if not packets:
        raise VideoError(path, "no decodable frames (the video stream is empty)")
    is_timed = all(p[0] is not None for p in packets)
    if not is_timed:  # no presentation timestamps: fall back to dts, or to the frame rate
        step = _frame_step(stream)
        packets = [(d if d is not None else i * step, d, k, dur)
                   for i, (_, d, k, dur) in enumerate(packets)]
    packets.sort(key=lambda p: p[0])
    pts = [p[0] for p in packets]
    time_base = stream.time_base or Fraction(1, 90000)
    times = [float((p - pts[0]) * time_base) for p in pts]
    last = packets[-1][3] or (pts[-1] - pts[-2] if len(pts) > 1 else _frame_step(stream))
    return _Timeline(
        pts=pts,
        seek_ts=[min(p, d) if d is not None else p for p, d, _, _ in packets],
        keyframes=[i for i, p in enumerate(packets) if p[2]],
        times=times,
        duration=float((pts[-1] + last - pts[0]) * time_base),
        is_timed=is_timed,
    )


def _set_threads(stream: av.video.stream.VideoStream) -> None:
    ctx = stream.codec_context
    if ctx.width * ctx.height >= THREADED_MIN_PIXELS:
        ctx.thread_type = "AUTO"
    else:
        ctx.thread_count = 1


def _frame_step(stream: av.video.stream.VideoStream) -> int:
    """One frame in stream time_base units, from the guessed rate (25 fps when unknown)."""
    rate = stream.guessed_rate or stream.average_rate or Fraction(25)
    return max(1, round(1 / (rate * (stream.time_base or Fraction(1, 90000)))))


def _info(path: Path, container: av.container.InputContainer,
          stream: av.video.stream.VideoStream, timeline: _Timeline) -> VideoInfo:
    n = len(timeline.pts)
    return VideoInfo(
        path=str(path), format=container.format.name, codec=stream.codec_context.name,
        width=stream.codec_context.width, height=stream.codec_context.height, num_frames=n,
        duration=timeline.duration, fps=n / timeline.duration if timeline.duration > 0 else 0.0,
        num_keyframes=len(timeline.keyframes),
        keyframe_interval=n / len(timeline.keyframes) if timeline.keyframes else float(n),
    )


def probe_video(path: str | Path) -> VideoInfo:
    """Duration, frame rate, frame count, size, keyframe spacing and codec, from one demux pass."""
    path = Path(path)
    with _open(path) as container:
        stream = _video_stream(container, path)
        return _info(path, container, stream, _scan(container, stream, path))


# ---------------------------------------------------------------------------------------------
# decoding


def _decode_run(container: av.container.InputContainer, stream: av.video.stream.VideoStream,
                timeline: _Timeline, start: int, targets: Sequence[int],
                out: dict[int, np.ndarray], skip_unwanted: bool = True) -> int:
    """Seek to frame `start` and decode forward until every target is in `out`; returns errors.

    Once the packet of the last wanted frame has gone in, the decoder is drained instead of fed
    further packets only to push the wanted frames out of its reordering delay.
    """
    ctx = stream.codec_context
    wanted = {timeline.pts[t]: t for t in targets if t not in out}
    unsent = set(wanted)
    try:
        container.seek(timeline.seek_ts[start], stream=stream, backward=True)  # flushes ctx too
    except av.FFmpegError:
        raise _Unseekable from None
    errors = 0
    for packet in container.demux(stream):
        if not wanted:
            break
        if packet.size:
            unsent.discard(packet.pts)
            if skip_unwanted:
                ctx.skip_frame = "DEFAULT" if packet.pts in wanted else "NONREF"
        drain = packet.size and not unsent
        for item in (packet, None) if drain else (packet,):
            try:
                frames = ctx.decode(item)
            except av.error.InvalidDataError:
                errors += 1
                continue
            for frame in frames:
                index = wanted.pop(frame.pts, None)
                if index is not None:
                    out[index] = frame.to_ndarray(format="rgb24")
        if drain:
            break
    ctx.skip_frame = "DEFAULT"
    return errors


def _decode_in_order(container: av.container.InputContainer,
                     stream: av.video.stream.VideoStream, targets: Sequence[int],
                     out: dict[int, np.ndarray]) -> int:
    """Decode a freshly opened file from its start, numbering frames as they come out."""
    ctx = stream.codec_context
    wanted, index, errors = set(targets), 0, 0
    for packet in container.demux(stream):
        try:
            frames = ctx.decode(packet)
        except av.error.InvalidDataError:
            errors += 1
            continue
        for frame in frames:
            if index in wanted:
                out[index] = frame.to_ndarray(format="rgb24")
            index += 1
        if index > max(wanted):
            break
    return errors


def _decode_frames(container: av.container.InputContainer, stream: av.video.stream.VideoStream,
                   timeline: _Timeline, targets: Sequence[int], path: Path) -> tuple[dict, int]:
    runs = plan_decode_runs(targets, timeline.keyframes)
    out: dict[int, np.ndarray] = {}
    errors = 0
    try:
        if not timeline.is_timed:
            raise _Unseekable
        for start, run_targets in runs:
            errors += _decode_run(container, stream, timeline, start, run_targets, out)
        missing = [t for t in targets if t not in out]
        if missing:  # a seek landed late, or timestamps disagree: one plain pass from the start
            log.debug("%s: %d frames missed by the plan; decoding from the start", path,
                      len(missing))
            errors += _decode_run(container, stream, timeline, 0, missing, out,
                                  skip_unwanted=False)
    except _Unseekable:
        log.debug("%s: no seeking or no timestamps; decoding in order from the start", path)
        runs = [(0, list(targets))]
        with _open(path) as fresh:
            fresh_stream = _video_stream(fresh, path)
            _set_threads(fresh_stream)
            errors += _decode_in_order(fresh, fresh_stream, targets, out)
    missing = [t for t in targets if t not in out]
    if missing:
        if not out and errors:
            raise VideoError(path, "no decodable frames (the decoder rejected every packet)")
        raise VideoError(path, f"truncated or corrupt data (frame {missing[0]} of "
                               f"{len(timeline.pts)} cannot be decoded)")
    return out, len(runs)


def read_sampled(path: str | Path, num_frames: int, *, start: float | None = None,
                 end: float | None = None) -> SampledFrames:
    """`read_frames` plus which frames were taken (indices, timestamps) and how they were read."""
    if num_frames < 1:
        raise ValueError(f"num_frames must be at least 1, got {num_frames}")
    path = Path(path)
    with _open(path) as container:
        stream = _video_stream(container, path)
        _set_threads(stream)
        timeline = _scan(container, stream, path)
        try:
            indices = select_frame_indices(timeline.times, timeline.duration, num_frames,
                                           start, end)
        except ValueError as err:
            raise VideoError(path, str(err)) from None
        decoded, runs = _decode_frames(container, stream, timeline, sorted(set(indices)), path)
    frames = np.stack([decoded[i] for i in indices])  # (T, H, W, 3)
    return SampledFrames(frames, indices, [timeline.times[i] for i in indices], runs)


def read_frames(path: str | Path, num_frames: int, *, start: float | None = None,
                end: float | None = None) -> np.ndarray:
    """uint8 (T, H, W, 3) RGB frames by segment-centre sampling over the clip or [start, end] s."""
    return read_sampled(path, num_frames, start=start, end=end).frames


# ---------------------------------------------------------------------------------------------
# preprocessing


def crop_frames(frames: np.ndarray, image_size: int) -> np.ndarray:
    """uint8 (T, H, W, 3) -> uint8 (T, S, S, 3): shorter side resized to S (antialiased
    bilinear, rounded back to 8 bits), then the centre S x S crop. Kept in uint8 so it can be
    cached; `normalize_frames` finishes the job."""
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected frames of shape (T, H, W, 3), got {tuple(frames.shape)}")
    h, w = frames.shape[1:3]
    scale = image_size / min(h, w)
    size = (max(image_size, round(h * scale)), max(image_size, round(w * scale)))
    if size != (h, w):
        import torch
        import torch.nn.functional as F

        x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()
        x = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
        frames = x.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    top, left = (size[0] - image_size) // 2, (size[1] - image_size) // 2
    return np.ascontiguousarray(frames[:, top:top + image_size, left:left + image_size])


def normalize_frames(frames: np.ndarray, mean: Sequence[float],
                     std: Sequence[float]) -> torch.Tensor:
    """uint8 (T, S, S, 3) -> float (T, 3, S, S): scaled to [0, 1], normalised per channel."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float().div_(255)
    m = torch.tensor(list(mean), dtype=x.dtype).view(1, 3, 1, 1)
    s = torch.tensor(list(std), dtype=x.dtype).view(1, 3, 1, 1)
    return ((x - m) / s).contiguous()


def preprocess_frames(frames: np.ndarray, image_size: int, mean: Sequence[float],
                      std: Sequence[float]) -> torch.Tensor:
    """uint8 (T, H, W, 3) -> float (T, 3, S, S): `crop_frames` then `normalize_frames`, the same
    two steps the training dataset takes (with its uint8 cache between them)."""
    return normalize_frames(crop_frames(frames, image_size), mean, std)


class ModelClip(NamedTuple):
    """A clip as the model sees it, with what it was made of (for figures and analyses)."""

    sampled: SampledFrames
    """The decoded frames (T, H, W, 3) and which frames of the video they are."""
    frames: np.ndarray
    """uint8 (T, S, S, 3): the sampled frames resized and centre-cropped (`crop_frames`)."""
    pixels: torch.Tensor
    """float (T, 3, S, S): the cropped frames normalised (`normalize_frames`): the model's input."""


def read_clip(path: str | Path, video_cfg: VideoConfig, *, start: float | None = None,
              end: float | None = None) -> ModelClip:
    """Read one clip as the model sees it, keeping the sampled and the cropped frames."""
    sampled = read_sampled(path, video_cfg.num_frames, start=start, end=end)
    frames = crop_frames(sampled.frames, video_cfg.image_size)
    return ModelClip(sampled, frames, normalize_frames(frames, video_cfg.mean, video_cfg.std))


def load_clip(path: str | Path, video_cfg: VideoConfig, *, start: float | None = None,
              end: float | None = None) -> torch.Tensor:
    """Read and preprocess one clip: float (T, 3, S, S), ready for the video encoder."""
    frames = read_frames(path, video_cfg.num_frames, start=start, end=end)
    return preprocess_frames(frames, video_cfg.image_size, video_cfg.mean, video_cfg.std)


# ---------------------------------------------------------------------------------------------
# writing


def default_codec() -> str:
    """`libx264` (H.264) when this PyAV build can encode it, else `mpeg4` (MPEG-4 part 2)."""
    try:
        av.codec.Codec("libx264", "w")
        return "libx264"
    except (av.codec.codec.UnknownCodecError, av.FFmpegError):
        return "mpeg4"


def _yuv_frame(rgb: np.ndarray, pix_fmt: str) -> av.VideoFrame:
    """RGB (H, W, 3) uint8 -> a yuv420p/yuv444p frame, BT.601 limited range (what decoders assume
    for untagged video), in integer arithmetic.

    Converting here rather than letting the encoder call swscale keeps the output byte-identical:
    the encoder's implicit conversion was seen to differ between two encodes of the same frames
    in one process.
    """
    r, g, b = (rgb[..., c].astype(np.int32) for c in range(3))
    y = ((66 * r + 129 * g + 25 * b + 128) >> 8) + 16
    u = ((-38 * r - 74 * g + 112 * b + 128) >> 8) + 128
    v = ((112 * r - 94 * g - 18 * b + 128) >> 8) + 128
    if pix_fmt == "yuv420p":  # 2x2 means (edge rows/columns repeated for odd sides)
        h, w = y.shape
        u, v = (np.pad(c, ((0, h % 2), (0, w % 2)), mode="edge") for c in (u, v))
        u, v = ((c[0::2, 0::2] + c[1::2, 0::2] + c[0::2, 1::2] + c[1::2, 1::2] + 2) >> 2
                for c in (u, v))
    frame = av.VideoFrame(rgb.shape[1], rgb.shape[0], pix_fmt)
    for plane, values in zip(frame.planes, (y, u, v)):
        rows = np.zeros((plane.height, plane.line_size), np.uint8)
        rows[:, :plane.width] = values
        plane.update(rows.tobytes())
    return frame


def write_video(path: str | Path, frames: np.ndarray, fps: int, *,
                keyframe_interval: int | None = None, codec: str | None = None) -> None:
    """Encode uint8 (T, H, W, 3) RGB frames to a video file, deterministically and atomically.

    H.264 (libx264, CRF 18, one thread, no macroblock tree) in yuv420p, or yuv444p when a side
    is odd (4:2:0 needs even sides); MPEG-4 part 2 (`codec="mpeg4"`, the fallback) at fixed
    quality. Keyframes every `keyframe_interval` frames, or the encoder's default (libx264: up to
    250 frames apart). MP4 files get their index at the front (faststart).
    """
    path = Path(path)
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or not len(frames):
        raise ValueError(f"expected uint8 frames of shape (T, H, W, 3), got {frames.dtype} "
                         f"{tuple(frames.shape)}")
    if keyframe_interval is not None and keyframe_interval < 1:
        raise ValueError(f"keyframe_interval must be at least 1, got {keyframe_interval}")
    codec = codec or default_codec()
    is_mp4 = path.suffix.lower() in (".mp4", ".m4v", ".mov")
    with atomic_path(path) as tmp, \
            av.open(str(tmp), "w", options={"movflags": "+faststart"} if is_mp4 else {}) as out:
        stream = out.add_stream(codec, rate=fps)
        _configure_encoder(stream, codec, frames.shape[2], frames.shape[1], keyframe_interval)
        for i, array in enumerate(frames):
            frame = _yuv_frame(array, stream.pix_fmt)
            frame.pts, frame.time_base = i, Fraction(1, fps)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


def _configure_encoder(stream: av.video.stream.VideoStream, codec: str, width: int, height: int,
                       keyframe_interval: int | None) -> None:
    """Size, pixel format and the deterministic settings of `write_video`'s encoder."""
    stream.width, stream.height = width, height
    if codec == "libx264":
        stream.pix_fmt = "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"
        # mbtree=0: with it, x264 gave different bytes for the same 64x64 frames
        # depending on the heap's contents (it reads memory it never wrote)
        params = "mbtree=0"
        if keyframe_interval is not None:
            k = keyframe_interval
            params += f":keyint={k}:min-keyint={k}:scenecut=0"
        stream.options = {"crf": "18", "preset": "medium", "threads": "1", "x264-params": params}
    else:
        ctx = stream.codec_context
        stream.pix_fmt = "yuv420p"
        ctx.gop_size = keyframe_interval or 250
        ctx.thread_count = 1
        ctx.qscale = True
        ctx.global_quality = 3 * 118  # FF_QP2LAMBDA * q: q=3 is near-transparent
