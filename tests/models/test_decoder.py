from __future__ import annotations

import dataclasses

import pytest
import torch

from vidcap.config import GenerateConfig, load_config
from vidcap.errors import ConfigError
from vidcap.losses import IGNORE_INDEX
from vidcap.models.decoder import CaptionDecoder
from vidcap.models.tokenizer import train_caption_tokenizer

from tests.conftest import TINY

from .conftest import CAPTIONS

TAU = 4


@pytest.fixture(scope="module")
def tokenizer():
    return train_caption_tokenizer(CAPTIONS, vocab_size=400)


def make_decoder(tiny_config, tokenizer, **changes) -> CaptionDecoder:
    torch.manual_seed(0)
    cfg = dataclasses.replace(tiny_config().model.decoder, **changes)
    return CaptionDecoder(cfg, tokenizer).eval()


def prefix(batch: int) -> torch.Tensor:
    return torch.randn(batch, TAU, 32, generator=torch.Generator().manual_seed(batch))


def test_tokenize_appends_eos_and_pads(tiny_config, tokenizer):
    dec = make_decoder(tiny_config, tokenizer)
    ids, mask = dec.tokenize(["A  Red circle", "the blue square grows"])
    assert ids.shape == mask.shape and ids.shape[0] == 2
    lengths = mask.sum(1).tolist()
    assert ids[0, lengths[0] - 1] == ids[1, lengths[1] - 1] == tokenizer.eos_token_id
    assert (ids[0, lengths[0]:] == tokenizer.pad_token_id).all()
    assert tokenizer.decode(ids[0, :lengths[0] - 1]).strip() == "a red circle"  # lower-cased
    long = " ".join(["red"] * 50)
    assert dec.tokenize([long])[0].shape[1] == 12 + 1  # max_caption_tokens + <eos>


def test_logits_predict_the_next_token(tiny_config, tokenizer):
    dec = make_decoder(tiny_config, tokenizer)
    ids, mask = dec.tokenize(CAPTIONS[:3])
    p = prefix(3)
    logits = dec(p, ids, mask)
    assert logits.shape == (*ids.shape, dec.model.config.vocab_size)
    # the same logits from GPT-2 on the full [prefix ; tokens] sequence, shifted by one
    embeds = torch.cat([p, dec.model.transformer.wte(ids)], 1)
    full = dec.model(inputs_embeds=embeds,
                     attention_mask=torch.cat([mask.new_ones(3, TAU), mask], 1)).logits
    torch.testing.assert_close(logits, full[:, TAU - 1:-1])


def test_loss_counts_caption_tokens_only(tiny_config, tokenizer):
    dec = make_decoder(tiny_config, tokenizer)
    p = prefix(2)
    both = dec.loss(p, ["a red circle", "the blue square gets bigger and bigger"])
    ids, mask = dec.tokenize(["a red circle", "the blue square gets bigger and bigger"])
    logits = dec(p, ids, mask)
    labels = ids.masked_fill(mask == 0, IGNORE_INDEX)
    per_token = torch.nn.functional.cross_entropy(logits.flatten(0, 1), labels.flatten(),
                                                  ignore_index=IGNORE_INDEX, reduction="sum")
    torch.testing.assert_close(both, per_token / mask.sum())
    # padding changes nothing: the short caption alone gives the same per-token loss sum
    alone_ids, alone_mask = dec.tokenize(["a red circle"])
    alone = dec.loss(p[:1], ["a red circle"]) * alone_mask.sum()
    short_sum = torch.nn.functional.cross_entropy(
        logits[0], labels[0], ignore_index=IGNORE_INDEX, reduction="sum")
    torch.testing.assert_close(alone, short_sum, atol=1e-4, rtol=1e-5)


def test_frozen_decoder_still_passes_gradients_to_the_prefix(tiny_config, tokenizer):
    dec = make_decoder(tiny_config, tokenizer, trainable=False)
    assert not any(p.requires_grad for p in dec.parameters())
    p = prefix(2).requires_grad_()
    dec.loss(p, CAPTIONS[:2]).backward()
    assert p.grad is not None and p.grad.abs().sum() > 0


@pytest.fixture(scope="module")
def trained(tokenizer) -> CaptionDecoder:
    """A decoder that has seen the captions a little, so that generations end at various lengths."""
    torch.manual_seed(0)
    dec = CaptionDecoder(load_config("shapes-tiny", TINY).model.decoder, tokenizer).train()
    opt = torch.optim.Adam(dec.parameters(), lr=3e-3)
    for _ in range(15):
        loss = dec.loss(prefix(8), CAPTIONS)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return dec.eval()


@pytest.mark.parametrize("strategy", ["greedy", "beam", "sample"])
def test_cache_and_no_cache_give_the_same_captions(trained, strategy):
    dec = trained
    gen = GenerateConfig(strategy=strategy, num_beams=3, top_k=20, max_new_tokens=12)
    p = prefix(8)
    torch.manual_seed(5)
    cached = dec.generate_ids(p, gen)
    torch.manual_seed(5)
    uncached = dec.generate_ids(p, dataclasses.replace(gen, use_cache=False))
    assert torch.equal(cached, uncached)


def test_one_beam_is_greedy(trained):
    dec = trained
    p = prefix(8)
    greedy = dec.generate(p, GenerateConfig(strategy="greedy"))
    for use_cache in (True, False):
        beam = dec.generate(p, GenerateConfig(strategy="beam", num_beams=1, use_cache=use_cache))
        assert beam == greedy


def test_generated_text_is_clean(trained):
    dec = trained
    ids = dec.generate_ids(prefix(8), GenerateConfig(max_new_tokens=12))
    assert ids.shape[0] == 8 and ids.shape[1] <= 12
    texts = dec.generate(prefix(8), GenerateConfig(max_new_tokens=12))
    for text in texts:
        assert "<" not in text and text == " ".join(text.split())


def test_length_limits(tiny_config, tokenizer):
    dec = make_decoder(tiny_config, tokenizer)
    with pytest.raises(ConfigError, match="max_new_tokens"):
        dec.generate(prefix(1), GenerateConfig(max_new_tokens=45))  # 4 + 45 > 48 positions
    assert dec.generate_ids(prefix(2), GenerateConfig(max_new_tokens=3)).shape[1] <= 3


@pytest.mark.parametrize("use_cache", [True, False])
def test_min_new_tokens_holds_back_the_end(trained, use_cache):
    gen = GenerateConfig(max_new_tokens=10, min_new_tokens=10, use_cache=use_cache)
    ids = trained.generate_ids(prefix(8), gen)
    assert ids.shape == (8, 10) and not (ids == trained.tokenizer.eos_token_id).any()
    short = trained.generate_ids(prefix(8), GenerateConfig(max_new_tokens=10))
    assert (short == trained.tokenizer.eos_token_id).any()  # without it some captions end early
