"""MFFCL: TimeSformer + contrastive alignment + query-prefix GPT-2 (the paper's §III, DESIGN.md).

    pixels (B,T,3,H,W) -encoder-> VideoFeatures(cls (B,Dv), tokens (B,1+T*N,Dv))
    align:   contrastive(cls, text_encoder(captions))                 InfoNCE, eq. 3
    caption: mapper(cls or tokens) -> prefix (B,tau,Dlm) -decoder->   cross-entropy, eq. 2
    decode:  decoder.generate(prefix)                                 greedy / beam / sample

A saved model (`save`) is a set of files (`ModelFiles`) that loads with no network
(HF_HUB_OFFLINE=1), given the `model` and `video` config sections it was built from; the run
directory (`vidcap.runs`) names the files and keeps the config beside them:

    weights        every weight, GPT-2's tied lm_head once; the text encoder's only if it is
                   trainable (see below)
    tokenizer      the caption tokenizer (save_pretrained)
    encoder, decoder   the HF configs the sub-models are rebuilt from
    text_encoder   its config and tokenizer (small; weights per the rule below)

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
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from transformers import GPT2Config, PretrainedConfig, PreTrainedTokenizerFast, TimesformerConfig

from vidcap.config import ContrastiveConfig, GenerateConfig, ModelConfig, VideoConfig
from vidcap.errors import ConfigError, RunError
from vidcap.losses import contrastive_loss
from vidcap.models.decoder import CaptionDecoder
from vidcap.models.encoder import VideoEncoder, VideoFeatures
from vidcap.models.mapper import Mapper
from vidcap.models.pretrained import NO_CODE, refuse_custom_code
from vidcap.models.text_encoder import TextEncoder, text_hidden_size
from vidcap.models.tokenizer import load_tokenizer, train_caption_tokenizer
from vidcap.models.weights import load_weights, read_weights, save_weights

log = logging.getLogger(__name__)

__all__ = ["MFFCL", "VideoFeatures", "ContrastiveHead", "COMPONENTS", "ModelFiles"]

COMPONENTS = ("encoder", "text_encoder", "contrastive", "mapper", "decoder")
MIN_TEMPERATURE = 0.01  # CLIP's bound on a learned temperature


class ModelFiles(NamedTuple):
    """Where the files of a saved model lie (`vidcap.runs.RunLayout.model_files` names them)."""

    weights: Path
    """safetensors file of the weights."""
    tokenizer: Path
    """Folder of the caption tokenizer."""
    encoder: Path
    """Folder of the TimeSformer's HF config."""
    decoder: Path
    """Folder of GPT-2's HF config."""
    text_encoder: Path
    """Folder of the text encoder's config and tokenizer."""

    def missing(self) -> list[Path]:
        """The files `MFFCL.load` needs that are not there."""
        needed = (self.weights, self.tokenizer, self.encoder / "config.json",
                  self.decoder / "config.json")
        return [p for p in needed if not p.exists()]


def _saved_config(kind: type[PretrainedConfig], folder: Path) -> Any:
    """The HF config a saved model keeps in `folder`; RunError when it is unreadable."""
    try:
        return kind.from_pretrained(str(folder), **NO_CODE)
    except (OSError, ValueError, TypeError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise RunError(f"{folder / 'config.json'}: unreadable ({reason})") from None


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

    def save(self, files: ModelFiles) -> None:
        """Write the model's files (rank 0 only, in DDP); the config is the caller's to keep."""
        skip = () if self._saves_text_encoder() else ("text_encoder",)
        save_weights(self, files.weights, skip=skip, metadata={
            "format": "pt", "text_encoder": "saved" if not skip else "from-pretrained"})
        self.tokenizer.save_pretrained(str(files.tokenizer))
        self.encoder.model.config.save_pretrained(str(files.encoder))
        self.decoder.model.config.save_pretrained(str(files.decoder))
        if self.text_encoder is not None:
            self.text_encoder.save_files(files.text_encoder)

    @classmethod
    def load(cls, files: ModelFiles, cfg: ModelConfig, video_cfg: VideoConfig, *,
             device: str | torch.device = "cpu", with_text_encoder: bool | None = None
             ) -> "MFFCL":
        """A model saved by `save`, from its files and the config it was built from.
        `with_text_encoder`: None loads it when it can (saved weights, or a pretrained source
        that loads offline) and goes without it otherwise; True requires it; False leaves it out."""
        missing = files.missing()
        if missing:
            raise RunError(f"{missing[0]}: missing, so the model cannot be loaded")
        for folder in files[1:]:  # a saved model is data: nothing in it may run
            refuse_custom_code(folder, error=RunError)
        weights = read_weights(files.weights)
        tokenizer = load_tokenizer(files.tokenizer, key=str(files.tokenizer))
        encoder = VideoEncoder(cfg.encoder, video_cfg,
                               hf_config=_saved_config(TimesformerConfig, files.encoder))
        decoder = CaptionDecoder(cfg.decoder, tokenizer,
                                 hf_config=_saved_config(GPT2Config, files.decoder))
        text_encoder = cls._load_text_encoder(cfg, files, weights, with_text_encoder)
        if text_encoder is None:  # saved text-encoder weights, not wanted this time
            weights = {k: v for k, v in weights.items() if not k.startswith("text_encoder.")}
        if "contrastive.text_proj.weight" not in weights:
            raise RunError(f"{files.weights}: no contrastive head (not an MFFCL model's weights)")
        text_dim = weights["contrastive.text_proj.weight"].shape[1]
        model = cls._assemble(cfg, video_cfg, encoder, text_encoder, text_dim, decoder)
        load_weights(model, weights, files.weights, may_lack=("text_encoder",))
        return model.to(device).eval()

    @staticmethod
    def _load_text_encoder(cfg: ModelConfig, files: ModelFiles, weights: dict[str, Tensor],
                           wanted: bool | None) -> TextEncoder | None:
        if wanted is False:
            return None
        if any(k.startswith("text_encoder.") for k in weights):  # trained: rebuilt, weights below
            return TextEncoder(cfg.text_encoder, saved=files.text_encoder)
        try:
            return TextEncoder(cfg.text_encoder)
        except ConfigError as err:
            if wanted:
                raise
            log.info("loading %s without its text encoder (captioning does not need it): %s",
                     files.weights.parent, err)
            return None

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
        allowed = set(names) - self.cfg.never_trainable()
        for name in COMPONENTS:
            self.component(name).requires_grad_(name in allowed)
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

    @torch.no_grad()
    def embed_video(self, pixels: Tensor) -> Tensor:
        """pixels (B, T, 3, H, W) -> (B, E) unit vectors in the aligned space: the contrastive
        head's projection of the video CLS (what the align stage trains; cosine = dot product)."""
        cls = self.encode_video(pixels.to(self.device)).cls
        return F.normalize(self.contrastive.video_proj(cls).float(), dim=-1)

    @torch.no_grad()
    def embed_text(self, captions: Sequence[str]) -> Tensor:
        """captions -> (B, E) unit vectors in the aligned space (the text side of `embed_video`)."""
        text = self.encode_text(captions).to(self.device)
        return F.normalize(self.contrastive.text_proj(text).float(), dim=-1)

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
