"""The paper preset at full size, with random weights (no hub): one part at a time, then freed."""

from __future__ import annotations

import gc

import pytest
import torch

from vidcap.config import load_config
from vidcap.models.decoder import CaptionDecoder
from vidcap.models.encoder import VideoEncoder
from vidcap.models.mapper import Mapper
from vidcap.models.text_encoder import TextEncoder
from vidcap.models.tokenizer import train_caption_tokenizer

from .conftest import CAPTIONS

OFFLINE = ["model.encoder.pretrained=null", "model.text_encoder.pretrained=null",
           "model.decoder.pretrained=null", "model.decoder.tokenizer=null"]


def millions(module: torch.nn.Module) -> float:
    return sum(p.numel() for p in module.parameters()) / 1e6


@pytest.mark.slow
def test_paper_preset_builds_at_full_size(capsys):
    cfg = load_config("paper", OFFLINE)
    assert cfg.model.mapper.num_queries == 50 and cfg.model.contrastive.temperature == 0.07
    counts = {}

    encoder = VideoEncoder(cfg.model.encoder, cfg.video)  # TimeSformer-base, 8 x 224 px
    assert encoder.num_patches == 196 and encoder.hidden_size == 768
    counts["encoder (TimeSformer-base)"] = millions(encoder)
    del encoder
    gc.collect()

    text = TextEncoder(cfg.model.text_encoder)  # BERT-base with the uncased WordPiece
    assert text.hidden_size == 768 and len(text.tokenizer) == 30522
    counts["text encoder (BERT-base, no pooler)"] = millions(text)
    del text
    gc.collect()

    # GPT-2 124M: its 50257-token vocabulary, whatever the (offline) tokenizer at hand
    tokenizer = train_caption_tokenizer(CAPTIONS, vocab_size=400)
    decoder = CaptionDecoder(cfg.model.decoder, tokenizer, vocab_size=50257)
    assert decoder.max_positions == 1024
    counts["decoder (GPT-2 124M)"] = millions(decoder)
    del decoder
    gc.collect()

    mapper = Mapper(cfg.model.mapper, 768, 768, 1 + 8 * 196)
    counts["mapper (8 layers, L=10, tau=50)"] = millions(mapper)
    del mapper

    with capsys.disabled():
        print("\npaper preset, parameters (millions): " +
              ", ".join(f"{name} {n:.1f}" for name, n in counts.items()))
    assert 120 < counts["encoder (TimeSformer-base)"] < 123
    assert 108 < counts["text encoder (BERT-base, no pooler)"] < 111
    assert 123 < counts["decoder (GPT-2 124M)"] < 126
