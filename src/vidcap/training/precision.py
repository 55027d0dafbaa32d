"""Numeric precision of training: `train.precision` decided for the trainer's device, the autocast
its steps run under, and the gradient scaler (fp16 on CUDA only). The decision itself (what `auto`
means on which hardware) is `vidcap.runtime.choose_precision`."""

from __future__ import annotations

import contextlib

import torch

from vidcap import runtime


def training_precision(requested: str, device: torch.device | str) -> tuple[str, str]:
    """(fp32 | bf16 | fp16, why) for `train.precision` on `device` (this machine's capability)."""
    return runtime.resolve_precision(requested, device)


def autocast(precision: str, device_type: str) -> contextlib.AbstractContextManager:
    """The autocast of a training step: bf16 or fp16 (CUDA only) autocast, nothing for fp32;
    `auto` is decided for this machine first (benchmarks pass the preset's value as is)."""
    if precision == "auto":
        precision, _ = runtime.resolve_precision(precision, device_type)
    return runtime.autocast(precision, device_type)


def grad_scaler(precision: str, device_type: str) -> torch.amp.GradScaler:
    """The gradient scaler of a stage: active for fp16 on CUDA only (bf16 and fp32 need none)."""
    return torch.amp.GradScaler("cuda", enabled=precision == "fp16" and device_type == "cuda")
