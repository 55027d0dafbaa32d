"""vidcap.data.msrvtt: the official files (real, zipped as downloaded) and malformed ones."""

from __future__ import annotations

import json
import zipfile

import pytest

from vidcap.data.prepare import prepare_dataset
from vidcap.data.manifest import read_manifest, summarize
from vidcap.data.msrvtt import read_msrvtt
from vidcap.errors import DatasetError, ManifestError


def _info(videos, sentences) -> dict:
    return {"info": {"year": "2016"}, "videos": videos, "sentences": sentences}


def _video(i: int, split: str) -> dict:
    return {"category": 3, "url": f"https://www.youtube.com/watch?v=x{i}", "video_id": f"video{i}",
            "start time": 10.5, "end time": 24.0, "split": split, "id": i}


def test_real_files_give_the_official_split(shared_data, tmp_path):
    folder = shared_data / "msrvtt"
    out = prepare_dataset("msrvtt", [folder / "train_val_annotation.zip",
                                     folder / "test_videodatainfo.json.zip"],
                          out=tmp_path / "msrvtt.jsonl", no_videos=True)
    records = read_manifest(out)
    stats = summarize(records)
    assert {s: (int(v["videos"]), int(v["captions"])) for s, v in stats.items()} == {
        "train": (6513, 130260), "val": (497, 9940), "test": (2990, 59800)}
    assert all(len(r.captions) == 20 for r in records)
    by_id = {r.video_id: r for r in records}
    # the official ranges (readme.txt): train video0..6512, val 6513..7009, test 7010..9999
    assert {by_id[f"video{i}"].split for i in (0, 6512)} == {"train"}
    assert {by_id[f"video{i}"].split for i in (6513, 7009)} == {"val"}
    assert {by_id[f"video{i}"].split for i in (7010, 9999)} == {"test"}
    # the clips are already cut: YouTube times go to extra, not start/end
    v7010 = by_id["video7010"]
    assert (v7010.start, v7010.end) == (None, None)
    assert (v7010.extra["youtube_start"], v7010.extra["youtube_end"]) == (401.51, 419.65)
    assert v7010.extra["url"] == "https://www.youtube.com/watch?v=Sa4BUsvAcjc"
    # captions in sen_id order, stripped (the file has some with a trailing space)
    assert v7010.captions == [c.strip() for c in v7010.captions]
    # the official id lists of collaborative-experts agree
    listed = (folder / "collaborative-experts" / "test_list_full.txt").read_text().split()
    assert sorted(listed) == sorted(r.video_id for r in records if r.split == "test")


def test_json_files_and_videos_in_the_release_folders(tmp_path):
    ann = tmp_path / "train_val_videodatainfo.json"
    ann.write_text(json.dumps(_info(
        [_video(0, "train"), _video(1, "validate")],
        [{"video_id": "video1", "caption": "b second", "sen_id": 5},
         {"video_id": "video1", "caption": "a first", "sen_id": 2},
         {"video_id": "video0", "caption": " a man\n cooks ", "sen_id": 0},
         {"video_id": "video0", "caption": "  ", "sen_id": 1}])))
    test_zip = tmp_path / "test_videodatainfo.json.zip"
    with zipfile.ZipFile(test_zip, "w") as archive:
        archive.writestr("test_videodatainfo.json", json.dumps(_info(
            [_video(7010, "test")], [{"video_id": "video7010", "caption": "x", "sen_id": 9}])))
    for sub, name in (("TrainValVideo", "video0.mp4"), ("TrainValVideo", "video1.mp4"),
                      ("TestVideo", "video7010.mp4")):
        (tmp_path / "videos" / sub).mkdir(parents=True, exist_ok=True)
        (tmp_path / "videos" / sub / name).write_bytes(b"")
    out = prepare_dataset("msrvtt", [ann, test_zip], videos=tmp_path / "videos",
                          out=tmp_path / "m.jsonl", allow_partial=True)
    records = {r.video_id: r for r in read_manifest(out)}
    assert records["video0"].captions == ["a man cooks"]
    assert records["video1"].captions == ["a first", "b second"]
    assert records["video1"].split == "val"
    assert records["video7010"].path == "videos/TestVideo/video7010.mp4"


@pytest.mark.parametrize("data, problem", [
    ({"videos": []}, "no `sentences`"),
    (_info([{"video_id": "video0"}], []), r"videos\[0\]: no `split`"),
    (_info([_video(0, "dev")], []), "unknown split 'dev'"),
    (_info([_video(0, "train")], [{"video_id": "video0", "caption": 3}]),
     r"sentences\[0\]: `caption` has the wrong type"),
    (_info([_video(0, "train")], [{"video_id": "video9", "caption": "x"}]),
     "captions of 1 videos not listed"),
    (_info([_video(0, "train"), _video(0, "test")], []), "video0 is also in"),
])
def test_malformed_files_name_the_file_and_entry(tmp_path, data, problem):
    path = tmp_path / "test_videodatainfo.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ManifestError, match=problem) as err:
        read_msrvtt([path])
    assert str(path) in str(err.value)


def test_not_json_and_zip_without_annotations(tmp_path):
    path = tmp_path / "test_videodatainfo.json"
    path.write_text('{"videos": [')
    with pytest.raises(ManifestError, match="not valid JSON"):
        read_msrvtt([path])
    archive = tmp_path / "train_val_annotation.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("readme.txt", "hello")
    with pytest.raises(DatasetError, match="holds no \\*videodatainfo.json"):
        read_msrvtt([archive])
