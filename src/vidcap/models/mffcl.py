"""MFFCL: TimeSformer + contrastive alignment + query-prefix GPT-2 (the paper's §III, DESIGN.md).

    pixels (B,T,3,H,W) -encoder-> VideoFeatures(cls (B,Dv), tokens (B,1+T*N,Dv))
    align:   contrastive(cls, text_encoder(captions))                 InfoNCE, eq. 3
    caption: mapper(cls or tokens) -> prefix (B,tau,Dlm) -decoder->   cross-entropy, eq. 2
    decode:  decoder.generate(prefix)                                 greedy / beam / sample

A saved model (`save`) is a folder that loads with no network (HF_HUB_OFFLINE=1) from itself alone:

    config.yaml          `model` and `video` sections (other sections of a run's config.yaml kept)
    model.safetensors    every weight, GPT-2's tied lm_head once; the text encoder's only if it
                         is trainable (see below)
    tokenizer/           the caption tokenizer (save_pretrained)
    encoder/config.json  decoder/config.json   the HF configs the sub-models are rebuilt from
    text_encoder/        its config and tokenizer (small; weights per the rule below)

The text encoder is only needed by the align stage. A frozen pretrained one never changes, so its
weights are not copied (90 MB for MiniLM, 440 MB for BERT-base): `load` reloads them from
`model.text_encoder.pretrained` when that loads offline (the default all-MiniLM-L6-v2 always does:
it ships with vidcap) and otherwise goes without a text encoder, which captioning does not need.
A text encoder with `trainable: true` (or built with random weights, `pretrained: null`) has its
weights saved like every other part.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from transformers import GPT2Config, PreTrainedTokenizerFast, TimesformerConfig

from vidcap.config import (ContrastiveConfig, GenerateConfig, ModelConfig, VideoConfig,
                           from_dict, to_dict)
from vidcap.errors import ConfigError, RunError
from vidcap.losses import contrastive_loss
from vidcap.models.decoder import CaptionDecoder
from vidcap.models.encoder import VideoEncoder, VideoFeatures
from vidcap.models.mapper import Mapper
from vidcap.models.text_encoder import TextEncoder, text_hidden_size
from vidcap.models.tokenizer import load_tokenizer, train_caption_tokenizer

log = logging.getLogger(__name__)

__all__ = ["MFFCL", "VideoFeatures", "ContrastiveHead", "COMPONENTS"]

COMPONENTS = ("encoder", "text_encoder", "contrastive", "mapper", "decoder")
WEIGHTS, CONFIG, TOKENIZER = "model.safetensors", "config.yaml", "tokenizer"
MIN_TEMPERATURE = 0.01  # CLIP's bound on a learned temperature


class ContrastiveHead(nn.Module):
    """Linear projections of video CLS (Dv) and text CLS (Dt) into a shared width E, and the
    InfoNCE temperature (a fixed buffer, or a learned log-temperature clamped at 0.01)."""

    def __init__(self, cfg: ContrastiveConfig, video_dim: int, text_dim: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.video_proj = nn.Linear(video_dim, cfg.embed_dim, bias=False)
        self.text_proj = nn.Linear(text_dim, cfg.embed_dim, bias=False)
        log_t = torch.tensor(math.log(cfg.temperature))
        if cfg.learnable_temperature:
            self.log_temperature = nn.Parameter(log_t)
        else:
            self.register_buffer("log_temperature", log_t)

    @property
    def temperature(self) -> Tensor:
        return self.log_temperature.clamp(min=math.log(MIN_TEMPERATURE)).exp()

    def forward(self, video_cls: Tensor, text: Tensor) -> Tensor:
        """video_cls (B, Dv), text (B, Dt) -> InfoNCE over the (global) batch."""
        return contrastive_loss(self.video_proj(video_cls), self.text_proj(text), self.temperature,
                                symmetric=self.cfg.symmetric)


class MFFCL(nn.Module):
    """The whole model; build with `MFFCL.build`, reload with `MFFCL.load`."""

    def __init__(self, cfg: ModelConfig, video_cfg: VideoConfig, *, encoder: VideoEncoder,
                 text_encoder: TextEncoder | None, contrastive: ContrastiveHead, mapper: Mapper,
                 decoder: CaptionDecoder) -> None:
        super().__init__()
        self.cfg = cfg
        self.video_cfg = video_cfg
        self.encoder = encoder
        self.text_encoder = text_encoder
        self.contrastive = contrastive
        self.mapper = mapper
        self.decoder = decoder

    @property
    def tokenizer(self) -> PreTrainedTokenizerFast:
        return self.decoder.tokenizer

    @property
    def device(self) -> torch.device:
        return next(self.decoder.parameters()).device

    # -- building and loading --------------------------------------------------------------------

    @classmethod
    def build(cls, cfg: ModelConfig, video_cfg: VideoConfig, *,
              captions: Sequence[str] | None = None, with_text_encoder: bool = True) -> "MFFCL":
        """Load the pretrained parts `cfg` names, build the others from `cfg` with random weights.

        The caption tokenizer is `decoder.tokenizer`, else the pretrained decoder's own, else a
        byte-level BPE trained on `captions`. `with_text_encoder=False` leaves the text encoder
        out (a caption-only run); the contrastive head is built either way.
        """
        dec = cfg.decoder
        if dec.tokenizer is not None:
            tokenizer = load_tokenizer(dec.tokenizer)
        elif dec.pretrained is not None:
            tokenizer = load_tokenizer(dec.pretrained, key="model.decoder.pretrained")
        elif captions is None:
            raise ConfigError("model.decoder.tokenizer: null means a BPE trained on the training "
                              "captions, but no captions were given")
        else:
            tokenizer = train_caption_tokenizer(captions, dec.vocab_size, lowercase=dec.lowercase)
        encoder = VideoEncoder(cfg.encoder, video_cfg)
        text_encoder = TextEncoder(cfg.text_encoder) if with_text_encoder else None
        text_dim = text_encoder.hidden_size if text_encoder else text_hidden_size(cfg.text_encoder)
        decoder = CaptionDecoder(dec, tokenizer)
        return cls._assemble(cfg, video_cfg, encoder, text_encoder, text_dim, decoder)

    @classmethod
    def _assemble(cls, cfg: ModelConfig, video_cfg: VideoConfig, encoder: VideoEncoder,
                  text_encoder: TextEncoder | None, text_dim: int,
                  decoder: CaptionDecoder) -> "MFFCL":
        num_tokens = 1 + encoder.num_frames * encoder.num_patches
        tau = cfg.mapper.num_queries
        if tau + cfg.decoder.max_caption_tokens + 1 > decoder.max_positions:
            raise ConfigError(f"model.mapper.num_queries: a prefix of {tau} plus "
                              f"{cfg.decoder.max_caption_tokens + 1} caption tokens exceeds the "
                              f"decoder's {decoder.max_positions} positions")
        return cls(cfg, video_cfg, encoder=encoder, text_encoder=text_encoder,
                   contrastive=ContrastiveHead(cfg.contrastive, encoder.hidden_size, text_dim),
                   mapper=Mapper(cfg.mapper, encoder.hidden_size, decoder.hidden_size, num_tokens),
                   decoder=decoder)

    def _saves_text_encoder(self) -> bool:
        """Trainable text encoders (and random ones, which no source can give back) are saved."""
        te = self.cfg.text_encoder
        return self.text_encoder is not None and (te.trainable or te.pretrained is None)

    def save(self, directory: str | Path) -> None:
        """Write the model folder described in the module docstring (rank 0 only, in DDP)."""
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        skip = () if self._saves_text_encoder() else ("text_encoder",)
        tmp = folder / (WEIGHTS + ".tmp")
        save_file(unique_weights(self, skip), str(tmp), metadata={
            "format": "pt", "text_encoder": "saved" if not skip else "from-pretrained"})
        tmp.replace(folder / WEIGHTS)
        config_file = folder / CONFIG
        data = yaml.safe_load(config_file.read_text()) or {} if config_file.is_file() else {}
        data.update(model=to_dict(self.cfg), video=to_dict(self.video_cfg))
        config_file.write_text(yaml.safe_dump(data, sort_keys=False))
        self.tokenizer.save_pretrained(str(folder / TOKENIZER))
        self.encoder.model.config.save_pretrained(str(folder / "encoder"))
        self.decoder.model.config.save_pretrained(str(folder / "decoder"))
        if self.text_encoder is not None:
            self.text_encoder.save_files(folder / "text_encoder")

    @classmethod
    def load(cls, directory: str | Path, *, device: str | torch.device = "cpu",
             with_text_encoder: bool | None = None) -> "MFFCL":
        """A model saved by `save`, from its folder alone. `with_text_encoder`: None loads it when
        it can (saved weights, or a pretrained source that loads offline) and goes without it
        otherwise; True requires it; False leaves it out."""
        folder = Path(directory)
        for needed in (CONFIG, WEIGHTS, TOKENIZER, "encoder/config.json", "decoder/config.json"):
            if not (folder / needed).exists():
                raise RunError(f"{folder / needed}: missing, so {folder} is not a saved model")
        data = yaml.safe_load((folder / CONFIG).read_text()) or {}
        if "model" not in data:
            raise RunError(f"{folder / CONFIG}: no `model` section")
        cfg = from_dict(ModelConfig, data["model"], prefix="model")
        video_cfg = from_dict(VideoConfig, data.get("video", {}), prefix="video")
        weights = load_file(str(folder / WEIGHTS))
        tokenizer = load_tokenizer(folder / TOKENIZER)
        encoder = VideoEncoder(cfg.encoder, video_cfg,
                               hf_config=TimesformerConfig.from_pretrained(str(folder / "encoder")))
        decoder = CaptionDecoder(cfg.decoder, tokenizer,
                                 hf_config=GPT2Config.from_pretrained(str(folder / "decoder")))
        text_encoder = cls._load_text_encoder(cfg, folder, weights, with_text_encoder)
        if text_encoder is None:  # saved text-encoder weights, not wanted this time
            weights = {k: v for k, v in weights.items() if not k.startswith("text_encoder.")}
        text_dim = weights["contrastive.text_proj.weight"].shape[1]
        model = cls._assemble(cfg, video_cfg, encoder, text_encoder, text_dim, decoder)
        model._load_weights(weights, folder / WEIGHTS)
        return model.to(device).eval()

    @staticmethod
    def _load_text_encoder(cfg: ModelConfig, folder: Path, weights: dict[str, Tensor],
                           wanted: bool | None) -> TextEncoder | None:
        if wanted is False:
            return None
        if any(k.startswith("text_encoder.") for k in weights):  # trained: rebuilt, weights below
            return TextEncoder(cfg.text_encoder, saved=folder / "text_encoder")
        try:
            return TextEncoder(cfg.text_encoder)
        except ConfigError as err:
            if wanted:
                raise
            log.info("loading %s without its text encoder (captioning does not need it): %s",
                     folder, err)
            return None

    def _load_weights(self, weights: dict[str, Tensor], file: Path) -> None:
        result = self.load_state_dict(weights, strict=False)
        if result.unexpected_keys:
            raise RunError(f"{file}: weights do not fit the saved config (unexpected "
                           f"{', '.join(result.unexpected_keys[:3])})")
        frozen_text = not any(k.startswith("text_encoder.") for k in weights)
        expected = set(unique_weights(self, ("text_encoder",) if frozen_text else ()))
        lacking = sorted(expected - set(weights))
        if lacking:
            raise RunError(f"{file}: lacks {len(lacking)} weights of this model "
                           f"(e.g. {', '.join(lacking[:3])})")

    # -- the parts ------------------------------------------------------------------------------

    def component(self, name: str) -> nn.Module:
        """One of COMPONENTS. A text encoder left out (`with_text_encoder=False`) is an empty
        module: no parameters to train or freeze."""
        if name not in COMPONENTS:
            raise ValueError(f"unknown component {name!r} (one of {', '.join(COMPONENTS)})")
        module = getattr(self, name)
        return module if module is not None else nn.Module()

    def set_trainable(self, names: Iterable[str]) -> list[nn.Parameter]:
        """Train the named components and freeze the rest; `decoder.trainable: false` and a text
        encoder with `trainable: false` stay frozen even when named. Returns the trainable
        parameters (what the optimiser gets)."""
        names = set(names)
        vetoed = {n for n, ok in (("decoder", self.cfg.decoder.trainable),
                                  ("text_encoder", self.cfg.text_encoder.trainable)) if not ok}
        for name in COMPONENTS:
            self.component(name).requires_grad_(name in names - vetoed)
        self.train(self.training)  # a frozen text encoder goes back to eval mode
        return [p for p in self.parameters() if p.requires_grad]

    def encode_video(self, pixels: Tensor, *, with_attention: bool = False) -> VideoFeatures:
        """pixels (B, T, 3, H, W) -> VideoFeatures (cls (B, Dv), tokens (B, 1+T*N, Dv), attention
        (B, T, heads, N) when asked)."""
        return self.encoder(pixels, with_attention=with_attention)

    def encode_text(self, captions: Sequence[str]) -> Tensor:
        """captions -> (B, Dt) text-encoder sentence vectors (before the projection)."""
        if self.text_encoder is None:
            raise RunError("this model was loaded without its text encoder; load it with "
                           "with_text_encoder=True for the align stage")
        return self.text_encoder(captions)

    def align_loss(self, pixels: Tensor | VideoFeatures, text: Sequence[str] | Tensor) -> Tensor:
        """InfoNCE between the video CLS and the text: captions, or `encode_text` output (B, Dt)."""
        features = pixels if isinstance(pixels, VideoFeatures) else self.encode_video(pixels)
        text_features = text if isinstance(text, Tensor) else self.encode_text(text)
        return self.contrastive(features.cls, text_features.to(features.cls.device))

    def prefix(self, features: VideoFeatures) -> Tensor:
        """VideoFeatures -> (B, tau, Dlm) prefix embeddings for GPT-2."""
        return self.mapper(features.cls if self.cfg.mapper.input == "cls" else features.tokens)

    def caption_logits(self, pixels: Tensor | VideoFeatures, captions: Sequence[str]
                       ) -> tuple[Tensor, Tensor]:
        """-> logits (B, L, V) and the token ids (B, L) they predict (captions + <eos>, padded)."""
        features = pixels if isinstance(pixels, VideoFeatures) else self.encode_video(pixels)
        input_ids, mask = self.decoder.tokenize(captions)
        return self.decoder(self.prefix(features), input_ids, mask), input_ids

    def caption_loss(self, pixels: Tensor | VideoFeatures, captions: Sequence[str]) -> Tensor:
        """Cross-entropy on the caption tokens (and <eos>) only; prefix and padding ignored."""
        features = pixels if isinstance(pixels, VideoFeatures) else self.encode_video(pixels)
        return self.decoder.loss(self.prefix(features), captions)

    @torch.no_grad()
    def generate(self, pixels: Tensor, gen: GenerateConfig | None = None,
                 **overrides: Any) -> list[str]:
        """pixels (B, T, 3, H, W) -> B captions, decoded per `gen` (fields overridable by keyword,
        e.g. strategy="beam"), gen.batch_size clips at a time, in eval mode. Sampling draws from
        its own seeded RNG: the same seed gives the same captions and the caller's RNG is left as
        it was."""
        gen = dataclasses.replace(gen or GenerateConfig(), **overrides)
        was_training = self.training
        self.eval()
        device = self.device
        devices = [device] if device.type == "cuda" else []
        captions: list[str] = []
        try:
            with torch.random.fork_rng(devices=devices):
                torch.manual_seed(gen.seed)
                for chunk in pixels.split(gen.batch_size):
                    prefix = self.prefix(self.encode_video(chunk.to(device)))
                    captions += self.decoder.generate(prefix, gen)
        finally:
            self.train(was_training)
        return captions


def unique_weights(model: nn.Module, skip: Iterable[str] = ()) -> dict[str, Tensor]:
    """The state dict on the CPU minus components in `skip` and minus tied duplicates (GPT-2's
    lm_head.weight is wte.weight: kept once, under the first name)."""
    skip = tuple(skip)
    seen: set[tuple[int, tuple[int, ...]]] = set()
    out = {}
    for key, tensor in model.state_dict().items():
        if key.split(".", 1)[0] in skip:
            continue
        ident = (tensor.data_ptr(), tuple(tensor.shape))
        if tensor.numel() and ident in seen:
            continue
        seen.add(ident)
        out[key] = tensor.detach().to("cpu").contiguous()
    return out
