"""Opening a media file and scanning its packets: the timeline (timestamps, keyframes), the
checks that tell a corrupt, truncated or non-media file apart, and `probe_video`."""

from __future__ import annotations

import errno
import logging
import os
import stat
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from vidcap.errors import VideoError
from vidcap.video.types import Truncation, VideoInfo


log = logging.getLogger(__name__)


THREADED_MIN_PIXELS = 256 * 256
"""Frames at least this large are decoded with FFmpeg's frame+slice threads; smaller ones (Shapes
clips) on one thread, where a thread pool costs more than it saves (measured: 64x64 clips 2.3 ms
single-threaded vs 3.1 ms threaded; 320x240 ones 300 vs 240 ms for a full pass)."""
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
def _open(path: Path, *, partial_mp4: bool = False) -> Iterator[av.container.InputContainer]:
    """Open a media file; every failure, now or while reading it, becomes a VideoError.
    `partial_mp4`: an MP4/MOV file cut inside its media data is opened too (when its index is
    whole), instead of refused."""
    head = _read_head(path)
    box = _mp4_cut_box(path) if _has_magic(head, _MP4_MAGIC) else None
    cut = f"truncated or corrupt data (the file ends inside its {box!r} box)"
    if box is not None and not partial_mp4:
        raise VideoError(path, cut)
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except PermissionError:
        raise VideoError(path, "permission denied (this user may not read it)") from None
    except (av.FFmpegError, OSError, UnicodeDecodeError) as err:
        if box is not None:
            raise VideoError(path, cut) from None
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
                timeline: _Timeline, present: int, end: float, cut: bool,
                listed: int = 0) -> Truncation | None:
    """Where the data ends early: fewer frames (`present`) than the header announces or an MP4
    index lists (`listed`), or an earlier end (`end`, seconds in stream time) than the header
    announces (by more than half a frame), or a last frame cut."""
    frames, announced_end = _announced(container, stream)
    frames = max(frames, listed)
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
          path: Path, *, partial_mp4: bool = False) -> _Timeline:
    """Demux every packet of the stream (no decoding) and build the frame timeline.
    `partial_mp4`: an MP4/MOV file holding fewer frames than its index lists is a truncated file
    (read as far as it goes), not a VideoError."""
    packets, empty, cut = _demux_packets(container, stream, path)
    listed = 0
    if any(name in container.format.name for name in _MP4_FAMILY):
        listed = sum(1 for entry in stream.index_entries if not entry.is_discard)
        if listed > len(packets) and not partial_mp4:
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
                             float((pts[-1] + last) * time_base), cut, listed)
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
