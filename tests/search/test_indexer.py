"""index_files and Index: incremental, resumable after a crash or a kill, failures named."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from tests.search.conftest import COLLECTION, FINGERPRINT, ToyEmbedder, bag, write_videos
from vidcap.search import (FileEmbedding, FileStat, Fingerprint, Index, SearchIndexError,
                           VectorStore, embed_each, index_files)
from vidcap.search.store import DATABASE

ROOT = Path(__file__).resolve().parents[2]


def _rows(index_dir: Path) -> tuple[int, int]:
    """(segments, distinct (path, start) pairs) as the database holds them."""
    with sqlite3.connect(index_dir / DATABASE) as db:
        rows = db.execute("SELECT f.path, s.start_s FROM segments s "
                          "JOIN files f ON f.id = s.file_id").fetchall()
    return len(rows), len(set(rows))


def test_first_run_adds_everything_second_run_nothing(tmp_path: Path, videos: list[Path]):
    embedder = ToyEmbedder()
    with Index.open_or_create(tmp_path / "index", embedder) as index:
        report = index.add(videos)
        assert sorted(report.added) == sorted(map(str, videos)) and report.unchanged == 0
        assert report.summary() == "4 added, 0 unchanged, 0 failed, 0 removed"
        again = index.add(videos)
        assert again.added == [] and again.unchanged == 4
    assert embedder.embedded == videos          # each file embedded once over both runs
    assert _rows(tmp_path / "index") == (7, 7)


def test_changed_new_and_deleted_files(tmp_path: Path, videos: list[Path]):
    embedder = ToyEmbedder()
    index = Index.open_or_create(tmp_path / "index", embedder)
    index.add(videos)
    videos[0].write_text("green green right")                # 2 segments -> 1
    videos[3].unlink()
    extra = write_videos(tmp_path / "videos", {"e.mp4": "blue blue"})
    embedder.embedded.clear()
    report = index.add(videos[:3] + extra)
    assert sorted(report.added) == sorted([str(videos[0]), str(extra[0])])
    assert report.unchanged == 2 and report.removed == [str(videos[3])]
    assert embedder.embedded == [videos[0], extra[0]]
    assert _rows(tmp_path / "index") == (6, 6)               # 7 - 2 + 1 - 1 + 1
    [top] = index.search("green green right", k=1)
    assert (top.path, top.start) == (str(videos[0]), 0.0)
    assert str(videos[3]) not in {h.path for h in index.search("red square grows", k=10)}
    index.close()


def test_files_given_in_a_later_run_are_kept(tmp_path: Path, videos: list[Path]):
    index = Index.open_or_create(tmp_path / "index", ToyEmbedder())
    index.add(videos[:2])
    report = index.add(videos[2:])          # other files, the first ones still exist
    assert report.removed == [] and index.stats().files == 4
    index.close()


def test_unreadable_files_are_named_and_retried_only_when_asked_or_changed(
        tmp_path: Path, videos: list[Path]):
    broken = write_videos(tmp_path / "videos", {"bad.mp4": "BROKEN"})[0]
    missing = tmp_path / "videos" / "absent.mp4"
    embedder = ToyEmbedder()
    index = Index.open_or_create(tmp_path / "index", embedder)
    report = index.add(videos + [broken, missing])
    assert len(report.added) == 4
    failed = dict(report.failed)
    assert set(failed) == {str(broken), str(missing.resolve())}
    assert "cannot decode" in failed[str(broken)] and "No such file" in failed[str(missing)]
    assert index.stats().failed == 1                         # the missing one is not stored

    embedder.embedded.clear()
    again = index.add(videos + [broken])
    assert again.failed == [] and [p for p, _ in again.still_failed] == [str(broken)]
    assert embedder.embedded == [] and "1 failed before and not retried" in again.summary()

    retried = index.add([broken], retry_failed=True)
    assert embedder.embedded == [broken] and [p for p, _ in retried.failed] == [str(broken)]

    broken.write_text("red square")                          # fixed: it changed, so it is tried
    fixed = index.add(videos + [broken])
    assert fixed.added == [str(broken)] and index.stats().failed == 0
    index.close()


def test_a_crash_mid_run_loses_nothing_and_repeats_nothing(tmp_path: Path):
    paths = write_videos(tmp_path / "videos", {f"{i}.mp4": f"red circle {i}" for i in range(6)})
    crashing = ToyEmbedder(fail_after=4)
    store = VectorStore.create(tmp_path / "index", FINGERPRINT)
    with pytest.raises(RuntimeError, match="simulated crash"):
        index_files(store, paths, crashing.embed_videos)
    store.close()
    assert crashing.embedded == paths[:4]

    resumed = ToyEmbedder()
    with VectorStore.open(tmp_path / "index") as store:
        report = index_files(store, paths, resumed.embed_videos)
        assert resumed.embedded == paths[4:]                   # the 4 stored are not redone
        assert report.unchanged == 4 and len(report.added) == 2
        assert _rows(tmp_path / "index") == (6, 6)
        [hits] = store.search(bag("red circle")[None], k=10)
        assert sorted(h.path for h in hits) == sorted(map(str, paths))


KILLED_RUN = """
import os, signal, sys
from pathlib import Path
sys.path[:0] = [{root!r}, {src!r}]
from tests.search.conftest import ToyEmbedder
from vidcap.search import VectorStore, index_files

