"""A small version of bench/serve_load.py against a real uvicorn server: 12 uploads of good and
bad files from 4 clients at once, every one answered with an allowed status, the server healthy
and its upload folder empty afterwards (no timing asserted)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import httpx

from tests.apps.serve.conftest import files_under, live_server
from vidcap.apps.serve.app import ServeSettings, create_app

ROOT = Path(__file__).resolve().parents[3]


def _bench():
    spec = importlib.util.spec_from_file_location("serve_load", ROOT / "bench" / "serve_load.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_twelve_uploads_from_four_clients_are_all_answered(engine, clips, temp_root):
    bench = _bench()
    limit_mb = 0.05
    pool = bench.payloads(clips[:2], int(limit_mb * 1_000_000))
    assert {p.kind for p in pool} == set(bench.ALLOWED)
    app = create_app(engine, ServeSettings(temp_root=temp_root, max_queue=2,
                                           max_upload_mb=limit_mb))
    with live_server(app) as base:
        outcomes = bench.run_load(base, pool, requests=12, clients=4, timeout_s=120)
        health = bench.wait_idle(base)
        assert httpx.get(f"{base}/healthz").status_code == 200
    assert len(outcomes) == 12
    assert [(o.kind, o.status, o.error) for o in outcomes if not o.ok] == []
    assert {o.kind for o in outcomes} == set(bench.ALLOWED)
    assert health["status"] == "ok"
    assert health["queue"] == {"running": 0, "queued": 0, "max_queue": 2}
    assert files_under(temp_root) == []
