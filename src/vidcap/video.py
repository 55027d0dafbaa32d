"""Video files in and out, through PyAV (FFmpeg inside its wheel; never a system ffmpeg).

Reading samples T frames by uniform segment-centre sampling: frame i of T is the one at the centre
of the i-th of T equal segments of the clip (or of its [start, end] window), so a clip shorter
than T repeats frames. How the frames are decoded is chosen per file and per request:

1. A demux pass (no decoding) lists every packet: presentation timestamps, keyframe flags. That is
   the frame count and timeline; container metadata (`stream.frames`, `duration`) is not trusted,
   only compared: data that ends before what the header announces is a truncated file, read as
   far as it goes with a warning naming the file and where it broke (MP4/MOV files, whose index
   lists every sample, stay a `VideoError`).
2. `plan_decode_runs` groups the wanted frames into runs. A run seeks to the keyframe before its
   first frame (by that keyframe's presentation timestamp, so it lands on it and not on the one
   before) and decodes forward; the next wanted frame joins the run when no later keyframe lies
   before it, or when decoding on costs less than seeking again. Sparse keyframes (libx264's
   default of one per 250 frames) give one sequential run; dense keyframes a seek per frame.
3. While decoding, packets whose frame is not wanted are sent with `skip_frame=NONREF`, so the
   decoder drops the non-reference (B-)frames nobody asked for.
4. Wanted frames are converted to RGB by one swscale context per stream, on the calling thread
   (`frame.to_ndarray(format="rgb24")` would build a context and a thread pool per frame), and
   turned upright by the stream's display matrix (phone videos), as ffmpeg's autorotation does.

Long videos: `iter_frames` decodes a file once, frame by frame; `read_windows` / `iter_windows`
take the sampled frames of many windows (the scenes of a video) in that one pass.

Reads are capped before anything is allocated: at most `MAX_SAMPLED_FRAMES` frames per read and
`MAX_FRAME_BYTES` bytes of frames (environment variables VIDCAP_MAX_SAMPLED_FRAMES,
VIDCAP_MAX_FRAME_BYTES). Frames are never scaled down to fit: a read over the cap is an error
that says how to raise it (scaling would change what a model sees without a word, and
`crop_frames` resizes afterwards anyway). Only regular files are opened (a pipe would block); a
symbolic link loop, a broken link and a file this user may not read are named as such.

Every failure reaches the caller as a `VideoError(path, reason)` (a `ValueError` for arguments
that are wrong whatever the file); no PyAV exception escapes.
"""

from __future__ import annotations

import errno
import logging
import math
import os
import stat
import struct
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple, Self

import av
import numpy as np
from av.sidedata.sidedata import Type as SideDataType
from av.video.reformatter import VideoReformatter

from vidcap.errors import ConfigError, VideoError

if TYPE_CHECKING:  # torch is imported where it is used: probing and writing videos need none
    import torch

    from vidcap.config import VideoConfig

log = logging.getLogger(__name__)

VIDEO_EXTENSIONS: tuple[str, ...] = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".mpg",
                                     ".mpeg", ".flv", ".wmv", ".3gp", ".ogv", ".ts")
"""File extensions, in lower case, treated as videos; earlier ones preferred when two files share
a stem."""
SEEK_COST_FRAMES = 4
"""What one seek costs, in decoded frames (flushing the decoder, restarting at a keyframe)."""
WINDOW_END_TOLERANCE_S = 0.5
"""A window may end this far past the last frame (annotation rounding); it is clipped there."""
THREADED_MIN_PIXELS = 256 * 256
"""Frames at least this large are decoded with FFmpeg's frame+slice threads; smaller ones (Shapes
clips) on one thread, where a thread pool costs more than it saves (measured: 64x64 clips 2.3 ms
single-threaded vs 3.1 ms threaded; 320x240 ones 300 vs 240 ms for a full pass)."""
MAX_FRAME_BYTES = 2 * 1024 ** 3
"""Most bytes of frames (T x H x W x 3) one read may return; checked before decoding. The
environment variable VIDCAP_MAX_FRAME_BYTES overrides it (a whole number of bytes)."""
MAX_SAMPLED_FRAMES = 10_000
"""Most frames one read samples (`num_frames`, per window for `read_windows`); the environment
variable VIDCAP_MAX_SAMPLED_FRAMES overrides it. `iter_frames` goes through any number."""
_EPS = 1e-6  # seconds: timestamps this close count as equal
_MP4_FAMILY = ("mov", "mp4")
_MP4_MAGIC = ((4, b"ftyp"), (4, b"moov"), (4, b"mdat"), (4, b"free"), (4, b"wide"), (4, b"skip"))
_CONTAINER_MAGIC = _MP4_MAGIC + (  # signatures of video containers: "corrupt", not "not media"
    (0, b"\x1a\x45\xdf\xa3"), (0, b"RIFF"), (0, b"FLV"), (0, b"OggS"), (0, b"\x00\x00\x01\xba"),
    (0, b"\x00\x00\x01\xb3"), (0, b"\x30\x26\xb2\x75"), (0, b"\x00\x00\x00\x01"),
)
# containers whose header states a duration / a frame count written when the file was finished
# (others estimate both from the data they hold, which a cut file would simply agree with)
_HEADER_DURATION_FORMATS = frozenset({"matroska", "webm", "flv", "asf"})
_HEADER_FRAMES_FORMATS = frozenset({"avi"})


