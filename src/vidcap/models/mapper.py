"""The mapper: video features -> a prefix of tau vectors in GPT-2's embedding space (paper §III-B).

`transformer` (eq. 1, ClipCap's transformer mapper): a linear FFN expands the video CLS into L
vectors of the decoder's width, tau learnable queries are appended, a pre-norm Transformer encoder
runs over the L + tau vectors, and the tau query outputs are the prefix. With `input: tokens` the
L vectors are instead every video token (1 + T*N), projected to the decoder's width, so the
queries select among patches of all frames.

`mlp` (the ablation of Table V): an FFN with GELU straight to tau vectors, no queries, no attention.
From the CLS: Linear(Dv, Dlm) -> GELU -> Linear(Dlm, tau*Dlm). From tokens: each token projected
(Linear + GELU), then a linear map over the token axis (1 + T*N -> tau), then Linear(Dlm, Dlm).
(ClipCap's MLP has a hidden width of tau*Dlm/2: 740M parameters at tau = 50, Dlm = 768; ours uses
Dlm, 30M.)

Initialisation follows ClipCap: queries ~ N(0, 1), PyTorch defaults elsewhere.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from vidcap.config import MapperConfig
from vidcap.errors import ConfigError


class Mapper(nn.Module):
    """(B, Dv) CLS or (B, S, Dv) tokens -> (B, tau, Dlm) prefix."""

    def __init__(self, cfg: MapperConfig, video_dim: int, lm_dim: int, num_tokens: int) -> None:
        """`num_tokens`: S = 1 + T*N, the number of video tokens (used by `mlp` over tokens)."""
        super().__init__()
        self.cfg = cfg
        self.lm_dim = lm_dim
        self.num_queries = tau = cfg.num_queries
        if cfg.kind == "transformer":
            if lm_dim % cfg.num_heads:
                raise ConfigError(f"model.mapper.num_heads: {cfg.num_heads} does not divide the "
                                  f"decoder width {lm_dim}")
            if cfg.input == "cls":
                self.expand = nn.Linear(video_dim, cfg.prefix_length * lm_dim)  # eq. 1's FFN
            else:
                self.project = nn.Linear(video_dim, lm_dim)
            self.queries = nn.Parameter(torch.randn(tau, lm_dim))
            layer = nn.TransformerEncoderLayer(
                d_model=lm_dim, nhead=cfg.num_heads, dim_feedforward=4 * lm_dim,
                dropout=cfg.dropout, activation="gelu", batch_first=True, norm_first=True)
            self.transformer = nn.TransformerEncoder(layer, cfg.num_layers,
                                                     enable_nested_tensor=False)
        elif cfg.input == "cls":
            self.ffn = nn.Sequential(nn.Linear(video_dim, lm_dim), nn.GELU(),
                                     nn.Dropout(cfg.dropout), nn.Linear(lm_dim, tau * lm_dim))
        else:
            self.project = nn.Sequential(nn.Linear(video_dim, lm_dim), nn.GELU())
            self.mix = nn.Linear(num_tokens, tau)  # over the token axis
            self.out = nn.Sequential(nn.Dropout(cfg.dropout), nn.Linear(lm_dim, lm_dim))

    def forward(self, video: Tensor) -> Tensor:
        """video (B, Dv) CLS when cfg.input is `cls`, else (B, S, Dv) tokens -> (B, tau, Dlm)."""
        cfg = self.cfg
        expected = 2 if cfg.input == "cls" else 3
        if video.ndim != expected:
            raise ValueError(f"mapper input {cfg.input!r} expects a {expected}-d tensor, "
                             f"got shape {tuple(video.shape)}")
        B = video.shape[0]
        if cfg.kind == "transformer":
            if cfg.input == "cls":
                p = self.expand(video).view(B, cfg.prefix_length, self.lm_dim)  # (B, L, Dlm)
            else:
                p = self.project(video)  # (B, S, Dlm)
            q = self.queries.expand(B, -1, -1)  # (B, tau, Dlm)
            out = self.transformer(torch.cat([p, q], dim=1))
            return out[:, -self.num_queries:]  # the query outputs q^_1..q^_tau
        if cfg.input == "cls":
            return self.ffn(video).view(B, self.num_queries, self.lm_dim)
        h = self.project(video)  # (B, S, Dlm)
        h = self.mix(h.transpose(1, 2)).transpose(1, 2)  # (B, tau, Dlm)
        return self.out(h)
