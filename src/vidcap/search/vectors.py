"""The faiss side of a search index: which kind of index for how many vectors, building it,
bringing it up to date by vector id, and its file.

Every vector is L2-normalised, so inner product is cosine similarity.

- Below `APPROXIMATE_FROM` vectors: exact search, `IndexIDMap2(IndexFlatIP)`. A query reads every
  vector (at 100,000 x 768, 30-60 ms on one core of the machine in BENCHMARKS.md).
- From `APPROXIMATE_FROM` on: `IndexIVFFlat` with nlist = sqrt(count) rounded to a power of two
  (256 lists at 100,000) and nprobe = nlist / 8, so a query reads about 1/8 of the vectors plus
  the centroids: 5-6x faster than brute force at 100,000, recall@10 0.98 on real sentence
  embeddings (BENCHMARKS.md, "Search"). IVF rather than HNSW, measured there: HNSW answers faster
  (a fraction of a millisecond) but took 8-22x longer to build, and faiss's HNSW cannot remove
  vectors, so every changed or deleted file would cost a full rebuild; IVF removes and adds by id.
  Recall is tuned per query with nprobe; `exact=True` visits every list (exact results).
  The lists are kept while the count stays within a factor of 4 of the count they were trained
  for (the power of two does not move); beyond, the index is trained again.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Callable
from pathlib import Path

import faiss
import numpy as np

APPROXIMATE_FROM = 100_000
"""Vector count from which the index is approximate (IVF) instead of exact (flat)."""
TRAIN_PER_LIST = 64
"""Training vectors per IVF list (faiss warns below 39)."""
NPROBE_DIVISOR = 8
"""An IVF query visits nlist / NPROBE_DIVISOR lists (at least 1)."""
CHUNK = 8192
"""Vectors fetched from the database and added at a time while building."""

Fetch = Callable[[np.ndarray], np.ndarray]
"""Vectors (len(ids), dim) float32 of the given ids, in their order."""


def nlist_for(count: int) -> int:
    """IVF lists for `count` vectors: sqrt(count) rounded to a power of two."""
    return 2 ** round(math.log2(math.sqrt(max(count, 1))))


def nprobe_for(nlist: int) -> int:
    """Lists an IVF query visits (faiss does not keep nprobe in its file: it is set per query)."""
    return max(1, nlist // NPROBE_DIVISOR)


def kind_for(count: int) -> str:
    """'flat' below APPROXIMATE_FROM vectors, else 'ivf<nlist>'."""
    return "flat" if count < APPROXIMATE_FROM else f"ivf{nlist_for(count)}"


def kind_of(index: faiss.Index) -> str:
    """The kind (as `kind_for` names it) of an index this module built."""
    if isinstance(index, faiss.IndexIDMap2):
        return "flat"
    if isinstance(index, faiss.IndexIVFFlat):
        return f"ivf{index.nlist}"
    return type(index).__name__


def _new_ivf(dim: int, nlist: int, ids: np.ndarray, fetch: Fetch) -> faiss.IndexIVFFlat:
    quantizer = faiss.IndexFlatIP(dim)
    index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
    rng = np.random.default_rng(0)
    sample = np.sort(rng.choice(ids, size=min(len(ids), TRAIN_PER_LIST * nlist), replace=False))
    index.cp.niter = 10
    index.train(fetch(sample))
    return index


def build(dim: int, ids: np.ndarray, fetch: Fetch) -> faiss.Index:
    """A new index of the kind `kind_for(len(ids))`, holding the vectors of `ids`."""
    kind = kind_for(len(ids))
    if kind == "flat":
        index: faiss.Index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
    else:
        index = _new_ivf(dim, nlist_for(len(ids)), ids, fetch)
    add(index, ids, fetch)
    return index


def add(index: faiss.Index, ids: np.ndarray, fetch: Fetch) -> None:
    """Add the vectors of `ids`, a chunk at a time."""
    for lo in range(0, len(ids), CHUNK):
        chunk = ids[lo:lo + CHUNK]
        index.add_with_ids(fetch(chunk), chunk)


def ids_of(index: faiss.Index) -> np.ndarray:
    """The vector ids an index holds, sorted (int64)."""
    if isinstance(index, faiss.IndexIDMap2):
        ids = faiss.vector_to_array(index.id_map)
    elif isinstance(index, faiss.IndexIVF):
        lists = index.invlists
        parts = [faiss.rev_swig_ptr(lists.get_ids(i), lists.list_size(i)).copy()
                 for i in range(index.nlist) if lists.list_size(i)]
        ids = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    else:
        raise TypeError(f"not an index this module builds: {type(index).__name__}")
    return np.sort(ids.astype(np.int64))


def ids_digest(ids: np.ndarray) -> str:
    """sha256 of sorted int64 ids: names the set of vectors an index holds."""
    return hashlib.sha256(np.sort(np.asarray(ids, dtype="<i8")).tobytes()).hexdigest()


def update(index: faiss.Index | None, dim: int, ids: np.ndarray, fetch: Fetch) -> faiss.Index:
    """`index` brought to hold exactly the vectors of `ids`: vectors gone are removed and new
    ones added (ids are never reused for other vectors), or a new index when there is none or
    the count calls for another kind."""
    if index is None or kind_of(index) != kind_for(len(ids)):
        return build(dim, ids, fetch)
    have = ids_of(index)
    gone = np.setdiff1d(have, ids, assume_unique=True)
    if len(gone):
        index.remove_ids(gone)
    add(index, np.setdiff1d(ids, have, assume_unique=True), fetch)
    return index


def search(index: faiss.Index, queries: np.ndarray, k: int, *, exact: bool = False,
           nprobe: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(scores, ids), each (len(queries), k), best first; id -1 where fewer than k exist.

    An IVF index visits `nprobe` lists (default `nprobe_for(nlist)`), or all with `exact`.
    """
    if isinstance(index, faiss.IndexIVF):
        lists = index.nlist if exact else min(index.nlist, nprobe or nprobe_for(index.nlist))
        return index.search(queries, k, params=faiss.SearchParametersIVF(nprobe=lists))
    return index.search(queries, k)


def write(index: faiss.Index, path: Path) -> tuple[int, str]:
    """Write `index` to `path` atomically (temporary file, fsync, os.replace); (bytes, sha256)."""
    data = faiss.serialize_index(index)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as out:
            out.write(data.tobytes())
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return int(data.size), hashlib.sha256(data).hexdigest()


def read(path: Path) -> faiss.Index:
    """An index file as faiss reads it (RuntimeError when faiss cannot)."""
    return faiss.read_index(str(path))


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes, read a chunk at a time."""
    digest = hashlib.sha256()
    with open(path, "rb") as source:
        for block in iter(lambda: source.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