@dataclass(frozen=True)
class Truncation:
    """A file whose data ends before what its header announces, or inside its last frame."""

    frames: int
    """Frames present: what is read."""
    end_time: float
    """Seconds from the first frame to the end of the last frame present."""
    announced: str
    """What the file promised, in words ("90 frames", "3.000 s", "a complete last frame")."""

    def describe(self, path: str | Path) -> str:
        """The warning logged for `path`: what it announces, where its data ends."""
        return (f"{path}: truncated file (it announces {self.announced}; the data ends after "
                f"{self.frames} frames, at {self.end_time:.3f} s); reading the frames present")


@dataclass(frozen=True)
class VideoInfo:
    """What `probe_video` learns from a demux pass (nothing is decoded)."""

    path: str
    format: str
    codec: str
    width: int
    height: int
    """Size of the coded picture; frames of a video with a 90/270 degree display rotation are
    returned upright, i.e. `height` wide and `width` high."""
    num_frames: int
    duration: float
    """Seconds from the first frame's timestamp to the end of the last frame."""
    fps: float
    """Mean frame rate, num_frames / duration (robust to variable frame rate)."""
    num_keyframes: int
    keyframe_interval: float
    """Mean number of frames per keyframe (1 = every frame is a keyframe)."""
    truncation: Truncation | None = None
    """Set when the data ends early (`num_frames` counts the frames present)."""


class SampledFrames(NamedTuple):
    frames: np.ndarray
    """uint8 (T, H, W, 3) RGB."""
    indices: list[int]
    """Index of each sampled frame in presentation order (T of them, repeats allowed)."""
    times: list[float]
    """Timestamp of each sampled frame, seconds from the start of the video."""
    decode_runs: int
    """How many seek-and-decode runs the reader used (1 = one sequential pass)."""


class DecodedFrame(NamedTuple):
    """One frame from `iter_frames`."""

    index: int
    """Position in presentation order (the index `read_sampled` uses)."""
    time: float
    """Seconds from the first frame (its timestamp, as in `SampledFrames.times`)."""
    image: np.ndarray | None
    """uint8 (H, W, 3) RGB, upright; None for frames not asked for (`rgb`)."""
    small: np.ndarray | None
    """uint8 (h, w) grey copy whose longer side is `small` pixels; None unless asked for."""


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
# resource caps


def _cap(name: str, env: str) -> int:
    """The module constant `name`, or the environment variable `env` when it is set."""
    raw = os.environ.get(env, "").strip()
    if not raw:
        return int(globals()[name])
    try:
        value = int(raw.replace("_", ""))
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigError(f"environment variable {env}={raw!r} is not a positive whole number")
    return value


def _check_num_frames(num_frames: int) -> None:
    """ValueError unless 1 <= num_frames <= the frames-per-read cap (`MAX_SAMPLED_FRAMES`)."""
    if num_frames < 1:
        raise ValueError(f"num_frames must be at least 1, got {num_frames}")
    cap = _cap("MAX_SAMPLED_FRAMES", "VIDCAP_MAX_SAMPLED_FRAMES")
    if num_frames > cap:
        raise ValueError(f"num_frames={num_frames:,} is over the limit of {cap:,} frames per "
                         "read (vidcap.video.MAX_SAMPLED_FRAMES; raise it with the environment "
                         "variable VIDCAP_MAX_SAMPLED_FRAMES, or go through every frame with "
                         "iter_frames)")


