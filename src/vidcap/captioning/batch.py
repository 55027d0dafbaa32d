"""Captioning many videos with one model, in batches: files as given, or a manifest's records.

A file that cannot be read gets an error result and the others are still captioned; the caller
decides the exit status. `caption_records` shards the records over the processes of a
distributed run and gathers the captions on every rank (`vidcap evaluate`, validation during
training, the demo).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from vidcap.config import Config, GenerateConfig, VideoConfig
from vidcap.data.clips import ClipDataset, collate_samples
from vidcap.data.manifest import VideoRecord
from vidcap.distributed import gather_objects
from vidcap.errors import VideoError
from vidcap.runtime import autocast
from vidcap.video import load_clip

log = logging.getLogger(__name__)


@dataclass
class CaptionResult:
    path: Path
    caption: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def caption_files(model: torch.nn.Module, paths: Sequence[Path], video_cfg: VideoConfig,
                  gen: GenerateConfig, *, device: str | torch.device = "cpu",
                  precision: str = "fp32") -> Iterator[CaptionResult]:
    """Caption `paths` in batches of `gen.batch_size`, yielding one result per path, in order;
    the model runs under `precision` (fp32, bf16 or fp16: `vidcap.runtime.autocast`)."""
    for start in range(0, len(paths), gen.batch_size):
        chunk = paths[start:start + gen.batch_size]
        results = [CaptionResult(p) for p in chunk]
        clips, where = [], []
        for i, path in enumerate(chunk):
            try:
                clips.append(load_clip(path, video_cfg))
                where.append(i)
            except VideoError as err:
                results[i].error = str(err)
        if clips:
            with torch.no_grad(), autocast(precision, torch.device(device).type):
                texts = model.generate(torch.stack(clips).to(device), gen)
            for i, text in zip(where, texts):
                results[i].caption = text
        yield from results


def caption_records(model: torch.nn.Module, records: Sequence[VideoRecord], cfg: Config, *,
                    gen: GenerateConfig | None = None, rank: int = 0, world_size: int = 1,
                    device: torch.device | str = "cpu", progress: bool = True,
                    precision: str = "fp32") -> tuple[dict[str, str], list[tuple[str, str]]]:
    """({video_id: caption}, [(video_id, error)]) over all `records`, gathered from every rank;
    the model runs under `precision` (fp32, bf16 or fp16: `vidcap.runtime.autocast`)."""
    gen = gen or cfg.generate
    shard = list(records)[rank::world_size]
    dataset = ClipDataset(shard, cfg.video, cache_dir=cfg.data.cache_dir, seed=cfg.train.seed)
    loader = DataLoader(dataset, batch_size=gen.batch_size, collate_fn=collate_samples,
                        num_workers=cfg.data.num_workers)
    was_training = model.training
    model.eval()
    captions: dict[str, str] = {}
    failed: list[tuple[str, str]] = []
    bar = tqdm(total=len(shard), desc="captioning", unit="video", leave=False,
               disable=None if (progress and rank == 0) else True)
    with torch.no_grad(), autocast(precision, torch.device(device).type):
        for batch in loader:
            failed.extend(batch.failed)
            if len(batch):
                texts = model.generate(batch.pixels.to(device), gen)
                captions.update(zip(batch.video_ids, texts))
            bar.update(len(batch) + len(batch.failed))
    bar.close()
    model.train(was_training)
    merged: dict[str, str] = {}
    merged_failed: list[tuple[str, str]] = []
    for part_captions, part_failed in gather_objects((captions, failed)):
        merged.update(part_captions)
        merged_failed.extend(part_failed)
    return merged, merged_failed
