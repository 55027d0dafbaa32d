"""Torch datasets of clips over a manifest: decoded (and optionally cached) frames, captions, bad
files skipped; their collate function and the resumable sampler of training.

A sample whose video cannot be read comes back with `pixels=None` and the error; the collate
function drops it and the training loop counts it, so one bad file never stops an epoch.
The frame cache holds the sampled, resized and cropped uint8 frames (T, S, S, 3) of each clip, keyed
by the file (path, size, mtime), the window and the sampling settings; normalisation runs on load.
"""

from __future__ import annotations

import hashlib
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, DistributedSampler

from vidcap.config import VideoConfig
from vidcap.data.manifest import VideoRecord
from vidcap.errors import VideoError
from vidcap.files import atomic_path
from vidcap.video import crop_frames, normalize_frames, read_frames

log = logging.getLogger(__name__)


@dataclass
class Sample:
    index: int
    video_id: str
    pixels: torch.Tensor | None
    """(T, 3, S, S) float, normalised; None when the video could not be read."""
    captions: list[str]
    error: str | None = None


@dataclass
class Batch:
    indices: list[int]
    video_ids: list[str]
    pixels: torch.Tensor
    """(B, T, 3, S, S)"""
    captions: list[list[str]]
    failed: list[tuple[str, str]]
    """(video_id, reason) of the samples dropped from this batch."""

    def __len__(self) -> int:
        return len(self.video_ids)


class FrameCache:
    """Sampled, cropped uint8 frames on disk, one `.npy` file per clip and setting."""

    def __init__(self, folder: str | Path, video_cfg: VideoConfig) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.setting = f"{video_cfg.num_frames}x{video_cfg.image_size}"

    def _file(self, record: VideoRecord) -> Path:
        path = record.video_path
        try:
            stat = path.stat()
            stamp = f"{stat.st_size}:{stat.st_mtime_ns}"
        except OSError:
            stamp = "missing"
        key = f"{path.resolve()}|{stamp}|{record.start}|{record.end}|{self.setting}"
        digest = hashlib.sha1(key.encode()).hexdigest()[:20]
        return self.folder / digest[:2] / f"{digest}.npy"

    def get(self, record: VideoRecord) -> np.ndarray | None:
        file = self._file(record)
        if not file.is_file():
            return None
        try:
            return np.load(file)
        except (OSError, ValueError):  # a half-written file from a killed run: decode again
            return None

    def put(self, record: VideoRecord, frames: np.ndarray) -> None:
        with atomic_path(self._file(record)) as tmp:
            np.save(tmp, frames)


class ClipDataset(Dataset[Sample]):
    """Clips of a manifest as normalised frame tensors, with all their captions.

    `shuffle_frames` (the ablation control) permutes the frames of each clip with a permutation
    fixed by (seed, index), so a clip looks the same every epoch and at test time.
    """

    def __init__(self, records: Sequence[VideoRecord], video_cfg: VideoConfig, *,
                 cache_dir: str | Path | None = None, seed: int = 0) -> None:
        self.records = list(records)
        self.video_cfg = video_cfg
        self.cache = FrameCache(cache_dir, video_cfg) if cache_dir else None
        self.seed = seed

    def __len__(self) -> int:
        return len(self.records)

    def load_frames(self, record: VideoRecord) -> np.ndarray:
        """uint8 (T, S, S, 3): sampled, resized and centre-cropped (from the cache when there)."""
        if self.cache is not None:
            cached = self.cache.get(record)
            if cached is not None:
                return cached
        cfg = self.video_cfg
        frames = read_frames(record.video_path, cfg.num_frames, start=record.start, end=record.end)
        frames = crop_frames(frames, cfg.image_size)
        if self.cache is not None:
            self.cache.put(record, frames)
        return frames

    def __getitem__(self, index: int) -> Sample:
        record = self.records[index]
        try:
            frames = self.load_frames(record)
        except VideoError as err:
            return Sample(index, record.video_id, None, record.captions, str(err))
        pixels = normalize_frames(frames, self.video_cfg.mean, self.video_cfg.std)
        if self.video_cfg.shuffle_frames:
            order = torch.randperm(len(pixels), generator=torch.Generator().manual_seed(
                self.seed * 1_000_003 + index))
            pixels = pixels[order]
        return Sample(index, record.video_id, pixels, record.captions)


def collate_samples(samples: list[Sample]) -> Batch | None:
    """Stack the readable samples; None when none of them could be read."""
    good = [s for s in samples if s.pixels is not None]
    failed = [(s.video_id, s.error or "unreadable") for s in samples if s.pixels is None]
    if not good:
        return Batch([], [], torch.empty(0), [], failed)
    return Batch([s.index for s in good], [s.video_id for s in good],
                 torch.stack([s.pixels for s in good]), [s.captions for s in good], failed)


def draw_captions(batch: Batch, *, seed: int, epoch: int) -> list[str]:
    """One caption per video, drawn afresh each epoch but reproducibly from (seed, epoch, index)."""
    return [caps[random.Random(f"{seed}:{epoch}:{i}").randrange(len(caps))]
            for i, caps in zip(batch.indices, batch.captions)]


class ResumableSampler(DistributedSampler):
    """DistributedSampler (one shard per rank, reshuffled by epoch) that can start mid-epoch.

    `set_position(epoch, start)` skips the first `start` indices of this rank's shard, so a resumed
    run sees exactly the samples the interrupted one had not yet seen.
    """

    def __init__(self, dataset: Dataset, *, num_replicas: int, rank: int, seed: int,
                 shuffle: bool = True, drop_last: bool = False) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle,
                         seed=seed, drop_last=drop_last)
        self.start = 0

    def set_position(self, epoch: int, start: int = 0) -> None:
        self.set_epoch(epoch)
        self.start = start

    def __iter__(self):
        indices = list(super().__iter__())
        return iter(indices[self.start:])

    def __len__(self) -> int:
        return self.num_samples - self.start
