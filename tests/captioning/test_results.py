"""vidcap.captioning.results: the JSON Lines results log (resume, torn lines, parts, settings)
and vidcap.captioning.inputs (walking folders, lists of paths, the on-disk list of work)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from vidcap.captioning.inputs import TodoList, iter_inputs, iter_listed, path_key
from vidcap.captioning.results import ResultsError, ResultsLog, read_results
from vidcap.errors import VidcapError


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_session_appends_each_result_and_a_rerun_sees_them_done(tmp_path: Path):
    out = tmp_path / "results.jsonl"
    with ResultsLog(out, "path").session() as (done, appender):
        assert done == set()
        appender.write({"path": "a.mp4", "caption": "x"})
        assert lines(out) == [{"path": "a.mp4", "caption": "x"}]  # on disk at once
        appender.write({"path": "b.mp4", "caption": "y"})
    with ResultsLog(out, "path").session() as (done, _):
        assert done == {path_key("a.mp4"), path_key("b.mp4")}


def test_a_torn_last_line_is_cut_off_and_its_video_counts_as_not_done(tmp_path: Path):
    out = tmp_path / "results.jsonl"
    out.write_text('{"path": "a.mp4", "caption": "x"}\n{"path": "b.mp4", "capt')
    assert [r["path"] for r in read_results(out, "path")] == ["a.mp4"]
    with ResultsLog(out, "path").session() as (done, appender):
        assert done == {path_key("a.mp4")}
        appender.write({"path": "b.mp4", "caption": "y"})
    assert [r["path"] for r in lines(out)] == ["a.mp4", "b.mp4"]
    out.write_text('{"path": "a.mp4"')  # a first line torn: nothing is done
    with ResultsLog(out, "path").session() as (done, _):
        assert done == set()
    assert out.read_text() == ""


@pytest.mark.parametrize("content", ["not json at all\n", '["a list"]\n',
                                     '{"video_id": "v1"}\n', "\x00\x01binary\n"])
def test_a_file_that_is_not_a_results_log_is_refused_untouched(tmp_path: Path, content: str):
    out = tmp_path / "results.jsonl"
    out.write_text(content)
    with pytest.raises(ResultsError, match="results.jsonl:1: not a vidcap results line"):
        with ResultsLog(out, "path").session():
            pass
    assert out.read_text() == content


def test_a_symbolic_link_or_a_folder_is_refused(tmp_path: Path):
    real = tmp_path / "real.jsonl"
    real.write_text("")
    (tmp_path / "link.jsonl").symlink_to(real)
    with pytest.raises(ResultsError, match="symbolic link"):
        with ResultsLog(tmp_path / "link.jsonl", "path").session():
            pass
    (tmp_path / "dir.jsonl").mkdir()
    with pytest.raises(ResultsError, match="not a regular file"):
        with ResultsLog(tmp_path / "dir.jsonl", "path").session():
            pass


def test_two_jobs_never_append_to_one_log(tmp_path: Path):
    out = tmp_path / "results.jsonl"
    with ResultsLog(out, "path").session():
        with pytest.raises(ResultsError, match="another vidcap job"):
            with ResultsLog(out, "path").session():
                pass


def test_leftover_parts_are_folded_in_rank_order_without_repeats(tmp_path: Path):
    out = tmp_path / "results.jsonl"
    log = ResultsLog(out, "path")
    out.write_text('{"path": "a"}\n')
    log.part(1).write_text('{"path": "c"}\n{"path": "d"}\n{"path": "e", "cap')  # torn
    log.part(0).write_text('{"path": "b"}\n{"path": "a"}\n')  # a: in the log already
    with log.session() as (done, _):
        assert done == {path_key(p) for p in "abcd"}
    assert [r["path"] for r in lines(out)] == ["a", "b", "c", "d"]
    assert log.leftover_parts() == []


def test_settings_that_differ_start_the_log_afresh(tmp_path: Path):
    out = tmp_path / "predictions.jsonl"
    with ResultsLog(out, "video_id", {"decode": "greedy"}).session() as (_, appender):
        appender.write({"video_id": "v1", "caption": "x"})
    with ResultsLog(out, "video_id", {"decode": "greedy"}).session() as (done, _):
        assert done == {path_key("v1")}
    with ResultsLog(out, "video_id", {"decode": "beam"}).session() as (done, _):
        assert done == set()
    assert lines(out) == [{"settings": {"decode": "beam"}}]
    assert list(read_results(out, "video_id")) == []


def test_iter_inputs_walks_folders_in_name_order_and_keeps_missing_files(tmp_path: Path):
    for name in ("b.mp4", "a.MKV", "notes.txt", ".hidden.mp4", "sub/c.avi", "sub/deep/d.mp4"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "loop").symlink_to(tmp_path)  # never followed
    assert list(iter_inputs([tmp_path])) == [tmp_path / "a.MKV", tmp_path / "b.mp4"]
    assert list(iter_inputs([tmp_path, "missing.mp4"], recursive=True)) == [
        tmp_path / "a.MKV", tmp_path / "b.mp4", tmp_path / "sub" / "c.avi",
        tmp_path / "sub" / "deep" / "d.mp4", Path("missing.mp4")]


def test_iter_listed_streams_paths_and_skips_blanks_and_comments(tmp_path: Path):
    listing = tmp_path / "list.txt"
    listing.write_text("# videos\nx/a.mp4\n\n  \n/abs/b.mp4\r\nc d.mp4\n")
    paths = iter_listed(listing)
    assert next(paths) == "x/a.mp4"  # lazily, a line at a time
    assert list(paths) == ["/abs/b.mp4", "c d.mp4"]
    with pytest.raises(VidcapError, match="list of paths not found"):
        list(iter_listed(tmp_path / "missing.txt"))


def test_todo_list_reads_any_index_back_in_any_process(tmp_path: Path):
    items = [f"video-{i}.mp4" for i in range(50)] + ["naïve ☃.mp4"]
    with TodoList.build(iter(items), tmp_path) as todo:
        assert len(todo) == 51 and todo[50] == "naïve ☃.mp4" and todo[-2] == "video-49.mp4"
        assert todo[3:6] == items[3:6]
        pid = os.fork()
        if pid == 0:  # a forked worker reads through a descriptor of its own
            os._exit(0 if [todo[i] for i in range(51)] == items else 1)
        assert os.waitpid(pid, 0)[1] == 0
        assert list(todo) == items
        file = todo.file
    assert not file.exists()
    with pytest.raises(VidcapError, match="line break"):
        TodoList.build(["good.mp4", "bad\nname.mp4"], tmp_path)
    assert list(tmp_path.iterdir()) == []  # nothing left behind
