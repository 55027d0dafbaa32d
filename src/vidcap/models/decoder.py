"""The caption decoder: GPT-2 reading a prefix of tau vectors before the caption (paper eq. 2).

Training: [prefix (tau) ; caption tokens ; <eos>] through GPT-2, cross-entropy on the caption
tokens and the end token only (the prefix predicts the first word; padding is ignored). There is
no <bos>: the prefix plays its part, as in ClipCap.

Generation uses transformers' `generate` (greedy, beam search, top-p / top-k sampling). With the
KV cache (the default) the prefix goes in as `inputs_embeds`, the documented way. transformers
forces the cache on for `inputs_embeds`, so without the cache the prefix goes in as `tau`
placeholder ids plus `prefix_embeds`, which `PrefixGPT2LMHeadModel.forward` swaps into the
embeddings of the first tau positions; with no cache each step then re-reads the whole prefix and
caption. Both ways give the same captions (tests/models/test_decoder.py).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
from torch import Tensor, nn
from transformers import GenerationConfig, GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

from vidcap.config import DecoderConfig, GenerateConfig
from vidcap.errors import ConfigError
from vidcap.losses import IGNORE_INDEX, caption_loss
from vidcap.models.pretrained import NO_CODE, refuse_custom_code
from vidcap.models.tokenizer import decode_captions
from vidcap.text import normalize_caption

log = logging.getLogger(__name__)


class PrefixGPT2LMHeadModel(GPT2LMHeadModel):
    """GPT2LMHeadModel whose first tau positions may be given as embeddings (`prefix_embeds`,
    (B, tau, D)) while `input_ids` holds placeholders there. Everything else is GPT-2's."""

    def forward(self, input_ids: Tensor | None = None, *, prefix_embeds: Tensor | None = None,
                inputs_embeds: Tensor | None = None, **kwargs):  # type: ignore[override]
        if prefix_embeds is not None and inputs_embeds is None and input_ids is not None:
            cache = kwargs.get("cache")
            past = cache.get_seq_length() if cache is not None else 0
            tau = prefix_embeds.shape[1]
            if past < tau:  # this call covers (part of) the prefix positions
                embeds = self.transformer.wte(input_ids)
                n = min(tau - past, embeds.shape[1])
                inputs_embeds = torch.cat([prefix_embeds[:, past:past + n].to(embeds.dtype),
                                           embeds[:, n:]], dim=1)
                input_ids = None
        return super().forward(input_ids=input_ids, inputs_embeds=inputs_embeds, **kwargs)


def gpt2_config(cfg: DecoderConfig, tokenizer: PreTrainedTokenizerFast,
                vocab_size: int | None = None) -> GPT2Config:
    """The HF config of a GPT-2 built from scratch for `tokenizer`."""
    return GPT2Config(vocab_size=vocab_size or len(tokenizer), n_positions=cfg.max_positions,
                      n_embd=cfg.hidden_size, n_layer=cfg.num_layers, n_head=cfg.num_heads,
                      bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                      pad_token_id=tokenizer.pad_token_id, resid_pdrop=cfg.dropout,
                      embd_pdrop=cfg.dropout, attn_pdrop=cfg.dropout)