def _check_frame_bytes(path: Path, count: int, width: int, height: int) -> None:
    need = count * width * height * 3
    cap = _cap("MAX_FRAME_BYTES", "VIDCAP_MAX_FRAME_BYTES")
    if need > cap:
        raise VideoError(path, f"reading {count:,} frames of {width}x{height} would take "
                               f"{need / 2 ** 20:,.0f} MiB, over the limit of "
                               f"{cap / 2 ** 20:,.0f} MiB (vidcap.video.MAX_FRAME_BYTES; raise it "
                               "with the environment variable VIDCAP_MAX_FRAME_BYTES=<bytes>, or "
                               "read fewer frames at a time)")


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
    truncation: Truncation | None = None


class _Unseekable(Exception):
    """The demuxer cannot seek (raw elementary streams): decode in order from a fresh open."""


def _missing_reason(path: Path) -> str:
    if os.path.islink(path):
        return f"broken symbolic link (it points to {os.readlink(path)}, which does not exist)"
    return "file not found"


def _read_head(path: Path) -> bytes:
    """The first 16 bytes of a readable, non-empty regular file; else a VideoError saying why."""
    try:
        info = os.stat(path)
        if stat.S_ISDIR(info.st_mode):
            raise VideoError(path, "is a directory, not a video file")
        if not stat.S_ISREG(info.st_mode):
            raise VideoError(path, "not a regular file (a pipe, socket or device cannot be read "
                                   "as a video)")
        if info.st_size == 0:
            raise VideoError(path, "not a media file (it is empty)")
        with open(path, "rb") as f:
            return f.read(16)
    except FileNotFoundError:
        raise VideoError(path, _missing_reason(path)) from None
    except PermissionError:
        raise VideoError(path, "permission denied (this user may not read it)") from None
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise VideoError(path, "symbolic link loop (its links lead back to themselves and "
                                   "never reach a file)") from None
        raise VideoError(path, f"cannot be read ({err.strerror or err})") from None


def _has_magic(head: bytes, magics: Sequence[tuple[int, bytes]] = _CONTAINER_MAGIC) -> bool:
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
    head = _read_head(path)
    if _has_magic(head, _MP4_MAGIC) and (box := _mp4_cut_box(path)) is not None:
        raise VideoError(path, f"truncated or corrupt data (the file ends inside its {box!r} box)")
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except PermissionError:
        raise VideoError(path, "permission denied (this user may not read it)") from None
    except (av.FFmpegError, OSError, UnicodeDecodeError) as err:
        if _has_magic(head):
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


def _demux_packets(container: av.container.InputContainer, stream: av.video.stream.VideoStream,
                   path: Path) -> tuple[list[tuple], int, bool]:
    """Every packet's (pts, dts, keyframe, duration); how many empty packets with a timestamp
    (frames a muxer marks as dropped) there were; whether the last packets were cut short.

    Damaged packets at the very end are what a cut file leaves (its last frame's data ends early):
    they are dropped. A damaged packet with intact ones after it is a VideoError.
    """
    packets: list[tuple[int | None, int | None, bool, int]] = []
    damaged: list[int] = []
    empty = 0
    for packet in container.demux(stream):
        if packet.size == 0:  # the flush packet PyAV yields at the end, or a dropped frame
            empty += packet.pts is not None
            continue
        if packet.is_corrupt:
            damaged.append(len(packets))
        packets.append((packet.pts, packet.dts, packet.is_keyframe, packet.duration or 0))
    cut = False
    while damaged and damaged[-1] == len(packets) - 1:
        damaged.pop()
        packets.pop()
        cut = True
    if damaged:
        raise VideoError(path, f"truncated or corrupt data (packet {damaged[0]} is damaged)")
    return packets, empty, cut


def _hms_seconds(text: str) -> float:
    """Seconds in an "HH:MM:SS.fraction" tag (62.5 for "00:01:02.500000000"); 0.0 otherwise."""
    try:
        hours, minutes, seconds = text.split(":")
        return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    except ValueError:
        return 0.0


