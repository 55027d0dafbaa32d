"""vidcap.data.vatex: the original JSON format (fixtures), the real private-test id file."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from vidcap.data.prepare import prepare_dataset
from vidcap.data.manifest import read_manifest
from vidcap.data.vatex import read_vatex, split_from_name, vatex_video_ids, video_names
from vidcap.errors import DatasetError, ManifestError


def _write(path: Path, entries: list) -> Path:
    path.write_text(json.dumps(entries, ensure_ascii=False), encoding="utf-8")
    return path


def _caps(tag: str) -> list[str]:
    return [f"A person {tag} number {k}." for k in range(10)]


def _fixtures(tmp_path: Path) -> list[Path]:
    return [
        _write(tmp_path / "vatex_training_v1.0.json", [
            {"videoID": "Ptf_2VRj-V0_000122_000132", "enCap": _caps("dances"),
             "chCap": ["一个人在跳舞。"] * 10},
            {"videoID": "abc_def_0123_000003_000013", "enCap": ["  ", *_caps("cooks")[:9]],
             "chCap": ["做饭"] * 10}]),
        _write(tmp_path / "vatex_validation_v1.0.json", [
            {"videoID": "--33Lscn6sk_000004_000014", "enCap": _caps("sings"),
             "chCap": ["唱"] * 10}]),
        _write(tmp_path / "vatex_public_test_english_v1.1.json", [
            {"videoID": "zzz_000010_000020", "enCap": _caps("runs")}]),
    ]


def test_split_from_file_names():
    assert split_from_name(Path("vatex_training_v1.0.json")) == "train"
    assert split_from_name(Path("vatex_validation_v1.0.json")) == "val"
    assert split_from_name(Path("vatex_public_test_english_v1.1.json")) == "test"
    assert split_from_name(Path("vatex_private_test_without_annotations.json")) is None
    with pytest.raises(DatasetError, match="cannot tell the split"):
        split_from_name(Path("vatex_stuff.json"))


def test_video_names_as_cut_unpadded_and_full_source():
    names = video_names("abc_def_0123_000003_000013", "here")
    assert [(n.stem, n.start, n.end) for n in names] == [
        ("abc_def_0123_000003_000013", None, None), ("abc_def_0123_3_13", None, None),
        ("abc_def_0123", 3.0, 13.0)]
    with pytest.raises(ManifestError, match="not <youtube id>_<start6>_<end6>"):
        video_names("abc_3_13", "here")


def test_manifest_from_the_three_files_with_every_kind_of_video_name(tmp_path, caplog):
    files = _fixtures(tmp_path)
    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "Ptf_2VRj-V0_000122_000132.mp4").write_bytes(b"")
    (videos / "abc_def_0123_3_13.webm").write_bytes(b"")
    (videos / "--33Lscn6sk.mkv").write_bytes(b"")  # the full YouTube video
    (videos / "zzz_000010_000020.mp4").write_bytes(b"")
    caplog.set_level(logging.INFO)  # the counts of what was left out are logged as info
    out = prepare_dataset("vatex", [tmp_path], videos=videos, out=tmp_path / "vatex.jsonl",
                          allow_partial=True)
    records = {r.video_id: r for r in read_manifest(out)}
    assert {k: r.split for k, r in records.items()} == {
        "Ptf_2VRj-V0_000122_000132": "train", "abc_def_0123_000003_000013": "train",
        "--33Lscn6sk_000004_000014": "val", "zzz_000010_000020": "test"}
    assert len(records["Ptf_2VRj-V0_000122_000132"].captions) == 10
    assert records["abc_def_0123_000003_000013"].captions == _caps("cooks")[:9]  # empty dropped
    assert records["abc_def_0123_000003_000013"].path == "videos/abc_def_0123_3_13.webm"
    full = records["--33Lscn6sk_000004_000014"]
    assert (full.path, full.start, full.end) == ("videos/--33Lscn6sk.mkv", 4.0, 14.0)
    assert (records["zzz_000010_000020"].start, records["zzz_000010_000020"].end) == (None, None)
    assert "left out: 1 empty captions, 0 clips without a caption" in caplog.text
    assert len(files) == 3


def test_real_private_test_file_gives_ids_but_no_manifest(shared_data, tmp_path):
    path = shared_data / "vatex" / "vatex_private_test_without_annotations.json"
    ids = vatex_video_ids(path)
    assert len(ids) == 6278 and ids[0] == "8JW7yCjSyHg_000000_000010"
    assert all(video_names(i, "x") for i in ids)  # every id parses
    with pytest.raises(ManifestError) as err:
        prepare_dataset("vatex", [path], out=tmp_path / "v.jsonl", no_videos=True)
    message = str(err.value)
    assert str(path) in message and "no English captions" in message and "private" in message


@pytest.mark.parametrize("entries, problem", [
    ({"videoID": "x"}, "expected VATEX's JSON list"),
    ([{"enCap": ["a"]}], "entry 0: no `videoID`"),
    ([{"videoID": "abc_000001_000002", "enCap": "a cat"}], "`enCap` must be a list of strings"),
    ([{"videoID": "abc_000001_000002"}], r"entry 0 \(abc_000001_000002\) has no English"),
    ([{"videoID": "abc_1_2", "enCap": ["a"]}], "not <youtube id>_<start6>_<end6>"),
])
def test_malformed_entries_name_the_file_and_entry(tmp_path, entries, problem):
    path = _write(tmp_path / "vatex_validation_v1.0.json", entries)
    with pytest.raises(ManifestError, match=problem) as err:
        read_vatex([path])
    assert str(path) in str(err.value)


def test_a_clip_in_two_files_is_an_error(tmp_path):
    a = _write(tmp_path / "vatex_training_v1.0.json", [{"videoID": "a_000001_000002",
                                                        "enCap": ["x"]}])
    b = _write(tmp_path / "vatex_validation_v1.0.json", [{"videoID": "a_000001_000002",
                                                          "enCap": ["x"]}])
    with pytest.raises(ManifestError, match="a_000001_000002 is also in"):
        read_vatex([a, b])
