"""A search index on disk: SQLite holds everything, faiss holds a copy of the vectors for speed.

An index is a folder:

    index.sqlite          the source of truth: the embedding's fingerprint, one row per file
                          (path, size, mtime in ns, status ok/failed, error), one row per segment
                          (file, start, end, optional caption, the float32 vector as a blob)
    vectors-<G>.faiss     a derived copy of the vectors (see `vidcap.search.vectors`), holding
                          the database as it was at generation G

Why this split. Every change to a file's vectors (add, replace, remove) is one SQLite transaction
that also bumps the database's generation, so a run killed at any moment leaves the database
either before or after each file, never half-way: started again it skips what it stored and
stores nothing twice. The faiss file is never trusted for content; it is written atomically
(temporary file, fsync, os.replace) under a new name, and the database then records its name,
generation, size, sha256, vector count and a digest of its vector ids. On opening, a missing
faiss file, or one of an older generation (a run killed before it wrote a new one), is rebuilt or
brought up to date from the database (by vector id: ids are never reused). A faiss file that
claims to be current but does not match what the database recorded (other size, other ids,
unreadable) is an error naming it: something outside vidcap changed it; deleting it is safe and
makes the next search rebuild it. `verify()` also compares its sha256 (reading the whole file).

The price is disk: the vectors are stored twice (about 3 KB per 768-wide vector in each).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self, TypeVar

import faiss
import numpy as np

from vidcap.search import vectors as vector_index
from vidcap.search.base import (FileStat, Fingerprint, Hit, SearchIndexError, Segment, StoreStats,
                                normalised)

log = logging.getLogger(__name__)

DATABASE = "index.sqlite"
SCHEMA_VERSION = 1
BUSY_TIMEOUT_S = 60.0  # how long a writer waits for another process's transaction to end
_IN_CHUNK = 900  # ids per "WHERE id IN (...)" (SQLite's old limit on bound variables is 999)

SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE files (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('ok', 'failed')),
    error TEXT,
    indexed_at TEXT NOT NULL
);
CREATE TABLE segments (
    id INTEGER PRIMARY KEY AUTOINCREMENT,   -- the vector's id in faiss, never reused
    file_id INTEGER NOT NULL REFERENCES files(id),
    start_s REAL,
    end_s REAL,
    caption TEXT,
    vector BLOB NOT NULL                    -- float32 little-endian, L2-normalised
);
CREATE INDEX segments_by_file ON segments(file_id);
"""


T = TypeVar("T")


def _guarded(method: Callable[..., T]) -> Callable[..., T]:
    """One thread at a time in the store (a web server may search from several), and SQLite's
    errors turned into one SearchIndexError naming the file."""

    @functools.wraps(method)
    def wrapper(self: VectorStore, *args: Any, **kwargs: Any) -> T:
        try:
            with self._lock:
                return method(self, *args, **kwargs)
        except sqlite3.DatabaseError as err:
            raise SearchIndexError(f"{self.database}: the index database cannot be used "
                                   f"({err})") from None
    return wrapper


def _key(path: str | Path) -> str:
    return str(Path(path).resolve())


def _is_gone(path: str) -> bool:
    """True only when the file is not there (not when it cannot be looked at)."""
    try:
        os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return True
    except OSError:
        return False
    return False


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")




