"""vidcap.data.prepare (and the readers' shared types): finding video files, missing videos,
captions-only manifests."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from vidcap.cli import main
from vidcap.data.annotations import Clip, VideoName, keep_captions, source_window
from vidcap.data.prepare import index_videos, locate, prepare_dataset
from vidcap.data.manifest import read_manifest
from vidcap.errors import DatasetError


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def test_keep_captions_normalises_whitespace_and_counts_empty_ones():
    kept, empty = keep_captions(["  A man,\n is  Running. ", "", " \t\r\n", "ok"])
    assert kept == ["A man, is Running.", "ok"] and empty == 2


def test_source_window_parses_clip_names():
    assert source_window("-4wsuPCjDBc_5_15") == VideoName("-4wsuPCjDBc", 5.0, 15.0)
    assert source_window("a_b_c_000010_000020") == VideoName("a_b_c", 10.0, 20.0)
    assert source_window("video12") is None
    assert source_window("abc_20_10") is None  # ends before it starts


def test_index_finds_any_extension_in_subfolders_and_prefers_common_ones(tmp_path):
    _touch(tmp_path / "TrainValVideo" / "video0.mp4")
    _touch(tmp_path / "TestVideo" / "video7010.MKV")
    _touch(tmp_path / "clip_1_2.avi")
    _touch(tmp_path / "clip_1_2.webm")  # the .avi ranks after .mp4 but before .webm
    _touch(tmp_path / "notes.txt")
    index = index_videos(tmp_path)
    assert set(index) == {"video0", "video7010", "clip_1_2"}
    assert index["video7010"].name == "video7010.MKV"
    assert index["clip_1_2"].suffix == ".avi"
    with pytest.raises(DatasetError, match="video folder not found"):
        index_videos(tmp_path / "nope")


def test_locate_uses_the_first_name_found_and_writes_relative_or_absolute_paths(tmp_path):
    clips = [Clip("a", "train", ["x"], [VideoName("a_clip"), VideoName("a_src", 3.0, 13.0)]),
             Clip("b", "test", ["y"], [VideoName("b_clip"), VideoName("b_src", 5.0, 15.0)]),
             Clip("c", "val", ["z"], [VideoName("c_clip")])]
    _touch(tmp_path / "data" / "videos" / "a_clip.mp4")
    _touch(tmp_path / "data" / "videos" / "a_src.mp4")
    _touch(tmp_path / "data" / "videos" / "b_src.webm")
    records, missing = locate(clips, tmp_path / "data" / "videos", (tmp_path / "data").resolve())
    assert [m.video_id for m in missing] == ["c"]
    a, b = records
    assert (a.path, a.start, a.end) == ("videos/a_clip.mp4", None, None)
    assert (b.path, b.start, b.end) == ("videos/b_src.webm", 5.0, 15.0)  # full source video
    elsewhere, _ = locate(clips, tmp_path / "data" / "videos", (tmp_path / "manifests").resolve())
    assert Path(elsewhere[0].path).is_absolute()


def _fake_msrvtt(tmp_path: Path, sizes: tuple[int, int, int] = (1, 1, 1)) -> Path:
    """MSR-VTT's train_val file with `sizes` train/validate/test videos, two captions each."""
    import json

    splits = ["train"] * sizes[0] + ["validate"] * sizes[1] + ["test"] * sizes[2]
    videos = [{"video_id": f"video{i}", "split": s, "category": 1, "url": "u", "start time": 1.5,
               "end time": 9.0, "id": i} for i, s in enumerate(splits)]
    sentences = [{"video_id": f"video{i}", "caption": f"caption {i} {k}", "sen_id": 3 * i + k}
                 for i in range(len(splits)) for k in range(2)]
    path = tmp_path / "train_val_videodatainfo.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"info": {}, "videos": videos, "sentences": sentences}))
    return path


def test_missing_videos_fail_unless_allowed(tmp_path, caplog):
    ann = _fake_msrvtt(tmp_path)
    _touch(tmp_path / "videos" / "video0.mp4")
    out = tmp_path / "m.jsonl"
    with pytest.raises(DatasetError) as err:
        prepare_dataset("msrvtt", [ann], videos=tmp_path / "videos", out=out, allow_partial=True)
    message = str(err.value)
    assert "2 of 3 videos not found" in message and "video1" in message and "video2" in message
    assert "--allow-missing" in message and not out.exists()
    with caplog.at_level(logging.WARNING):
        prepare_dataset("msrvtt", [ann], videos=tmp_path / "videos", out=out, allow_missing=True,
                        allow_partial=True)
    assert [r.video_id for r in read_manifest(out)] == ["video0"]
    assert "2 of 3 videos not found" in caplog.text
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="none of the 3 videos found"):
        prepare_dataset("msrvtt", [ann], videos=tmp_path / "empty", out=out, allow_missing=True,
                        allow_partial=True)