def _announced(container: av.container.InputContainer,
               stream: av.video.stream.VideoStream) -> tuple[int, float]:
    """The frame count and end time (seconds) a finished file's header states; 0 where none."""
    formats = set(container.format.name.split(","))
    frames = stream.frames if formats & _HEADER_FRAMES_FORMATS else 0
    end = _hms_seconds(stream.metadata.get("DURATION", "")) if "matroska" in formats else 0.0
    if not end and formats & _HEADER_DURATION_FORMATS and len(container.streams) == 1:
        # the file's duration is the video's only when no other stream (audio) can outlast it
        end = ((container.duration or 0) + (container.start_time or 0)) / av.time_base
    return frames, end


def _truncation(container: av.container.InputContainer, stream: av.video.stream.VideoStream,
                timeline: _Timeline, present: int, end: float, cut: bool) -> Truncation | None:
    """Where the data ends early: fewer frames (`present`) or an earlier end (`end`, seconds in
    stream time) than the header announces (by more than half a frame), or a last frame cut."""
    frames, announced_end = _announced(container, stream)
    n = len(timeline.pts)
    if frames > present:
        announced = f"{frames} frames"
    elif announced_end - end > timeline.duration / n / 2:
        announced = f"{announced_end:.3f} s"
    elif cut:
        announced = "a complete last frame"
    else:
        return None
    return Truncation(n, timeline.duration, announced)


def _scan(container: av.container.InputContainer, stream: av.video.stream.VideoStream,
          path: Path) -> _Timeline:
    """Demux every packet of the stream (no decoding) and build the frame timeline."""
    packets, empty, cut = _demux_packets(container, stream, path)
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
    last = packets[-1][3] or (pts[-1] - pts[-2] if len(pts) > 1 else _frame_step(stream))
    timeline = _Timeline(
        pts=pts,
        seek_ts=[min(p, d) if d is not None else p for p, d, _, _ in packets],
        keyframes=[i for i, p in enumerate(packets) if p[2]],
        # (int * int) / int: correctly rounded, the same float as via Fraction, 20x faster
        times=[(p - pts[0]) * time_base.numerator / time_base.denominator for p in pts],
        duration=float((pts[-1] + last - pts[0]) * time_base),
        is_timed=is_timed,
    )
    truncation = _truncation(container, stream, timeline, len(packets) + empty,
                             float((pts[-1] + last) * time_base), cut)
    if truncation is None:
        return timeline
    log.warning("%s", truncation.describe(path))
    return _Timeline(**{**timeline.__dict__, "truncation": truncation})


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
        truncation=timeline.truncation,
    )


def probe_video(path: str | Path) -> VideoInfo:
    """Duration, frame rate, frame count, size, keyframe spacing and codec, from one demux pass."""
    path = Path(path)
    with _open(path) as container:
        stream = _video_stream(container, path)
        return _info(path, container, stream, _scan(container, stream, path))


# ---------------------------------------------------------------------------------------------
# converting frames: RGB, small grey copies, upright


_ORIENT: dict[str, Callable[[np.ndarray], np.ndarray]] = {  # views, no copies
    "clock": lambda a: np.rot90(a, -1),  # a quarter turn clockwise
    "cclock": lambda a: np.rot90(a, 1),
    "transpose": lambda a: a.swapaxes(0, 1),  # ffmpeg's transpose=cclock_flip
    "antitranspose": lambda a: a[::-1, ::-1].swapaxes(0, 1),  # transpose=clock_flip
    "hflip": lambda a: a[:, ::-1],
    "vflip": lambda a: a[::-1],
}


def _orientation_ops(matrix: Sequence[int]) -> tuple[str, ...] | None:
    """The `_ORIENT` steps that show a frame as its display matrix says (FFmpeg's 3x3 layout,
    16.16 fixed point), by the rule ffmpeg and ffplay autorotate with; None when the matrix
    turns by an angle that is not a multiple of 90 degrees."""
    a, b, c, d = matrix[0], matrix[1], matrix[3], matrix[4]
    scale_x, scale_y = math.hypot(a, c), math.hypot(b, d)
    if not scale_x or not scale_y:
        return None
    clockwise = round(math.degrees(math.atan2(b / scale_y, a / scale_x))) % 360
    if clockwise == 90:
        return ("transpose",) if c > 0 else ("clock",)
    if clockwise == 180:
        return (("hflip",) if a < 0 else ()) + (("vflip",) if d < 0 else ())
    if clockwise == 270:
        return ("antitranspose",) if c < 0 else ("cclock",)
    if clockwise == 0:
        return ("vflip",) if d < 0 else ()
    return None


