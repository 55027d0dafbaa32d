"""`vidcap serve`: load a run once, build the app, run it under uvicorn."""

from __future__ import annotations

import ipaddress
import logging
from pathlib import Path

from vidcap.apps.serve.app import ServeSettings, create_app
from vidcap.apps.serve.engine import ModelEngine
from vidcap.apps.serve.search import IndexSearch
from vidcap.models.mffcl import MFFCL
from vidcap.search.store import VectorStore

log = logging.getLogger(__name__)


def is_loopback(host: str) -> bool:
    """Whether `host` is only reachable from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(run: str | Path, *, index: str | Path | None = None, host: str = "127.0.0.1",
          port: int = 8000, settings: ServeSettings | None = None, device: str = "cpu",
          which: str = "auto", log_level: str = "info", precision: str = "auto") -> None:
    """Serve the page and the API of `run` until interrupted (Ctrl-C); the model runs under
    `precision` (auto, fp32, bf16 or fp16)."""
    import uvicorn

    search = None
    if index is not None:
        VectorStore.open(index).close()  # a missing or damaged index fails before the model loads

        def search(model: MFFCL) -> IndexSearch:
            return IndexSearch.open(index, model, run, which=which)
    engine = ModelEngine(run, device=device, which=which, index=search, precision=precision)
    app = create_app(engine, settings)
    if not is_loopback(host):
        log.warning("listening on %s: other machines can reach this server, upload videos to "
                    "it and run the model (there is no authentication)", host)
    log.info("vidcap serve: http://%s:%d/ (API documentation at /docs)",
             f"[{host}]" if ":" in host else host, port)
    uvicorn.run(app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=5)
