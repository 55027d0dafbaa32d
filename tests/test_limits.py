"""vidcap.limits: the limits (and their environment variables), what bytes look like, the
bounded line and zip readers."""

from __future__ import annotations

import io
import zipfile

import pytest

from vidcap import limits
from vidcap.errors import ConfigError, ManifestError


def test_limits_come_from_the_environment_and_bad_values_are_named(monkeypatch):
    assert limits.LINE_BYTES.value() == 8 << 20
    monkeypatch.setenv("VIDCAP_MAX_LINE_BYTES", "1_000")
    assert limits.LINE_BYTES.value() == 1000
    for bad in ("lots", "-5", "0"):
        monkeypatch.setenv("VIDCAP_MAX_LINE_BYTES", bad)
        with pytest.raises(ConfigError, match="VIDCAP_MAX_LINE_BYTES=.*positive whole number"):
            limits.LINE_BYTES.value()


@pytest.mark.parametrize("head, kind", [
    (b"PK\x03\x04rest", "a zip archive"),
    (b"\x1f\x8b\x08\x00", "gzip-compressed data"),
    ("hi".encode("utf-16"), "UTF-16 text (it starts with a UTF-16 byte-order mark)"),
    ("hello there".encode("utf-16-le"), "UTF-16 text without a byte-order mark"),
    (b"\x00\x00\x00\x18ftypmp42", "an MP4/MOV video"),
    (b"abc\x00\x01\x02\xff" * 8, "binary data"),
    ("caf\u00e9".encode("latin-1"), None),
])
def test_describe_bytes(head, kind):
    assert limits.describe_bytes(head) == kind


def test_lines_end_at_newline_only_and_crlf_is_dropped(tmp_path):
    path = tmp_path / "x.txt"
    path.write_bytes("\ufeffone\r\ntwo\u2028still two\x0cand\n\nlast".encode())
    lines = list(limits.iter_lines(path, ManifestError))
    assert lines == [(1, "one"), (2, "two\u2028still two\x0cand"), (3, ""), (4, "last")]


def test_a_line_exactly_at_the_limit_is_read(tmp_path, monkeypatch):
    monkeypatch.setenv("VIDCAP_MAX_LINE_BYTES", "10")
    path = tmp_path / "x.txt"
    path.write_bytes(b"0123456789\r\n0123456789\n")
    assert [n for n, _ in limits.iter_lines(path, ManifestError)] == [1, 2]
    path.write_bytes(b"0123456789\n0123456789A\n")
    with pytest.raises(ManifestError, match=r"x.txt:2: the line is over the 10 bytes limit"):
        list(limits.iter_lines(path, ManifestError))


def test_folders_devices_and_missing_files_are_clean_errors(tmp_path):
    with pytest.raises(ManifestError, match="is a folder"):
        limits.read_bytes(tmp_path, ManifestError)
    with pytest.raises(ManifestError, match="not a regular file"):
        limits.read_bytes("/dev/zero", ManifestError)
    with pytest.raises(ManifestError, match="cannot be read"):
        limits.read_bytes(tmp_path / "none", ManifestError)


def test_strict_json():
    assert limits.loads_json('{"a": [1, 2.5, "x", null]}', "w", ManifestError) == {
        "a": [1, 2.5, "x", None]}
    for text, problem in (('{"a": 1, "a": 2}', "appears twice"), ("[NaN]", "NaN"),
                          ("[1e999]", "too large"), ("[" + "1" * 500 + "]", "500 digits"),
                          ("[" * 50_000, "nested too deeply"), ("[1,]", "line 1 column 4")):
        with pytest.raises(ManifestError, match=problem):
            limits.loads_json(text, "w", ManifestError)


def _zip(data: bytes, name: str = "a.json") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, data)
    return buffer.getvalue()


def test_zip_ratio_applies_to_members_over_a_mebibyte(tmp_path):
    small = tmp_path / "small.zip"
    small.write_bytes(_zip(b" " * 500_000))  # ~1000:1, but small: harmless
    names, members = limits.read_zip(small, lambda n: True, ManifestError)
    assert names == ["a.json"] and len(members[0][1]) == 500_000
    big = tmp_path / "big.zip"
    big.write_bytes(_zip(b" " * (2 << 20)))
    with pytest.raises(ManifestError, match=r"ratio \d+:1, over the limit of 100:1"):
        limits.read_zip(big, lambda n: True, ManifestError)
    assert limits.is_zip(big) and not limits.is_zip(tmp_path)


def test_a_member_is_refused_from_its_declared_size_before_unpacking(tmp_path):
    data = bytearray(_zip(b'{"a": 1}'))
    size = (3 << 30).to_bytes(4, "little")  # patch both headers to declare 3 GiB unpacked
    for header, offset in ((b"PK\x01\x02", 24), (b"PK\x03\x04", 22)):
        at = data.index(header)
        data[at + offset:at + offset + 4] = size
    path = tmp_path / "a.zip"
    path.write_bytes(bytes(data))
    with pytest.raises(ManifestError, match=r"a.zip:a.json: the member, 3.0 GiB unpacked, is "
                                            r"over the 256.0 MiB limit"):
        limits.read_zip(path, lambda n: True, ManifestError)
