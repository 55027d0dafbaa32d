"""`Index`: a store and the embedder that fills it and turns query text into vectors.

The embedder is injected, so this layer does not know the model. What the model side provides
(an `Embedder`): the fingerprint of its weights, `embed_text` for queries (the contrastive head's
`text_proj(text_encoder(captions))`), and `embed_videos` for files (`video_proj(video_cls)` of
each segment of a long video with its time range, or of the whole file).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Protocol, Self

import numpy as np

from vidcap.search.indexer import FileEmbedding, IndexReport, index_files
from vidcap.search.base import Fingerprint, Hit, SearchIndexError, StoreStats
from vidcap.search.store import VectorStore


class Embedder(Protocol):
    """What an index needs from a model."""

    @property
    def fingerprint(self) -> Fingerprint:
        """Identity and width of the embedding (an index refuses other fingerprints)."""
        ...

    def embed_text(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dim) query vectors; the index normalises them."""
        ...

    def embed_videos(self, paths: Sequence[Path]) -> Iterable[FileEmbedding]:
        """One FileEmbedding per path, yielded as each is done (a failure as its `error`)."""
        ...


class Index:
    """A search index and (optionally) its embedder: `Index.open(path, embedder).search(text)`."""

    def __init__(self, store: VectorStore, embedder: Embedder | None = None) -> None:
        """Pair an opened store with an embedder of the same fingerprint (checked)."""
        if embedder is not None:
            store.check_fingerprint(embedder.fingerprint)
        self.store = store
        self.embedder = embedder

    @classmethod
    def open(cls, path: str | Path, embedder: Embedder | None = None) -> Index:
        """The index at `path`; searching text needs `embedder`, searching vectors does not."""
        return cls(VectorStore.open(path), embedder)

    @classmethod
    def open_with(cls, path: str | Path, make_embedder: Callable[[Fingerprint], Embedder]
                  ) -> Index:
        """The index at `path` with the embedder `make_embedder` builds from the index's own
        fingerprint (`vidcap search INDEX TEXT` loads the run recorded there); the embedder's
        fingerprint must still fit (the run's weights may have changed since)."""
        store = VectorStore.open(path)
        try:
            return cls(store, make_embedder(store.fingerprint))
        except BaseException:
            store.close()
            raise

    @classmethod
    def open_or_create(cls, path: str | Path, embedder: Embedder) -> Index:
        """The index at `path`, made for `embedder` if there is none."""
        return cls(VectorStore.open_or_create(path, embedder.fingerprint), embedder)

    def _embedder(self) -> Embedder:
        if self.embedder is None:
            raise SearchIndexError(f"{self.store.folder}: opened without a model; open it with the "
                                   f"model it was built with, {self.store.fingerprint.describe()}")
        return self.embedder

    def add(self, files: Iterable[str | Path], *, retry_failed: bool = False,
            remove_missing: bool = True) -> IndexReport:
        """Embed new and changed files into the index (see `index_files`)."""
        return index_files(self.store, files, self._embedder().embed_videos,
                           retry_failed=retry_failed, remove_missing=remove_missing)

    def search(self, text: str, k: int = 10, *, exact: bool = False) -> list[Hit]:
        """The k segments most similar to `text`, best first."""
        return self.search_many([text], k, exact=exact)[0]

    def search_many(self, texts: Sequence[str], k: int = 10, *, exact: bool = False
                    ) -> list[list[Hit]]:
        """`search` for several texts, embedded in one batch."""
        queries = self._embedder().embed_text(list(texts))
        return self.store.search(queries, k, exact=exact)

    def stats(self) -> StoreStats:
        """What the index holds (see `VectorStore.stats`)."""
        return self.store.stats()

    def close(self) -> None:
        """Close the store."""
        self.store.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