class VectorStore:
    """Files, segments and their vectors in one index folder (see the module's docstring)."""

    def __init__(self, folder: Path, connection: sqlite3.Connection) -> None:
        """Use `create`, `open` or `open_or_create`."""
        self.folder = folder
        self.database = folder / DATABASE
        self._db = connection
        self._lock = threading.RLock()
        self._depth = 0
        self._index: faiss.Index | None = None
        self._index_generation = -1
        self.fingerprint = self._read_fingerprint()

    # ---- opening ------------------------------------------------------------------------------

    @classmethod
    def create(cls, path: str | Path, fingerprint: Fingerprint) -> VectorStore:
        """A new, empty index in folder `path` (created if needed) for `fingerprint`'s vectors.

        The database is made under a temporary name and renamed, so a folder never holds a
        half-made index."""
        folder = Path(path)
        if (folder / DATABASE).exists():
            raise SearchIndexError(f"{folder / DATABASE}: an index is already there")
        if folder.exists() and not folder.is_dir():
            raise SearchIndexError(f"{folder}: not a folder (an index is a folder)")
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f"{DATABASE}.tmp-{os.getpid()}"
        tmp.unlink(missing_ok=True)
        meta = {"schema": SCHEMA_VERSION, "model": fingerprint.model, "dim": fingerprint.dim,
                "run": fingerprint.run, "generation": 0, "created": _now()}
        connection = sqlite3.connect(tmp, isolation_level=None)
        try:
            connection.execute("BEGIN IMMEDIATE")
            for statement in filter(str.strip, SCHEMA.split(";")):
                connection.execute(statement)
            connection.executemany("INSERT INTO meta VALUES (?, ?)",
                                   [(k, str(v)) for k, v in meta.items()])
            connection.execute("COMMIT")
        finally:
            connection.close()
        os.replace(tmp, folder / DATABASE)
        return cls.open(folder)

    @classmethod
    def open(cls, path: str | Path) -> VectorStore:
        """The index in folder `path` (or `path` itself when it is the index.sqlite)."""
        path = Path(path)
        folder = path.parent if path.name == DATABASE and path.is_file() else path
        database = folder / DATABASE
        if not database.is_file():
            raise SearchIndexError(f"{folder}: no search index here (no {DATABASE}; "
                                   f"make one with `vidcap index`)")
        try:
            connection = sqlite3.connect(f"file:{database}?mode=rw", uri=True,
                                         isolation_level=None, timeout=BUSY_TIMEOUT_S,
                                         check_same_thread=False)  # calls hold self._lock
        except sqlite3.Error as err:
            raise SearchIndexError(f"{database}: cannot open the index database ({err})") from None
        return cls(folder, connection)

    @classmethod
    def open_or_create(cls, path: str | Path, fingerprint: Fingerprint) -> VectorStore:
        """The index at `path` when there is one (it must fit `fingerprint`), else a new one."""
        if not (Path(path) / DATABASE).exists():
            return cls.create(path, fingerprint)
        store = cls.open(path)
        store.check_fingerprint(fingerprint)
        return store

    def _read_fingerprint(self) -> Fingerprint:
        try:
            meta = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.DatabaseError as err:
            self._db.close()
            raise SearchIndexError(f"{self.database}: not a vidcap search index database "
                                   f"({err})") from None
        if meta.get("schema") != str(SCHEMA_VERSION):
            self._db.close()
            raise SearchIndexError(f"{self.database}: index schema {meta.get('schema')!r}, "
                                   f"this vidcap reads schema {SCHEMA_VERSION}")
        return Fingerprint(model=meta["model"], dim=int(meta["dim"]), run=meta.get("run", ""))

    def check_fingerprint(self, other: Fingerprint) -> None:
        """Raise SearchIndexError unless vectors of `other` fit this index."""
        if not self.fingerprint.fits(other):
            raise SearchIndexError(
                f"{self.database}: the index holds vectors of {self.fingerprint.describe()}, "
                f"not of {other.describe()}; search it with that model, or index into a new folder")

    def close(self) -> None:
        """Close the database (the store cannot be used afterwards)."""
        self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- writing ------------------------------------------------------------------------------

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Group writes into one transaction (all or nothing); writes outside a batch are each
        their own transaction. Nested batches join the outer one; other threads wait."""
        with self._lock:
            if self._depth == 0:
                self._db.execute("BEGIN IMMEDIATE")
            self._depth += 1
            try:
                yield
            except BaseException:
                self._depth -= 1
                if self._depth == 0:
                    self._db.execute("ROLLBACK")
                raise
            self._depth -= 1
            if self._depth == 0:
                self._db.execute("COMMIT")

    def _bump_generation(self) -> None:
        self._db.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 "
                         "WHERE key = 'generation'")

    def _drop_segments(self, path: str) -> int:
        """Delete a file's segments (not the file row); how many there were."""
        cursor = self._db.execute("DELETE FROM segments WHERE file_id = "
                                  "(SELECT id FROM files WHERE path = ?)", (path,))
        return cursor.rowcount

    def _put_file(self, path: str, stat: FileStat, status: str, error: str | None) -> int:
        self._db.execute(
            "INSERT INTO files (path, size, mtime_ns, status, error, indexed_at) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(path) DO UPDATE SET size = excluded.size, "
            "mtime_ns = excluded.mtime_ns, status = excluded.status, error = excluded.error, "
            "indexed_at = excluded.indexed_at",
            (path, stat.size, stat.mtime_ns, status, error, _now()))
        return self._db.execute("SELECT id FROM files WHERE path = ?", (path,)).fetchone()[0]

    @_guarded
    def needs(self, path: str | Path, stat: FileStat, *, retry_failed: bool = False) -> bool:
        """Whether `path` must be embedded: new, changed (size or mtime), or failed before and
        `retry_failed`. A failed file that did not change is not tried again by default."""
        row = self._db.execute("SELECT size, mtime_ns, status FROM files WHERE path = ?",
                               (_key(path),)).fetchone()
        if row is None or (row[0], row[1]) != (stat.size, stat.mtime_ns):
            return True
        return retry_failed and row[2] == "failed"

    @_guarded
    def add_file(self, path: str | Path, stat: FileStat, segments: Sequence[Segment],
                 vectors: np.ndarray) -> None:
        """Store a file's segments and vectors (one row each, in order), replacing what the file
        had; one transaction."""
        key = _key(path)
        rows = (normalised(vectors, self.fingerprint.dim, key) if len(segments)
                else np.zeros((len(vectors), self.fingerprint.dim), dtype=np.float32))
        if len(rows) != len(segments):
            raise SearchIndexError(f"{key}: {len(segments)} segments but {len(rows)} vectors")
        with self.batch():
            self._drop_segments(key)
            file_id = self._put_file(key, stat, "ok", None)
            self._db.executemany(
                "INSERT INTO segments (file_id, start_s, end_s, caption, vector) "
                "VALUES (?, ?, ?, ?, ?)",
                [(file_id, s.start, s.end, s.caption, row.astype("<f4").tobytes())
                 for s, row in zip(segments, rows)])
            self._bump_generation()

    @_guarded
    def mark_failed(self, path: str | Path, stat: FileStat, error: str) -> None:
        """Record that `path` (at `stat`) could not be embedded, dropping vectors it had."""
        key = _key(path)
        with self.batch():
            if self._drop_segments(key):
                self._bump_generation()
            self._put_file(key, stat, "failed", error)

    @_guarded
    def remove(self, paths: Iterable[str | Path]) -> int:
        """Forget files and their vectors; how many of them the index had."""
        removed = 0
        with self.batch():
            for key in map(_key, paths):
                self._drop_segments(key)
                removed += self._db.execute("DELETE FROM files WHERE path = ?", (key,)).rowcount
            if removed:
                self._bump_generation()
        return removed

    @_guarded
    def remove_missing(self) -> list[str]:
        """Forget every indexed file that no longer exists on disk; their paths."""
        paths = [row[0] for row in self._db.execute("SELECT path FROM files ORDER BY path")]
        gone = [path for path in paths if _is_gone(path)]
        self.remove(gone)
        return gone

    @_guarded
    def file_ids(self) -> dict[str, int]:
        """{path: its row id} of every file indexed with vectors (ids stay while it is indexed)."""
        return dict(self._db.execute("SELECT path, id FROM files WHERE status = 'ok'").fetchall())

    @_guarded
    def failures(self) -> list[tuple[str, str]]:
        """(path, error) of every file recorded as failed."""
        return self._db.execute("SELECT path, error FROM files WHERE status = 'failed' "
                                "ORDER BY path").fetchall()

    # ---- the faiss copy -----------------------------------------------------------------------

    def _meta(self) -> dict[str, str]:
        return dict(self._db.execute("SELECT key, value FROM meta").fetchall())

    def _all_ids(self) -> np.ndarray:
        ids = self._db.execute("SELECT id FROM segments ORDER BY id").fetchall()
        return np.array([row[0] for row in ids], dtype=np.int64)

    def _by_id(self, select: str, ids: Iterable[int]) -> dict[int, tuple]:
        """{id: the rest of the row} of `select` + " IN (...)" over `ids`, a chunk at a time."""
        wanted, found = [int(i) for i in ids], {}
        for lo in range(0, len(wanted), _IN_CHUNK):
            chunk = wanted[lo:lo + _IN_CHUNK]
            query = f"{select} IN ({','.join('?' * len(chunk))})"
            found.update((row[0], row[1:]) for row in self._db.execute(query, chunk))
        return found

    def _vectors_of(self, ids: np.ndarray) -> np.ndarray:
        dim = self.fingerprint.dim
        found = self._by_id("SELECT id, vector FROM segments WHERE id", ids)
        blobs = [found.get(int(i), (b"",))[0] for i in ids]
        if any(len(blob) != 4 * dim for blob in blobs):
            raise SearchIndexError(f"{self.database}: a stored vector is missing or not "
                                   f"{dim} float32 values (the database is damaged)")
        return np.frombuffer(b"".join(blobs), dtype="<f4").reshape(len(ids), dim)

    def _mismatch(self, file: Path, detail: str) -> SearchIndexError:
        return SearchIndexError(f"{file}: the vector file does not match {self.database} "
                                f"({detail}); delete it and it is rebuilt from the database")

    def _read_vectors(self, meta: dict[str, str]) -> faiss.Index | None:
        """The recorded faiss file, checked against its record; None when there is none."""
        if "vectors_file" not in meta:
            return None
        file = self.folder / meta["vectors_file"]
        if not file.is_file():
            log.info("%s is missing; rebuilding it from %s", file, self.database)
            return None
        if file.stat().st_size != int(meta["vectors_bytes"]):
            raise self._mismatch(file, f"{file.stat().st_size} bytes, "
                                       f"recorded {meta['vectors_bytes']}")
        try:
            index = vector_index.read(file)
        except RuntimeError:
            raise self._mismatch(file, "faiss cannot read it") from None
        if index.d != self.fingerprint.dim or index.ntotal != int(meta["vectors_count"]):
            raise self._mismatch(file, f"{index.ntotal} vectors of width {index.d}, recorded "
                                       f"{meta['vectors_count']} of width {self.fingerprint.dim}")
        if vector_index.ids_digest(vector_index.ids_of(index)) != meta["vectors_ids"]:
            raise self._mismatch(file, "it holds other vector ids")
        return index

    def _write_vectors(self, index: faiss.Index, generation: int) -> None:
        """Write the faiss copy for `generation` and record it; a folder we cannot write to
        only costs a rebuild at the next opening."""
        name = f"vectors-{generation}.faiss"
        try:
            size, sha256 = vector_index.write(index, self.folder / name)
        except OSError as err:
            log.warning("cannot write %s (%s); searching from memory", self.folder / name, err)
            return
        record = {"vectors_file": name, "vectors_generation": generation, "vectors_bytes": size,
                  "vectors_sha256": sha256, "vectors_count": index.ntotal,
                  "vectors_ids": vector_index.ids_digest(vector_index.ids_of(index)),
                  "vectors_kind": vector_index.kind_of(index)}
        try:
            with self.batch():
                self._db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                                     [(k, str(v)) for k, v in record.items()])
        except sqlite3.OperationalError as err:      # e.g. a read-only database
            log.warning("cannot record %s in %s (%s); searching from memory",
                        name, self.database, err)
            (self.folder / name).unlink(missing_ok=True)
            return
        for old in self.folder.glob("vectors-*.faiss*"):
            if old.name != name:
                old.unlink(missing_ok=True)

    @contextlib.contextmanager
    def _snapshot(self) -> Iterator[None]:
        """Reads inside see one state of the database (a read transaction, outside a batch)."""
        if self._depth:
            yield
            return
        self._db.execute("BEGIN")
        try:
            yield
        finally:
            self._db.execute("COMMIT")

    def _current(self, meta: dict[str, str], generation: int) -> faiss.Index | None:
        """The faiss copy when it already holds `generation`, else None (after checking what
        there is, kept in `self._index` for an update)."""
        if self._index is None:
            self._index = self._read_vectors(meta)
            self._index_generation = int(meta.get("vectors_generation", -1))
            if self._index is not None and self._index_generation == generation \
                    and self._index.ntotal != self._count("segments"):
                raise self._mismatch(self.folder / meta["vectors_file"],
                                     f"{self._index.ntotal} vectors, the database "
                                     f"{self._count('segments')}")
        return self._index if self._index_generation == generation else None

    def _vectors(self) -> faiss.Index:
        """The faiss copy, as current as the database (loaded, updated or built as needed)."""
        with self._snapshot():
            meta = self._meta()
            generation = int(meta["generation"])
            index = self._current(meta, generation)
            if index is not None:
                return index
            index = vector_index.update(self._index, self.fingerprint.dim, self._all_ids(),
                                        self._vectors_of)
        self._index, self._index_generation = index, generation
        self._write_vectors(index, generation)
        return index

    @_guarded
    def sync_vectors(self) -> None:
        """Bring the faiss copy up to date with the database and write it (after indexing)."""
        self._vectors()

    # ---- reading ------------------------------------------------------------------------------

    def _count(self, table: str, where: str = "") -> int:
        return self._db.execute(f"SELECT count(*) FROM {table} {where}").fetchone()[0]

    def _hits(self, scores: np.ndarray, ids: np.ndarray) -> list[Hit]:
        wanted = [int(i) for i in ids if i >= 0]
        rows = self._by_id("SELECT s.id, f.path, s.start_s, s.end_s, s.caption FROM segments s "
                           "JOIN files f ON f.id = s.file_id WHERE s.id", wanted)
        if set(wanted) - rows.keys():
            meta = self._meta()
            if int(meta["generation"]) == self._index_generation:   # not another process's write
                raise self._mismatch(self.folder / meta.get("vectors_file", "vectors"),
                                     "it returned vector ids the database does not have")
        return [Hit(*rows[int(i)][:3], score=float(s), caption=rows[int(i)][3])
                for s, i in zip(scores, ids) if int(i) in rows]

    @_guarded
    def search(self, queries: np.ndarray, k: int = 10, *, exact: bool = False,
               nprobe: int | None = None) -> list[list[Hit]]:
        """The k best segments for each query vector (rows of `queries`, normalised here), best
        first. An approximate index visits `nprobe` lists (see `vectors`), all with `exact`."""
        if k < 1:
            raise SearchIndexError(f"{self.database}: k must be at least 1, got {k}")
        rows = normalised(np.atleast_2d(queries), self.fingerprint.dim, "query")
        index = self._vectors()
        if index.ntotal == 0:
            return [[] for _ in rows]
        scores, ids = vector_index.search(index, rows, min(k, index.ntotal), exact=exact,
                                     nprobe=nprobe)
        return [self._hits(s, i) for s, i in zip(scores, ids)]

    @_guarded
    def stats(self) -> StoreStats:
        """Counts, fingerprint and bytes on disk."""
        meta = self._meta()
        file = self.folder / meta.get("vectors_file", "")
        return StoreStats(
            files=self._count("files", "WHERE status = 'ok'"),
            failed=self._count("files", "WHERE status = 'failed'"),
            segments=self._count("segments"), fingerprint=self.fingerprint,
            generation=int(meta["generation"]), vectors_kind=meta.get("vectors_kind"),
            database_bytes=self.database.stat().st_size,
            vectors_bytes=file.stat().st_size if file.is_file() else 0)

    @_guarded
    def verify(self) -> None:
        """Check everything, reading it all: SQLite's integrity check, every stored vector, and
        the faiss file's sha256. Raises SearchIndexError naming the first problem."""
        problems = [row[0] for row in self._db.execute("PRAGMA integrity_check")]
        if problems != ["ok"]:
            raise SearchIndexError(f"{self.database}: damaged ({problems[0]})")
        self._vectors_of(self._all_ids())
        meta = self._meta()
        if "vectors_file" in meta and (self.folder / meta["vectors_file"]).is_file():
            file = self.folder / meta["vectors_file"]
            if vector_index.file_sha256(file) != meta["vectors_sha256"]:
                raise self._mismatch(file, "its sha256 differs from the one recorded")
            self._read_vectors(meta)
