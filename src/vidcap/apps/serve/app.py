"""The FastAPI app of `vidcap serve`: the page at `/`, the HTTP API under `/api`, `/healthz`.

    POST /api/caption     multipart `file` + decoding/segment options (query) -> caption, scenes,
                          WebVTT (JSON)
    POST /api/attention   multipart `file` -> the attention figure (PNG)
    GET  /api/search      ?q=...&k=... -> indexed videos and times (404 without --index)
    GET  /api/videos/{id} an indexed video, by its id in the index (never by a path)
    GET  /healthz         model, device, precision, queue
    GET  /docs            the OpenAPI page (served from the package: works offline)

Every refusal is `{"detail": "<one sentence>"}` (`errors.py`). Uploads go through `uploads.py`
(size limit, private folder, always deleted) and the model work through `worker.py` (one thread,
bounded queue, time limit).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from starlette.requests import ClientDisconnect

from vidcap import __version__
from vidcap.apps.serve.engine import CaptionOptions, CaptionResult, Engine
from vidcap.apps.serve.errors import ApiError, NoSearchIndex, NotInIndex, UnreadableVideo
from vidcap.apps.serve.uploads import Scratch, Upload, check_declared_length, receive_upload
from vidcap.apps.serve.worker import Job, ModelWorker
from vidcap.errors import ConfigError, VidcapError, VideoError

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
NOT_VIDEO = ("not a media file", "no video stream")
"""VideoError reasons that mean "this is no video" (415); the others mean "a video that cannot
be decoded" (422)."""


@dataclass(frozen=True)
class ServeSettings:
    """Limits of one server (the `vidcap serve` options)."""

    max_upload_mb: float = 500.0
    """Largest request body accepted, in MB (10^6 bytes); larger ones get 413."""
    max_queue: int = 8
    """Requests that may wait for the model besides the one it works on; more get 503."""
    timeout_s: float = 120.0
    """Seconds a request may wait for and use the model, from the end of its upload; then 504."""
    temp_root: Path | None = None
    """Where the private upload folder is made (None: the system's temporary folder)."""

    def __post_init__(self) -> None:
        if not self.max_upload_mb > 0:
            raise ConfigError(f"--max-upload-mb must be positive, got {self.max_upload_mb:g}")
        if self.max_queue < 0:
            raise ConfigError(f"--max-queue must be non-negative, got {self.max_queue}")
        if not self.timeout_s > 0:
            raise ConfigError(f"--timeout must be positive, got {self.timeout_s:g}")

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1_000_000)


def _error(status: int, detail: str) -> dict:
    return {"description": detail, "content": {"application/json": {
        "example": {"detail": detail}}}}


UPLOAD_BODY = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["file"],
    "properties": {"file": {"type": "string", "format": "binary",
                            "description": "the video file"}}}}}}}
UPLOAD_ERRORS = {
    400: _error(400, "the form has no file in the field 'file'"),
    413: _error(413, "the upload is larger than this server's limit of 500 MB"),
    415: _error(415, "notes.txt: not a media file (no audio or video format recognised)"),
    422: _error(422, "clip.mp4: truncated or corrupt data (the file ends inside its 'mdat' box)"),
    503: _error(503, "the server is busy: 9 requests are already queued or running"),
    504: _error(504, "the model did not finish within 120 s"),
}


def unreadable(err: VideoError, upload: Upload) -> UnreadableVideo:
    """The CLI's one-line reason, naming the client's file instead of the server's copy."""
    reason = err.reason.replace(str(upload.path), upload.filename)
    status = 415 if reason.startswith(NOT_VIDEO) else 422
    return UnreadableVideo(f"{upload.filename}: {reason}", status=status)


def _one_line(err: RequestValidationError) -> str:
    parts = []
    for e in err.errors():
        where = ".".join(str(x) for x in e.get("loc", ()) if x not in ("query", "path", "body"))
        parts.append(f"{where}: {e.get('msg', 'invalid')}" if where else e.get("msg", "invalid"))
    return "; ".join(parts) or "invalid request"


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, err: ApiError) -> JSONResponse:
        return JSONResponse({"detail": err.detail}, status_code=err.status, headers=err.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, err: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _one_line(err)}, status_code=422)

    @app.exception_handler(ClientDisconnect)
    async def gone(request: Request, err: ClientDisconnect) -> Response:
        log.info("%s %s: the client went away during the upload", request.method,
                 request.url.path)
        return Response(status_code=400)