def test_a_split_of_another_size_than_the_standard_one(tmp_path, caplog):
    """Splits the files give must have the standard size; absent splits are fine."""
    out = tmp_path / "m.jsonl"
    full_test = _fake_msrvtt(tmp_path / "a", (0, 0, 2990))  # only the test split, complete
    with caplog.at_level(logging.INFO):
        prepare_dataset("msrvtt", [full_test], out=out, no_videos=True)
    assert len(read_manifest(out)) == 2990
    assert "2990 videos with 5980 captions in the annotation files (2990 test)" in caplog.text
    assert "left out: 0 empty captions, 0 videos without a caption" in caplog.text
    short = _fake_msrvtt(tmp_path / "b", (6513, 400, 0))
    with pytest.raises(DatasetError) as err:
        prepare_dataset("msrvtt", [short], out=out, no_videos=True)
    assert str(err.value) == (
        "msrvtt: the annotation files give 6513 of the 6513 train videos, 400 of the 497 val "
        "videos; the standard split differs in val: a truncated or edited file? "
        "(--allow-partial writes the manifest of these 6913 videos)")
    caplog.clear()
    prepare_dataset("msrvtt", [short], out=out, no_videos=True, allow_partial=True)
    assert len(read_manifest(out)) == 6913
    assert "400 of the 497 val videos" in caplog.text and "allow_partial" in caplog.text


def test_captions_only_manifest_and_flag_errors(tmp_path):
    ann = _fake_msrvtt(tmp_path)
    out = prepare_dataset("msrvtt", [ann], out=tmp_path / "m.jsonl", no_videos=True,
                          allow_partial=True)
    records = read_manifest(out)
    assert [(r.video_id, r.split, r.path) for r in records] == [
        ("video0", "train", ""), ("video1", "val", ""), ("video2", "test", "")]
    with pytest.raises(DatasetError, match="not both"):
        prepare_dataset("msrvtt", [ann], videos=tmp_path, out=out, no_videos=True)
    with pytest.raises(DatasetError, match="--videos DIR .* or --no-videos"):
        prepare_dataset("msrvtt", [ann], out=out)
    with pytest.raises(DatasetError, match="unknown dataset"):
        prepare_dataset("kinetics", [ann], out=out, no_videos=True)
    with pytest.raises(DatasetError, match="annotation file not found"):
        prepare_dataset("msrvtt", [tmp_path / "nope.json"], out=out, no_videos=True)


def test_cli_prepare_prints_the_statistics_and_fails_in_one_line(tmp_path, capsys):
    ann = _fake_msrvtt(tmp_path, (6513, 497, 2990))  # the official split's sizes
    out = tmp_path / "m.jsonl"
    assert main(["prepare", "msrvtt", "--annotations", str(ann), "--no-videos",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "6513" in printed and "2990" in printed
    assert main(["prepare", "msrvtt", "--annotations", str(ann), "--videos", str(tmp_path),
                 "--out", str(out)]) == 2  # tmp_path holds no video file
    err = capsys.readouterr().err.strip()
    assert err.startswith("vidcap: error: none of the 10000 videos") and len(err.splitlines()) == 1
    small = _fake_msrvtt(tmp_path / "small")
    assert main(["prepare", "msrvtt", "--annotations", str(small), "--no-videos",
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "1 of the 6513 train videos" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("preset, batch, steps, manifest", [
    ("msvd-paper", 16, 14910, "data/msvd.jsonl"),
    ("msrvtt-paper", 8, 25320, "data/msrvtt.jsonl"),
    ("vatex-paper", 6, 113350, "data/vatex.jsonl"),
])
def test_paper_presets_of_the_three_datasets_load(preset, batch, steps, manifest):
    """configs/<dataset>-paper.yaml extend `paper` with §IV-B's settings for their dataset."""
    from vidcap.config import load_config, resolve_preset

    text = resolve_preset(preset).read_text()
    assert "\nextends: paper\n" in text
    cfg = load_config(preset)
    for stage in (cfg.train.align, cfg.train.caption):
        assert (stage.batch_size, stage.steps, stage.lr) == (batch, steps, 0.01)
        assert (stage.schedule, stage.decay_rate, stage.decay_unit) == ("inverse_time", 0.5, "step")
    assert (cfg.train.optimizer, cfg.train.weight_decay) == ("adam", 0.009)
    assert (cfg.video.num_frames, cfg.video.image_size) == (8, 224)
    assert cfg.model.mapper.num_queries == 50
    assert cfg.data.manifest == manifest
    assert cfg.model.decoder.pretrained == "gpt2"  # the rest comes from `paper`
