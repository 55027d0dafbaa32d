"""Tiny MFFCL configurations: every part at a width of 32, clips of 4 frames of 32 px."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

CAPTIONS = [
    "a red circle moves to the left", "the blue square grows", "a green triangle slides up",
    "the white square gets bigger", "a yellow circle moves down", "the red triangle shrinks",
    "a blue circle slides right", "the green square gets smaller",
]


@pytest.fixture
def clips() -> Callable[[int], torch.Tensor]:
    """clips(B) -> (B, 4, 3, 32, 32) random normalised pixels, the same for the same B."""

    def make(batch: int) -> torch.Tensor:
        return torch.randn(batch, 4, 3, 32, 32, generator=torch.Generator().manual_seed(batch))

    return make
