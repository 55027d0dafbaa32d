"""What the web app asks of the model: the `Engine` interface and its implementation on a run.

The app (`app.py`) only ever calls an `Engine`:

    caption(video, options, *, stop=None) -> CaptionResult     caption, scenes, WebVTT
    attention_png(video, *, layer=None, method="mean", stop=None) -> bytes
    search(query, k) -> list[SearchHit]                         when `has_search`
    video_file(video_id) -> Path                                a file the search index holds
    health() -> dict                                            model, device, precision

`ModelEngine` implements it on a run directory, loaded once:

- captions: `describe_video` cuts the video into scenes as `vidcap caption --segments` does
  (`vidcap.captioning`), one cue per scene in the WebVTT;
- search: a `SearchIndex` (any object with `search` and `video_file`) is injected; `vidcap serve
  --index` opens a `vidcap.search` index with the served model (`search.IndexSearch`).

Engines run in the server's single model thread (`worker.py`), one call at a time.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
import threading
from pathlib import Path
from collections.abc import Callable
from typing import Literal, Protocol

import torch
from pydantic import BaseModel, ConfigDict, Field

from vidcap.captioning.batch import caption_files
from vidcap.captioning.frames import SegmentRequest
from vidcap.captioning.subtitles import vtt_text
from vidcap.config import GenerateConfig
from vidcap.errors import VideoError, VidcapError
from vidcap.models.mffcl import MFFCL
from vidcap.runs.store import clip_length, load_run, read_config
from vidcap.runtime import resolve_precision
from vidcap.video import probe_video, read_clip
from vidcap.visualize import Method, draw_attention

log = logging.getLogger(__name__)

GENERATE_FIELDS = frozenset({"strategy", "num_beams", "top_p", "top_k", "temperature",
                             "max_new_tokens", "seed"})


class CaptionOptions(BaseModel):
    """Decoding and segmenting options of one caption request (unset: the run's own)."""

    model_config = ConfigDict(extra="forbid")

    strategy: Literal["greedy", "beam", "sample"] | None = Field(
        None, description="greedy, beam search, or top-p / top-k sampling")
    num_beams: int | None = Field(None, ge=1, le=16, description="beams (implies beam)")
    top_p: float | None = Field(None, gt=0, le=1, description="nucleus mass for sample")
    top_k: int | None = Field(None, ge=0, le=1000, description="keep the k likeliest tokens")
    temperature: float | None = Field(None, gt=0, le=10, description="softmax temperature")
    max_new_tokens: int | None = Field(None, ge=1, le=200, description="longest caption, tokens")
    seed: int | None = Field(None, ge=0, description="seed of sampling")
    segments: Literal["auto", "shots", "fixed", "none"] = Field(
        "auto", description="scenes: by shot changes, fixed windows, either (auto), or none")
    window: float | None = Field(None, gt=0, le=3600, description="window length (fixed), s")
    stride: float | None = Field(None, gt=0, le=3600, description="window step (fixed), s")

    def generate_config(self, base: GenerateConfig) -> GenerateConfig:
        """`base` (the run's `generate` section) with the options that were set."""
        chosen = self.model_dump(include=GENERATE_FIELDS, exclude_none=True)
        if "num_beams" in chosen and "strategy" not in chosen:
            chosen["strategy"] = "beam"  # as the CLI's --num-beams
        return dataclasses.replace(base, **chosen)


class Segment(BaseModel):
    """A scene: seconds from the start of the video, and its caption."""

    start: float
    end: float
    caption: str


class CaptionResult(BaseModel):
    """The answer of `POST /api/caption`."""

    caption: str = Field(description="the video in one sentence (its scenes' captions joined "
                                     "by '; ' when it has several)")
    segments: list[Segment] = Field(description="the scenes, in order")
    vtt: str = Field(description="WebVTT with one cue per scene")
    duration: float = Field(description="seconds")


class SearchHit(BaseModel):
    """One search result: an indexed video and the time span that matched."""

    video_id: str
    start: float
    end: float | None = Field(None, description="end of the span; null for a whole video")
    score: float
    text: str = Field("", description="the indexed caption of that span, when there is one")


class SearchIndex(Protocol):
    """What the server needs of a text-to-video index."""

    def search(self, query: str, k: int) -> list[SearchHit]:
        """The `k` best matches of `query`, best first."""

    def video_file(self, video_id: str) -> Path:
        """The file of an indexed video; KeyError when `video_id` is not in the index."""


class Engine(Protocol):
    """Everything the web app asks of the model (module docstring)."""

    has_search: bool

    def caption(self, video: Path, options: CaptionOptions, *,
                stop: threading.Event | None = None) -> CaptionResult: ...

    def attention_png(self, video: Path, *, layer: int | None = None, method: Method = "mean",
                      stop: threading.Event | None = None) -> bytes: ...

    def search(self, query: str, k: int) -> list[SearchHit]: ...

    def video_file(self, video_id: str) -> Path: ...

    def health(self) -> dict: ...


def describe_video(model: torch.nn.Module, video: Path, gen: GenerateConfig,
                   options: CaptionOptions, *, clip_length: float,
                   stop: threading.Event | None = None, precision: str = "fp32") -> CaptionResult:
    """Caption `video` scene by scene, as `vidcap caption --segments` does (one pass over the
    file; neighbouring scenes with the same caption merged). A video that cannot be read at all
    raises its VideoError; a file that breaks part-way keeps the scenes before the break. `stop`
    is not consulted: one video is captioned in one call (see the worker's time limit). The model
    runs under `precision` (fp32, bf16 or fp16)."""
    duration = probe_video(video).duration  # an unreadable upload fails here, in one line
    request = SegmentRequest(options.segments, clip_length=clip_length,
                             window=options.window, stride=options.stride)
    result = next(caption_files(model, [video], model.video_cfg, gen, request=request,
                                precision=precision))
    if not result.cues:
        reason = (result.error or "no caption").removeprefix(f"{video}: ")
        raise VideoError(video, reason)
    if result.error:
        log.warning("%s", result.error)
    scenes = [Segment(start=c.start, end=c.end, caption=c.text) for c in result.cues]
    return CaptionResult(caption=result.caption or "", segments=scenes,
                         vtt=vtt_text(result.cues), duration=duration)


class ModelEngine:
    """The `Engine` of a run directory: its model loaded once, on `device`, run under
    `precision` (auto: as `vidcap.runtime.resolve_precision` decides it for the device)."""

    def __init__(self, run: str | Path, *, device: str = "cpu", which: str = "auto",
                 index: SearchIndex | Callable[[MFFCL], SearchIndex] | None = None,
                 precision: str = "auto") -> None:
        """`index`: a search index, or a function opening one with the model once it is loaded
        (`vidcap serve --index`: queries are embedded by the served model itself)."""
        self.run = Path(run)
        self.precision, self.precision_reason = resolve_precision(precision, device)
        self.model = load_run(self.run, device=device, which=which,  # checks it is a run first
                              with_text_encoder=index is not None)  # search embeds queries
        self.config = read_config(self.run)
        self.clip_length = clip_length(self.run, self.config.video)
        self.index = index(self.model) if callable(index) else index

    @property
    def has_search(self) -> bool:
        return self.index is not None

    def caption(self, video: Path, options: CaptionOptions, *,
                stop: threading.Event | None = None) -> CaptionResult:
        """Caption a video file with `options` over the run's decoding settings."""
        gen = options.generate_config(self.config.generate)
        return describe_video(self.model, video, gen, options, clip_length=self.clip_length,
                              stop=stop, precision=self.precision)

    def attention_png(self, video: Path, *, layer: int | None = None, method: Method = "mean",
                      stop: threading.Event | None = None) -> bytes:
        """The attention figure (`vidcap attention`) of a video file, as PNG bytes."""
        clip = read_clip(video, self.model.video_cfg)
        with tempfile.TemporaryDirectory(prefix="attention-", dir=video.parent) as folder:
            out = Path(folder) / "attention.png"
            draw_attention(self.model, clip, out, gen=self.config.generate, layer=layer,
                           method=method, precision=self.precision)
            return out.read_bytes()

    def search(self, query: str, k: int) -> list[SearchHit]:
        if self.index is None:
            raise VidcapError("no search index is loaded")
        return self.index.search(query, k)

    def video_file(self, video_id: str) -> Path:
        if self.index is None:
            raise KeyError(video_id)
        return self.index.video_file(video_id)

    def health(self) -> dict:
        """What is loaded: run, model outline, device, precision."""
        model, cfg = self.model, self.config
        return {"run": self.run.name,
                "model": f"MFFCL: TimeSformer {cfg.model.encoder.num_layers} blocks, "
                         f"{cfg.video.num_frames} frames of {cfg.video.image_size} px; "
                         f"{cfg.model.mapper.kind} mapper, tau {cfg.model.mapper.num_queries}; "
                         f"GPT-2 {cfg.model.decoder.num_layers} blocks",
                "device": str(model.device),
                "precision": self.precision,
                "search": self.has_search}
