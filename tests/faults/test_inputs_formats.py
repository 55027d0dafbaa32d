"""Bad prediction and reference files (`vidcap.evaluation.formats`, what `vidcap score` reads)."""

from __future__ import annotations

import gzip
import json

import pytest

from tests.faults.conftest import DEEP_JSON, HUGE_INT, clean, write
from vidcap.errors import VidcapError
from vidcap.evaluation.formats import load_predictions, load_references


@pytest.mark.parametrize("data, says", [
    (DEEP_JSON, "deep"),  # before: RecursionError
    (f'[{{"video_id": {HUGE_INT}, "caption": "x"}}]', "digits"),  # before: ValueError
    ('{"video_id": "a", "caption": "x"}\n{"video_id": ' + HUGE_INT + ', "caption": "y"}\n',
     ":2"),  # JSON Lines; before: ValueError
    ('{"v1": "a dog", "v1": "a cat"}', "twice"),  # before: the second prediction silently won
    ('{"v1": "a dog"}'.encode("utf-16"), "UTF-16"),  # before: "not UTF-8 text (invalid ...)"
    (gzip.compress(b'{"v1": "a dog"}'), "gzip"),  # before: "not UTF-8 text (invalid ...)"
    ('[{"video_id": NaN, "caption": "x"}]', ""),  # before: clean (id type); kept
])
def test_bad_prediction_files(tmp_path, data, says):
    path = write(tmp_path / "predictions.json", data)
    with pytest.raises(VidcapError) as err:
        load_predictions(path)
    clean(err, str(path), says)


@pytest.mark.parametrize("data, says", [
    ('{"annotations": [{"image_id": ' + DEEP_JSON + "}]}", "deep"),  # before: RecursionError
    ('{"v1": ["a dog"], "v1": ["a cat"]}', "twice"),  # before: the second silently won
    (b"\x00\x01\x02\x03" * 64, "binary"),  # before: "not valid JSON" on binary data
])
def test_bad_reference_files(tmp_path, data, says):
    path = write(tmp_path / "references.json", data)
    with pytest.raises(VidcapError) as err:
        load_references(path)
    clean(err, str(path), says)


def test_json_lines_predictions_with_a_unicode_line_separator(tmp_path):
    # before: str.splitlines() cut the line at U+2028: "not valid JSON" for a valid file
    lines = [json.dumps({"video_id": "v1", "caption": "a dog\u2028runs"}, ensure_ascii=False),
             json.dumps({"video_id": "v2", "caption": "a cat"})]
    path = write(tmp_path / "predictions.jsonl", "\n".join(lines) + "\n")
    assert load_predictions(path) == {"v1": "a dog\u2028runs", "v2": "a cat"}


def test_a_prediction_file_over_the_file_limit(tmp_path, monkeypatch):
    # before: no limit
    monkeypatch.setenv("VIDCAP_MAX_FILE_BYTES", "100")
    path = write(tmp_path / "predictions.json", json.dumps({f"v{i}": "a dog" for i in range(50)}))
    with pytest.raises(VidcapError) as err:
        load_predictions(path)
    clean(err, str(path), "VIDCAP_MAX_FILE_BYTES")


def test_json_lines_predictions_of_one_line(tmp_path):
    # found by tests/property: before, one line `{"video_id": "v1", "caption": "a dog"}` was
    # read as the {video_id: caption} form: predictions for videos "video_id" and "caption"
    path = write(tmp_path / "predictions.jsonl", '{"video_id": "v1", "caption": "a dog"}\n')
    assert load_predictions(path) == {"v1": "a dog"}