class Killed(ToyEmbedder):
    def embed_file(self, path):
        if len(self.embedded) > {stored}:
            os.kill(os.getpid(), signal.SIGKILL)     # no cleanup, no finally, no atexit
        return super().embed_file(path)

paths = [Path(p) for p in sys.argv[2:]]
store = VectorStore.open_or_create(sys.argv[1], ToyEmbedder.fingerprint)
index_files(store, paths, Killed().embed_videos)
"""


def test_a_run_killed_with_sigkill_resumes_without_duplicates(tmp_path: Path):
    paths = write_videos(tmp_path / "videos", {f"{i}.mp4": f"blue square {i}" for i in range(5)})
    script = KILLED_RUN.format(root=str(ROOT), src=str(ROOT / "src"), stored=3)
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(script),
                           str(tmp_path / "index"), *map(str, paths)],
                          check=False, capture_output=True, text=True, timeout=120)
    assert done.returncode == -signal.SIGKILL, done.stderr
    assert _rows(tmp_path / "index") == (3, 3)                # killed while embedding the 4th
    assert not list((tmp_path / "index").glob("vectors-*.faiss"))   # never got that far
    resumed = ToyEmbedder()
    with Index.open(tmp_path / "index", resumed) as index:
        report = index.add(paths)
        assert report.unchanged == 3 and resumed.embedded == paths[3:]
        assert _rows(tmp_path / "index") == (5, 5)
        assert {h.path for h in index.search("blue square", k=10)} == set(map(str, paths))


def test_embedder_mistakes(tmp_path: Path, videos: list[Path]):
    store = VectorStore.create(tmp_path / "index", FINGERPRINT)

    def stranger(paths):
        yield FileEmbedding(tmp_path / "never-asked.mp4", error="?")

    with pytest.raises(SearchIndexError, match="never-asked.mp4: the embedder returned a file"):
        index_files(store, videos, stranger)

    def lazy(paths):                      # returns nothing for the last file
        toy = ToyEmbedder()
        yield from toy.embed_videos(paths[:-1])

    report = index_files(store, videos, lazy)
    assert report.failed == [(str(videos[-1]), "the embedder returned nothing for it")]
    assert store.needs(videos[-1], FileStat.of(videos[-1]))   # not recorded: tried next time
    store.close()


def test_embed_each_turns_expected_failures_into_results(tmp_path: Path, videos: list[Path]):
    def embed_file(path: Path):
        if path.name == "b.mp4":
            raise OSError(5, "Input/output error")
        return ToyEmbedder().embed_file(path)

    results = list(embed_each(embed_file)(videos))
    assert [r.path for r in results] == videos
    assert results[1].error == "[Errno 5] Input/output error" and results[1].vectors is None
    assert results[0].error is None and results[0].vectors.shape == (2, len(bag("")))

    def buggy(path: Path):
        raise ZeroDivisionError("a bug is not a bad file")

    with pytest.raises(ZeroDivisionError):
        list(embed_each(buggy)(videos))


def test_index_needs_the_same_model_to_search(tmp_path: Path, videos: list[Path]):
    with Index.open_or_create(tmp_path / "index", ToyEmbedder()) as index:
        index.add(videos)
    with Index.open(tmp_path / "index") as bare:
        with pytest.raises(SearchIndexError, match="opened without a model"):
            bare.search("red")
        assert bare.store.search(bag("red circle left"), k=1)[0][0].path == str(videos[0])

    class Other(ToyEmbedder):
        fingerprint = Fingerprint("other-weights", FINGERPRINT.dim)

    with pytest.raises(SearchIndexError, match="not of model 'other-weights'"):
        Index.open(tmp_path / "index", Other())


def test_search_many_embeds_queries_in_one_batch(tmp_path: Path, videos: list[Path]):
    calls = []

    class Counting(ToyEmbedder):
        def embed_text(self, texts):
            calls.append(list(texts))
            return super().embed_text(texts)

    with Index.open_or_create(tmp_path / "index", Counting()) as index:
        index.add(videos)
        first, second = index.search_many(["red circle left", "green square right"], k=2)
    assert calls == [["red circle left", "green square right"]]
    assert Path(first[0].path).name == "a.mp4" and Path(second[0].path).name == "b.mp4"
    assert np.isclose(first[0].score, 1.0, atol=1e-3) and len(COLLECTION) == 4


def test_open_with_builds_the_embedder_from_the_recorded_run(tmp_path: Path, videos: list[Path]):
    with Index.open_or_create(tmp_path / "index", ToyEmbedder()) as index:
        index.add(videos)
    seen = []

    def load_run(fingerprint: Fingerprint) -> ToyEmbedder:
        seen.append(fingerprint.run)
        return ToyEmbedder()

    with Index.open_with(tmp_path / "index", load_run) as index:
        assert Path(index.search("blue circle left", k=1)[0].path).name == "c.mp4"
    assert seen == ["runs/toy"]

    class Retrained(ToyEmbedder):
        fingerprint = Fingerprint("toy-bag-of-words-v2", FINGERPRINT.dim, "runs/toy")

    with pytest.raises(SearchIndexError, match="not of model 'toy-bag-of-words-v2'"):
        Index.open_with(tmp_path / "index", lambda fingerprint: Retrained())