class Api:
    """The routes' shared state: the engine, the worker in front of it, the upload folder."""

    def __init__(self, engine: Engine, settings: ServeSettings) -> None:
        self.engine = engine
        self.settings = settings
        self.worker = ModelWorker(settings.max_queue, settings.timeout_s)
        self.scratch = Scratch(settings.temp_root)

    async def on_upload(self, request: Request, job_for: Callable[[Path], Job]) -> Any:
        """Receive the upload, run `job_for(path)` on it in the model's thread, answer."""
        check_declared_length(request, self.settings.max_upload_bytes)
        with self.worker.place() as place, self.scratch.request_files() as files:
            upload = await receive_upload(request, files.path, self.settings.max_upload_bytes)
            try:
                return await self.worker.run(place, files, job_for(upload.path))
            except VideoError as err:
                raise unreadable(err, upload) from None
            except VidcapError as err:  # a bad option the run's settings reject
                raise ApiError(str(err), status=422) from None

    def health(self) -> dict:
        return {"status": "ok", "version": __version__, **self.engine.health(),
                "queue": self.worker.stats(),
                "limits": {"max_upload_mb": self.settings.max_upload_mb,
                           "timeout_s": self.settings.timeout_s}}

    def close(self) -> None:
        self.worker.close()
        self.scratch.close()


def _add_upload_routes(app: FastAPI, api: Api) -> None:
    @app.post("/api/caption", response_model=CaptionResult, openapi_extra=UPLOAD_BODY,
              responses=UPLOAD_ERRORS, summary="Caption an uploaded video")
    async def caption(request: Request,
                      options: Annotated[CaptionOptions, Query()]) -> CaptionResult:
        """Upload a video in the multipart field `file`; get its caption, its scenes (start and
        end in seconds, caption) and a WebVTT document with one cue per scene. Decoding options
        default to the run's `generate` settings."""
        return await api.on_upload(request, lambda path: lambda stop: api.engine.caption(
            path, options, stop=stop))

    @app.post("/api/attention", openapi_extra=UPLOAD_BODY, summary="Attention figure (PNG)",
              responses={200: {"content": {"image/png": {}},
                               "description": "the figure"}, **UPLOAD_ERRORS})
    async def attention(request: Request,
                        layer: Annotated[int | None, Query(ge=-64, le=63)] = None,
                        rollout: bool = False) -> Response:
        """The paper's Fig. 5 for an uploaded video: each sampled frame above the same frame
        under the heat map of the video CLS's attention (block `layer`, or the rollout up to
        it), the caption as the title."""
        method = "rollout" if rollout else "mean"
        png = await api.on_upload(request, lambda path: lambda stop: api.engine.attention_png(
            path, layer=layer, method=method, stop=stop))
        return Response(png, media_type="image/png")


def _add_search_routes(app: FastAPI, api: Api) -> None:
    @app.get("/api/search", summary="Search the indexed videos by text",
             responses={404: _error(404, "no search index is loaded")})
    async def search(q: Annotated[str, Query(min_length=1, max_length=500)],
                     k: Annotated[int, Query(ge=1, le=100)] = 10) -> dict:
        """The `k` indexed spans that best match the text `q`, best first, each with the URL
        that plays its video (`/api/videos/{id}`)."""
        if not api.engine.has_search:
            raise NoSearchIndex("no search index is loaded: start the server with "
                                "vidcap serve RUN --index INDEX")
        with api.worker.place() as place:
            try:
                hits = await api.worker.run(place, None, lambda stop: api.engine.search(q, k))
            except VidcapError as err:  # the index refuses the query
                raise ApiError(str(err), status=422) from None
        return {"query": q, "results": [
            {**hit.model_dump(), "url": f"/api/videos/{quote(hit.video_id, safe='')}"}
            for hit in hits]}

    @app.get("/api/videos/{video_id:path}", summary="An indexed video file",
             responses={404: _error(404, "no indexed video has the id 'x'")})
    async def video(video_id: str) -> FileResponse:
        """The file of a video the search index holds, named by its id in the index."""
        try:
            path = api.engine.video_file(video_id)
        except KeyError:
            raise NotInIndex(f"no indexed video has the id {video_id!r}") from None
        if not path.is_file():
            raise NotInIndex(f"the indexed video {video_id!r} is missing on the server")
        return FileResponse(path)


def create_app(engine: Engine, settings: ServeSettings | None = None) -> FastAPI:
    """The web app over `engine` (built once; one model thread for all requests)."""
    api = Api(engine, settings or ServeSettings())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        api.close()

    app = FastAPIOffline(title="vidcap", version=__version__, lifespan=lifespan,
                         description="Captions, scenes, attention and search for videos "
                                     "(MFFCL). The page is at `/`.")
    app.state.api = api
    _add_error_handlers(app)
    _add_upload_routes(app, api)
    _add_search_routes(app, api)

    @app.get("/healthz", summary="What is loaded and how busy it is")
    async def healthz() -> dict:
        """Model, device, precision, the queue (running, queued, max_queue) and the limits."""
        return api.health()

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Content-Security-Policy": CSP})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


CSP = ("default-src 'self'; img-src 'self' blob:; media-src 'self' blob:; "
       "style-src 'self'; script-src 'self'; connect-src 'self'; object-src 'none'; "
       "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
"""The page may load nothing from another host (it works offline, and leaks nothing)."""
