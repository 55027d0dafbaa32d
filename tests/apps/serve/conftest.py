"""Fixtures of the serve tests: the real engine on the tiny trained run, Shapes clips, clients
of the app in the test process, and a real uvicorn server on a free local port."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from fastapi import FastAPI
from fastapi.testclient import TestClient

from vidcap.apps.serve.app import ServeSettings, create_app
from vidcap.apps.serve.engine import ModelEngine, SearchHit
from vidcap.data.manifest import read_manifest


@pytest.fixture(scope="session")
def engine(tiny_run: Path) -> ModelEngine:
    """The real engine: the tiny run's model, loaded once for every serve test."""
    return ModelEngine(tiny_run)


@pytest.fixture(scope="session")
def clips(tiny_shapes: Path) -> list[Path]:
    """The Shapes clips of the tiny set's test split (H.264 MP4, 32 px, 16 frames, 2 s)."""
    return [record.video_path for record in read_manifest(tiny_shapes, "test")]


@pytest.fixture
def temp_root(tmp_path: Path) -> Path:
    """Where the server under test makes its private upload folder."""
    root = tmp_path / "serve-temp"
    root.mkdir()
    return root


def files_under(root: Path) -> list[Path]:
    """Every file (not folder) below `root`: what a finished request must not leave behind."""
    return [p for p in root.rglob("*") if not p.is_dir()]


@pytest.fixture
def make_client(engine: ModelEngine, temp_root: Path) -> Iterator[Callable[..., TestClient]]:
    """make_client(**settings, engine=...) -> a TestClient of a fresh app (lifespan entered);
    every client is closed (and its app shut down) after the test."""
    opened: list[TestClient] = []

    def make(engine_: object = engine, **settings: object) -> TestClient:
        app = create_app(engine_, ServeSettings(temp_root=temp_root, **settings))
        client = TestClient(app)
        client.__enter__()
        opened.append(client)
        return client

    yield make
    for client in opened:
        client.__exit__(None, None, None)


@contextmanager
def live_server(app: FastAPI) -> Iterator[str]:
    """Run `app` under uvicorn in a thread, on a socket bound to a free 127.0.0.1 port (bound
    here, so no other process can take the port between choosing and listening); yields the
    base URL and stops the server after."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    threads = torch.get_num_threads()
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
        torch.set_num_threads(threads)


class TinyIndex:
    """A search index over two Shapes clips: the words of the query found in each caption."""

    def __init__(self, clips: list[Path]) -> None:
        self.files = {"red-circle": clips[0], "blue/square": clips[1]}
        self.texts = {"red-circle": "a red circle moves left", "blue/square": "a blue square grows"}

    def search(self, query: str, k: int) -> list[SearchHit]:
        words = set(query.lower().split())
        scored = [(len(words & set(text.split())), vid) for vid, text in self.texts.items()]
        return [SearchHit(video_id=vid, start=0.5, end=1.5, score=float(n), text=self.texts[vid])
                for n, vid in sorted(scored, reverse=True)[:k] if n]

    def video_file(self, video_id: str) -> Path:
        return self.files[video_id]