class CaptionDecoder(nn.Module):
    """GPT-2 + tokenizer: prefix (B, tau, D) + captions -> logits, loss, or generated captions."""

    def __init__(self, cfg: DecoderConfig, tokenizer: PreTrainedTokenizerFast, *,
                 hf_config: GPT2Config | None = None, vocab_size: int | None = None) -> None:
        """Load `cfg.pretrained`, or build from `hf_config` (given: `MFFCL.load`) or from `cfg`
        (`vocab_size` overrides len(tokenizer): benchmarks of a full-size vocabulary)."""
        super().__init__()
        self.cfg = cfg
        self.tokenizer = tokenizer
        if hf_config is not None:
            self.model = PrefixGPT2LMHeadModel(hf_config)
        elif cfg.pretrained:
            refuse_custom_code(cfg.pretrained, "model.decoder.pretrained")
            try:
                self.model = PrefixGPT2LMHeadModel.from_pretrained(
                    cfg.pretrained, resid_pdrop=cfg.dropout, embd_pdrop=cfg.dropout,
                    attn_pdrop=cfg.dropout, **NO_CODE)
            except (OSError, ValueError) as err:
                raise ConfigError(f"model.decoder.pretrained: cannot load {cfg.pretrained!r} "
                                  f"({str(err).splitlines()[0]})") from None
        else:
            self.model = PrefixGPT2LMHeadModel(gpt2_config(cfg, tokenizer, vocab_size))
        config = self.model.config
        if max(tokenizer.all_special_ids + [len(tokenizer) - 1]) >= config.vocab_size:
            raise ConfigError(f"model.decoder.tokenizer: {len(tokenizer)} tokens do not fit the "
                              f"decoder's vocabulary of {config.vocab_size}")
        self.hidden_size: int = config.n_embd
        self.max_positions: int = config.n_positions
        if not cfg.trainable:
            self.requires_grad_(False)

    def tokenize(self, captions: Sequence[str]) -> tuple[Tensor, Tensor]:
        """captions -> input_ids (B, L) with <eos> after each caption, right-padded, and
        attention_mask (B, L); at most max_caption_tokens + 1 tokens each."""
        texts = [normalize_caption(c, lowercase=self.cfg.lowercase) for c in captions]
        ids = self.tokenizer(texts, add_special_tokens=False, truncation=True,
                             max_length=self.cfg.max_caption_tokens)["input_ids"]
        ids = [row + [self.tokenizer.eos_token_id] for row in ids]
        length = max(len(row) for row in ids)
        input_ids = torch.full((len(ids), length), self.tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(ids), length), dtype=torch.long)
        for i, row in enumerate(ids):
            input_ids[i, :len(row)] = torch.tensor(row)
            mask[i, :len(row)] = 1
        device = self.model.device
        return input_ids.to(device), mask.to(device)

    def forward(self, prefix: Tensor, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """prefix (B, tau, D), input_ids / attention_mask (B, L) -> logits (B, L, V), where
        logits[:, i] is the prediction of input_ids[:, i] (from the prefix and tokens before i)."""
        B, tau, _ = prefix.shape
        L = input_ids.shape[1]
        if tau + L > self.max_positions:
            raise ValueError(f"prefix {tau} + caption {L} tokens exceed the decoder's "
                             f"{self.max_positions} positions")
        embeds = torch.cat([prefix.to(self.model.dtype), self.model.transformer.wte(input_ids)], 1)
        mask = torch.cat([attention_mask.new_ones(B, tau), attention_mask], dim=1)
        # positions tau-1 .. tau+L-2 predict tokens 0 .. L-1: keep the last L+1, drop the very last
        out = self.model(inputs_embeds=embeds, attention_mask=mask, logits_to_keep=L + 1,
                         use_cache=False)
        return out.logits[:, :-1]

    def loss(self, prefix: Tensor, captions: Sequence[str]) -> Tensor:
        """Cross-entropy of the captions (and their <eos>) given the prefix (B, tau, D)."""
        input_ids, mask = self.tokenize(captions)
        labels = input_ids.masked_fill(mask == 0, IGNORE_INDEX)
        return caption_loss(self(prefix, input_ids, mask), labels)

    def generation_config(self, gen: GenerateConfig) -> GenerationConfig:
        tok = self.tokenizer
        options: dict = dict(max_new_tokens=gen.max_new_tokens, min_new_tokens=gen.min_new_tokens,
                             use_cache=gen.use_cache,
                             pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
                             bos_token_id=tok.bos_token_id, num_return_sequences=1)
        if gen.strategy == "sample":
            options.update(do_sample=True, num_beams=1, top_p=gen.top_p, top_k=gen.top_k,
                           temperature=gen.temperature)
        elif gen.strategy == "beam":
            options.update(do_sample=False, num_beams=gen.num_beams,
                           length_penalty=gen.length_penalty, early_stopping=True)
        else:
            options.update(do_sample=False, num_beams=1)
        return GenerationConfig(**options)

    @torch.no_grad()
    def generate_ids(self, prefix: Tensor, gen: GenerateConfig) -> Tensor:
        """prefix (B, tau, D) -> new token ids (B, <= max_new_tokens), padded after <eos>."""
        B, tau, _ = prefix.shape
        if tau + gen.max_new_tokens > self.max_positions:
            raise ConfigError(f"generate.max_new_tokens: prefix {tau} + {gen.max_new_tokens} new "
                              f"tokens exceed the decoder's {self.max_positions} positions")
        prefix = prefix.to(self.model.dtype)
        mask = torch.ones(B, tau, dtype=torch.long, device=prefix.device)
        config = self.generation_config(gen)
        if gen.use_cache:
            return self.model.generate(inputs_embeds=prefix, attention_mask=mask,
                                       generation_config=config)
        placeholders = torch.full((B, tau), self.tokenizer.pad_token_id, dtype=torch.long,
                                  device=prefix.device)
        out = self.model.generate(input_ids=placeholders, attention_mask=mask,
                                  prefix_embeds=prefix, generation_config=config)
        return out[:, tau:]

    def generate(self, prefix: Tensor, gen: GenerateConfig) -> list[str]:
        """prefix (B, tau, D) -> B captions (special tokens stripped, whitespace collapsed)."""
        return decode_captions(self.tokenizer, self.generate_ids(prefix, gen).tolist())
