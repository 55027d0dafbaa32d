"""Limits on what vidcap reads from users' files, and the bounded readers that hold them.

Every file a user hands vidcap (a config, a manifest, a dataset's annotation files, predictions
and references) is read through these functions, so that a damaged, hostile or simply wrong file
gives one line naming the file and the problem (a `VidcapError` subclass chosen by the caller),
never a traceback, a hang or memory exhaustion:

- sizes are checked before reading (the file, each line of a line-based file, each zip member as
  its header declares it and as it unpacks, and its compression ratio);
- text must be UTF-8 (a BOM is allowed); anything else is named for what it looks like (a zip,
  gzip, UTF-16 with a byte-order mark, binary data), not just "not UTF-8";
- JSON is strict: no NaN/Infinity, no number too large to be a float or too long to be an
  integer, no repeated key in an object, nesting only as deep as Python can parse;
- a damaged zip (bad CRC, truncated, encrypted, an unknown compression) says it is a damaged zip.

The limits are far above any real dataset (MSR-VTT's largest annotation JSON is 16 MB unpacked,
VATEX's training file about 30 MB, the largest real manifest a few MB) and each can be raised
with an environment variable:

    VIDCAP_MAX_FILE_BYTES    256 MiB  any input file (and a zip member, unpacked)
    VIDCAP_MAX_LINE_BYTES      8 MiB  one line of a manifest or other line-based file
    VIDCAP_MAX_CONFIG_BYTES    1 MiB  a YAML config (the presets are a few KB)
    VIDCAP_MAX_ZIP_RATIO         100  unpacked : packed size of a zip member over 1 MiB
                                      (real annotation zips are about 6:1, zip bombs 1000:1)
"""

from __future__ import annotations

import itertools
import json
import math
import os
import stat
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vidcap.errors import ConfigError, VidcapError, shorten, truncate

MiB = 1 << 20
ErrorType = type[VidcapError]


@dataclass(frozen=True)
class Limit:
    """A resource limit with its default and the environment variable that raises it."""

    env: str
    default: int
    what: str
    """What it bounds, for messages: "file", "line", ..."""

    def value(self) -> int:
        """The limit in force (the environment variable, when set, else the default)."""
        text = os.environ.get(self.env, "").strip()
        if not text:
            return self.default
        try:
            value = int(text.replace("_", ""))
        except ValueError:
            value = 0
        if value <= 0:
            raise ConfigError(f"{self.env}={shorten(text)}: expected a positive whole number")
        return value

    def exceeded(self, where: str, subject: str, error: ErrorType) -> VidcapError:
        """The error for `subject` ("the line", "312.0 MiB") at `where`, over this limit."""
        return error(f"{where}: {subject} is over the {_bytes(self.value())} limit on a "
                     f"{self.what} (set {self.env} to a larger number of bytes to read it)")


FILE_BYTES = Limit("VIDCAP_MAX_FILE_BYTES", 256 * MiB, "file")
LINE_BYTES = Limit("VIDCAP_MAX_LINE_BYTES", 8 * MiB, "line")
CONFIG_BYTES = Limit("VIDCAP_MAX_CONFIG_BYTES", 1 * MiB, "config file")
ZIP_RATIO = Limit("VIDCAP_MAX_ZIP_RATIO", 100, "zip member")
ZIP_RATIO_FROM = 1 * MiB
"""Members smaller than this unpacked are not held to the ratio (a small file of spaces may
compress 1000:1 and is harmless)."""


