"""`vidcap caption`: files and folders, bad files reported and skipped, text / json / vtt."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from vidcap.captioning.inputs import find_videos
from vidcap.captioning.subtitles import vtt_text
from vidcap.cli import main
from vidcap.data.manifest import read_manifest


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


def test_a_folder_with_a_corrupt_file_gives_two_captions_one_error_and_fails(
        tiny_run: Path, folder: Path):
    done = subprocess.run([sys.executable, "-m", "vidcap", "caption", str(tiny_run), str(folder)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    lines = done.stdout.strip().splitlines()
    assert [line.split("\t")[0] for line in lines] == [str(folder / "a.mp4"), str(folder / "b.mp4")]
    assert all(line.split("\t")[1].strip() for line in lines)
    errors = [line for line in done.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and "broken.mp4" in errors[0]
    assert "Traceback" not in done.stderr


def test_json_lists_the_captions(tiny_run: Path, folder: Path, capsys):
    assert main(["caption", str(tiny_run), str(folder / "a.mp4"), str(folder / "b.mp4"),
                 "--format", "json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert [item["video"] for item in listing] == [str(folder / "a.mp4"), str(folder / "b.mp4")]
    assert all(isinstance(item["caption"], str) for item in listing)


def test_vtt_writes_a_cue_spanning_the_clip_beside_the_video(tiny_run: Path, folder: Path):
    assert main(["caption", str(tiny_run), str(folder / "a.mp4"), "--format", "vtt"]) == 0
    text = (folder / "a.vtt").read_text()
    assert text.startswith("WEBVTT\n")
    assert "00:00:00.000 --> 00:00:02.000" in text  # 16 frames at 8 fps


def test_vtt_text_formats_hours_and_flattens_the_caption():
    assert vtt_text("a red\ncircle  moves", 3725.5) == (
        "WEBVTT\n\n1\n00:00:00.000 --> 01:02:05.500\na red circle moves\n")


def test_find_videos_takes_video_files_of_a_folder_and_keeps_missing_paths(folder: Path):
    found = find_videos([folder, folder / "missing.mp4"])
    assert found == [folder / "a.mp4", folder / "b.mp4", folder / "broken.mp4",
                     folder / "missing.mp4"]


def test_a_folder_without_videos_is_one_clear_error(tiny_run: Path, tmp_path: Path, capsys):
    assert main(["caption", str(tiny_run), str(tmp_path)]) == 2
    assert "no video files" in capsys.readouterr().err
