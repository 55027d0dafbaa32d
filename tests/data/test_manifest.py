"""The JSON Lines manifest: read, validate (file:line errors), write back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vidcap.data.manifest import VideoRecord, read_manifest, references, summarize, write_manifest
from vidcap.errors import ManifestError

GOOD = {"video_id": "v1", "path": "clips/v1.mp4", "split": "train",
        "captions": ["a dog runs", "a dog is running"], "start": None, "end": None}


def write_lines(path: Path, *lines) -> Path:
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    return path


def test_roundtrip_keeps_fields_extra_keys_and_resolves_paths(tmp_path: Path):
    records = [VideoRecord("v1", "clips/v1.mp4", "train", ["a dog runs"], 1.5, 4.0,
                           {"category": 3}),
               VideoRecord("v2", "/abs/v2.avi", "test", ["a cat sleeps", "a cat naps"])]
    manifest = write_manifest(records, tmp_path / "sub" / "m.jsonl")
    back = read_manifest(manifest)
    assert [r.to_json() for r in back] == [r.to_json() for r in records]
    assert back[0].video_path == tmp_path / "sub" / "clips" / "v1.mp4"
    assert back[1].video_path == Path("/abs/v2.avi")
    assert [r.video_id for r in read_manifest(manifest, "test")] == ["v2"]
    assert references(back) == {"v1": ["a dog runs"], "v2": ["a cat sleeps", "a cat naps"]}
    assert not list((tmp_path / "sub").glob("*.tmp"))


@pytest.mark.parametrize("line, problem", [
    ("{not json", "not valid JSON"),
    ({k: v for k, v in GOOD.items() if k != "captions"}, "missing field 'captions'"),
    ({**GOOD, "split": "dev"}, "unknown split 'dev'"),
    ({**GOOD, "captions": []}, "has no captions"),
    ({**GOOD, "captions": ["fine", "   "]}, "caption 1 of 'v1' is empty"),
    ({**GOOD, "captions": ["fine", ""]}, "caption 1 of 'v1' is empty"),
    ({**GOOD, "captions": [3]}, "is not a string"),
    ({**GOOD, "start": "0:01"}, "`start` must be a number"),
    ({**GOOD, "start": 5, "end": 2}, "must be after `start`"),
    ({**GOOD, "video_id": ""}, "`video_id` must be a non-empty string"),
    ([1, 2], "expected a JSON object"),
])
def test_a_malformed_line_names_the_file_and_line(tmp_path: Path, line, problem):
    manifest = write_lines(tmp_path / "m.jsonl", {**GOOD, "video_id": "v0"}, "", line)
    with pytest.raises(ManifestError) as err:
        read_manifest(manifest)
    assert str(err.value).startswith(f"{manifest}:3: ")
    assert problem in str(err.value)
    assert "\n" not in str(err.value)


def test_repeated_ids_missing_and_empty_files_are_errors(tmp_path: Path):
    with pytest.raises(ManifestError, match="repeats line 1"):
        read_manifest(write_lines(tmp_path / "a.jsonl", GOOD, GOOD))
    with pytest.raises(ManifestError, match="manifest not found"):
        read_manifest(tmp_path / "none.jsonl")
    with pytest.raises(ManifestError, match="manifest is empty"):
        read_manifest(write_lines(tmp_path / "b.jsonl", ""))


def test_summary_counts_videos_and_captions_per_split(tmp_path: Path):
    records = read_manifest(write_lines(tmp_path / "m.jsonl", GOOD,
                                        {**GOOD, "video_id": "v2", "split": "val",
                                         "captions": ["one two three"]}))
    stats = summarize(records)
    assert stats["train"] == {"videos": 1, "captions": 2, "captions_per_video": 2.0,
                              "words_per_caption": 3.5}
    assert stats["val"]["videos"] == 1 and "test" not in stats