def _bytes(n: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", MiB), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} bytes"


# ---------------------------------------------------------------------------------------------
# what bytes look like, and text

_SIGNATURES = (
    (b"PK\x03\x04", "a zip archive"), (b"PK\x05\x06", "an (empty) zip archive"),
    (b"\x1f\x8b", "gzip-compressed data"), (b"BZh", "bzip2-compressed data"),
    (b"\xfd7zXZ\x00", "xz-compressed data"), (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"\x28\xb5\x2f\xfd", "zstd-compressed data"), (b"%PDF", "a PDF document"),
    (b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"),
    (b"\x1a\x45\xdf\xa3", "a Matroska/WebM video"), (b"RIFF", "a RIFF file (AVI video or WAV)"),
    (b"SQLite format 3\x00", "an SQLite database"), (b"\x93NUMPY", "a NumPy array"),
    (b"\x80\x02", "a Python pickle"), (b"\x80\x03", "a Python pickle"),
    (b"\x80\x04", "a Python pickle"), (b"\x80\x05", "a Python pickle"),
    (b"\xff\xfe\x00\x00", "UTF-32 text (it starts with a UTF-32 byte-order mark)"),
    (b"\x00\x00\xfe\xff", "UTF-32 text (it starts with a UTF-32 byte-order mark)"),
    (b"\xff\xfe", "UTF-16 text (it starts with a UTF-16 byte-order mark)"),
    (b"\xfe\xff", "UTF-16 text (it starts with a UTF-16 byte-order mark)"),
)


def describe_bytes(head: bytes) -> str | None:
    """What the first bytes of a file that is not UTF-8 text look like ("a zip archive",
    "UTF-16 text ...", "binary data"), or None when they look like text in another encoding."""
    for magic, kind in _SIGNATURES:
        if head.startswith(magic):
            return kind
    if head[4:8] == b"ftyp":
        return "an MP4/MOV video"
    head = head[:512]
    nul = head.count(0)
    if nul * 3 >= len(head) and (head[1::2].count(0) == nul or head[0::2].count(0) == nul):
        return "UTF-16 text without a byte-order mark"
    return "binary data" if nul else None


def _not_utf8(data: bytes, where: str, error: ErrorType, at: int) -> VidcapError:
    kind = describe_bytes(data[:512])
    if kind is not None and kind.startswith("UTF-"):
        return error(f"{where}: {kind}; vidcap reads UTF-8 text: save it as UTF-8")
    if kind is not None:
        return error(f"{where}: not text: it looks like {kind}")
    line = data.count(b"\n", 0, at) + 1
    return error(f"{where}: not UTF-8 text (byte 0x{data[at]:02x} on line {line} is not "
                 f"UTF-8; save the file as UTF-8)")


def decode_text(data: bytes, where: str, error: ErrorType) -> str:
    """`data` as UTF-8 text (a leading BOM dropped); anything else raises `error` saying what the
    bytes look like. Text holding NUL bytes is refused too (no text format vidcap reads has
    them: they mean UTF-16 or binary data)."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise _not_utf8(data, where, error, err.start) from None
    if "\x00" in text:
        raise _not_utf8(data, where, error, data.index(0))
    return text


# ---------------------------------------------------------------------------------------------
# files and lines


def _open(path: Path, error: ErrorType):
    try:
        return path.open("rb")
    except IsADirectoryError:
        raise error(f"{path}: is a folder, not a file") from None
    except OSError as err:
        raise error(f"{path}: cannot be read ({err.strerror or err})") from None


def _check_size(path: Path, error: ErrorType, limit: Limit) -> None:
    try:
        info = path.stat()
    except OSError as err:
        raise error(f"{path}: cannot be read ({err.strerror or err})") from None
    if stat.S_ISDIR(info.st_mode):
        raise error(f"{path}: is a folder, not a file")
    if not stat.S_ISREG(info.st_mode):  # a device or a pipe: endless, or blocks
        raise error(f"{path}: not a regular file")
    size = info.st_size
    if size > limit.value():
        raise limit.exceeded(str(path), _bytes(size), error)


def read_bytes(path: str | Path, error: ErrorType, limit: Limit = FILE_BYTES) -> bytes:
    """The bytes of `path`, refused past `limit` (checked before reading, and while reading:
    a file that grows, or a device, cannot get past it)."""
    path = Path(path)
    _check_size(path, error, limit)
    with _open(path, error) as file:
        try:
            data = file.read(limit.value() + 1)
        except OSError as err:
            raise error(f"{path}: cannot be read ({err.strerror or err})") from None
    if len(data) > limit.value():
        raise limit.exceeded(str(path), "the file", error)
    return data


def read_text(path: str | Path, error: ErrorType, limit: Limit = FILE_BYTES) -> str:
    """The UTF-8 text of `path` (see `read_bytes`, `decode_text`)."""
    return decode_text(read_bytes(path, error, limit), str(path), error)


def iter_lines(path: str | Path, error: ErrorType) -> Iterator[tuple[int, str]]:
    """(line number, text without its line break) of every line of a UTF-8 file, read one line
    at a time: a line over `VIDCAP_MAX_LINE_BYTES` is refused after reading no more than the
    limit; lines end at `\\n` only (a `\\r` before it is dropped; U+2028 and the like are text)."""
    path = Path(path)
    _check_size(path, error, FILE_BYTES)
    cap = LINE_BYTES.value()
    with _open(path, error) as file:
        for lineno in itertools.count(1):
            raw = file.readline(cap + 2)  # the line, its \r\n, and one byte to see it is over
            if not raw:
                return
            if len(raw.rstrip(b"\r\n")) > cap:
                raise LINE_BYTES.exceeded(f"{path}:{lineno}", "the line", error)
            if lineno == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            yield lineno, decode_text(raw, f"{path}:{lineno}", error).rstrip("\r\n")


# ---------------------------------------------------------------------------------------------
# strict JSON


class _Refused(ValueError):
    """Raised inside the JSON hooks; turned into the caller's error with the file's name."""


def _constant(name: str) -> Any:
    raise _Refused(f"{name} is not a JSON number")


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Refused(f"the number {shorten(text, 40)} is too large")
    return value


def _int(text: str) -> int:
    if len(text) > 400:
        raise _Refused(f"a number of {len(text)} digits")
    return int(text)


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    data = dict(pairs)
    if len(data) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _Refused(f"the key {shorten(key, 40)} appears twice in one object")
            seen.add(key)
    return data


def parse_json(text: str) -> Any:
    """Strict JSON: what `json.loads` gives, except that NaN/Infinity, numbers out of a float's
    range or longer than 400 digits, and repeated keys raise ValueError (a JSONDecodeError for
    syntax); nesting deeper than Python's recursion allows raises RecursionError. Callers that
    want the one-line error use `loads_json`."""
    return json.loads(text, parse_constant=_constant, parse_float=_float, parse_int=_int,
                      object_pairs_hook=_object)


def loads_json(text: str, where: str, error: ErrorType) -> Any:
    """`parse_json`, every problem raised as `error` naming `where`."""
    try:
        return parse_json(text)
    except json.JSONDecodeError as err:
        raise error(f"{where}: not valid JSON (line {err.lineno} column {err.colno}: "
                    f"{err.msg})") from None
    except ValueError as err:  # _Refused, and int()'s own digit limit
        raise error(f"{where}: not valid JSON ({err})") from None
    except RecursionError:
        raise error(f"{where}: JSON nested too deeply (vidcap's files are a few levels "
                    f"deep)") from None


def read_json(path: str | Path, error: ErrorType) -> Any:
    """The strict JSON of a UTF-8 file (`read_text` and `loads_json`)."""
    return loads_json(read_text(path, error), str(path), error)


def iter_json_lines(path: str | Path, error: ErrorType) -> Iterator[tuple[int, Any]]:
    """(line number, decoded value) of every non-blank line of a JSON Lines file, read with
    `iter_lines` and decoded with `loads_json`: every problem names the file and the line."""
    for lineno, line in iter_lines(path, error):
        if line.strip():
            yield lineno, loads_json(line, f"{path}:{lineno}", error)


# ---------------------------------------------------------------------------------------------
# zip archives


def is_zip(path: str | Path) -> bool:
    """Whether `path` starts like a zip archive (damaged ones included, unlike
    `zipfile.is_zipfile`, which needs the end of the archive intact)."""
    try:
        with Path(path).open("rb") as file:
            return file.read(4) in (b"PK\x03\x04", b"PK\x05\x06")
    except OSError:
        return False


_DAMAGED = (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError, ValueError,
            RuntimeError)
"""What zipfile raises on a damaged archive: a bad CRC or header (BadZipFile), a corrupt deflate
stream (zlib.error), a truncated member (EOFError), an encrypted member (RuntimeError), a
compression method it lacks (NotImplementedError)."""


def _damaged(where: str, err: BaseException, error: ErrorType) -> VidcapError:
    reason = str(err) or type(err).__name__
    if "not a zip file" in reason.lower():
        reason = "no central directory: truncated, or not fully downloaded?"
    return error(f"{where}: damaged zip archive ({reason[:100]})")


def _check_member(info: zipfile.ZipInfo, where: str, error: ErrorType) -> None:
    if info.flag_bits & 0x1:
        raise error(f"{where}: the zip member is encrypted; unpack it yourself and pass the file")
    if info.file_size > FILE_BYTES.value():
        raise FILE_BYTES.exceeded(where, f"the member, {_bytes(info.file_size)} unpacked,", error)
    ratio = info.file_size / max(info.compress_size, 1)
    if info.file_size > ZIP_RATIO_FROM and ratio > ZIP_RATIO.value():
        raise error(f"{where}: unpacks to {_bytes(info.file_size)} from "
                    f"{_bytes(info.compress_size)} (ratio {ratio:.0f}:1, over the limit of "
                    f"{ZIP_RATIO.value()}:1: a zip bomb? set {ZIP_RATIO.env} higher to read it)")


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, where: str,
                 error: ErrorType) -> bytes:
    try:
        with archive.open(info) as member:
            data = member.read(info.file_size + 1)
    except _DAMAGED as err:
        raise _damaged(where, err, error) from None
    if len(data) != info.file_size:
        raise error(f"{where}: damaged zip archive (the member unpacks to {len(data)} bytes, "
                    f"its header says {info.file_size})")
    return data


def _member(path: Path, name: str) -> str:
    """`archive.zip:member.json`, the member's name cut and on one line."""
    return f"{path}:{truncate(name, 80)}"


def read_zip(path: str | Path, wanted: Callable[[str], bool], error: ErrorType
             ) -> tuple[list[str], list[tuple[str, bytes]]]:
    """(every member's name, [(name, bytes)] of the `wanted` members) of a zip archive, each
    member checked against the limits before it is unpacked; a damaged archive raises `error`
    saying so."""
    path = Path(path)
    _check_size(path, error, FILE_BYTES)
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            chosen = [i for i in infos if not i.is_dir() and wanted(i.filename)]
            for info in chosen:
                _check_member(info, _member(path, info.filename), error)
            total = sum(i.file_size for i in chosen)
            if total > FILE_BYTES.value():
                raise FILE_BYTES.exceeded(str(path), f"what it holds, {_bytes(total)} unpacked,",
                                          error)
            members = [(i.filename, _read_member(archive, i, _member(path, i.filename), error))
                       for i in chosen]
    except _DAMAGED as err:
        raise _damaged(str(path), err, error) from None
    return [i.filename for i in infos], members
