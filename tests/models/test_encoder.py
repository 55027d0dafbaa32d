from __future__ import annotations

import dataclasses

import pytest
import torch
from transformers import TimesformerModel

from vidcap.errors import ConfigError
from vidcap.models.encoder import VideoEncoder, sinusoidal_table, timesformer_config


def encoder(cfg, **changes) -> VideoEncoder:
    torch.manual_seed(0)
    return VideoEncoder(dataclasses.replace(cfg.model.encoder, **changes), cfg.video).eval()


@pytest.mark.parametrize("attention_type", ["divided_space_time", "space_only"])
def test_shapes_and_attention_maps(tiny_config, clips, attention_type):
    cfg = tiny_config()
    enc = encoder(cfg, attention_type=attention_type)
    feats = enc(clips(3), with_attention=True)
    B, T, N, D, heads = 3, 4, 16, 32, 2
    assert feats.cls.shape == (B, D)
    assert feats.tokens.shape == (B, 1 + T * N, D)
    assert torch.equal(feats.tokens[:, 0], feats.cls)
    assert feats.attention.shape == (B, T, heads, N)
    assert (feats.attention >= 0).all()
    torch.testing.assert_close(feats.attention.sum(-1), torch.ones(B, T, heads))
    assert enc(clips(3)).attention is None


def test_tokens_are_frame_major_and_match_hf(tiny_config, clips):
    cfg = tiny_config()
    enc = encoder(cfg)
    x = clips(2)
    hidden = enc.model(pixel_values=x).last_hidden_state  # HF: patch-major (N, T)
    tokens = enc(x).tokens
    T, N = 4, 16
    for t, n in [(0, 0), (1, 5), (3, 15)]:
        torch.testing.assert_close(tokens[:, 1 + t * N + n], hidden[:, 1 + n * T + t])


def test_attention_is_the_chosen_blocks_cls_row(tiny_config, clips):
    cfg = tiny_config()
    enc = encoder(cfg, attention_layer=0)
    x = clips(2)
    hf = enc.model(pixel_values=x, output_attentions=True).attentions[0]  # (B*T, heads, 1+N, 1+N)
    row = hf[:, :, 0, 1:]
    expected = (row / row.sum(-1, keepdim=True)).reshape(2, 4, 2, 16)
    torch.testing.assert_close(enc(x, with_attention=True).attention, expected)


def test_frame_order_matters_only_with_time_attention(tiny_config, clips):
    cfg = tiny_config()
    x = clips(2)
    reversed_x = x.flip(1)
    divided = encoder(cfg)
    assert not torch.allclose(divided(x).cls, divided(reversed_x).cls, atol=1e-4)
    space_only = encoder(cfg, attention_type="space_only")
    torch.testing.assert_close(space_only(x).cls, space_only(reversed_x).cls)


@pytest.mark.parametrize("how", ["zeros", "normal", "sinusoidal"])
def test_time_embedding_init(tiny_config, how):
    table = encoder(tiny_config(), time_embedding_init=how).model.embeddings.time_embeddings[0]
    assert table.shape == (4, 32)
    if how == "zeros":
        assert not table.any()
    elif how == "normal":
        assert 0 < table.std() < 0.05 and not torch.allclose(table[0], table[1])
    else:
        torch.testing.assert_close(table, sinusoidal_table(4, 32))
        assert table[0, 1] == 1.0  # cos(0)


def test_loads_a_saved_timesformer_folder(tiny_config, clips, tmp_path):
    cfg = tiny_config()
    torch.manual_seed(1)
    hf = TimesformerModel(timesformer_config(cfg.model.encoder, cfg.video)).eval()
    hf.save_pretrained(tmp_path / "tsf")
    enc = encoder(cfg, pretrained=str(tmp_path / "tsf"))
    x = clips(2)
    torch.testing.assert_close(enc(x).cls, hf(pixel_values=x).last_hidden_state[:, 0])


def test_pretrained_encoder_adapts_to_other_clip_shapes(tiny_config, clips, tmp_path):
    cfg = tiny_config()
    hf = TimesformerModel(timesformer_config(cfg.model.encoder, cfg.video))
    hf.save_pretrained(tmp_path / "tsf")
    other = dataclasses.replace(cfg.video, num_frames=8, image_size=48)
    enc_cfg = dataclasses.replace(cfg.model.encoder, pretrained=str(tmp_path / "tsf"))
    enc = VideoEncoder(enc_cfg, other)
    feats = enc(torch.randn(1, 8, 3, 48, 48))
    assert feats.tokens.shape == (1, 1 + 8 * 36, 32)


def test_bad_inputs(tiny_config, clips):
    cfg = tiny_config()
    enc = encoder(cfg)
    with pytest.raises(ValueError, match="expected clips of shape"):
        enc(torch.randn(1, 3, 3, 32, 32))
    with pytest.raises(ConfigError, match="model.encoder.pretrained"):
        encoder(cfg, pretrained="/nonexistent/timesformer")
    with pytest.raises(ConfigError, match="patch_size"):
        encoder(cfg, patch_size=7)


def test_drop_path_and_gradient_checkpointing(tiny_config, clips):
    cfg = tiny_config()
    enc = encoder(cfg, drop_path_rate=0.2, gradient_checkpointing=True)
    rates = [getattr(layer.drop_path, "drop_prob", 0.0) for layer in enc.model.encoder.layer]
    assert rates == pytest.approx([0.0, 0.2])
    enc.train()
    feats = enc(clips(2))
    feats.cls.sum().backward()
    assert enc.model.embeddings.patch_embeddings.projection.weight.grad is not None


def test_sinusoidal_position_embeddings_lay_rows_then_columns_and_leave_cls_at_zero(tiny_config):
    from vidcap.models.encoder import sinusoidal_grid_table, sinusoidal_table

    table = sinusoidal_grid_table(4, 8)
    one_d = sinusoidal_table(4, 4)
    assert torch.equal(table[1 * 4 + 3, :4], one_d[1]) and torch.equal(table[1 * 4 + 3, 4:], one_d[3])
    cfg = tiny_config("model.encoder.position_embedding_init=sinusoidal")
    encoder = VideoEncoder(cfg.model.encoder, cfg.video)
    positions = encoder.model.embeddings.position_embeddings[0]
    assert torch.equal(positions[0], torch.zeros(32))
    assert torch.equal(positions[1:], sinusoidal_grid_table(4, 32))
