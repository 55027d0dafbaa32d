"""The model side of an index: a run's contrastive head embeds videos and query text.

`ModelEmbedder.load(run)` loads a run with its text encoder and embeds into the aligned space the
align stage trains (`MFFCL.embed_video` / `embed_text`: unit vectors, cosine = dot product).
Its fingerprint names the weights (a SHA-256 of the weights files the model was loaded from), so
an index refuses queries or new files from another model. Videos are cut into segments as
`vidcap caption --segments` cuts them (`vidcap.captioning`: one decoding pass per file), one
vector per segment with its time range; a video of one segment is stored whole (no time range).
`caption=True` also stores each segment's caption.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from vidcap.captioning.batch import WHOLE, FileSource
from vidcap.captioning.engine import ItemClip, ItemEnd
from vidcap.captioning.frames import SegmentRequest
from vidcap.config import GenerateConfig
from vidcap.errors import VideoError
from vidcap.models.mffcl import MFFCL
from vidcap.runs.layout import open_run
from vidcap.runs.store import load_run, read_config, weights_files
from vidcap.search.base import Fingerprint, Segment
from vidcap.search.indexer import FileEmbedding

log = logging.getLogger(__name__)

CHUNK = 1 << 20


def weights_digest(files: Sequence[Path]) -> str:
    """SHA-256 over the bytes of the given weights files, in order (the model's identity)."""
    digest = hashlib.sha256()
    for file in files:
        with file.open("rb") as stream:
            while block := stream.read(CHUNK):
                digest.update(block)
    return digest.hexdigest()[:32]


@dataclass
class ModelEmbedder:
    """The `Embedder` of a run's model (see `vidcap.search.index.Embedder`); `load` builds one
    from a run directory, `of_model` around a model already loaded from one (`vidcap serve`)."""

    model: MFFCL
    fingerprint: Fingerprint
    """Identity of the weights (their SHA-256) and width of the embedding."""
    generate_cfg: GenerateConfig
    """Decoding of the captions stored with `caption`."""
    request: SegmentRequest = WHOLE
    """How videos are cut into segments (`vidcap caption --segments`)."""
    caption: bool = False
    """Also caption every segment and store its caption."""
    batch_size: int = 16

    @classmethod
    def load(cls, run: str | Path, *, device: str = "cpu", which: str = "auto",
             request: SegmentRequest = WHOLE, caption: bool = False) -> ModelEmbedder:
        """Load `run`'s model with its text encoder and embed with it."""
        model = load_run(open_run(run).root, device=device, which=which, with_text_encoder=True)
        return cls.of_model(model, run, which=which, request=request, caption=caption)

    @classmethod
    def of_model(cls, model: MFFCL, run: str | Path, *, which: str = "auto",
                 request: SegmentRequest = WHOLE, caption: bool = False) -> ModelEmbedder:
        """Embed with `model`, which was loaded from `run` with `which` weights (and its text
        encoder); the fingerprint is that of those weights."""
        layout = open_run(run)
        fingerprint = Fingerprint(model=weights_digest(weights_files(layout, which)),
                                  dim=model.cfg.contrastive.embed_dim,
                                  run=str(layout.root.resolve()))
        return cls(model, fingerprint, read_config(layout).generate, request=request,
                   caption=caption)

    def embed_text(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), E) unit vectors of query captions."""
        return self.model.embed_text(list(texts)).cpu().numpy()

    def embed_videos(self, paths: Sequence[Path]) -> Iterator[FileEmbedding]:
        """One FileEmbedding per path, each video cut into segments per `self.request`; a file
        of which nothing can be read gets its error (one that breaks part-way keeps the
        segments before the break, with a warning)."""
        source = FileSource([str(p) for p in paths], self.model.video_cfg, self.request)
        for index, path in enumerate(paths):
            clips: list[ItemClip] = []
            end: ItemEnd | None = None
            try:
                for event in source.read(index):
                    if isinstance(event, ItemClip):
                        clips.append(event)
                    else:
                        end = event
            except VideoError as err:
                end = ItemEnd(error=str(err))
            if not clips:
                yield FileEmbedding(path, error=(end.error if end else None) or "no frames")
                continue
            if end is not None and end.error:
                log.warning("%s (indexed the segments before it)", end.error)
            yield self._embed_clips(path, clips)

    def _embed_clips(self, path: Path, clips: list[ItemClip]) -> FileEmbedding:
        pixels = torch.stack([c.pixels for c in clips])
        vectors = np.concatenate([self.model.embed_video(chunk).cpu().numpy()
                                  for chunk in pixels.split(self.batch_size)])
        captions: list[str | None] = [None] * len(clips)
        if self.caption:
            captions = self.model.generate(pixels, self.generate_cfg)
        whole = len(clips) == 1
        segments = [Segment(None if whole or c.segment is None else c.segment.start,
                            None if whole or c.segment is None else c.segment.end, text)
                    for c, text in zip(clips, captions)]
        return FileEmbedding(path, segments, vectors)
