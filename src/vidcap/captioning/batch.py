"""Captioning many videos with one model: files (cut into segments when long) or manifest records,
pipelined (`vidcap.captioning.engine`), as resumable jobs that append JSON Lines results and shard
their inputs over the processes of a distributed run.

- `caption_files`: files, one result each, in order (a library call; nothing written).
- `caption_records`: manifest records, gathered on every rank (validation during training).
- `CaptionJob`: a stream of inputs (paths or ids) through the pipeline, skipping what the results
  log holds already, each result appended as soon as it is done (`vidcap caption --out`,
  `vidcap evaluate`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from vidcap.captioning.engine import (CaptionResult, ItemClip, ItemEnd, Source, caption_items,
                                      shard_bounds)
from vidcap.captioning.frames import SegmentClip, SegmentRequest, sample_segments
from vidcap.captioning.inputs import TodoList, path_key
from vidcap.captioning.results import ResultsLog
from vidcap.config import Config, GenerateConfig, VideoConfig
from vidcap.data.clips import ClipDataset
from vidcap.data.manifest import VideoRecord
from vidcap.distributed import gather_objects
from vidcap.video import normalize_frames

log = logging.getLogger(__name__)

WHOLE = SegmentRequest("none")
"""One clip per video, sampled across the whole file."""


# ---------------------------------------------------------------------------------------------
# sources


class FileSource:
    """Video files, each cut into segments per `request` (one clip each under `none`)."""

    def __init__(self, paths: Sequence[str], video_cfg: VideoConfig,
                 request: SegmentRequest = WHOLE, keys: Sequence[str] | None = None) -> None:
        self.paths, self.keys = paths, keys if keys is not None else paths
        self.video_cfg, self.request = video_cfg, request

    def __len__(self) -> int:
        return len(self.paths)

    def key(self, index: int) -> str:
        return self.keys[index]

    def read(self, index: int) -> Iterator[ItemClip | ItemEnd]:
        cfg = self.video_cfg
        for event in sample_segments(self.paths[index], cfg.num_frames, cfg.image_size,
                                     self.request):
            if isinstance(event, SegmentClip):
                yield ItemClip(normalize_frames(event.frames, cfg.mean, cfg.std), event.segment)
            else:
                yield ItemEnd(event.segments, event.duration, event.error)


class RecordSource:
    """Manifest records (their start/end windows, the frame cache and the shuffled-frames control
    of training), one clip each."""

    def __init__(self, records: Sequence[VideoRecord], cfg: Config,
                 indices: Sequence[int] | None = None) -> None:
        self.dataset = ClipDataset(records, cfg.video, cache_dir=cfg.data.cache_dir,
                                   seed=cfg.train.seed)
        self.indices = list(range(len(records)) if indices is None else indices)
        """Which records, in order (a record keeps its position: the shuffled-frames control
        permutes by it)."""

    def __len__(self) -> int:
        return len(self.indices)

    def key(self, index: int) -> str:
        return self.dataset.records[self.indices[index]].video_id

    def read(self, index: int) -> Iterator[ItemClip | ItemEnd]:
        sample = self.dataset[self.indices[index]]
        if sample.pixels is None:
            yield ItemEnd(error=sample.error or "unreadable")
        else:
            yield ItemClip(sample.pixels)


# ---------------------------------------------------------------------------------------------
# library calls


def caption_files(model: torch.nn.Module, paths: Sequence[str | Path], video_cfg: VideoConfig,
                  gen: GenerateConfig, *, request: SegmentRequest = WHOLE, workers: int = 0,
                  device: str | torch.device = "cpu", precision: str = "fp32"
                  ) -> Iterator[CaptionResult]:
    """Caption `paths` (results keyed by the path as given), one result per path, in order;
    the model runs under `precision` (`caption_items`)."""
    source = FileSource([str(p) for p in paths], video_cfg, request)
    yield from caption_items(model, source, gen, workers=workers, device=device,
                             precision=precision)


def caption_records(model: torch.nn.Module, records: Sequence[VideoRecord], cfg: Config, *,
                    gen: GenerateConfig | None = None, rank: int = 0, world_size: int = 1,
                    device: torch.device | str = "cpu", progress: bool = True,
                    precision: str = "fp32") -> tuple[dict[str, str], list[tuple[str, str]]]:
    """({video_id: caption}, [(video_id, error)]) over all `records`, each rank captioning a
    block of them, gathered on every rank. Reads with `cfg.data.num_workers` workers; the model
    runs under `precision`."""
    gen = gen or cfg.generate
    start, stop = shard_bounds(len(records), rank, world_size)
    was_training = model.training
    model.eval()
    captions: dict[str, str] = {}
    failed: list[tuple[str, str]] = []
    with _bar(stop - start, progress and rank == 0) as bar:
        for result in caption_items(model, RecordSource(records, cfg), gen, start=start,
                                    stop=stop, workers=cfg.data.num_workers, device=device,
                                    precision=precision):
            if result.ok:
                captions[result.key] = result.caption  # type: ignore[assignment]
            else:
                failed.append((result.key, result.error))  # type: ignore[arg-type]
            bar.update()
    model.train(was_training)
    merged: dict[str, str] = {}
    merged_failed: list[tuple[str, str]] = []
    for part_captions, part_failed in gather_objects((captions, failed)):
        merged.update(part_captions)
        merged_failed.extend(part_failed)
    return merged, merged_failed


def _bar(total: int, show: bool) -> tqdm:
    """A progress bar (files/s, ETA) on a terminal, nothing elsewhere."""
    return tqdm(total=total, unit="file", desc="captioning", dynamic_ncols=True, leave=False,
                disable=None if show else True)


def result_record(result: CaptionResult, key: str = "path") -> dict[str, Any]:
    """A result as its JSON Lines object: key, caption, segments (videos cut into segments, and
    videos that broke part-way), error, seconds."""
    line: dict[str, Any] = {key: result.key, "caption": result.caption}
    if result.cues and (result.segmented or result.error):
        line["segments"] = [{"start": round(c.start, 6), "end": round(c.end, 6),
                             "caption": c.text} for c in result.cues]
    line["error"] = result.error
    line["seconds"] = round(result.seconds, 3)
    return line


# ---------------------------------------------------------------------------------------------
# jobs


@dataclass
class Summary:
    """What a job did, over all its processes."""

    done: int = 0
    """Videos captioned in this job (failures included)."""
    skipped: int = 0
    """Inputs left out: already in the results, or named twice."""
    failed: int = 0
    """Videos that could not be captioned, or only in part."""
    seconds: float = 0.0

    def line(self) -> str:
        """The summary as one line of text."""
        return (f"{self.done} videos done, {self.skipped} skipped as already done, "
                f"{self.failed} failed, {self.seconds:.1f} s")


class CaptionJob:
    """A stream of inputs (paths, or ids) captioned through the pipeline, sharded over ranks.

    `make_source(todo)` builds the source of the inputs still to do; with a `log`, every result
    is appended to it (`record(result)`) as soon as it is done, and inputs it holds are skipped.
    Iterating `run(inputs)` yields this process's results in input order; `summary` is complete
    (summed over ranks) once the iteration ends.
    """

    def __init__(self, model: torch.nn.Module, gen: GenerateConfig,
                 make_source: Callable[[Sequence[str]], Source], *, log: ResultsLog | None = None,
                 record: Callable[[CaptionResult], dict[str, Any]] = result_record,
                 workers: int = 0, device: str | torch.device = "cpu", rank: int = 0,
                 world_size: int = 1, progress: bool = True, precision: str = "fp32") -> None:
        self.model, self.gen, self.make_source, self.log = model, gen, make_source, log
        self.precision = precision
        self.record, self.workers, self.device = record, workers, device
        self.rank, self.world_size, self.progress = rank, world_size, progress
        self.summary = Summary()

    def run(self, inputs: Iterable[str]) -> Iterator[CaptionResult]:
        """Caption the `inputs` not done yet; yield this process's results in input order."""
        clock = time.perf_counter()
        done = skipped = failed = 0
        with self._session() as (finished, appender):
            with TodoList.build(self._todo(inputs, finished)) as todo:
                skipped = self._skipped
                start, stop = shard_bounds(len(todo), self.rank, self.world_size)
                with _bar(stop - start, self.progress and self.rank == 0) as bar:
                    for result in caption_items(self.model, self.make_source(todo), self.gen,
                                                start=start, stop=stop, workers=self.workers,
                                                device=self.device,
                                                precision=self.precision):
                        if appender is not None:
                            appender.write(self.record(result))
                        done, failed = done + 1, failed + (not result.ok)
                        bar.update()
                        yield result
        counts = gather_objects((done, failed))
        self.summary = Summary(sum(c[0] for c in counts), skipped, sum(c[1] for c in counts),
                               time.perf_counter() - clock)

    def _session(self):
        if self.log is None:
            return nullcontext((set(), None))
        return self.log.session(self.rank, self.world_size)

    def _todo(self, inputs: Iterable[str], finished: set[bytes]) -> Iterator[str]:
        """The inputs not yet done, each once, in order; counts the others in `_skipped`."""
        self._skipped = 0
        seen: set[bytes] = set()
        for item in inputs:
            key = path_key(item)
            if key in finished or key in seen:
                self._skipped += 1
                continue
            seen.add(key)
            yield item
