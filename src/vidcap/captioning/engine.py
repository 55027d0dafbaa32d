"""The captioning pipeline: videos decoded in worker processes while the model generates.

A *source* says how to read work item `i` (a file, a manifest record, a long video): it yields
the item's clips, each the frames the model sees of the video or of one of its segments.
`caption_items` runs a source through a torch `DataLoader` whose `workers` processes read the
upcoming items while the main process generates captions; the workers take the items in turn
(worker w of W: items w, w + W, ...) and pack their clips, a video's segments included, into
batches of `gen.batch_size`, so the model gets full batches. Results come back one per item in
item order, whatever order the workers finish in (a result waits until those before it are
done). `workers=0` reads in the main process: read,
then generate, in turn.

An item that cannot be read gets an error result and the others go on; an item that breaks
part-way keeps the clips it gave and its error.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from vidcap.captioning.segments import Cue, Segment, merge_same_captions
from vidcap.config import GenerateConfig
from vidcap.errors import VideoError
from vidcap.runtime import autocast

log = logging.getLogger(__name__)


@dataclass
class ItemClip:
    """One clip of an item: the whole video (`segment` None) or one segment of it."""

    pixels: torch.Tensor
    """float (T, 3, S, S), normalised: the model's input."""
    segment: Segment | None = None


@dataclass
class ItemEnd:
    """How an item ended: what it was cut into, and whether it broke."""

    segments: list[Segment] | None = None
    """The segments that gave clips (None: the item is one clip, not cut)."""
    duration: float | None = None
    """Seconds of video the item covers, when known."""
    error: str | None = None


class Source(Protocol):
    """Work items and how to read each (runs in the decoding workers)."""

    def __len__(self) -> int: ...

    def key(self, index: int) -> str:
        """The name the results give item `index` (a path, a video_id)."""
        ...

    def read(self, index: int) -> Iterator[ItemClip | ItemEnd]:
        """Item `index`'s clips, then at most one `ItemEnd` (none: one clip, no error).
        A `VideoError` is the item's error."""
        ...


@dataclass
class CaptionResult:
    """One item captioned."""

    key: str
    caption: str | None = None
    """The caption (a video cut into segments: its cues' captions joined by '; ')."""
    cues: list[Cue] | None = None
    """Segment captions with times, neighbours with the same caption merged (segmented items
    only; a video of one segment has one cue spanning it when its duration is known)."""
    segmented: bool = False
    """Whether the item was cut into more than one segment."""
    error: str | None = None
    seconds: float = 0.0
    """Reading time in its worker plus its share of the model's time."""

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class _Piece:
    """What a worker hands over: up to one batch of clips, and the items that ended."""

    pixels: torch.Tensor | None
    owners: list[tuple[int, Segment | None]]
    ended: list[tuple[int, str, ItemEnd, float]] = field(default_factory=list)
    """(item, key, end, reading seconds)"""


class _Pieces(IterableDataset):
    """Items [start, stop) of a source: worker w of W reads items w, w + W, ... and hands over
    its clips in batches (the items that ended go with the batch holding their last clip)."""

    def __init__(self, source: Source, start: int, stop: int, batch_size: int) -> None:
        self.source, self.start, self.stop, self.batch_size = source, start, stop, batch_size

    def __iter__(self) -> Iterator[_Piece]:
        worker = get_worker_info()
        w, workers = (worker.id, worker.num_workers) if worker else (0, 1)
        clips: list[tuple[int, ItemClip]] = []
        ended: list[tuple[int, str, ItemEnd, float]] = []
        for item in range(self.start + w, self.stop, workers):
            yield from self._read(item, clips, ended)
            if len(clips) >= self.batch_size:
                yield _pack(clips, ended)
        if clips or ended:
            yield _pack(clips, ended)

    def _read(self, item: int, clips: list, ended: list) -> Iterator[_Piece]:
        """Read one item into `clips` / `ended`, handing over a batch whenever one fills."""
        clock = time.perf_counter()
        key, end, segments = self.source.key(item), None, []
        try:
            for event in self.source.read(item):
                if isinstance(event, ItemEnd):
                    end = event
                    continue
                clips.append((item, event))
                segments.append(event.segment)
                if len(clips) > self.batch_size:  # a long video: hand over a full batch
                    full = clips[:-1]
                    del clips[:-1]
                    yield _pack(full, ended)
        except VideoError as err:
            cut = [s for s in segments if s is not None]
            end = ItemEnd(cut or None, error=str(err))
        ended.append((item, key, end or ItemEnd(), time.perf_counter() - clock))


