"""The model side of an index: a run's contrastive head embeds videos and query text.

`ModelEmbedder(run)` loads a run with its text encoder and embeds into the aligned space the
align stage trains (`MFFCL.embed_video` / `embed_text`: unit vectors, cosine = dot product).
Its fingerprint names the weights (a SHA-256 of the weights files the model was loaded from), so
an index refuses queries or new files from another model. Files are embedded whole, in batches;
`caption=True` also stores each file's caption.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from vidcap.config import GenerateConfig
from vidcap.errors import VideoError
from vidcap.models.mffcl import MFFCL
from vidcap.runs.layout import open_run
from vidcap.runs.store import load_run, read_config, weights_files
from vidcap.search.base import Fingerprint, Segment
from vidcap.search.indexer import FileEmbedding
from vidcap.video import load_clip

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


class ModelEmbedder:
    """The `Embedder` of a run's model (see `vidcap.search.index.Embedder`); `load` builds one
    from a run directory, `of_model` around a model already loaded from one (`vidcap serve`)."""

    def __init__(self, model: MFFCL, fingerprint: Fingerprint, generate_cfg: GenerateConfig, *,
                 caption: bool = False, batch_size: int = 16) -> None:
        self.model = model
        self._fingerprint = fingerprint
        self.generate_cfg = generate_cfg
        self.caption = caption
        self.batch_size = batch_size

    @classmethod
    def load(cls, run: str | Path, *, device: str = "cpu", which: str = "auto",
             caption: bool = False) -> ModelEmbedder:
        """Load `run`'s model with its text encoder and embed with it."""
        model = load_run(open_run(run).root, device=device, which=which, with_text_encoder=True)
        return cls.of_model(model, run, which=which, caption=caption)

    @classmethod
    def of_model(cls, model: MFFCL, run: str | Path, *, which: str = "auto",
                 caption: bool = False) -> ModelEmbedder:
        """Embed with `model`, which was loaded from `run` with `which` weights (and its text
        encoder); the fingerprint is that of those weights."""
        layout = open_run(run)
        fingerprint = Fingerprint(model=weights_digest(weights_files(layout, which)),
                                  dim=model.cfg.contrastive.embed_dim,
                                  run=str(layout.root.resolve()))
        return cls(model, fingerprint, read_config(layout).generate, caption=caption)

    @property
    def fingerprint(self) -> Fingerprint:
        return self._fingerprint

    def embed_text(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), E) unit vectors of query captions."""
        return self.model.embed_text(list(texts)).cpu().numpy()

    def embed_videos(self, paths: Sequence[Path]) -> Iterator[FileEmbedding]:
        """One FileEmbedding per path (whole files), a batch of clips at a time; a file that
        cannot be read gets its error."""
        for start in range(0, len(paths), self.batch_size):
            yield from self._embed_batch(paths[start:start + self.batch_size])

    def _embed_batch(self, paths: Sequence[Path]) -> Iterator[FileEmbedding]:
        clips, good, failed = [], [], {}
        for path in paths:
            try:
                clips.append(load_clip(path, self.model.video_cfg))
                good.append(path)
            except VideoError as err:
                failed[path] = str(err)
        vectors, captions = np.zeros((0, self.fingerprint.dim), np.float32), [None] * len(good)
        if clips:
            pixels = torch.stack(clips)
            vectors = self.model.embed_video(pixels).cpu().numpy()
            if self.caption:
                captions = self.model.generate(pixels, self.generate_cfg)
        done = {p: (v, c) for p, v, c in zip(good, vectors, captions)}
        for path in paths:
            if path in failed:
                yield FileEmbedding(path, error=failed[path])
            else:
                vector, caption = done[path]
                yield FileEmbedding(path, [Segment(caption=caption)], vector[None])
