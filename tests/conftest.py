"""Shared fixtures. Tests never reach a model hub: HF_HUB_OFFLINE is forced on."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from vidcap.config import Config, load_config

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real annotation files beside the checkout (../shared/data); skip when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real annotation files not found at {SHARED_DATA} (see DESIGN.md, Data)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def java() -> str:
    """`java` on PATH (the PTB tokenizer and METEOR need it); skip with the reason when absent."""
    path = shutil.which("java")
    if path is None:
        pytest.skip("no Java runtime on PATH (apt-get install default-jre-headless)")
    return path


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


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models gain nothing from intra-op threads, and on a shared 2-core machine two torch
    threads spin against other processes (generation measured 10-50x slower); restored after."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# a tiny Shapes set and a tiny trained run, shared by the training, captioning and attention tests
TINY_TRAIN = [
    "train.align.steps=4", "train.align.batch_size=8", "train.align.warmup_steps=0",
    "train.caption.steps=8", "train.caption.batch_size=8", "train.caption.warmup_steps=0",
    "train.log_every=1", "train.eval_every=4", "train.checkpoint_every=2",
    "train.eval_scorers=[cider]", "train.eval_max_videos=8", "generate.batch_size=8",
    "train.precision=fp32",  # exact comparisons (resume, 1 vs 2 processes)
]


@pytest.fixture(scope="session")
def tiny_shapes(tmp_path_factory) -> Path:
    """A Shapes set of 32 / 8 / 8 clips at 32 px; returns its manifest."""
    from vidcap.data.shapes import ShapesSpec, prepare_shapes

    out = tmp_path_factory.mktemp("shapes")
    return prepare_shapes(out, ShapesSpec(size=32, seed=3), splits=(32, 8, 8))


def tiny_train_config(manifest: Path, *overrides: str) -> Config:
    """The tiny model with a few steps of each stage on `manifest`."""
    return load_config("shapes-tiny", TINY + TINY_TRAIN + [f"data.manifest={manifest}",
                                                          *overrides])


@pytest.fixture(scope="session")
def tiny_run(tiny_shapes: Path, tmp_path_factory) -> Path:
    """A run directory trained (both stages, a few steps) on the tiny Shapes set."""
    from vidcap.training.trainer import train

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return train(tiny_train_config(tiny_shapes), tmp_path_factory.mktemp("run") / "run")
    finally:
        torch.set_num_threads(threads)
