"""A tiny MFFCL memorises one fixed batch: the whole caption path learns end to end."""

from __future__ import annotations

import pytest
import torch

from vidcap.models.mffcl import MFFCL

from .conftest import CAPTIONS


@pytest.mark.slow
def test_tiny_model_overfits_one_batch(tiny_config, clips):
    cfg = tiny_config()
    torch.manual_seed(0)
    model = MFFCL.build(cfg.model, cfg.video, captions=CAPTIONS, with_text_encoder=False)
    x = clips(8)  # 8 random-pixel clips, each with its own caption
    optimizer = torch.optim.Adam(model.set_trainable(["encoder", "mapper", "decoder"]), lr=3e-3)
    model.train()
    loss, captions, beamed = None, [], []
    for step in range(1, 501):
        loss = model.caption_loss(x, CAPTIONS)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 20 == 0 and loss.item() < 0.05:
            captions = model.generate(x)
            beamed = model.generate(x, strategy="beam", num_beams=3)
            if captions == CAPTIONS and beamed == CAPTIONS:
                break
    assert loss.item() < 0.05, f"caption loss still {loss.item():.3f} after {step} steps"
    assert captions == CAPTIONS
    assert beamed == CAPTIONS
