"""Uploads: streamed to a private temporary folder, bounded in size, always deleted.

- `Scratch` owns one private folder (mode 0700) under a temp root; every request gets its own
  sub-folder (`RequestFiles`), removed when the request is over: answered, failed, timed out or
  abandoned by its client. When the model is still working on a request's file after the answer
  went out (a timed-out request: a running generation cannot be interrupted), the folder is
  removed when that work ends.
- `receive_upload` reads a multipart body chunk by chunk (python-multipart's streaming parser),
  writing the part named `file` straight into the request's folder. The size limit is enforced
  twice: a declared `Content-Length` over the limit is refused before a byte of the body is read,
  and the bytes are counted as they arrive, so a chunked body without a length is cut off as soon
  as it passes the limit.
- The client's file name is only ever shown back (sanitised); on disk the file is `upload` plus a
  known video extension, so no request names a server-side path.
"""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
import tempfile
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Self

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from vidcap.apps.serve.errors import BadUpload, UploadTooLarge
from vidcap.video import VIDEO_EXTENSIONS

log = logging.getLogger(__name__)

FIELD = "file"
"""The multipart field that carries the video."""
WRITE_CHUNK = 1 << 20
"""Bytes gathered before one write to disk (done off the event loop)."""


class Scratch:
    """A private folder (0700) for the uploads of one server; `close` removes it."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.path = Path(tempfile.mkdtemp(prefix="vidcap-serve-", dir=root))

    def request_files(self) -> RequestFiles:
        """A fresh folder for one request's files (0700, inside the private folder)."""
        return RequestFiles(Path(tempfile.mkdtemp(prefix="req-", dir=self.path)))

    def close(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


class RequestFiles:
    """One request's folder: removed on `release`, or when the job it was lent to ends."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lent_to: Future | None = None

    def lend_to(self, job: Future) -> None:
        """The model works on these files in `job`: `release` leaves them until it ends."""
        self._lent_to = job

    def release(self) -> None:
        if self._lent_to is None:
            self._remove()
        else:  # runs at once when the job is over (or was cancelled), else when it ends
            self._lent_to.add_done_callback(lambda _job: self._remove())

    def _remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


@dataclass(frozen=True)
class Upload:
    path: Path
    """Where the file lies (inside the request's private folder)."""
    filename: str
    """The client's name for it, sanitised, for messages only."""
    size: int


def display_name(filename: str | None) -> str:
    """The client's file name as it may appear in a message: its last component, printable
    characters only, at most 100 of them."""
    name = re.split(r"[/\\]", filename or "")[-1]
    name = "".join(c for c in name if c.isprintable()).strip()
    return (name[:97] + "...") if len(name) > 100 else (name or "upload")


def _disk_name(filename: str) -> str:
    suffix = Path(filename).suffix.lower()
    return "upload" + (suffix if suffix in VIDEO_EXTENSIONS else "")


def too_large(limit: int) -> UploadTooLarge:
    return UploadTooLarge(f"the upload is larger than this server's limit of "
                          f"{limit / 1e6:g} MB (vidcap serve --max-upload-mb)")


def check_declared_length(request: Request, limit: int) -> None:
    """Refuse a body whose Content-Length is over `limit` bytes, before reading any of it."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) > limit:
        raise too_large(limit)


class _FilePart:
    """python-multipart callbacks that write the first part named `file` to a folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.header_name = self.header_value = b""
        self.disposition = b""
        self.file: BinaryIO | None = None
        self.upload_name: str | None = None
        self.path: Path | None = None
        self.pending: list[bytes] = []
        self.is_writing = False
        self.size = 0

    def callbacks(self) -> dict:
        return {"on_part_begin": self.on_part_begin, "on_part_data": self.on_part_data,
                "on_part_end": self.on_part_end, "on_header_field": self.on_header_field,
                "on_header_value": self.on_header_value, "on_header_end": self.on_header_end,
                "on_headers_finished": self.on_headers_finished}

    def on_part_begin(self) -> None:
        self.disposition = b""

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.header_value += data[start:end]

    def on_header_end(self) -> None:
        if self.header_name.lower() == b"content-disposition":
            self.disposition = self.header_value
        self.header_name = self.header_value = b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self.disposition)
        is_file = options.get(b"name") == FIELD.encode() and b"filename" in options
        self.is_writing = is_file and self.path is None
        if self.is_writing:
            self.upload_name = display_name(options[b"filename"].decode("utf-8", "replace"))
            self.path = self.folder / _disk_name(self.upload_name)
            self.file = self.path.open("xb")

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self.is_writing:
            self.pending.append(data[start:end])
            self.size += end - start

    def on_part_end(self) -> None:
        self.is_writing = False

    async def flush(self, force: bool = False) -> None:
        """Write what was gathered, in a worker thread, once there is enough of it."""
        if self.file is not None and self.pending and (
                force or sum(map(len, self.pending)) >= WRITE_CHUNK):
            data, self.pending = b"".join(self.pending), []
            await asyncio.to_thread(self.file.write, data)

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


async def receive_upload(request: Request, folder: Path, limit: int) -> Upload:
    """Stream the multipart body of `request` into `folder`, the `file` part only.

    Raises `UploadTooLarge` when the body passes `limit` bytes (declared or counted) and
    `BadUpload` when it is not a multipart form with a file in the field `file`.
    """
    check_declared_length(request, limit)
    kind, params = parse_options_header(request.headers.get("content-type"))
    if kind != b"multipart/form-data" or b"boundary" not in params:
        raise BadUpload(f"expected a multipart/form-data upload with the video in the field "
                        f"'{FIELD}' (e.g. curl -F {FIELD}=@clip.mp4)")
    part = _FilePart(folder)
    parser = MultipartParser(params[b"boundary"], part.callbacks())
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > limit:
                raise too_large(limit)
            parser.write(chunk)
            await part.flush()
        parser.finalize()
        await part.flush(force=True)
    except FormParserError:
        raise BadUpload("the multipart body is malformed") from None
    finally:
        part.close()
    if part.path is None:
        raise BadUpload(f"the form has no file in the field '{FIELD}'")
    log.debug("received %s (%d bytes) into %s", part.upload_name, part.size, part.path)
    return Upload(part.path, part.upload_name or "upload", part.size)
