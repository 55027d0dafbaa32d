"""The video encoder: HF `TimesformerModel` (divided space-time attention), paper §III-A.

Built from `EncoderConfig` with random weights, or loaded with `from_pretrained(name_or_dir)`. It
returns the video CLS vector, every token, and, when asked, the spatial attention of the CLS token
to the patches of each frame in one block (the material of the paper's Fig. 5).

Token layout of `VideoFeatures.tokens`: index 0 is the CLS; then frame-major, `1 + t * N + n` is
patch n (row-major over the patch grid) of frame t. (HF keeps patches patch-major inside the
model; we transpose so that `tokens[:, 1:].view(B, T, N, D)` works.)

`space_only` runs the same blocks on every frame apart (HF batches them as B*T clips of one frame);
its CLS is the mean of the per-frame CLS vectors, as in the original TimeSformer code.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor, nn
from transformers import TimesformerConfig, TimesformerModel
from transformers.models.timesformer.modeling_timesformer import TimesformerDropPath

from vidcap.config import EncoderConfig, VideoConfig
from vidcap.errors import ConfigError
from vidcap.models.pretrained import NO_CODE, refuse_custom_code

log = logging.getLogger(__name__)


class VideoFeatures(NamedTuple):
    cls: Tensor
    """(B, D) the video CLS vector after the final LayerNorm."""
    tokens: Tensor
    """(B, 1+T*N, D) CLS then every patch token, frame-major."""
    attention: Tensor | None
    """(B, T, heads, N) CLS-to-patch spatial attention of one block, renormalised over the N
    patches (the CLS's weight on itself dropped); None unless asked for."""


def sinusoidal_table(length: int, dim: int) -> Tensor:
    """(length, dim) sine/cosine position table of "Attention is all you need"."""
    position = torch.arange(length, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim)
    table[:, 0::2] = torch.sin(position * freq)
    table[:, 1::2] = torch.cos(position * freq)[:, : dim // 2]
    return table


def sinusoidal_grid_table(grid: int, dim: int) -> Tensor:
    """(grid*grid, dim) 2-D sine/cosine table of a grid of patches, row-major (MAE's layout):
    the row's 1-D table fills the first dim/2 channels, the column's the second."""
    half = sinusoidal_table(grid, dim // 2)
    rows = half[:, None, :].expand(grid, grid, dim // 2)
    cols = half[None, :, :].expand(grid, grid, dim // 2)
    return torch.cat([rows, cols], dim=-1).reshape(grid * grid, dim)


def timesformer_config(cfg: EncoderConfig, video_cfg: VideoConfig) -> TimesformerConfig:
    """The HF config of a TimeSformer built from scratch for clips of `video_cfg`'s shape."""
    if video_cfg.image_size % cfg.patch_size:
        raise ConfigError(f"model.encoder.patch_size: {cfg.patch_size} does not divide "
                          f"video.image_size {video_cfg.image_size}")
    return TimesformerConfig(
        image_size=video_cfg.image_size, patch_size=cfg.patch_size,
        num_frames=video_cfg.num_frames, hidden_size=cfg.hidden_size,
        num_hidden_layers=cfg.num_layers, num_attention_heads=cfg.num_heads,
        intermediate_size=cfg.intermediate_size, attention_type=cfg.attention_type)


class VideoEncoder(nn.Module):
    """TimeSformer: pixels (B, T, 3, H, W) -> VideoFeatures."""

    def __init__(self, cfg: EncoderConfig, video_cfg: VideoConfig, *,
                 hf_config: TimesformerConfig | None = None) -> None:
        """Load `cfg.pretrained`, or build from `hf_config` (given: `MFFCL.load`) or from `cfg`."""
        super().__init__()
        self.cfg = cfg
        if hf_config is not None:
            self.model = TimesformerModel(hf_config)
        elif cfg.pretrained:
            self.model = self._load_pretrained(cfg, video_cfg)
        else:
            self.model = TimesformerModel(timesformer_config(cfg, video_cfg))
            self._init_time_embeddings(cfg.time_embedding_init)
            self._init_position_embeddings(cfg.position_embedding_init)
        config = self.model.config
        self.hidden_size: int = config.hidden_size
        self.num_heads: int = config.num_attention_heads
        self.num_frames: int = config.num_frames
        self.image_size: int = config.image_size
        self.grid: int = config.image_size // config.patch_size
        self.num_patches: int = self.grid ** 2
        self.attention_type: str = config.attention_type
        layers = config.num_hidden_layers
        if not -layers <= cfg.attention_layer < layers:
            raise ConfigError(f"model.encoder.attention_layer: {cfg.attention_layer} is not one of "
                              f"the encoder's {layers} blocks")
        self.attention_layer = cfg.attention_layer % layers
        if cfg.drop_path_rate > 0:
            self._set_drop_path(cfg.drop_path_rate)
        if cfg.gradient_checkpointing:
            self.model.activation_checkpointing_enable({"use_reentrant": False})

    @staticmethod
    def _load_pretrained(cfg: EncoderConfig, video_cfg: VideoConfig) -> TimesformerModel:
        refuse_custom_code(cfg.pretrained, "model.encoder.pretrained")
        try:
            model = TimesformerModel.from_pretrained(cfg.pretrained,
                                                     attention_type=cfg.attention_type, **NO_CODE)
        except (OSError, ValueError) as err:
            raise ConfigError(f"model.encoder.pretrained: cannot load {cfg.pretrained!r} "
                              f"({str(err).splitlines()[0]})") from None
        config = model.config
        if video_cfg.image_size % config.patch_size:
            raise ConfigError(f"video.image_size: {video_cfg.image_size} is not a multiple of the "
                              f"pretrained encoder's patch size {config.patch_size}")
        # The embeddings interpolate position and time tables to the clip's shape at run time;
        # the blocks read the clip's shape from the config, so the config must describe the clips.
        if (config.num_frames, config.image_size) != (video_cfg.num_frames, video_cfg.image_size):
            log.warning("encoder %s was trained on %d frames of %d px; using it on %d frames of "
                        "%d px (position and time embeddings interpolated)", cfg.pretrained,
                        config.num_frames, config.image_size, video_cfg.num_frames,
                        video_cfg.image_size)
            config.num_frames = video_cfg.num_frames
            config.image_size = video_cfg.image_size
        return model

    def _set_drop_path(self, rate: float) -> None:
        """Stochastic depth rising linearly to `rate` over the blocks (HF's rule). Set on the
        modules, not the HF config: transformers 5 types TimesformerConfig.drop_path_rate as int,
        so a config holding 0.1 can be neither built nor reloaded."""
        layers = self.model.encoder.layer
        for i, layer in enumerate(layers):
            layer.drop_path = TimesformerDropPath(rate * i / max(1, len(layers) - 1))

    def _init_time_embeddings(self, how: str) -> None:
        embeddings = self.model.embeddings
        if not hasattr(embeddings, "time_embeddings") or how == "zeros":
            return  # space_only has none; zeros is HF's own initialisation
        table = embeddings.time_embeddings  # (1, T, D)
        with torch.no_grad():
            if how == "normal":  # like the position embeddings
                nn.init.trunc_normal_(table, std=self.model.config.initializer_range)
            else:  # sinusoidal, unscaled: of the order of the patch embeddings at initialisation
                table.copy_(sinusoidal_table(table.shape[1], table.shape[2])[None])

    def _init_position_embeddings(self, how: str) -> None:
        if how == "normal":
            return  # HF's own initialisation
        table = self.model.embeddings.position_embeddings  # (1, 1+N, D); CLS first
        grid = self.model.config.image_size // self.model.config.patch_size
        with torch.no_grad():
            table[0, 0].zero_()
            table[0, 1:].copy_(sinusoidal_grid_table(grid, table.shape[2]))

    def forward(self, pixels: Tensor, *, with_attention: bool = False) -> VideoFeatures:
        """pixels (B, T, 3, H, W), normalised -> VideoFeatures (attention only when asked)."""
        B, T, C, H, W = pixels.shape
        if (T, H, W) != (self.num_frames, self.image_size, self.image_size) or C != 3:
            raise ValueError(f"expected clips of shape (B, {self.num_frames}, 3, "
                             f"{self.image_size}, {self.image_size}), got {tuple(pixels.shape)}")
        captured: list[Tensor] = []
        # HF returns attention weights only for every block at once (`output_attentions`: at full
        # size 12 tensors of (B*T, 12, 197, 197)); the hooks ask the chosen block alone
        block = self.model.encoder.layer[self.attention_layer].attention
        hooks = record_attention(block, captured.append) if with_attention else []
        try:
            hidden = self.model(pixel_values=pixels).last_hidden_state
        finally:
            for hook in hooks:
                hook.remove()
        N, D = self.num_patches, hidden.shape[-1]
        if self.attention_type == "space_only":  # hidden: (B*T, 1+N, D)
            per_frame = hidden.view(B, T, 1 + N, D)
            cls = per_frame[:, :, 0].mean(1)
            patches = per_frame[:, :, 1:].reshape(B, T * N, D)
        else:  # hidden: (B, 1+N*T, D), patch-major
            cls = hidden[:, 0]
            patches = hidden[:, 1:].view(B, N, T, D).transpose(1, 2).reshape(B, T * N, D)
        tokens = torch.cat([cls[:, None], patches], dim=1)
        attention = None
        if with_attention:
            probs = captured[0]  # (B*T, heads, 1+N, 1+N): spatial attention, the CLS per frame
            cls_to_patches = probs[:, :, 0, 1:]
            cls_to_patches = cls_to_patches / cls_to_patches.sum(-1, keepdim=True)
            attention = cls_to_patches.reshape(B, T, self.num_heads, N)
        return VideoFeatures(cls=cls, tokens=tokens, attention=attention)


def record_attention(attention: nn.Module, keep: Callable[[Tensor], None]) -> list:
    """Hooks that make one HF attention module return its weights and hand them (detached) to
    `keep`; returns the hook handles, to be removed by the caller."""

    def ask(module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        return args, {**kwargs, "output_attentions": True}

    def hand_over(module: nn.Module, args: tuple, output: tuple) -> None:
        keep(output[1].detach())

    return [attention.register_forward_pre_hook(ask, with_kwargs=True),
            attention.register_forward_hook(hand_over)]
