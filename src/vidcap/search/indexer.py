"""Adding files to an index, incrementally and resumably (`vidcap index` does this).

`index_files` embeds only files that are new or changed (size or modification time differ from
what the index recorded), stores each file as soon as its vectors arrive (one transaction per
file, see `vidcap.search.store`), forgets files that no longer exist, and returns what it did.
A run that is killed and started again embeds only what it had not stored yet.

A file that cannot be embedded (a `VidcapError` such as `VideoError`, or an `OSError`) is counted,
named, and recorded with its error; it is tried again when it changes, or with `retry_failed`.
Any other exception is a bug and stops the run (what was stored stays stored).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from vidcap.errors import VidcapError
from vidcap.search.base import FileStat, SearchIndexError, Segment
from vidcap.search.store import VectorStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FileEmbedding:
    """What an embedder made of one file: its segments and one vector per segment (rows), or
    the reason it could not (`error`)."""

    path: Path
    segments: Sequence[Segment] = ()
    vectors: np.ndarray | None = None
    error: str | None = None


EmbedVideos = Callable[[Sequence[Path]], Iterable[FileEmbedding]]
"""Embeds the given files, yielding one FileEmbedding per file as each is done (any order)."""

EmbedFile = Callable[[Path], tuple[Sequence[Segment], np.ndarray]]
"""Embeds one file: its segments and their vectors (rows); raises VidcapError/OSError when the
file cannot be read."""


def embed_each(embed_file: EmbedFile) -> EmbedVideos:
    """An EmbedVideos that calls `embed_file` on one file at a time and turns its expected
    failures (VidcapError, OSError) into FileEmbedding errors."""

    def embed(paths: Sequence[Path]) -> Iterator[FileEmbedding]:
        for path in paths:
            try:
                segments, rows = embed_file(path)
            except (VidcapError, OSError) as err:
                yield FileEmbedding(path, error=str(err) or type(err).__name__)
            else:
                yield FileEmbedding(path, segments, rows)

    return embed


@dataclass
class IndexReport:
    """What one `index_files` run did."""

    added: list[str] = field(default_factory=list)
    """Files embedded and stored in this run (new or changed)."""
    unchanged: int = 0
    """Files already in the index as they are on disk."""
    failed: list[tuple[str, str]] = field(default_factory=list)
    """(path, error) of files that could not be embedded or looked at in this run."""
    still_failed: list[tuple[str, str]] = field(default_factory=list)
    """(path, error) of files that failed before, did not change, and were not tried again."""
    removed: list[str] = field(default_factory=list)
    """Indexed files that no longer exist (their vectors were removed)."""

    def summary(self) -> str:
        """One line for a log or a terminal."""
        line = (f"{len(self.added)} added, {self.unchanged} unchanged, {len(self.failed)} failed, "
                f"{len(self.removed)} removed")
        if self.still_failed:
            line += f", {len(self.still_failed)} failed before and not retried"
        return line


def _plan(store: VectorStore, files: Iterable[str | Path], retry_failed: bool,
          report: IndexReport) -> tuple[list[Path], dict[Path, FileStat]]:
    """The files to embed, and the stat of each taken before embedding (a file that changes
    while it is embedded is then seen as changed by the next run)."""
    known_failures = dict(store.failures())
    pending, stats = [], {}
    for path in dict.fromkeys(Path(f).resolve() for f in files):
        try:
            stat = FileStat.of(path)
        except OSError as err:
            report.failed.append((str(path), f"{path}: {err.strerror or err}"))
            continue
        if store.needs(path, stat, retry_failed=retry_failed):
            pending.append(path)
            stats[path] = stat
        elif str(path) in known_failures:
            report.still_failed.append((str(path), known_failures[str(path)]))
        else:
            report.unchanged += 1
    return pending, stats


def _store(store: VectorStore, result: FileEmbedding, stat: FileStat, report: IndexReport
           ) -> None:
    if result.error is not None:
        store.mark_failed(result.path, stat, result.error)
        report.failed.append((str(result.path), result.error))
        log.warning("%s: %s", result.path, result.error)
        return
    rows = result.vectors if result.vectors is not None else np.zeros((0, store.fingerprint.dim))
    store.add_file(result.path, stat, list(result.segments), rows)
    report.added.append(str(result.path))


def index_files(store: VectorStore, files: Iterable[str | Path], embed_videos: EmbedVideos, *,
                retry_failed: bool = False, remove_missing: bool = True) -> IndexReport:
    """Bring `store` up to date with `files`: embed what is new or changed, keep what is not,
    record failures, forget indexed files that no longer exist (`remove_missing`), then write
    the faiss copy. Files already stored stay stored if this is interrupted."""
    report = IndexReport()
    if remove_missing:
        report.removed = store.remove_missing()
    pending, stats = _plan(store, files, retry_failed, report)
    log.info("%d files to embed, %d unchanged", len(pending), report.unchanged)
    with tqdm(total=len(pending), desc="indexing", unit="file", disable=None) as bar:
        for result in embed_videos(pending):
            path = Path(result.path).resolve()
            if path not in stats:
                raise SearchIndexError(f"{result.path}: the embedder returned a file it was not "
                                       f"asked for (or returned it twice)")
            _store(store, result, stats.pop(path), report)
            bar.update()
    for path in stats:  # not stored: tried again next time
        report.failed.append((str(path), "the embedder returned nothing for it"))
    store.sync_vectors()
    return report