def _pack(clips: list[tuple[int, ItemClip]], ended: list) -> _Piece:
    """A piece of the clips and the ended items so far; both lists are emptied."""
    pixels = torch.stack([c.pixels for _, c in clips]) if clips else None
    piece = _Piece(pixels, [(item, c.segment) for item, c in clips], list(ended))
    clips.clear()
    ended.clear()
    return piece


def _as_is(piece: _Piece) -> _Piece:
    return piece


@dataclass
class _Item:
    captions: list[tuple[Segment | None, str]] = field(default_factory=list)
    model_seconds: float = 0.0


def caption_items(model: torch.nn.Module, source: Source, gen: GenerateConfig, *,
                  start: int = 0, stop: int | None = None, workers: int = 0,
                  device: str | torch.device = "cpu", precision: str = "fp32"
                  ) -> Iterator[CaptionResult]:
    """Caption items [start, stop) of `source`, yielding one result per item, in item order.

    `workers` processes read ahead while the model generates (0: read in this process); the model
    runs under `precision` (fp32, bf16 or fp16: `vidcap.runtime.autocast`).
    """
    stop = len(source) if stop is None else stop
    pieces = _Pieces(source, start, stop, gen.batch_size)
    loader = DataLoader(pieces, batch_size=None, num_workers=workers, collate_fn=_as_is,
                        multiprocessing_context="fork" if workers else None)
    items: dict[int, _Item] = {}
    ready: dict[int, CaptionResult] = {}
    following = start
    with torch.no_grad(), autocast(precision, torch.device(device).type):
        for piece in loader:
            _generate(model, piece, gen, device, items)
            for item, key, end, seconds in piece.ended:
                ready[item] = _finish(key, end, items.pop(item, _Item()), seconds)
            while following in ready:
                yield ready.pop(following)
                following += 1


def _generate(model: torch.nn.Module, piece: _Piece, gen: GenerateConfig,
              device: str | torch.device, items: dict[int, _Item]) -> None:
    if piece.pixels is None:
        return
    clock = time.perf_counter()
    texts = model.generate(piece.pixels.to(device), gen)
    share = (time.perf_counter() - clock) / len(texts)
    for (item, segment), text in zip(piece.owners, texts):
        state = items.setdefault(item, _Item())
        state.captions.append((segment, text))
        state.model_seconds += share


def _finish(key: str, end: ItemEnd, item: _Item, read_seconds: float) -> CaptionResult:
    """An item's result from its captioned clips and how it ended."""
    seconds = read_seconds + item.model_seconds
    if not item.captions:
        return CaptionResult(key, error=end.error or "no frames could be read", seconds=seconds)
    if end.segments is None:  # one clip of the whole item
        text = item.captions[0][1]
        cues = [Cue(0.0, end.duration, text)] if end.duration else None
        return CaptionResult(key, text, cues, False, end.error, seconds)
    ordered = sorted((c for c in item.captions if c[0] is not None), key=lambda c: c[0].start)
    cues = merge_same_captions([s for s, _ in ordered], [t for _, t in ordered])
    return CaptionResult(key, "; ".join(c.text for c in cues), cues, len(end.segments) > 1,
                         end.error, seconds)


def default_workers(processes_per_node: int = 1) -> int:
    """Decoding workers for this machine: the cores this process may use, shared among the
    processes of the node, less one for the model; at least 1, at most 8."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(8, (cores or 1) // max(1, processes_per_node) - 1))


def shard_bounds(count: int, rank: int, world_size: int) -> tuple[int, int]:
    """The contiguous block [start, stop) of `count` items that `rank` of `world_size` takes
    (blocks in rank order tile the items, so concatenating the ranks' results keeps order)."""
    return count * rank // world_size, count * (rank + 1) // world_size
