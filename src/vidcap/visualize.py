"""Attention maps over frames: the paper's Fig. 5 (where their peaks fall on Shapes objects is
measured by `vidcap.evaluation.shapes.peak_report`).

Two ways to read where the video CLS looks, both per sampled frame, as a (T, N) map over the
N = grid x grid patches (each frame's map sums to 1):

- `mean` (the paper's figure): the CLS-to-patch spatial attention of one block, averaged over
  heads, renormalised over the patches (the CLS's weight on itself dropped). It is exactly
  `MFFCL.encode_video(with_attention=True).attention` averaged over heads, for any block.
- `rollout` (Abnar & Zuidema, 2020), extended to divided space-time attention: each block is a
  token-mixing matrix over [CLS; T*N patches] with the residual counted as half,
  0.5 * I + 0.5 * A (head-averaged), in the order the block runs: temporal attention mixes a
  patch with the same patch of the other frames (the CLS does not take part), then spatial
  attention mixes the tokens of one frame with the CLS, and the CLS's update is the mean over
  frames of its per-frame updates (HF `TimesformerLayer`). The product of the blocks up to
  `layer` gives how much the final CLS draws on each input patch of each frame. Like every
  rollout it ignores the value and output projections and the MLPs (it follows attention only).
  `space_only` runs every frame apart (its CLS is the mean of the per-frame ones): its rollout
  is per frame, spatial blocks only.

Only cli.py prints; `plot_attention` writes a PNG (matplotlib Agg) whose pixel layout is fixed by
`FigureLayout`, so a test can read it back.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import Tensor, nn

from vidcap.config import GenerateConfig
from vidcap.errors import RunError
from vidcap.models.encoder import record_attention
from vidcap.runs.layout import open_run
from vidcap.runs.store import load_run, read_config
from vidcap.runtime import autocast
from vidcap.video import ModelClip, read_clip

log = logging.getLogger(__name__)

Method = Literal["mean", "rollout"]


# ---------------------------------------------------------------------------------------------
# capturing every block's attention


@dataclass
class BlockAttention:
    spatial: Tensor
    """(B*T, heads, 1+N, 1+N): attention within each frame, the CLS first."""
    temporal: Tensor | None
    """(B*N, heads, T, T): attention of each patch over the frames (None for space_only); HF's
    row order, b * N + n."""


def capture_attention(encoder: nn.Module, pixels: Tensor) -> list[BlockAttention]:
    """Run `encoder` (a `VideoEncoder`) on pixels (B, T, 3, S, S) and keep every block's
    attention weights (hooks ask each attention module for its weights; HF's own
    `output_attentions` would give the spatial ones only)."""
    layers = encoder.model.encoder.layer
    spatial: dict[int, Tensor] = {}
    temporal: dict[int, Tensor] = {}

    hooks = []
    for i, layer in enumerate(layers):
        hooks += record_attention(layer.attention,
                                  lambda w, i=i: spatial.__setitem__(i, w.float()))
        if hasattr(layer, "temporal_attention"):
            hooks += record_attention(layer.temporal_attention,
                                      lambda w, i=i: temporal.__setitem__(i, w.float()))
    try:
        with torch.no_grad():
            encoder(pixels)
    finally:
        for hook in hooks:
            hook.remove()
    return [BlockAttention(spatial[i], temporal.get(i)) for i in range(len(layers))]


# ---------------------------------------------------------------------------------------------
# maps


def _block_matrix(block: BlockAttention, T: int, N: int) -> Tensor:
    """(1+T*N, 1+T*N) head-averaged token mixing of one divided space-time block, one clip."""
    P = T * N
    eye_n, eye_t = torch.eye(N), torch.eye(T)
    temporal = torch.eye(1 + P)
    if block.temporal is not None:  # (N, T, T): patch n of frame t reads patch n of frame u
        a = block.temporal.mean(1)
        mix = torch.einsum("ntu,nm->tnum", a, eye_n).reshape(P, P)
        temporal[1:, 1:] = 0.5 * torch.eye(P) + 0.5 * mix
    a = block.spatial.mean(1)  # (T, 1+N, 1+N)
    spatial = torch.zeros(1 + P, 1 + P)
    spatial[1:, 1:] = torch.einsum("tnm,tu->tnum", a[:, 1:, 1:], eye_t).reshape(P, P)
    spatial[1:, 0] = a[:, 1:, 0].reshape(P)  # patches read the CLS
    spatial[0, 0] = a[:, 0, 0].mean()  # the CLS: mean over frames of its per-frame update
    spatial[0, 1:] = a[:, 0, 1:].reshape(P) / T
    spatial = 0.5 * torch.eye(1 + P) + 0.5 * spatial
    return spatial @ temporal


def _frame_rollout(blocks: list[BlockAttention], T: int, N: int) -> Tensor:
    """space_only: per-frame rollout over the spatial blocks -> (T, N)."""
    result = torch.eye(1 + N).expand(T, 1 + N, 1 + N)
    for block in blocks:
        a = block.spatial.mean(1)  # (T, 1+N, 1+N)
        result = (0.5 * torch.eye(1 + N) + 0.5 * a) @ result
    return result[:, 0, 1:]


def attention_maps(model: nn.Module, pixels: Tensor, *, layer: int | None = None,
                   method: Method = "mean") -> Tensor:
    """pixels (T, 3, S, S) of one clip -> (T, N) CLS-to-patch maps, each frame summing to 1.

    `model` is an MFFCL (or its `VideoEncoder`); `layer` is the block (negative counts from the
    end; None: the encoder's `attention_layer`). `mean`: that block's spatial attention averaged
    over heads; `rollout`: blocks 0..layer rolled out (module docstring).
    """
    encoder = getattr(model, "encoder", model)
    if pixels.dim() == 4:
        pixels = pixels[None]
    if pixels.shape[0] != 1:
        raise ValueError(f"attention_maps takes one clip, got a batch of {pixels.shape[0]}")
    layers = len(encoder.model.encoder.layer)
    layer = encoder.attention_layer if layer is None else layer
    if not -layers <= layer < layers:
        raise RunError(f"--layer {layer}: the encoder has {layers} blocks (0..{layers - 1}, or "
                       "negative from the end)")
    layer %= layers
    device = next(encoder.parameters()).device
    was_training = encoder.training
    encoder.eval()
    try:
        blocks = capture_attention(encoder, pixels.to(device))
    finally:
        encoder.train(was_training)
    blocks = [BlockAttention(b.spatial.cpu(), None if b.temporal is None else b.temporal.cpu())
              for b in blocks[:layer + 1]]
    T, N = encoder.num_frames, encoder.num_patches
    if method == "mean":
        cls_rows = blocks[layer].spatial[:, :, 0, 1:]  # (T, heads, N)
        maps = (cls_rows / cls_rows.sum(-1, keepdim=True)).mean(1)
    elif method == "rollout":
        if encoder.attention_type == "space_only":
            maps = _frame_rollout(blocks, T, N)
        else:
            # the CLS row of M_layer ... M_0, as a row vector times one matrix at a time
            row = torch.zeros(1 + T * N)
            row[0] = 1.0
            for block in reversed(blocks):
                row = row @ _block_matrix(block, T, N)
            maps = row[1:].reshape(T, N)
        maps = maps / maps.sum(-1, keepdim=True)
    else:
        raise ValueError(f"unknown method {method!r} (mean or rollout)")
    return maps


def upsample_maps(maps: Tensor, grid: int, size: int) -> np.ndarray:
    """(T, N) patch maps -> float (T, size, size), bilinear, each scaled to [0, 1]."""
    import torch.nn.functional as F

    x = maps.reshape(-1, 1, grid, grid).float()
    up = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)[:, 0]
    low = up.amin((1, 2), keepdim=True)
    high = up.amax((1, 2), keepdim=True)
    return ((up - low) / (high - low).clamp_min(1e-12)).numpy()


def attention_peaks(maps: Tensor, grid: int) -> list[tuple[int, int]]:
    """(T, N) maps -> the (row, col) of each frame's highest patch (its first, on ties)."""
    flat = maps.argmax(-1).tolist()
    return [(i // grid, i % grid) for i in flat]


# ---------------------------------------------------------------------------------------------
# the figure


@dataclass(frozen=True)
class FigureLayout:
    """Pixel layout of `plot_attention`'s PNG: a title band, then two rows of `cols` square
    panels (row 0 the frames, row 1 the same frames under the heat map), a band of frame labels
    under them; white margins and gaps between panels."""

    cols: int
    panel: int
    """Side of a panel in pixels: the frame side times `scale` (nearest-neighbour)."""
    scale: int
    margin: int = 8
    gap: int = 6
    title: int = 56
    label: int = 18
    rows: int = 2

    @property
    def width(self) -> int:
        return 2 * self.margin + self.cols * self.panel + (self.cols - 1) * self.gap

    @property
    def height(self) -> int:
        return (2 * self.margin + self.title + self.rows * self.panel + (self.rows - 1) * self.gap
                + self.label)

    def panel_box(self, row: int, col: int) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1) of a panel in image pixels, origin top-left, end exclusive."""
        x0 = self.margin + col * (self.panel + self.gap)
        y0 = self.margin + self.title + row * (self.panel + self.gap)
        return x0, y0, x0 + self.panel, y0 + self.panel

    @property
    def panels(self) -> int:
        return self.rows * self.cols


def figure_layout(num_frames: int, frame_side: int, *, min_panel: int = 128) -> FigureLayout:
    """The layout for `num_frames` frames of `frame_side` px: panels at least `min_panel` px,
    an integer multiple of the frame side."""
    scale = max(1, math.ceil(min_panel / frame_side))
    return FigureLayout(cols=num_frames, panel=frame_side * scale, scale=scale)


def overlay_heat(frames: np.ndarray, heat: np.ndarray, *, alpha: float = 0.55,
                 cmap: str = "jet") -> np.ndarray:
    """uint8 frames (T, S, S, 3) and heat in [0, 1] (T, S, S) -> uint8 blend of the frames and
    the colour-mapped heat."""
    import matplotlib

    colours = matplotlib.colormaps[cmap](heat)[..., :3]  # (T, S, S, 3) in [0, 1]
    blend = (1 - alpha) * frames.astype(np.float64) / 255 + alpha * colours
    return np.clip(np.rint(blend * 255), 0, 255).astype(np.uint8)


def plot_attention(frames: np.ndarray, maps: Tensor, caption: str, out: str | Path, *,
                   frame_labels: list[str] | None = None, note: str | None = None,
                   min_panel: int = 128) -> FigureLayout:
    """Write the paper's Fig. 5 for one clip: frames (T, S, S, 3) uint8 on top, the same frames
    under the (T, N) attention maps (bilinear to the frame, scaled to [0, 1] per frame) below,
    the caption as the title. Panels are placed pixel-exactly (`FigureLayout`)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    T, S = frames.shape[0], frames.shape[1]
    grid = math.isqrt(maps.shape[-1])
    if maps.shape[0] != T or grid * grid != maps.shape[-1]:
        raise ValueError(f"maps {tuple(maps.shape)} do not fit {T} frames on a square grid")
    layout = figure_layout(T, S, min_panel=min_panel)
    heat = upsample_maps(maps, grid, S)
    rows = [frames, overlay_heat(frames, heat)]
    dpi = 100
    figure = Figure(figsize=(layout.width / dpi, layout.height / dpi), dpi=dpi, facecolor="white")
    for r, images in enumerate(rows):
        for c in range(T):
            big = images[c].repeat(layout.scale, 0).repeat(layout.scale, 1)
            x0, y0, _, y1 = layout.panel_box(r, c)
            figure.figimage(big, xo=x0, yo=layout.height - y1, origin="upper")
    width, height = layout.width, layout.height
    figure.text(0.5, 1 - (layout.margin + 4) / height, caption or "(empty caption)",
                ha="center", va="top", fontsize=12, fontweight="bold",
                wrap=True)
    if note:
        figure.text(0.5, 1 - (layout.margin + 26) / height, note, ha="center", va="top",
                    fontsize=8, color="0.3", wrap=True)
    labels = frame_labels or [f"frame {i}" for i in range(T)]
    for c, text in enumerate(labels):
        x0, _, x1, y1 = layout.panel_box(layout.rows - 1, c)
        figure.text((x0 + x1) / 2 / width, 1 - (y1 + 3) / height, text, ha="center", va="top",
                    fontsize=7, color="0.3")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=dpi, facecolor="white")
    return layout


@dataclass
class AttentionFigure:
    path: Path
    caption: str
    layout: FigureLayout
    maps: Tensor
    """(T, N) the maps drawn."""
    frame_indices: list[int]
    """Which frames of the video were sampled (0-based)."""
    layer: int
    method: Method


def draw_attention(model: nn.Module, clip: ModelClip, out: str | Path, *,
                   gen: GenerateConfig | None = None, layer: int | None = None,
                   method: Method = "mean", precision: str = "fp32") -> AttentionFigure:
    """Caption a clip read for `model` (an MFFCL; `video.read_clip(path, model.video_cfg)`) and
    draw the CLS-to-patch attention of block `layer` (or its rollout) over every frame. The
    caption is generated under `precision` (fp32, bf16 or fp16: `vidcap.runtime.autocast`); the
    maps of one clip are always computed in fp32, as they are measured."""
    layers = len(model.encoder.model.encoder.layer)
    maps = attention_maps(model, clip.pixels, layer=layer, method=method)
    with autocast(precision, model.device.type):
        caption = model.generate(clip.pixels[None], gen)[0]
    block = (model.encoder.attention_layer if layer is None else layer) % layers
    what = (f"CLS-to-patch attention, block {block + 1}/{layers}, mean of "
            f"{model.encoder.num_heads} heads" if method == "mean" else
            f"attention rollout, blocks 1-{block + 1} of {layers}")
    indices = list(clip.sampled.indices)
    layout = plot_attention(clip.frames, maps, caption, out, note=f"{what}; heat scaled per frame",
                            frame_labels=[f"frame {i}" for i in indices])
    return AttentionFigure(Path(out), caption, layout, maps, indices, block, method)


def render_attention(run_dir: str | Path, video: str | Path, out: str | Path, *,
                     layer: int | None = None, method: Method = "mean", device: str = "cpu",
                     which: str = "auto", precision: str = "fp32") -> AttentionFigure:
    """`vidcap attention`: `draw_attention` with the model of a run directory. A bad video fails
    before the model loads."""
    run = open_run(run_dir)
    cfg = read_config(run)
    clip = read_clip(video, cfg.video)
    model = load_run(run.root, device=device, which=which)
    return draw_attention(model, clip, out, gen=cfg.generate, layer=layer, method=method,
                          precision=precision)
