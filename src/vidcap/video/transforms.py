"""From decoded frames to the model's input: resize and centre-crop (uint8, cacheable), then
normalise; `read_clip` / `load_clip` do both for one clip."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from vidcap.video.types import SampledFrames
from vidcap.video.decode import read_frames, read_sampled

if TYPE_CHECKING:  # torch is imported where it is used: probing and writing videos need none
    import torch

    from vidcap.config import VideoConfig


def crop_frames(frames: np.ndarray, image_size: int) -> np.ndarray:
    """uint8 (T, H, W, 3) -> uint8 (T, S, S, 3): shorter side resized to S (antialiased
    bilinear, rounded back to 8 bits), then the centre S x S crop. Kept in uint8 so it can be
    cached; `normalize_frames` finishes the job."""
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected frames of shape (T, H, W, 3), got {tuple(frames.shape)}")
    h, w = frames.shape[1:3]
    scale = image_size / min(h, w)
    size = (max(image_size, round(h * scale)), max(image_size, round(w * scale)))
    top, left = (size[0] - image_size) // 2, (size[1] - image_size) // 2
    if size == (h, w):
        return np.ascontiguousarray(frames[:, top:top + image_size, left:left + image_size])
    import torch
    import torch.nn.functional as F

    # Frame by frame: each plane is resized on its own either way (the same bytes as one
    # batched call), and one frame's float copy stays small enough to be cheap.
    out = np.empty((len(frames), image_size, image_size, 3), np.uint8)
    for i, frame in enumerate(frames):
        x = torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1).unsqueeze(0).float()
        x = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
        x = x[0, :, top:top + image_size, left:left + image_size]
        out[i] = x.round_().clamp_(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
    return out


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
