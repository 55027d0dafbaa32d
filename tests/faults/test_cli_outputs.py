"""Writes never destroy: the output paths of `vidcap score`, `prepare`, `attention` and `caption`
checked before any work (`vidcap.files.check_output`, `vidcap.cli.outputs`). Each test says what
happened before the check."""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.faults.test_cli_boundary import ENV, lines_of
from vidcap.cli import main
from vidcap.data.manifest import read_manifest


def one_error(capsys, *parts: str) -> str:
    """The command's one error line, holding each of `parts`."""
    err = capsys.readouterr().err
    errors = [line for line in lines_of(err) if line.startswith("vidcap: error: ")]
    assert len(errors) == 1 and "Traceback" not in err, err
    for part in parts:
        assert part in errors[0], errors[0]
    return errors[0]


@pytest.fixture
def scored(tiny_shapes: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A prediction file (the first reference of each test video) and a copy of the manifest."""
    refs = tmp_path / "refs.jsonl"
    refs.write_bytes(tiny_shapes.read_bytes())
    pred = tmp_path / "pred.json"
    pred.write_text(json.dumps({r.video_id: r.captions[0]
                                for r in read_manifest(tiny_shapes, "test")}))
    return pred, refs


def score(pred: Path, refs: Path, *more: str) -> int:
    return main(["score", str(pred), str(refs), "--split", "test", *more])


@pytest.mark.parametrize("which", ["references", "predictions"])
def test_score_never_writes_over_its_inputs(scored, capsys, which):
    # before: --out refs.jsonl replaced the reference manifest with the scores (exit 0)
    target = scored[1] if which == "references" else scored[0]
    before = target.read_bytes()
    assert score(*scored, "--out", str(target), "--overwrite") == 2
    one_error(capsys, str(target), "is an input of this command")
    assert target.read_bytes() == before


def test_score_replaces_its_own_scores_but_no_other_file_unless_asked(scored, capsys, java,
                                                                       tmp_path):
    # before: notes.json, a file of the user's, was replaced by the scores without a word
    notes = tmp_path / "notes.json"
    notes.write_text('{"mine": true}\n')
    assert score(*scored, "--out", str(notes)) == 2
    one_error(capsys, str(notes), "not written by vidcap", "--overwrite")
    assert notes.read_text() == '{"mine": true}\n'
    assert score(*scored, "--out", str(notes), "--overwrite") == 0
    assert json.loads(notes.read_text())["Bleu_4"] > 0.5
    notes.write_text(json.dumps({"Bleu_4": 0.1, "CIDEr": 0.2}))  # an earlier run's scores
    assert score(*scored, "--out", str(notes)) == 0
    assert json.loads(notes.read_text())["Bleu_4"] > 0.5


def test_two_options_never_name_one_file(scored, capsys, tmp_path):
    # before: --per-video silently replaced the --out scores written a moment earlier
    same = tmp_path / "s.json"
    assert score(*scored, "--out", str(same), "--per-video", str(same)) == 2
    one_error(capsys, "s.json", "--out and --per-video")


def test_a_symbolic_link_at_the_output_is_refused_even_with_overwrite(scored, capsys,
                                                                        tmp_path):
    # before: the link was replaced by a regular file (the user's link gone, silently)
    target = tmp_path / "target.txt"
    target.write_text("keep me")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    assert score(*scored, "--out", str(link), "--overwrite") == 2
    one_error(capsys, str(link), "symbolic link")
    assert link.is_symlink() and target.read_text() == "keep me"


@pytest.mark.parametrize("kind", ["folder", "pipe", "video"])
def test_a_folder_a_pipe_or_media_at_the_output_is_never_replaced(scored, capsys, tmp_path,
                                                                  tiny_shapes, kind):
    # before: a folder gave an IsADirectoryError traceback; a named pipe (or, as root,
    # /dev/null) was replaced by a regular file; a video was replaced by the scores
    path = tmp_path / {"folder": "sub", "pipe": "pipe", "video": "v.mp4"}[kind]
    if kind == "folder":
        path.mkdir()
    elif kind == "pipe":
        os.mkfifo(path)
    else:
        shutil.copy(read_manifest(tiny_shapes, "test")[0].video_path, path)
    assert score(*scored, "--out", str(path), "--overwrite") == 2
    one_error(capsys, str(path), {"folder": "is a folder", "pipe": "not a regular file",
                                  "video": "looks like media"}[kind])
    mode = os.lstat(path).st_mode
    assert {"folder": stat.S_ISDIR, "pipe": stat.S_ISFIFO, "video": stat.S_ISREG}[kind](mode)


def test_a_read_only_output_folder_is_one_line_before_any_scoring(scored):
    # before: scores computed, then a PermissionError traceback on the temporary file (exit 1)
    shared = Path(tempfile.mkdtemp(prefix="vidcap-ro-"))
    try:
        os.chmod(shared, 0o755)
        for path in scored:
            shutil.copy(path, shared / path.name)
            os.chmod(shared / path.name, 0o644)
        folder = shared / "ro"
        folder.mkdir()
        os.chmod(folder, 0o555)
        as_user: list[str] = []
        if os.geteuid() == 0:  # root writes anywhere: run the command as nobody
            if shutil.which("setpriv") is None:
                pytest.skip("running as root without setpriv to drop privileges")
            as_user = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
        done = subprocess.run([*as_user, sys.executable, "-m", "vidcap", "score",
                               str(shared / "pred.json"), str(shared / "refs.jsonl"), "--split",
                               "test", "--out", str(folder / "s.json")],
                              env={**ENV, "HOME": str(shared)}, cwd=shared, capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 2, done.stderr
        assert lines_of(done.stderr) == [
            f"vidcap: error: {folder / 's.json'}: cannot be written (Permission denied: "
            f"{folder})"]
        assert done.stdout == ""  # refused before scoring
    finally:
        os.chmod(shared / "ro", 0o755)
        shutil.rmtree(shared)


def test_a_full_disk_is_one_line_naming_the_file_and_keeps_the_old_one(monkeypatch, msvd,
                                                                        capsys):
    # before: OSError [Errno 28] as a traceback (exit 1)
    out = msvd.parent / "msvd.jsonl"
    assert prepare(msvd, out) == 0
    before = out.read_bytes()

    def full(path):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("vidcap.files._fsync", full)
    assert prepare(msvd, out) == 2
    one_error(capsys, f"{out}: cannot be written (No space left on device)")
    assert out.read_bytes() == before
    assert sorted(p.name for p in msvd.parent.iterdir()) == [
        "msvd.jsonl", "video_corpus.csv", "youtube_mapping.txt"]  # no temporary left


@pytest.fixture
def msvd(tmp_path: Path) -> Path:
    """A two-clip MSVD corpus CSV beside its YouTube mapping; returns the CSV."""
    folder = tmp_path / "msvd"
    folder.mkdir()
    (folder / "youtube_mapping.txt").write_text("abc_1_2 vid1\ndef_3_4 vid1301\n")
    csv = folder / "video_corpus.csv"
    csv.write_text("VideoID,Start,End,WorkerID,Source,AnnotationTime,Language,Description\n"
                   "abc,1,2,1,clean,9,English,A dog runs\n"
                   "def,3,4,2,clean,9,English,A cat sleeps\n")
    return csv


def prepare(csv: Path, out: Path, *more: str) -> int:
    return main(["prepare", "msvd", "--annotations", str(csv),
                 str(csv.parent / "youtube_mapping.txt"), "--no-videos", "--allow-partial",
                 "--out", str(out), *more])


def test_prepare_never_writes_over_its_annotation_file(msvd, capsys):
    # before: the corpus CSV was replaced by the manifest made from it (exit 0)
    before = msvd.read_bytes()
    assert prepare(msvd, msvd, "--overwrite") == 2
    one_error(capsys, str(msvd), "is an input of this command")
    assert msvd.read_bytes() == before


def test_prepare_never_writes_over_a_video_and_replaces_its_own_manifest(msvd, capsys,
                                                                         tiny_shapes):
    # before: the video was replaced by the manifest (exit 0)
    video = msvd.parent.parent / "v.mp4"
    shutil.copy(read_manifest(tiny_shapes, "test")[0].video_path, video)
    before = video.read_bytes()
    assert prepare(msvd, video, "--overwrite") == 2
    one_error(capsys, str(video), "looks like media")
    assert video.read_bytes() == before
    manifest = msvd.parent.parent / "msvd.jsonl"
    manifest.write_bytes(tiny_shapes.read_bytes())  # a manifest vidcap wrote: replaced
    assert prepare(msvd, manifest) == 0
    assert [r.video_id for r in read_manifest(manifest)] == ["vid1", "vid1301"]
    notes = msvd.parent / "notes.txt"  # in the annotation folder: refused even when asked
    notes.write_text("mine")
    assert main(["prepare", "msvd", "--annotations", str(msvd.parent), "--no-videos",
                 "--allow-partial", "--out", str(notes), "--overwrite"]) == 2
    one_error(capsys, str(notes), "input folder")


def test_attention_never_writes_over_its_video_or_another_image(tiny_run, tiny_shapes, tmp_path,
                                                                capsys):
    # before: --out VIDEO gave matplotlib's ValueError as a traceback; --out photo.png
    # replaced the user's image without a word
    video = tmp_path / "v.mp4"
    shutil.copy(read_manifest(tiny_shapes, "test")[0].video_path, video)
    assert main(["attention", str(tiny_run), str(video), "--out", str(video)]) == 2
    one_error(capsys, "name a .png file")
    photo = tmp_path / "photo.png"
    photo.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    assert main(["attention", str(tiny_run), str(video), "--out", str(photo)]) == 2
    one_error(capsys, str(photo), "not written by vidcap", "--overwrite")
    assert photo.read_bytes() == b"\x89PNG\r\n\x1a\n" + bytes(64)
    assert main(["attention", str(tiny_run), str(video), "--out", str(photo),
                 "--overwrite"]) == 0
    assert main(["attention", str(tiny_run), str(video), "--out", str(photo)]) == 0  # its own
    assert b"tEXtSoftware\x00vidcap" in photo.read_bytes()[:4096]


def test_caption_never_appends_results_to_a_file_that_is_not_a_results_log(tiny_run,
                                                                             tiny_shapes,
                                                                             tmp_path, capsys):
    # before: a results line was appended to the manifest, which no longer read as one
    manifest = tmp_path / "refs.jsonl"
    manifest.write_bytes(tiny_shapes.read_bytes())
    video = str(read_manifest(tiny_shapes, "test")[0].video_path)
    assert main(["caption", str(tiny_run), video, "--out", str(manifest)]) == 2
    one_error(capsys, str(manifest), "not written by vidcap")
    assert manifest.read_bytes() == tiny_shapes.read_bytes()
