"""VectorStore: storing, replacing and searching vectors; fingerprints; damaged files."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from tests.search.conftest import DIM, FINGERPRINT, ToyEmbedder, bag
from vidcap.errors import VidcapError
from vidcap.search import FileStat, Fingerprint, SearchIndexError, Segment, VectorStore, vectors
from vidcap.search.store import DATABASE


def _fill(store: VectorStore, paths: list[Path]) -> None:
    embedder = ToyEmbedder()
    for path in paths:
        segments, rows = embedder.embed_file(path)
        store.add_file(path, FileStat.of(path), segments, rows)


def _segments(folder: Path) -> list[tuple]:
    with sqlite3.connect(folder / DATABASE) as db:
        return db.execute("SELECT f.path, s.start_s FROM segments s JOIN files f "
                          "ON f.id = s.file_id ORDER BY f.path, s.start_s").fetchall()


@pytest.fixture
def store(tmp_path: Path, videos: list[Path]) -> VectorStore:
    """An index of the four toy videos, faiss copy written."""
    store = VectorStore.create(tmp_path / "index", FINGERPRINT)
    _fill(store, videos)
    store.sync_vectors()
    yield store
    store.close()


def test_search_ranks_segments_by_cosine_similarity(store: VectorStore, videos: list[Path]):
    [hits] = store.search(bag("red circle left")[None], k=3)
    assert (Path(hits[0].path).name, hits[0].start, hits[0].end) == ("a.mp4", 0.0, 2.0)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    expected = bag("red circle left") @ bag("red circle left") / np.linalg.norm(
        bag("red circle left")) ** 2
    assert hits[0].score == pytest.approx(expected, abs=1e-6)
    # k larger than the collection: every segment once
    [everything] = store.search(bag("square"), k=50)
    assert len(everything) == 7
    assert len({(h.path, h.start) for h in everything}) == 7


def test_reopened_store_gives_the_same_hits(store: VectorStore, tmp_path: Path):
    before = store.search(bag("green grows"), k=4)
    store.close()
    with VectorStore.open(tmp_path / "index") as again:
        assert again.search(bag("green grows"), k=4) == before
        assert again.fingerprint == FINGERPRINT
    with VectorStore.open(tmp_path / "index" / DATABASE) as by_file:
        assert by_file.stats().segments == 7


def test_stats(store: VectorStore):
    stats = store.stats()
    assert (stats.files, stats.failed, stats.segments) == (4, 0, 7)
    assert stats.vectors_kind == "flat" and stats.vectors_bytes > 7 * DIM * 4
    assert stats.database_bytes > 0 and stats.fingerprint == FINGERPRINT


def test_needs_only_new_changed_or_retried_files(store: VectorStore, videos: list[Path],
                                                 tmp_path: Path):
    a = videos[0]
    assert not store.needs(a, FileStat.of(a))
    assert store.needs(a, FileStat(FileStat.of(a).size + 1, FileStat.of(a).mtime_ns))
    assert store.needs(a, FileStat(FileStat.of(a).size, FileStat.of(a).mtime_ns + 1))
    new = tmp_path / "new.mp4"
    new.write_text("red")
    assert store.needs(new, FileStat.of(new))
    store.mark_failed(new, FileStat.of(new), "cannot decode")
    assert not store.needs(new, FileStat.of(new))
    assert store.needs(new, FileStat.of(new), retry_failed=True)
    assert store.failures() == [(str(new.resolve()), "cannot decode")]


def test_a_changed_file_replaces_its_vectors(store: VectorStore, videos: list[Path]):
    a = videos[0]
    a.write_text("green circle right")
    store.add_file(a, FileStat.of(a), [Segment(0.0, 5.0)], bag("green circle right")[None])
    rows = _segments(store.folder)
    assert len(rows) == 6 and [r for r in rows if r[0] == str(a)] == [(str(a), 0.0)]
    [hits] = store.search(bag("blue square grows"), k=7)
    assert all(not (h.path == str(a) and h.start == 2.0) for h in hits)


def test_a_file_that_now_fails_loses_its_vectors(store: VectorStore, videos: list[Path]):
    store.mark_failed(videos[1], FileStat.of(videos[1]), "broken now")
    assert store.stats().segments == 6 and store.stats().failed == 1
    [hits] = store.search(bag("green square right"), k=10)
    assert str(videos[1]) not in {h.path for h in hits}


def test_remove_missing_forgets_deleted_files(store: VectorStore, videos: list[Path]):
    videos[2].unlink()
    assert store.remove_missing() == [str(videos[2])]
    assert store.stats().segments == 4
    [hits] = store.search(bag("blue circle left"), k=10)
    assert str(videos[2]) not in {h.path for h in hits}
    assert store.remove_missing() == []


def test_bad_vectors_are_refused(store: VectorStore, videos: list[Path]):
    stat = FileStat.of(videos[0])
    with pytest.raises(SearchIndexError, match=f"shape \\(n, {DIM}\\)"):
        store.add_file(videos[0], stat, [Segment()], np.ones((1, DIM + 1)))
    with pytest.raises(SearchIndexError, match="vector 1 is zero"):
        store.add_file(videos[0], stat, [Segment(), Segment()], np.stack([bag("red"),
                                                                          np.zeros(DIM)]))
    with pytest.raises(SearchIndexError, match="2 segments but 1 vectors"):
        store.add_file(videos[0], stat, [Segment(), Segment()], bag("red")[None])
    with pytest.raises(SearchIndexError, match="k must be at least 1"):
        store.search(bag("red"), k=0)
    assert store.stats().segments == 7          # nothing half-stored


def test_a_failing_batch_stores_nothing(store: VectorStore, tmp_path: Path):
    new = tmp_path / "n.mp4"
    new.write_text("red")
    with pytest.raises(RuntimeError), store.batch():
        store.add_file(new, FileStat.of(new), [Segment()], bag("red")[None])
        raise RuntimeError("stop")
    assert store.needs(new, FileStat.of(new)) and store.stats().segments == 7


# ---------------------------------------------------------------------------------------------
# fingerprints


def test_another_models_index_cannot_be_extended_or_searched(store: VectorStore, tmp_path: Path):
    store.close()
    other = Fingerprint(model="another-model", dim=DIM, run="runs/other")
    with pytest.raises(SearchIndexError, match="holds vectors of model 'toy-bag-of-words'") as err:
        VectorStore.open_or_create(tmp_path / "index", other)
    assert "not of model 'another-model'" in str(err.value)
    with pytest.raises(SearchIndexError, match="dim 16"):
        VectorStore.open_or_create(tmp_path / "index", Fingerprint(FINGERPRINT.model, 16))
    moved = Fingerprint(FINGERPRINT.model, DIM, run="/elsewhere/runs/toy")
    VectorStore.open_or_create(tmp_path / "index", moved).close()   # same weights, moved run


def test_create_and_open_errors_name_the_place(store: VectorStore, tmp_path: Path):
    with pytest.raises(SearchIndexError, match="an index is already there"):
        VectorStore.create(tmp_path / "index", FINGERPRINT)
    with pytest.raises(SearchIndexError, match="no search index here"):
        VectorStore.open(tmp_path / "nothing")
    (tmp_path / "file").write_text("x")
    with pytest.raises(SearchIndexError, match="not a folder"):
        VectorStore.create(tmp_path / "file", FINGERPRINT)


# ---------------------------------------------------------------------------------------------
# damaged files


def _one_line_error(err: pytest.ExceptionInfo, file: Path) -> None:
    message = str(err.value)
    assert isinstance(err.value, VidcapError) and str(file) in message and "\n" not in message


def test_a_corrupt_database_is_one_clear_error(store: VectorStore, tmp_path: Path):
    store.close()
    database = tmp_path / "index" / DATABASE
    database.write_bytes(b"this is not an SQLite database" * 100)
    with pytest.raises(SearchIndexError, match="not a vidcap search index database") as err:
        VectorStore.open(tmp_path / "index")
    _one_line_error(err, database)


def test_a_database_damaged_inside_is_one_clear_error(store: VectorStore, tmp_path: Path):
    store.close()
    database = tmp_path / "index" / DATABASE
    data = bytearray(database.read_bytes())
    page = 4096
    data[page:] = b"\xa5" * (len(data) - page)        # keep the header, ruin every table page
    database.write_bytes(bytes(data))
    with pytest.raises(SearchIndexError) as err:
        VectorStore.open(tmp_path / "index").search(bag("red"), k=1)
    _one_line_error(err, database)


def test_a_foreign_vector_file_is_one_clear_error(store: VectorStore, tmp_path: Path,
                                                  videos: list[Path]):
    faiss_file = next((tmp_path / "index").glob("vectors-*.faiss"))
    store.close()
    other = VectorStore.create(tmp_path / "other", FINGERPRINT)
    _fill(other, videos[:2])
    other.sync_vectors()
    other.close()
    faiss_file.write_bytes(next((tmp_path / "other").glob("vectors-*.faiss")).read_bytes())
    with pytest.raises(SearchIndexError, match="does not match") as err:
        VectorStore.open(tmp_path / "index").search(bag("red"), k=1)
    _one_line_error(err, faiss_file)
    assert "delete it" in str(err.value)


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_a_damaged_vector_file_is_one_clear_error(store: VectorStore, tmp_path: Path, damage):
    faiss_file = next((tmp_path / "index").glob("vectors-*.faiss"))
    store.close()
    data = faiss_file.read_bytes()
    faiss_file.write_bytes(data[:len(data) // 2] if damage == "truncate" else b"\0" * len(data))
    with pytest.raises(SearchIndexError, match="does not match") as err:
        VectorStore.open(tmp_path / "index").search(bag("red"), k=1)
    _one_line_error(err, faiss_file)


def test_verify_finds_a_changed_vector_that_the_quick_checks_miss(store: VectorStore,
                                                                  tmp_path: Path):
    store.verify()
    faiss_file = next((tmp_path / "index").glob("vectors-*.faiss"))
    store.close()
    data = bytearray(faiss_file.read_bytes())
    data[len(data) // 2] ^= 0xFF      # inside the stored vectors: same size, same ids
    faiss_file.write_bytes(bytes(data))
    with VectorStore.open(tmp_path / "index") as damaged, \
            pytest.raises(SearchIndexError, match="sha256 differs") as err:
        damaged.verify()
    _one_line_error(err, faiss_file)


def test_a_deleted_vector_file_is_rebuilt(store: VectorStore, tmp_path: Path):
    before = store.search(bag("blue"), k=3)
    store.close()
    for file in (tmp_path / "index").glob("vectors-*.faiss"):
        file.unlink()
    with VectorStore.open(tmp_path / "index") as again:
        assert again.search(bag("blue"), k=3) == before
    assert len(list((tmp_path / "index").glob("vectors-*.faiss"))) == 1


def test_a_stale_vector_file_is_brought_up_to_date(store: VectorStore, tmp_path: Path,
                                                   videos: list[Path]):
    old = next((tmp_path / "index").glob("vectors-*.faiss"))
    new = tmp_path / "videos" / "e.mp4"
    new.write_text("green green green")
    store.add_file(new, FileStat.of(new), [Segment(0, 1)], bag("green green green")[None])
    videos[3].unlink()
    store.remove_missing()
    store.close()                       # as a run killed before writing the faiss copy
    with VectorStore.open(tmp_path / "index") as again:
        [hits] = again.search(bag("green green green"), k=10)
        assert Path(hits[0].path).name == "e.mp4"
        assert str(videos[3]) not in {h.path for h in hits} and len(hits) == 7
    files = list((tmp_path / "index").glob("vectors-*.faiss"))
    assert len(files) == 1 and files[0] != old


def test_an_unwritable_folder_still_searches(store: VectorStore, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch):
    for file in (tmp_path / "index").glob("vectors-*.faiss"):
        file.unlink()

    def refuse(index, path):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(vectors, "write", refuse)
    [hits] = store.search(bag("red circle"), k=1)
    assert Path(hits[0].path).name == "a.mp4"
    assert not list((tmp_path / "index").glob("vectors-*.faiss"))


# ---------------------------------------------------------------------------------------------
# the approximate index


def _clustered(n: int, dim: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((20, dim))
    return centres[rng.integers(0, 20, n)] + 0.3 * rng.standard_normal((n, dim))


def test_the_index_turns_approximate_past_the_threshold(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(vectors, "APPROXIMATE_FROM", 300)
    monkeypatch.setattr(vectors, "TRAIN_PER_LIST", 40)
    dim, rows = 16, _clustered(400, 16, 0)
    store = VectorStore.create(tmp_path / "index", Fingerprint("m", dim))
    with store.batch():
        for i, row in enumerate(rows):
            path = tmp_path / f"{i}.mp4"
            path.write_text(str(i))
            store.add_file(path, FileStat.of(path), [Segment()], row[None])
    store.sync_vectors()
    assert store.stats().vectors_kind == f"ivf{vectors.nlist_for(400)}" == "ivf16"

    queries = _clustered(30, dim, 1)
    unit = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    truth = [set(np.argsort(-(unit @ x))[:10]) for x in q]

    def found(hits) -> set[int]:
        return {int(Path(h.path).stem) for h in hits}

    exact = store.search(queries, k=10, exact=True)
    assert [found(h) for h in exact] == truth

    def recall(hits) -> float:
        return float(np.mean([len(found(h) & t) / 10 for h, t in zip(hits, truth)]))

    default = recall(store.search(queries, k=10))         # 2 of 16 lists
    assert 0.75 <= default < 1.0
    assert recall(store.search(queries, k=10, nprobe=8)) > default

    # removing a file from the IVF index by id (no rebuild): it never comes back
    for i in range(50):
        (tmp_path / f"{i}.mp4").unlink()
    assert len(store.remove_missing()) == 50
    hits = store.search(queries, k=10, exact=True)
    assert all(int(Path(h.path).stem) >= 50 for row in hits for h in row)
    assert store.stats().vectors_kind == "ivf16"        # updated in place, not rebuilt
    store.close()


def test_kind_for_counts():
    assert vectors.kind_for(10) == "flat"
    assert vectors.kind_for(vectors.APPROXIMATE_FROM - 1) == "flat"
    assert vectors.kind_for(100_000) == "ivf256"
    assert vectors.kind_for(1_000_000) == "ivf1024"


def test_files_are_stored_by_absolute_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    Path("v.mp4").write_text("red")
    with VectorStore.create("index", FINGERPRINT) as store:
        store.add_file(Path("v.mp4"), FileStat.of("v.mp4"), [Segment()], bag("red")[None])
        [[hit]] = store.search(bag("red"), k=1)
    assert hit.path == os.path.join(str(tmp_path.resolve()), "v.mp4")


def test_searches_from_several_threads(store: VectorStore):
    from concurrent.futures import ThreadPoolExecutor
    queries = [bag(t) for t in ("red circle", "green square", "blue grows", "left")] * 5
    expected = [store.search(q, k=3)[0] for q in queries]
    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(lambda q: store.search(q, k=3)[0], queries)) == expected


def test_a_read_only_database_still_searches(store: VectorStore, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch):
    for file in (tmp_path / "index").glob("vectors-*.faiss"):
        file.unlink()
    store.close()
    with VectorStore.open(tmp_path / "index") as again:
        def read_only():
            raise sqlite3.OperationalError("attempt to write a readonly database")

        monkeypatch.setattr(again, "batch", read_only)
        [hits] = again.search(bag("red circle"), k=1)
    assert Path(hits[0].path).name == "a.mp4"
    assert not list((tmp_path / "index").glob("vectors-*.faiss"))


def test_a_searching_store_sees_another_writers_changes(store: VectorStore, tmp_path: Path,
                                                        videos: list[Path]):
    with VectorStore.open(tmp_path / "index") as reader:
        assert len(reader.search(bag("red"), k=10)[0]) == 7
        videos[0].unlink()
        store.remove_missing()                       # another connection writes
        new = tmp_path / "videos" / "z.mp4"
        new.write_text("blue blue blue")
        store.add_file(new, FileStat.of(new), [Segment(0, 1)], bag("blue blue blue")[None])
        [hits] = reader.search(bag("blue blue blue"), k=10)
        assert Path(hits[0].path).name == "z.mp4" and len(hits) == 6
        assert str(videos[0]) not in {h.path for h in hits}
