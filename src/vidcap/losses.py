"""Losses of the two stages: video-text InfoNCE (paper eq. 3) and caption cross-entropy (eq. 2).

Contrastive loss, and where it departs from the paper's letter:
- Video and text features are L2-normalised first, so the logits are cosine similarities divided
  by the temperature. Eq. 3 writes raw dot products of CLS vectors; with gamma = 0.07 raw dot
  products of unnormalised 768-d vectors would give logits in the thousands, and every
  InfoNCE implementation the paper builds on (CLIP, ALBEF, ClipCap's CLIP) normalises.
- `symmetric=True` (the default) averages video->text and text->video; `symmetric=False` is eq. 3
  exactly: each video is the anchor and the captions of the batch are its candidates.
- Under torch.distributed (world size > 1) features are gathered from every rank *with gradients*
  (`torch.distributed.nn.functional.all_gather`), so each rank's logits cover the global batch and
  its labels are offset by rank. Each rank returns the mean over its own rows; DDP's gradient
  averaging then gives exactly the gradient of the single-process loss over the global batch.
  Every rank must pass the same number of rows.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor

from vidcap.distributed import is_distributed

IGNORE_INDEX = -100


def gather_with_grad(x: Tensor) -> tuple[Tensor, int]:
    """(B, D) on each rank -> ((world*B, D) in rank order, index of this rank's first row)."""
    if not is_distributed():
        return x, 0
    from torch.distributed.nn.functional import all_gather

    parts = all_gather(x.contiguous())
    return torch.cat(parts, dim=0), dist.get_rank() * x.shape[0]


def contrastive_loss(video: Tensor, text: Tensor, temperature: float | Tensor, *,
                     symmetric: bool = True) -> Tensor:
    """InfoNCE of matching rows: video (B, D), text (B, D) -> scalar (see the module docstring)."""
    if video.shape != text.shape or video.ndim != 2:
        raise ValueError(f"video and text features must both be (B, D), got "
                         f"{tuple(video.shape)} and {tuple(text.shape)}")
    video = F.normalize(video.float(), dim=-1)
    text = F.normalize(text.float(), dim=-1)
    all_video, offset = gather_with_grad(video)
    all_text, _ = gather_with_grad(text)
    labels = torch.arange(video.shape[0], device=video.device) + offset
    loss = F.cross_entropy(video @ all_text.T / temperature, labels)
    if symmetric:
        loss = (loss + F.cross_entropy(text @ all_video.T / temperature, labels)) / 2
    return loss


def caption_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Token cross-entropy: logits (B, L, V) where logits[:, i] predicts labels[:, i]; labels (B, L)
    with IGNORE_INDEX at padding. Mean over the tokens that count."""
    return F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(),
                           ignore_index=IGNORE_INDEX)
