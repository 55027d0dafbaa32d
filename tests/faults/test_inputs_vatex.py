"""Bad VATEX annotation files (`vidcap.data.vatex`)."""

from __future__ import annotations

import json

import pytest

from tests.faults.conftest import DEEP_JSON, HUGE_INT, clean, write
from vidcap.data.prepare import prepare_dataset
from vidcap.data.vatex import read_vatex
from vidcap.errors import VidcapError

ENTRY = '{"videoID": "abc_000001_000011", "enCap": ["a man sings"]}'


@pytest.mark.parametrize("data, says", [
    (DEEP_JSON, "deep"),  # before: RecursionError
    (f"[{HUGE_INT}]", "digits"),  # before: ValueError (int digit limit)
    (f"[{ENTRY}]".encode("utf-16"), "UTF-16"),  # before: "not UTF-8 text (invalid start byte)"
    (f"[{ENTRY[:-1]}, \"enCap\": []}}]", "twice"),  # before: the empty `enCap` silently won
    (f"[{ENTRY}, NaN]", ""),  # before: clean ("no `videoID` string"); kept
])
def test_bad_vatex_json(tmp_path, data, says):
    path = write(tmp_path / "vatex_validation_v1.0.json", data)
    with pytest.raises(VidcapError) as err:
        read_vatex([path])
    clean(err, str(path), says)


def test_a_training_file_with_fewer_clips_than_the_release(tmp_path):
    # before: a manifest of 3 training clips, silently (the release has 25991)
    entries = [{"videoID": f"v{i}_000001_000011", "enCap": ["a man sings"]} for i in range(3)]
    path = write(tmp_path / "vatex_training_v1.0.json", json.dumps(entries))
    with pytest.raises(VidcapError) as err:
        prepare_dataset("vatex", [path], no_videos=True, out=tmp_path / "v.jsonl")
    clean(err, "3 of the 25991 train videos")