class _Converter:
    """Decoded frames to numpy for one stream: one swscale context per output kind, reused for
    every frame on the calling thread, and the frame's display matrix applied (upright)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._rgb = VideoReformatter()
        self._grey = VideoReformatter()
        self._matrix: bytes | None = None
        self._steps: tuple[str, ...] = ()
        self._size: tuple[int, int] | None = None
        self._resized = False

    def rgb(self, frame: av.VideoFrame) -> np.ndarray:
        """uint8 (H, W, 3) RGB, the bytes `frame.to_ndarray(format="rgb24")` gives, upright.
        Every frame has the size of the first (a stream that changes size midway is scaled back
        to it, so that its frames stack)."""
        width, height = self._size = self._size or (frame.width, frame.height)
        if (frame.width, frame.height) != self._size and not self._resized:
            self._resized = True
            log.warning("%s: the frame size changes midway, from %dx%d to %dx%d; such frames are "
                        "scaled to %dx%d", self.path, width, height, frame.width, frame.height,
                        width, height)
        rgb = self._rgb.reformat(frame, width=width, height=height, format="rgb24", threads=1)
        return self._upright(frame, rgb.to_ndarray())

    def small(self, frame: av.VideoFrame, side: int) -> np.ndarray:
        """uint8 (h, w) grey, area-averaged so that the longer side is `side` pixels, upright."""
        scale = side / max(frame.width, frame.height)
        width, height = max(1, round(frame.width * scale)), max(1, round(frame.height * scale))
        grey = self._grey.reformat(frame, width=width, height=height, format="gray",
                                   interpolation="AREA", threads=1)
        return self._upright(frame, grey.to_ndarray())

    def _upright(self, frame: av.VideoFrame, array: np.ndarray) -> np.ndarray:
        matrix = next((bytes(data) for data in frame.side_data
                       if data.type is SideDataType.DISPLAYMATRIX), None)
        if matrix != self._matrix:
            self._matrix, self._steps = matrix, self._steps_for(matrix)
        for step in self._steps:
            array = _ORIENT[step](array)
        return array

    def _steps_for(self, matrix: bytes | None) -> tuple[str, ...]:
        if matrix is None or len(matrix) < 36:
            return ()
        steps = _orientation_ops(struct.unpack("=9i", matrix[:36]))
        if steps is None:
            log.warning("%s: its display matrix turns the picture by an angle that is not a "
                        "multiple of 90 degrees; frames are read as stored, not turned", self.path)
            return ()
        return steps


# ---------------------------------------------------------------------------------------------
# decoding


class _Reader:
    """An open video: its stream, the demuxed timeline, one converter, a decode-error count."""

    def __init__(self, path: Path, container: av.container.InputContainer) -> None:
        self.path = path
        self.container = container
        self.stream = _video_stream(container, path)
        _set_threads(self.stream)
        self.timeline = _scan(container, self.stream, path)
        self.converter = _Converter(path)
        self.errors = 0

    def info(self) -> VideoInfo:
        return _info(self.path, self.container, self.stream, self.timeline)

    def plan(self, targets: Sequence[int]) -> list[tuple[int, list[int]]]:
        if not self.timeline.is_timed:
            return [(0, list(targets))]
        return plan_decode_runs(targets, self.timeline.keyframes)

    def decode(self, runs: Sequence[tuple[int, list[int]]]) -> Iterator[tuple[int, np.ndarray]]:
        """(index, RGB frame) for every target of the planned runs, each once, in one forward
        pass; a VideoError at the end when some cannot be decoded."""
        targets = sorted(t for _, run in runs for t in run)
        done: set[int] = set()
        try:
            if not self.timeline.is_timed:
                raise _Unseekable
            for start, run in runs:
                yield from self._note(self._run(start, run), done)
            missing = [t for t in targets if t not in done]
            if missing:  # a seek landed late, or timestamps disagree: one plain pass from the start
                log.debug("%s: %d frames missed by the plan; decoding from the start", self.path,
                          len(missing))
                yield from self._note(self._run(0, missing, skip_unwanted=False), done)
        except _Unseekable:
            log.debug("%s: no seeking or no timestamps; decoding in order from the start",
                      self.path)
            yield from self._note(self._in_order([t for t in targets if t not in done]), done)
        self._check_complete(targets, done)

    @staticmethod
    def _note(frames: Iterator[tuple[int, np.ndarray]],
              done: set[int]) -> Iterator[tuple[int, np.ndarray]]:
        for index, array in frames:
            done.add(index)
            yield index, array

    def _check_complete(self, targets: Sequence[int], done: set[int]) -> None:
        missing = [t for t in targets if t not in done]
        if not missing:
            return
        if not done and self.errors:
            raise VideoError(self.path, "no decodable frames (the decoder rejected every packet)")
        raise VideoError(self.path, f"truncated or corrupt data (frame {missing[0]} of "
                                    f"{len(self.timeline.pts)} cannot be decoded)")

    def _packets_from(self, start: int) -> Iterator[av.Packet]:
        """Packets from the keyframe that frame `start` is, seeking by its presentation timestamp
        (seeking by its dts lands a whole GOP early on files with B-frames); should that land
        past the keyframe, by the smaller of its pts and dts, which never does."""
        target = self.timeline.pts[start]
        for ts in dict.fromkeys((target, self.timeline.seek_ts[start])):
            try:
                self.container.seek(ts, stream=self.stream, backward=True)  # flushes ctx too
            except av.FFmpegError:
                raise _Unseekable from None
            packets = self.container.demux(self.stream)
            first = next(packets, None)
            if first is None or first.pts is None or first.pts <= target:
                break
            log.debug("%s: seeking to pts %d landed at pts %d", self.path, target, first.pts)
        if first is not None:
            yield first
        yield from packets

    def _decode(self, ctx: av.codec.context.CodecContext, packet: av.Packet,
                drain: bool = False) -> Iterator[av.VideoFrame]:
        """The frames this packet completes (and, with `drain`, every frame still buffered)."""
        for item in (packet, None) if drain else (packet,):
            try:
                frames = ctx.decode(item)
            except av.error.InvalidDataError:
                self.errors += 1
                continue
            yield from frames

    def _run(self, start: int, targets: Sequence[int],
             skip_unwanted: bool = True) -> Iterator[tuple[int, np.ndarray]]:
        """Seek to frame `start` and decode forward until every target came out.

        Packets of unwanted frames go in with skip_frame=NONREF (non-reference frames are not
        decoded). Once the packet of the last wanted frame is in, the decoder is drained instead
        of fed further packets only to push the wanted frames out of its reordering delay.
        """
        ctx = self.stream.codec_context
        wanted = {self.timeline.pts[t]: t for t in targets}
        unsent = set(wanted)
        try:
            for packet in self._packets_from(start):
                if packet.size:
                    unsent.discard(packet.pts)
                    if skip_unwanted:
                        ctx.skip_frame = "DEFAULT" if packet.pts in wanted else "NONREF"
                drain = bool(packet.size) and not unsent
                for frame in self._decode(ctx, packet, drain):
                    index = wanted.pop(frame.pts, None)
                    if index is not None:
                        yield index, self.converter.rgb(frame)
                if drain or not wanted:
                    break
        finally:
            ctx.skip_frame = "DEFAULT"

    def every_frame(self) -> Iterator[tuple[int, av.VideoFrame]]:
        """Every frame, in presentation order with its timeline index, from a fresh open."""
        with _open(self.path) as container:
            stream = _video_stream(container, self.path)
            _set_threads(stream)
            ctx = stream.codec_context
            index_of = ({pts: i for i, pts in enumerate(self.timeline.pts)}
                        if self.timeline.is_timed else None)
            count = 0
            for packet in container.demux(stream):
                for frame in self._decode(ctx, packet):
                    index = count if index_of is None else index_of.get(frame.pts)
                    count += 1
                    if index is not None:
                        yield index, frame

    def _in_order(self, targets: Sequence[int]) -> Iterator[tuple[int, np.ndarray]]:
        """Decode in order from a fresh open (no seeking), numbering frames as they come out."""
        wanted = set(targets)
        last = max(wanted, default=-1)
        for index, frame in self.every_frame() if wanted else ():
            if index in wanted:
                yield index, self.converter.rgb(frame)
            if index >= last:
                break


# ---------------------------------------------------------------------------------------------
# reading sampled frames


def _window_picks(reader: _Reader, windows: Sequence[tuple[float | None, float | None]],
                  num_frames: int, name_windows: bool) -> list[list[int]]:
    picks = []
    for k, (start, end) in enumerate(windows):
        try:
            picks.append(select_frame_indices(reader.timeline.times, reader.timeline.duration,
                                              num_frames, start, end))
        except ValueError as err:
            where = f"window {k} ({start}, {end}): " if name_windows else ""
            raise VideoError(reader.path, f"{where}{err}") from None
    return picks


def _sample_windows(path: str | Path, windows: Sequence[tuple[float | None, float | None]],
                    num_frames: int, *, whole: bool,
                    name_windows: bool = True) -> Iterator[SampledFrames]:
    """Each window's segment-centre frames, in the order given, from one decode pass; a window
    is yielded as soon as its frames are decoded, and a frame is held only until the last window
    that uses it is out. The byte cap counts all windows (`whole`) or one."""
    _check_num_frames(num_frames)
    path = Path(path)
    with _open(path) as container:
        reader = _Reader(path, container)
        picks = _window_picks(reader, windows, num_frames, name_windows)
        ctx = reader.stream.codec_context
        _check_frame_bytes(path, num_frames * (len(picks) if whole else 1), ctx.width, ctx.height)
        runs = reader.plan(sorted({i for pick in picks for i in pick}))
        uses = Counter(i for pick in picks for i in set(pick))
        held: dict[int, np.ndarray] = {}
        out = 0
        for index, array in reader.decode(runs):
            held[index] = array
            while out < len(picks) and all(i in held for i in picks[out]):
                pick = picks[out]
                yield SampledFrames(np.stack([held[i] for i in pick]), pick,
                                    [reader.timeline.times[i] for i in pick], len(runs))
                uses.subtract(set(pick))
                held = {i: a for i, a in held.items() if uses[i] > 0}
                out += 1


def read_sampled(path: str | Path, num_frames: int, *, start: float | None = None,
                 end: float | None = None) -> SampledFrames:
    """`read_frames` plus which frames were taken (indices, timestamps) and how they were read."""
    windows = _sample_windows(path, [(start, end)], num_frames, whole=True, name_windows=False)
    try:
        return next(windows)
    finally:
        windows.close()


def read_frames(path: str | Path, num_frames: int, *, start: float | None = None,
                end: float | None = None) -> np.ndarray:
    """uint8 (T, H, W, 3) RGB frames by segment-centre sampling over the clip or [start, end] s."""
    return read_sampled(path, num_frames, start=start, end=end).frames


def read_windows(path: str | Path, windows: Sequence[tuple[float, float]],
                 num_frames: int) -> list[SampledFrames]:
    """For each (start, end) window, in seconds, the frames `read_sampled(path, num_frames,
    start=start, end=end)` gives, all from one decode pass over the file (the scenes of a long
    video, without reopening it per scene). The byte cap counts every window's frames; to hold
    one window at a time, use `iter_windows`."""
    return list(_sample_windows(path, windows, num_frames, whole=True))


def iter_windows(path: str | Path, windows: Sequence[tuple[float, float]],
                 num_frames: int) -> Iterator[SampledFrames]:
    """`read_windows` one window at a time: each is yielded, in the order given, as soon as the
    single decode pass has its frames, and its frames are then let go (give windows in time order
    to hold one window's frames at a time). Errors surface at the first `next`."""
    return _sample_windows(path, windows, num_frames, whole=False)


# ---------------------------------------------------------------------------------------------
# every frame, once


class FrameIterator(Iterator[DecodedFrame]):
    """The frames of one video in presentation order, decoded once (what `iter_frames` returns).

    `info` (with `info.truncation`: where a cut file's data ends) is known before the first
    frame; `decode_errors` counts the packets the decoder rejected so far, whose frames are
    missing from the sequence (a warning says so at the end). `close()`, or a `with` block,
    releases the file before the end.
    """

    def __init__(self, reader: _Reader, frames: Iterator[DecodedFrame], stack: ExitStack) -> None:
        self.info = reader.info()
        self._reader, self._frames, self._stack = reader, frames, stack

    @property
    def truncation(self) -> Truncation | None:
        return self.info.truncation

    @property
    def decode_errors(self) -> int:
        return self._reader.errors

    def __next__(self) -> DecodedFrame:
        return next(self._frames)

    def close(self) -> None:
        self._frames.close()
        self._stack.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _decoded_frames(reader: _Reader, rgb: bool | Callable[[int, float], bool],
                    small: int | None) -> Iterator[DecodedFrame]:
    times, count = reader.timeline.times, 0
    try:
        for index, frame in reader.every_frame():
            time = times[index]
            is_wanted = rgb(index, time) if callable(rgb) else rgb
            image = np.ascontiguousarray(reader.converter.rgb(frame)) if is_wanted else None
            thumb = np.ascontiguousarray(reader.converter.small(frame, small)) if small else None
            count += 1
            yield DecodedFrame(index, time, image, thumb)
    except (av.FFmpegError, OSError) as err:
        raise VideoError(reader.path, f"truncated or corrupt data ({_ffmpeg_reason(err)})") from None
    if not count:
        raise VideoError(reader.path, "no decodable frames (the decoder rejected every packet)")
    if reader.errors:
        log.warning("%s: the decoder rejected %d packets; their frames are missing", reader.path,
                    reader.errors)


def iter_frames(path: str | Path, *, rgb: bool | Callable[[int, float], bool] = True,
                small: int | None = None) -> FrameIterator:
    """Every frame of a video, decoded once, in presentation order: `DecodedFrame(index, time,
    image, small)`, with the same fast RGB conversion and upright turn as `read_sampled`.

    rgb: True converts every frame to RGB; False none (index and time only, plus `small`); a
        function (index, time) -> bool converts only the frames it accepts (colour conversion
        is the costly part after decoding).
    small: when given, each frame also gets a grey copy whose longer side is `small` pixels
        (area-averaged by swscale: cheap), e.g. for a shot detector.

    The file is opened and demuxed now (a bad file is a VideoError here; a truncated one logs a
    warning and sets `.truncation`); frames are decoded as they are taken. Errors while decoding
    are VideoErrors too: no PyAV exception escapes.
    """
    if small is not None and small < 1:
        raise ValueError(f"small must be at least 1 pixel, got {small}")
    path = Path(path)
    with ExitStack() as stack:
        reader = _Reader(path, stack.enter_context(_open(path)))
        return FrameIterator(reader, _decoded_frames(reader, rgb, small), stack.pop_all())


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
    is odd (4:2:0 needs even sides); MPEG-4 part 2 (`codec="mpeg4"`, the fallback) at fixed quality. Keyframes every
    `keyframe_interval` frames, or the encoder's default (libx264: up to 250 frames apart). MP4
    files get their index at the front (faststart).
    """
    path = Path(path)
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or not len(frames):
        raise ValueError(f"expected uint8 frames of shape (T, H, W, 3), got {frames.dtype} "
                         f"{tuple(frames.shape)}")
    if keyframe_interval is not None and keyframe_interval < 1:
        raise ValueError(f"keyframe_interval must be at least 1, got {keyframe_interval}")
    codec = codec or default_codec()
    _, height, width, _ = frames.shape
    is_mp4 = path.suffix.lower() in (".mp4", ".m4v", ".mov")
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.partial{path.suffix}")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with av.open(str(tmp), "w", options={"movflags": "+faststart"} if is_mp4 else {}) as out:
            stream = out.add_stream(codec, rate=fps)
            stream.width, stream.height = width, height
            ctx = stream.codec_context
            if codec == "libx264":
                stream.pix_fmt = "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"
                # mbtree=0: with it, x264 gave different bytes for the same 64x64 frames
                # depending on the heap's contents (it reads memory it never wrote)
                params = "mbtree=0"
                if keyframe_interval is not None:
                    k = keyframe_interval
                    params += f":keyint={k}:min-keyint={k}:scenecut=0"
                stream.options = {"crf": "18", "preset": "medium", "threads": "1",
                                  "x264-params": params}
            else:
                stream.pix_fmt = "yuv420p"
                ctx.gop_size = keyframe_interval or 250
                ctx.thread_count = 1
                ctx.qscale = True
                ctx.global_quality = 3 * 118  # FF_QP2LAMBDA * q: q=3 is near-transparent
            for i, array in enumerate(frames):
                frame = _yuv_frame(array, stream.pix_fmt)
                frame.pts, frame.time_base = i, Fraction(1, fps)
                out.mux(stream.encode(frame))
            out.mux(stream.encode(None))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
