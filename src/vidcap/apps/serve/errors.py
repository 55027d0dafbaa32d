"""What the HTTP API answers when it cannot do what was asked: a status and one line of reason.

Every refusal reaches the client as JSON `{"detail": "<one sentence>"}` with the status below (the
page shows the sentence in its status line); nothing expected ever becomes a 500.
"""

from __future__ import annotations


class ApiError(Exception):
    """A request the server refuses, with the HTTP status and the one-line reason to send."""

    status = 400

    def __init__(self, detail: str, *, status: int | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.status = status or self.status
        self.headers = headers or {}


class BadUpload(ApiError):
    """The request is not a multipart form with a file in the field `file`."""

    status = 400


class UploadTooLarge(ApiError):
    """The body is (or declares itself) larger than `--max-upload-mb`."""

    status = 413


class UnreadableVideo(ApiError):
    """The upload is no video (415) or a video that cannot be decoded (422)."""

    status = 422


class QueueFull(ApiError):
    """Every place in the model's queue is taken (503, with Retry-After)."""

    status = 503


class TimedOut(ApiError):
    """The model did not finish within `--timeout` seconds (504)."""

    status = 504


class NoSearchIndex(ApiError):
    """Search was asked of a server started without `--index` (404)."""

    status = 404


class NotInIndex(ApiError):
    """A video id that the search index does not hold (404)."""

    status = 404
