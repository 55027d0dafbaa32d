"""Bad manifests (`vidcap.data.manifest.read_manifest`, what training, evaluation and scoring
read)."""

from __future__ import annotations

import gzip
import json
import tracemalloc

import pytest

from tests.faults.conftest import DEEP_JSON, HUGE_INT, clean, write
from vidcap.data.manifest import read_manifest
from vidcap.errors import VidcapError

GOOD = '{"video_id": "v1", "path": "v1.mp4", "split": "train", "captions": ["a dog runs"]}'


def _with(extra: str) -> str:
    """GOOD with `extra` (JSON text of more members) added to the object."""
    return GOOD[:-1] + ", " + extra + "}"


def test_a_line_over_the_limit_is_refused_without_reading_it_whole(tmp_path, monkeypatch):
    # before: read whole and parsed (a 200 MB line took 3.2 GB); here the limit is lowered to
    # 1 MiB and the line is 16 MiB: the reader must stop near the limit
    monkeypatch.setenv("VIDCAP_MAX_LINE_BYTES", str(1 << 20))
    path = write(tmp_path / "m.jsonl", GOOD + "\n" + _with('"pad": "' + "x" * (16 << 20) + '"'))
    tracemalloc.start()
    try:
        with pytest.raises(VidcapError) as err:
            read_manifest(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    clean(err, f"{path}:2", "VIDCAP_MAX_LINE_BYTES")
    assert peak < 8 << 20


def test_a_manifest_over_the_file_limit_is_refused(tmp_path, monkeypatch):
    # before: no limit on the file
    monkeypatch.setenv("VIDCAP_MAX_FILE_BYTES", "1000")
    path = write(tmp_path / "m.jsonl", "\n".join([GOOD.replace("v1", f"v{i}")
                                                  for i in range(20)]))
    with pytest.raises(VidcapError) as err:
        read_manifest(path)
    clean(err, str(path), "VIDCAP_MAX_FILE_BYTES")


@pytest.mark.parametrize("data, says", [
    ((GOOD + "\n").encode("utf-16"), "UTF-16"),  # before: UnicodeDecodeError
    ((GOOD + "\n").encode("utf-16-le"), "UTF-16"),  # before: "not valid JSON" on NUL bytes
    (_with('"who": "Andr\u00e9"').encode("latin-1"), "UTF-8"),  # before: UnicodeDecodeError
    (gzip.compress((GOOD + "\n").encode()), "gzip"),  # before: UnicodeDecodeError
    (bytes(range(256)) * 4, "binary"),  # before: UnicodeDecodeError
])
def test_a_manifest_that_is_not_utf8_text_says_what_it_is(tmp_path, data, says):
    path = write(tmp_path / "m.jsonl", data)
    with pytest.raises(VidcapError) as err:
        read_manifest(path)
    clean(err, f"{path}:1", says)


@pytest.mark.parametrize("line", ["5", '"a string"', "[1, 2]", "null"])
def test_a_line_that_is_json_but_not_an_object(tmp_path, line):
    # before: clean ("expected a JSON object"); kept
    path = write(tmp_path / "m.jsonl", GOOD + "\n" + line + "\n")
    with pytest.raises(VidcapError) as err:
        read_manifest(path)
    clean(err, f"{path}:2", "JSON object")


@pytest.mark.parametrize("line, says", [
    (_with(f'"n": {HUGE_INT}'), "digits"),  # before: ValueError (int digit limit)
    (DEEP_JSON, "deep"),  # before: RecursionError
    (_with('"start": NaN'), ""),  # before: clean (start checked); kept
    (_with('"score": NaN'), "NaN"),  # before: accepted, written back as invalid JSON
    (_with('"score": -Infinity'), "Infinity"),  # before: accepted
    (_with('"score": 1e400'), "too large"),  # before: read as inf, accepted
    (_with('"split": "test"'), "twice"),  # before: the second `split` silently won
])
def test_json_that_python_accepts_and_vidcap_must_not(tmp_path, line, says):
    path = write(tmp_path / "m.jsonl", line + "\n")
    with pytest.raises(VidcapError) as err:
        read_manifest(path)
    clean(err, f"{path}:1", says)


def test_a_caption_with_a_unicode_line_separator_round_trips(tmp_path):
    # U+2028 is text inside a JSON string (json.dumps writes it as is): a reader splitting
    # lines with str.splitlines() would cut the line there
    caption = "a dog\u2028runs"
    line = json.dumps({"video_id": "v1", "path": "", "split": "test", "captions": [caption]},
                      ensure_ascii=False)
    path = write(tmp_path / "m.jsonl", line + "\n")
    assert read_manifest(path)[0].captions == [caption]
