"""Bad MSR-VTT annotation files, as JSON and as the downloaded zips (`vidcap.data.msrvtt`)."""

from __future__ import annotations

import gzip
import json
import zipfile

import pytest

from tests.faults.conftest import DEEP_JSON, clean, write, zipped
from vidcap.data.msrvtt import read_msrvtt
from vidcap.data.prepare import prepare_dataset
from vidcap.errors import VidcapError

NAME = "train_val_videodatainfo.json"
INFO = json.dumps({"videos": [{"video_id": "video0", "split": "train"}],
                   "sentences": [{"video_id": "video0", "caption": "a man cooks", "sen_id": 0}]})


def _stored() -> bytes:
    """The annotation zip with its member stored (not compressed), so bytes can be patched."""
    return zipped({NAME: INFO}, zipfile.ZIP_STORED)


def _patch(data: bytes, header: bytes, offset: int, value: bytes) -> bytes:
    """`data` with `value` written at `offset` into every header starting with `header`."""
    out = bytearray(data)
    at = out.find(header)
    while at >= 0:
        out[at + offset:at + offset + len(value)] = value
        at = out.find(header, at + 1)
    return bytes(out)


def _bad_crc() -> bytes:
    data = _stored()
    at = data.index(b"a man cooks")
    return data[:at] + b"A" + data[at + 1:]


def _encrypted() -> bytes:
    return _patch(_patch(_stored(), b"PK\x01\x02", 8, b"\x01"), b"PK\x03\x04", 6, b"\x01")


@pytest.mark.parametrize("build, says", [
    (_bad_crc, "damaged zip"),  # before: BadZipFile (Bad CRC-32) as a traceback
    (lambda: zipped({NAME: INFO})[:-30], "damaged zip"),  # before: "not UTF-8 text"
    (lambda: zipped({NAME: INFO})[:200], "damaged zip"),  # before: "not UTF-8 text"
    (_encrypted, "encrypted"),  # before: RuntimeError (password required) as a traceback
])
def test_a_damaged_zip_says_it_is_a_damaged_zip(tmp_path, build, says):
    path = write(tmp_path / "train_val_annotation.zip", build())
    with pytest.raises(VidcapError) as err:
        read_msrvtt([path])
    clean(err, str(path), says)


def test_a_zip_bomb_is_refused_before_it_is_unpacked(tmp_path):
    # before: unpacked whole (a 3 MB bomb: MemoryError); here 64 MiB from ~64 KiB
    path = tmp_path / "train_val_annotation.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        with archive.open(NAME, "w") as member:
            member.write(INFO[:-1].encode() + b', "pad": "')
            for _ in range(64):
                member.write(b" " * (1 << 20))
            member.write(b'"}')
    with pytest.raises(VidcapError) as err:
        read_msrvtt([path])
    clean(err, str(path), "zip bomb", "VIDCAP_MAX_ZIP_RATIO")


@pytest.mark.parametrize("data, says", [
    (DEEP_JSON, "deep"),  # before: RecursionError
    (INFO[:-1] + ', "videos": []}', "twice"),  # before: the second `videos` silently won
    (gzip.compress(INFO.encode()), "gzip"),  # before: "not UTF-8 text (invalid start byte)"
])
def test_bad_annotation_json(tmp_path, data, says):
    path = write(tmp_path / NAME, data)
    with pytest.raises(VidcapError) as err:
        read_msrvtt([path])
    clean(err, str(path), says)


def test_a_test_file_with_fewer_videos_than_the_official_split(tmp_path):
    # before: a manifest of 1 "test" video, silently (the official test split has 2990)
    path = write(tmp_path / "test_videodatainfo.json", INFO.replace('"train"', '"test"'))
    with pytest.raises(VidcapError) as err:
        prepare_dataset("msrvtt", [path], no_videos=True, out=tmp_path / "m.jsonl")
    clean(err, "1 of the 2990 test videos")
