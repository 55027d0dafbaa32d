"""Tiny MFFCL configurations: every part at a width of 32, clips of 4 frames of 32 px."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from vidcap.config import Config, load_config

CAPTIONS = [
    "a red circle moves to the left", "the blue square grows", "a green triangle slides up",
    "the white square gets bigger", "a yellow circle moves down", "the red triangle shrinks",
    "a blue circle slides right", "the green square gets smaller",
]

TINY = [
    "video.num_frames=4", "video.image_size=32",
    "model.encoder.patch_size=8", "model.encoder.hidden_size=32", "model.encoder.num_layers=2",
    "model.encoder.num_heads=2", "model.encoder.intermediate_size=64",
    "model.encoder.time_embedding_init=sinusoidal",
    # a random BERT (tokenised by the offline MiniLM WordPiece): no 90 MB load in every test
    "model.text_encoder.pretrained=null", "model.text_encoder.hidden_size=32",
    "model.text_encoder.num_layers=1", "model.text_encoder.num_heads=2",
    "model.text_encoder.intermediate_size=64", "model.text_encoder.pooling=cls",
    "model.contrastive.embed_dim=16",
    "model.mapper.prefix_length=3", "model.mapper.num_queries=4", "model.mapper.num_layers=1",
    "model.mapper.num_heads=2",
    "model.decoder.hidden_size=32", "model.decoder.num_layers=2", "model.decoder.num_heads=2",
    "model.decoder.max_positions=48", "model.decoder.max_caption_tokens=12",
    "generate.max_new_tokens=12",
]


@pytest.fixture
def tiny_config() -> Callable[..., Config]:
    """tiny_config("model.mapper.kind=mlp", ...) -> shapes-tiny shrunk, plus the overrides."""

    def make(*overrides: str) -> Config:
        return load_config("shapes-tiny", TINY + list(overrides))

    return make


@pytest.fixture
def clips() -> Callable[[int], torch.Tensor]:
    """clips(B) -> (B, 4, 3, 32, 32) random normalised pixels, the same for the same B."""

    def make(batch: int) -> torch.Tensor:
        return torch.randn(batch, 4, 3, 32, 32, generator=torch.Generator().manual_seed(batch))

    return make


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models gain nothing from intra-op threads, and on a shared 2-core machine two torch
    threads spin against other processes (generation measured 10-50x slower); restored after."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
