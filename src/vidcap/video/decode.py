"""Decoding sampled frames: a clip's by seek-and-decode runs (`read_sampled`, `read_frames`), and
those of many windows in one pass over the file (`read_windows`, `iter_windows`)."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path

import av
import numpy as np

from vidcap.errors import VideoError
from vidcap.video.types import SampledFrames, VideoInfo
from vidcap.video.sampling import plan_decode_runs, select_frame_indices
from vidcap.video.limits import _check_frame_bytes, _check_num_frames
from vidcap.video.container import _info, _open, _scan, _set_threads, _Unseekable, _video_stream
from vidcap.video.convert import _Converter


log = logging.getLogger(__name__)


class _Reader:
    """An open video: its stream, the demuxed timeline, one converter, a decode-error count."""

    def __init__(self, path: Path, container: av.container.InputContainer, *,
                 partial_mp4: bool = False) -> None:
        self.path = path
        self.container = container
        self.partial_mp4 = partial_mp4
        self.stream = _video_stream(container, path)
        _set_threads(self.stream)
        self.timeline = _scan(container, self.stream, path, partial_mp4=partial_mp4)
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
        with _open(self.path, partial_mp4=self.partial_mp4) as container:
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
