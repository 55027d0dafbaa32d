"""Numeric precision of training steps: which autocast a `train.precision` gives on a device."""

from __future__ import annotations

import contextlib

import torch


def autocast(precision: str, device_type: str) -> contextlib.AbstractContextManager:
    """The autocast of `train.precision` on a device: bf16 anywhere, fp16 on CUDA only (on CPU
    it runs in fp32), fp32 as is."""
    if precision == "bf16":
        return torch.autocast(device_type, dtype=torch.bfloat16)
    if precision == "fp16" and device_type == "cuda":
        return torch.autocast(device_type, dtype=torch.float16)
    return contextlib.nullcontext()
