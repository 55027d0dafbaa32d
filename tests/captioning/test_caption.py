"""`vidcap caption`: files, folders and lists; bad files reported, counted and skipped; text, json,
jsonl, vtt and srt; the JSON Lines results resumed after a SIGKILL; torchrun with 2 processes
gives what 1 gives."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import webvtt

from vidcap.cli import main
from vidcap.cli.caption import Output, plan_output
from vidcap.errors import VidcapError
from vidcap.data.manifest import read_manifest
from vidcap.data.shapes_long import LongShapesSpec, prepare_long_shapes

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
       "HF_HUB_DISABLE_PROGRESS_BARS": "1", "TOKENIZERS_PARALLELISM": "false"}


def vidcap(*args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "vidcap", *args], env=ENV, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)


def results(path: Path) -> list[tuple[str, str | None, str | None]]:
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    return [(r["path"], r["caption"], r["error"]) for r in lines]


def test_format_and_out_choose_stdout_a_results_log_or_subtitle_files(tmp_path: Path):
    one, many = ["a.mp4"], [str(tmp_path)]
    assert plan_output(None, None, one, None) == Output("text", "stdout")
    assert plan_output(None, "-", many, None) == Output("text", "stdout")
    assert plan_output(None, "r.jsonl", many, None) == Output("jsonl", "log", Path("r.jsonl"))
    assert plan_output("jsonl", None, many, None) == Output("jsonl", "stdout")
    assert plan_output("vtt", None, many, None) == Output("vtt", "files")  # beside each video
    assert plan_output("srt", "subs", many, None) == Output("srt", "files", Path("subs"))
    assert plan_output(None, "a.vtt", one, None) == Output("vtt", "file", Path("a.vtt"))
    assert plan_output("vtt", "-", one, None) == Output("vtt", "stdout")
    for fmt, out, inputs, listed in (("vtt", "-", many, None), ("srt", "-", one, "list.txt"),
                                     ("text", "all.txt", many, None),
                                     ("vtt", "x.jsonl.vtt", many, None)):
        with pytest.raises(VidcapError):
            plan_output(fmt, out, inputs, listed)


@pytest.fixture
def folder(tiny_shapes: Path, tmp_path: Path) -> Path:
    """Two good Shapes clips and one corrupt file (the first 700 bytes of a clip)."""
    records = read_manifest(tiny_shapes, "test")
    out = tmp_path / "clips"
    out.mkdir()
    shutil.copy(records[0].video_path, out / "a.mp4")
    shutil.copy(records[1].video_path, out / "b.mp4")
    (out / "broken.mp4").write_bytes(records[2].video_path.read_bytes()[:700])
    (out / "notes.txt").write_text("not a video")
    return out


def test_a_folder_with_a_bad_file_gives_every_good_caption_a_count_and_exit_1(
        tiny_run: Path, folder: Path):
    done = vidcap("caption", str(tiny_run), str(folder))
    out, err = done.communicate(timeout=300)
    assert done.returncode == 1
    lines = out.strip().splitlines()
    assert [line.split("\t")[0] for line in lines] == [str(folder / "a.mp4"), str(folder / "b.mp4")]
    assert all(line.split("\t")[1].strip() for line in lines)
    errors = [line for line in err.splitlines() if "error" in line]
    assert len(errors) == 1 and "broken.mp4" in errors[0]
    assert "3 videos done, 0 skipped as already done, 1 failed" in err
    assert "Traceback" not in err


def test_json_lists_every_result(tiny_run: Path, folder: Path, capsys):
    assert main(["caption", str(tiny_run), str(folder), "--format", "json",
                 "--workers", "0"]) == 1
    listing = json.loads(capsys.readouterr().out)
    assert [item["path"] for item in listing] == [str(folder / n) for n in
                                                  ("a.mp4", "b.mp4", "broken.mp4")]
    assert [item["caption"] is None for item in listing] == [False, False, True]
    assert "broken.mp4" in listing[2]["error"] and listing[0]["error"] is None


def test_vtt_beside_the_video_one_file_and_stdout(tiny_run: Path, folder: Path, capsys):
    assert main(["caption", str(tiny_run), str(folder / "a.mp4"), "--format", "vtt"]) == 0
    cues = webvtt.read(str(folder / "a.vtt"))
    assert [(c.start, c.end) for c in cues] == [("00:00:00.000", "00:00:02.000")]  # 16 @ 8 fps
    assert main(["caption", str(tiny_run), str(folder / "a.mp4"),
                 "--out", str(folder / "mine.srt")]) == 0  # the format from the name
    assert len(webvtt.from_srt(str(folder / "mine.srt"))) == 1
    capsys.readouterr()
    assert main(["caption", str(tiny_run), str(folder / "b.mp4"), "--format", "vtt",
                 "--out", "-"]) == 0
    assert len(webvtt.from_string(capsys.readouterr().out)) == 1
    assert main(["caption", str(tiny_run), str(folder), "--format", "vtt", "--out", "-"]) == 2


def test_lists_and_sub_folders_are_inputs_too(tiny_run: Path, folder: Path, tmp_path: Path,
                                              capsys):
    (folder / "deeper").mkdir()
    shutil.copy(folder / "a.mp4", folder / "deeper" / "c.mp4")
    listing = tmp_path / "list.txt"
    listing.write_text(f"{folder / 'b.mp4'}\n# a comment\n{folder / 'deeper' / 'c.mp4'}\n")
    assert main(["caption", str(tiny_run), str(folder / "a.mp4"), "--from-list", str(listing),
                 "--format", "jsonl", "--workers", "0"]) == 0
    paths = [json.loads(line)["path"] for line in capsys.readouterr().out.splitlines()]
    assert paths == [str(folder / "a.mp4"), str(folder / "b.mp4"), str(folder / "deeper/c.mp4")]
    assert main(["caption", str(tiny_run), str(folder), "-r", "--out", str(tmp_path / "subs"),
                 "--format", "srt", "--workers", "0"]) == 1  # broken.mp4
    assert sorted(str(p.relative_to(tmp_path / "subs")) for p in
                  (tmp_path / "subs").rglob("*.srt")) == ["a.srt", "b.srt", "deeper/c.srt"]


def test_nothing_to_caption_is_one_clear_error(tiny_run: Path, tmp_path: Path, capsys):
    assert main(["caption", str(tiny_run), str(tmp_path)]) == 2
    assert "no video files" in capsys.readouterr().err


def test_a_truncated_long_video_keeps_its_cues_and_says_where_it_broke(tiny_run: Path,
                                                                     tmp_path: Path, capsys):
    prepare_long_shapes(tmp_path, LongShapesSpec(size=32, seed=77, clips=(4, 4)), 1)
    video = tmp_path / "videos" / "long-00000.mp4"
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(video.read_bytes()[:video.stat().st_size // 2])
    assert main(["caption", str(tiny_run), str(cut), "--segments", "fixed", "--window", "1",
                 "--workers", "0"]) == 1
    out, err = capsys.readouterr()
    cues = out.strip().splitlines()
    assert cues and all(line.startswith(f"{cut}\t00:00:0") for line in cues)
    errors = [line for line in err.splitlines() if line.startswith("vidcap: error")]
    assert len(errors) == 1 and str(cut) in errors[0] and "decoding stopped at" in errors[0]


@pytest.mark.slow
def test_sigkill_then_rerun_captions_every_video_exactly_once(tiny_run: Path, tiny_shapes: Path,
                                                             tmp_path: Path):
    videos = tiny_shapes.parent / "videos"  # 48 clips
    args = ["caption", str(tiny_run), str(videos), "--workers", "1", "--batch-size", "2"]
    whole = vidcap(*args, "--out", str(tmp_path / "whole.jsonl"))
    assert whole.wait(timeout=600) == 0, whole.stderr.read()

    out = tmp_path / "killed.jsonl"
    killed = vidcap(*args, "--out", str(out))
    deadline = time.time() + 600
    while killed.poll() is None and time.time() < deadline and (
            not out.exists() or out.read_text().count("\n") < 6):
        time.sleep(0.01)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert killed.returncode == -signal.SIGKILL, "the job ended before the kill"
    first = out.read_text()
    assert 6 <= first.count("\n") < 48
    next_path = results(tmp_path / "whole.jsonl")[first.count("\n")][0]
    if first.endswith("\n"):  # no line torn by the kill itself: tear one
        out.write_text(first + json.dumps({"path": next_path})[:-8])

    rerun = vidcap(*args, "--out", str(out))
    _, err = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, err
    assert f"{first.count(chr(10))} skipped as already done" in err
    assert results(out) == results(tmp_path / "whole.jsonl")  # each once, in order, same words


@pytest.mark.slow
def test_torchrun_two_processes_write_what_one_writes(tiny_run: Path, tiny_shapes: Path,
                                                      tmp_path: Path):
    videos = tiny_shapes.parent / "videos"
    args = ["caption", str(tiny_run), str(videos), "--workers", "0", "--batch-size", "4"]
    one = vidcap(*args, "--out", str(tmp_path / "one.jsonl"))
    torchrun = Path(sys.executable).with_name("torchrun")
    two = subprocess.Popen([str(torchrun), "--standalone", "--nproc_per_node", "2", "-m",
                            "vidcap", *args, "--out", str(tmp_path / "two.jsonl")],
                           env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert one.wait(timeout=600) == 0, one.stderr.read()
    _, err = two.communicate(timeout=600)
    assert two.returncode == 0, err
    assert "48 videos done" in err
    assert len(results(tmp_path / "one.jsonl")) == 48
    assert results(tmp_path / "two.jsonl") == results(tmp_path / "one.jsonl")
    assert not list(tmp_path.glob("two.jsonl.part-*"))
