"""The server's search: a `vidcap.search` index queried with the served model.

Videos are named to the page by their row id in the index, never by path; `video_file` serves
only files the index holds. The model that captions uploads also embeds queries (it is loaded
with its text encoder when an index is given), so the server holds one model.
"""

from __future__ import annotations

from pathlib import Path

from vidcap.apps.serve.engine import SearchHit
from vidcap.models.mffcl import MFFCL
from vidcap.search.embedder import ModelEmbedder
from vidcap.search.index import Index


class IndexSearch:
    """A `SearchIndex` (see `engine.py`) over a `vidcap.search.Index`."""

    def __init__(self, index: Index) -> None:
        self.index = index

    @classmethod
    def open(cls, path: str | Path, model: MFFCL, run: str | Path, *, which: str = "auto"
             ) -> IndexSearch:
        """The index at `path`, searched with `model` (loaded from `run` with `which` weights);
        a SearchIndexError when the index was built with another model."""
        return cls(Index.open(path, ModelEmbedder.of_model(model, run, which=which)))

    def search(self, query: str, k: int) -> list[SearchHit]:
        ids = self.index.store.file_ids()
        return [SearchHit(video_id=str(ids[hit.path]), start=hit.start or 0.0, end=hit.end,
                          score=hit.score, text=hit.caption or "")
                for hit in self.index.search(query, k) if hit.path in ids]

    def video_file(self, video_id: str) -> Path:
        paths = {str(i): path for path, i in self.index.store.file_ids().items()}
        return Path(paths[video_id])  # KeyError: not in the index
