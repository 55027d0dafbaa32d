"""vidcap.captioning.subtitles: WebVTT and SRT read back by a real parser (webvtt-py), JSON and
text, and the rules that keep writing subtitle files from destroying anything."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import webvtt

from vidcap.captioning.segments import Cue
from vidcap.captioning.subtitles import (OutputError, SubtitleWriter, json_text, render,
                                         srt_text, timed_text, timestamp, vtt_text)

CUES = [Cue(0.0, 4.0, "a red circle moves to the left"),
        Cue(4.0, 17 / 3, "a <blue> square & a -->  green\ntriangle"),
        Cue(17 / 3, 3725.5, "")]


def test_timestamps_round_to_the_millisecond_and_keep_each_frame():
    assert timestamp(3725.5) == "01:02:05.500"
    assert timestamp(17 / 3, ",") == "00:00:05,667"
    for fps in (8, 24, 25, 29.97, 30, 60):  # every frame time names its own frame
        for k in range(0, 20000, 7):
            millis = int(timestamp(k / fps)[-3:]) + 1000 * sum(
                int(x) * 60 ** i for i, x in enumerate(reversed(timestamp(k / fps)[:8].split(":"))))
            assert round(millis / 1000 * fps) == k


def test_vtt_parses_with_webvtt_py_cue_for_cue(tmp_path: Path):
    text = vtt_text(CUES)
    parsed = webvtt.from_string(text)
    assert [(c.start, c.end) for c in parsed] == [
        ("00:00:00.000", "00:00:04.000"), ("00:00:04.000", "00:00:05.667"),
        ("00:00:05.667", "01:02:05.500")]
    assert [c.text for c in parsed] == [
        "a red circle moves to the left",
        "a &lt;blue&gt; square &amp; a --&gt; green triangle",  # escaped, one line
        "(no description)"]
    assert [c.identifier for c in parsed] == ["1", "2", "3"]
    (tmp_path / "a.vtt").write_text(text)
    assert len(webvtt.read(str(tmp_path / "a.vtt"))) == 3


def test_srt_parses_with_webvtt_py(tmp_path: Path):
    (tmp_path / "a.srt").write_text(srt_text(CUES))
    parsed = webvtt.from_srt(str(tmp_path / "a.srt"))
    assert [(c.start, c.end) for c in parsed] == [
        ("00:00:00.000", "00:00:04.000"), ("00:00:04.000", "00:00:05.667"),
        ("00:00:05.667", "01:02:05.500")]
    assert parsed[1].raw_text == "a <blue> square & a --> green triangle"  # SRT has no escapes


def test_json_and_text():
    assert json.loads(json_text(CUES[:2])) == [
        {"start": 0.0, "end": 4.0, "caption": "a red circle moves to the left"},
        {"start": 4.0, "end": 5.666667,
         "caption": "a <blue> square & a -->  green\ntriangle"}]
    assert timed_text(CUES[:1]) == "00:00:00.000 --> 00:00:04.000\ta red circle moves to the left\n"
    assert render([], "vtt") == "WEBVTT\n\nNOTE written by vidcap\n"


# ---------------------------------------------------------------------------------------------
# writing safely


@pytest.fixture
def videos(tmp_path: Path) -> Path:
    folder = tmp_path / "videos"
    (folder / "sub").mkdir(parents=True)
    for name in ("a.mp4", "a.avi", "b.mp4", "movie.vtt", "sub/c.mp4"):
        (folder / name).write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(64))
    return folder


def test_distinct_inputs_never_map_to_one_name(videos: Path):
    writer = SubtitleWriter("vtt")
    assert writer.target(videos / "b.mp4") == videos / "b.vtt"  # what players look for
    assert writer.target(videos / "a.mp4") == videos / "a.mp4.vtt"  # a.avi shares the stem
    assert writer.target(videos / "a.avi") == videos / "a.avi.vtt"
    assert writer.target(videos / "movie.vtt") == videos / "movie.vtt.vtt"
    out = videos.parent / "subs"
    mirrored = SubtitleWriter("srt", out, roots=[videos])
    assert mirrored.target(videos / "sub" / "c.mp4") == out / "sub" / "c.srt"


def test_a_video_named_like_its_subtitles_is_never_written_over(videos: Path):
    before = (videos / "movie.vtt").read_bytes()
    target = SubtitleWriter("vtt").write(videos / "movie.vtt", CUES[:1])
    assert target == videos / "movie.vtt.vtt" and (videos / "movie.vtt").read_bytes() == before
    assert len(webvtt.read(str(target))) == 1


def test_vidcap_rewrites_its_own_vtt_but_no_file_it_did_not_write(videos: Path):
    writer = SubtitleWriter("vtt")
    target = writer.write(videos / "b.mp4", CUES[:1])
    assert SubtitleWriter("vtt").write(videos / "b.mp4", CUES[:2]) == target  # its own: fine
    assert len(webvtt.read(str(target))) == 2
    target.write_text("WEBVTT\n\n1\n00:00:00.000 --> 00:00:01.000\nhand-made\n")
    with pytest.raises(OutputError, match="not written by vidcap"):
        SubtitleWriter("vtt").write(videos / "b.mp4", CUES[:1])
    assert "hand-made" in target.read_text()
    SubtitleWriter("vtt", overwrite=True).write(videos / "b.mp4", CUES[:1])
    assert "hand-made" not in target.read_text()


def test_srt_and_json_replace_only_identical_files_without_overwrite(videos: Path):
    target = SubtitleWriter("srt").write(videos / "b.mp4", CUES[:1])
    SubtitleWriter("srt").write(videos / "b.mp4", CUES[:1])  # the same content: left as is
    with pytest.raises(OutputError, match="--overwrite"):
        SubtitleWriter("srt").write(videos / "b.mp4", CUES[:2])
    assert target.read_text() == srt_text(CUES[:1])


def test_a_symbolic_link_at_the_target_is_never_followed(videos: Path, tmp_path: Path):
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me")
    (videos / "b.vtt").symlink_to(precious)
    for overwrite in (False, True):
        with pytest.raises(OutputError, match="symbolic link"):
            SubtitleWriter("vtt", overwrite=overwrite).write(videos / "b.mp4", CUES[:1])
    assert precious.read_text() == "keep me" and (videos / "b.vtt").is_symlink()


def test_media_or_a_folder_at_the_target_is_never_replaced(videos: Path, tmp_path: Path):
    (videos / "b.vtt").write_bytes((videos / "b.mp4").read_bytes())  # a video named b.vtt
    with pytest.raises(OutputError, match="looks like media"):
        SubtitleWriter("vtt", overwrite=True).write(videos / "b.mp4", CUES[:1])
    (videos / "b.srt").mkdir()
    with pytest.raises(OutputError, match="not a regular file"):
        SubtitleWriter("srt", overwrite=True).write(videos / "b.mp4", CUES[:1])


def test_two_inputs_of_one_run_never_share_an_output(videos: Path, tmp_path: Path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "b.mp4").write_bytes(b"")
    writer = SubtitleWriter("json", tmp_path / "out")  # flat: both would be out/b.json
    first = writer.write(videos / "b.mp4", CUES[:1])
    with pytest.raises(OutputError, match="already written in this run"):
        writer.write(other / "b.mp4", CUES[1:2])
    assert json.loads(first.read_text())[0]["caption"] == CUES[0].text
