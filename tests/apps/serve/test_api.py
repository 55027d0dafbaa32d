"""The HTTP API of `vidcap serve` on the real engine (the tiny trained run): captions equal to
`model.generate`, refusals with the right status and one line, uploads never left behind, search
through an injected index, health, the OpenAPI page and the page's static files."""

from __future__ import annotations

import asyncio
import re
import stat
from pathlib import Path

import pytest

from tests.apps.serve.conftest import TinyIndex, files_under
from vidcap.apps.serve.app import STATIC, ServeSettings, create_app
from vidcap.apps.serve.engine import ModelEngine
from vidcap.runs.store import load_run, read_config
from vidcap.runtime import resolve_precision
from vidcap.video import load_clip, probe_video


def upload(client, path: str, name: str, data: bytes, **params):
    return client.post(path, params=params, files={"file": (name, data, "video/mp4")})


def test_caption_of_a_shapes_clip_is_what_generate_gives(make_client, clips, tiny_run):
    client = make_client()
    answer = upload(client, "/api/caption", clips[0].name, clips[0].read_bytes())
    assert answer.status_code == 200, answer.text
    body = answer.json()

    model = load_run(tiny_run)  # a second, independent load of the same run
    expected = model.generate(load_clip(clips[0], model.video_cfg)[None],
                              _run_generate(tiny_run))[0]
    duration = probe_video(clips[0]).duration
    assert body["caption"] == expected and expected.strip()
    assert body["duration"] == pytest.approx(duration)
    assert body["segments"] == [{"start": 0.0, "end": pytest.approx(duration),
                                 "caption": expected}]
    lines = body["vtt"].splitlines()
    assert lines[0] == "WEBVTT"
    assert "00:00:00.000 --> 00:00:02.000" in lines and " ".join(expected.split()) in lines


def _run_generate(run: Path):
    return read_config(run).generate


def test_decoding_options_reach_the_model(make_client, clips, engine):
    client = make_client()
    data = clips[1].read_bytes()
    beam = upload(client, "/api/caption", "a.mp4", data, num_beams=2, max_new_tokens=3)
    assert beam.status_code == 200, beam.text
    gen = engine.config.generate
    expected = engine.model.generate(load_clip(clips[1], engine.model.video_cfg)[None], gen,
                                     strategy="beam", num_beams=2, max_new_tokens=3)[0]
    assert beam.json()["caption"] == expected


@pytest.mark.parametrize("params, words", [
    ({"num_beams": 0}, "num_beams: Input should be greater than or equal to 1"),
    ({"strategy": "nucleus"}, "strategy: "),
    ({"segments": "every"}, "segments: "),
    ({"colour": "red"}, "colour: Extra inputs are not permitted"),
])
def test_bad_options_are_422_in_one_line(make_client, clips, params, words):
    answer = upload(make_client(), "/api/caption", "a.mp4", clips[0].read_bytes(), **params)
    assert answer.status_code == 422
    detail = answer.json()["detail"]
    assert isinstance(detail, str) and "\n" not in detail and words in detail


def test_a_text_file_is_415_and_a_truncated_mp4_422_naming_the_upload(make_client, clips,
                                                                      temp_root):
    client = make_client()
    text = upload(client, "/api/caption", "notes.txt", b"not a video\n" * 20)
    assert text.status_code == 415
    assert text.json() == {"detail": "notes.txt: not a media file (no audio or video format "
                                     "recognised)"}
    data = clips[0].read_bytes()
    for path in ("/api/caption", "/api/attention"):
        cut = upload(client, path, "holiday.mp4", data[:len(data) // 2])
        assert cut.status_code == 422
        detail = cut.json()["detail"]
        assert detail.startswith("holiday.mp4: truncated or corrupt data")
        assert str(temp_root) not in detail and "upload" not in detail
    assert files_under(temp_root) == []


def test_declared_oversize_body_is_413_and_not_read(make_client, temp_root):
    client = make_client(max_upload_mb=0.1)
    answer = upload(client, "/api/caption", "big.mp4", b"\0" * 150_000)
    assert answer.status_code == 413
    assert "limit of 0.1 MB" in answer.json()["detail"]
    assert files_under(temp_root) == []


def _asgi_post(app, headers: list[tuple[bytes, bytes]], chunks: list[bytes]) -> tuple[int, int]:
    """POST /api/caption straight into the ASGI app, the body in `chunks` (more_body between
    them); returns (status, how many chunks the app asked for)."""
    pulled = 0
    answer: dict = {}

    async def receive() -> dict:
        nonlocal pulled
        if pulled == len(chunks):
            await asyncio.sleep(3600)  # the client has nothing more to send
        pulled += 1
        return {"type": "http.request", "body": chunks[pulled - 1],
                "more_body": pulled < len(chunks)}

    async def send(message: dict) -> None:
        if message["type"] == "http.response.start":
            answer["status"] = message["status"]

    asyncio.run(asyncio.wait_for(app(_caption_scope(headers), receive, send), 60))
    return answer["status"], pulled


def _caption_scope(headers: list[tuple[bytes, bytes]]) -> dict:
    """The ASGI scope of a POST /api/caption with `headers`."""
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
            "scheme": "http", "path": "/api/caption", "raw_path": b"/api/caption",
            "query_string": b"", "root_path": "", "headers": headers,
            "client": ("127.0.0.1", 1234), "server": ("127.0.0.1", 80)}


def _multipart_chunks(total: int, size: int = 10_000) -> list[bytes]:
    head = (b'--b\r\nContent-Disposition: form-data; name="file"; filename="big.mp4"\r\n'
            b"Content-Type: video/mp4\r\n\r\n")
    return [head] + [b"\0" * size] * (total // size) + [b"\r\n--b--\r\n"]


def test_oversize_bodies_are_cut_off_early_with_or_without_a_length(engine, temp_root):
    app = create_app(engine, ServeSettings(temp_root=temp_root, max_upload_mb=0.05))
    chunks = _multipart_chunks(200_000)  # 4x the limit, in 10 kB chunks
    kind = (b"content-type", b"multipart/form-data; boundary=b")
    declared = (b"content-length", str(sum(map(len, chunks))).encode())
    assert _asgi_post(app, [kind, declared], chunks) == (413, 0)  # no byte read
    status, pulled = _asgi_post(app, [kind, (b"transfer-encoding", b"chunked")], chunks)
    assert status == 413 and pulled <= 7 < len(chunks)  # the limit is 5 chunks and the head
    assert files_under(temp_root) == []
    app.state.api.close()


def test_a_client_that_goes_away_mid_upload_leaves_nothing(engine, temp_root):
    app = create_app(engine, ServeSettings(temp_root=temp_root))
    chunks = _multipart_chunks(50_000)
    sent = 0

    async def receive() -> dict:
        nonlocal sent
        sent += 1
        if sent > 3:
            return {"type": "http.disconnect"}
        return {"type": "http.request", "body": chunks[sent - 1], "more_body": True}

    async def send(message: dict) -> None:
        pass

    scope = _caption_scope([(b"content-type", b"multipart/form-data; boundary=b")])
    asyncio.run(asyncio.wait_for(app(scope, receive, send), 60))
    assert sent == 4
    assert files_under(temp_root) == []
    assert app.state.api.worker.stats()["queued"] == 0
    app.state.api.close()


def test_uploads_live_in_a_private_folder_that_is_gone_afterwards(make_client, clips, temp_root):
    client = make_client()
    (private,) = list(temp_root.iterdir())
    assert stat.S_IMODE(private.stat().st_mode) == 0o700
    for name, data in (("a.mp4", clips[0].read_bytes()), ("b.txt", b"text")):
        upload(client, "/api/caption", name, data)
        upload(client, "/api/attention", name, data)
    assert files_under(temp_root) == []
    client.__exit__(None, None, None)  # shutting down removes the private folder itself
    assert list(temp_root.iterdir()) == []


def test_attention_figure_is_the_attention_command_png(make_client, clips, tiny_run, tmp_path):
    from vidcap.visualize import render_attention

    answer = upload(make_client(), "/api/attention", "a.mp4", clips[0].read_bytes())
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/png"
    cli = render_attention(tiny_run, clips[0], tmp_path / "cli.png")
    assert answer.content == cli.path.read_bytes()


def test_no_file_field_and_no_multipart_are_400(make_client):
    client = make_client()
    other = client.post("/api/caption", files={"video": ("a.mp4", b"123", "video/mp4")})
    assert other.status_code == 400 and "field 'file'" in other.json()["detail"]
    raw = client.post("/api/caption", content=b"123", headers={"content-type": "video/mp4"})
    assert raw.status_code == 400 and "multipart/form-data" in raw.json()["detail"]


def test_search_with_an_index_finds_and_serves_indexed_videos_only(make_client, clips, engine,
                                                                 monkeypatch):
    monkeypatch.setattr(engine, "index", TinyIndex(clips))
    client = make_client()
    assert client.get("/healthz").json()["search"] is True
    found = client.get("/api/search", params={"q": "a blue square", "k": 5})
    assert found.status_code == 200
    results = found.json()["results"]
    assert [r["video_id"] for r in results] == ["blue/square", "red-circle"]
    assert results[0]["start"] == 0.5 and results[0]["url"] == "/api/videos/blue%2Fsquare"
    video = client.get(results[0]["url"])
    assert video.status_code == 200 and video.content == clips[1].read_bytes()
    part = client.get(results[0]["url"], headers={"Range": "bytes=0-99"})
    assert part.status_code == 206 and part.content == clips[1].read_bytes()[:100]
    for bad in ("nothing", "..%2F..%2F..%2Fetc%2Fpasswd", str(clips[2]).lstrip("/")):
        assert client.get(f"/api/videos/{bad}").status_code == 404


def test_a_real_index_is_searched_with_the_served_model(make_client, tiny_run, clips, tmp_path):
    from vidcap.apps.serve.search import IndexSearch
    from vidcap.cli import main
    folder = tmp_path / "videos"
    folder.mkdir()
    for clip in clips[:4]:
        (folder / clip.name).write_bytes(clip.read_bytes())
    assert main(["index", str(tiny_run), str(folder), "--out", str(tmp_path / "index")]) == 0
    engine = ModelEngine(tiny_run, index=lambda model: IndexSearch.open(tmp_path / "index",
                                                                        model, tiny_run))
    assert engine.model.text_encoder is not None  # the served model also embeds queries
    client = make_client(engine)
    results = client.get("/api/search", params={"q": "a red circle", "k": 3}).json()["results"]
    assert len(results) == 3 and results[0]["end"] is None  # whole files: no time range
    scores = [r["score"] for r in results]
    assert scores == sorted(scores, reverse=True)
    served = client.get(results[0]["url"])
    indexed = {p.read_bytes() for p in folder.iterdir()}
    assert served.status_code == 200 and served.content in indexed


def test_without_an_index_search_and_videos_are_404_in_one_line(make_client):
    client = make_client()
    answer = client.get("/api/search", params={"q": "red circle"})
    assert answer.status_code == 404 and "--index" in answer.json()["detail"]
    assert client.get("/api/videos/red-circle").status_code == 404
    assert client.get("/api/search").status_code == 422  # no q


def test_healthz_says_model_device_precision_and_queue(make_client):
    health = make_client(max_queue=3).get("/healthz").json()
    assert health["status"] == "ok" and health["run"] == "run"
    assert health["model"].startswith("MFFCL")
    # the precision the model runs under: auto, decided for this CPU
    assert health["device"] == "cpu"
    assert health["precision"] == resolve_precision("auto", "cpu")[0]
    assert health["queue"] == {"running": 0, "queued": 0, "max_queue": 3}
    assert health["search"] is False


def test_openapi_page_works_offline_and_documents_the_api(make_client):
    client = make_client()
    docs = client.get("/docs")
    assert docs.status_code == 200 and re.findall(r"https?://", docs.text) == []
    for asset in re.findall(r'(?:src|href)="(/[^"]+)"', docs.text):
        assert client.get(asset).status_code == 200, asset
    spec = client.get("/openapi.json").json()
    caption = spec["paths"]["/api/caption"]["post"]
    assert "file" in caption["requestBody"]["content"]["multipart/form-data"]["schema"][
        "properties"]
    assert {"strategy", "num_beams", "segments", "window", "stride"} <= {
        p["name"] for p in caption["parameters"]}
    assert {"/api/attention", "/api/search", "/healthz"} <= set(spec["paths"])


def test_the_page_and_its_files_make_no_outside_request(make_client):
    client = make_client()
    page = client.get("/")
    assert page.status_code == 200 and "<video" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for asset in re.findall(r'(?:src|href)="(/static/[^"]+)"', page.text):
        assert client.get(asset).status_code == 200, asset
    files = sorted(STATIC.iterdir())
    assert {f.name for f in files} >= {"index.html", "app.js", "app.css"}
    for file in files:
        assert re.findall(r"https?://", file.read_text(encoding="utf-8")) == [], file.name


def test_the_client_file_name_is_only_ever_shown_never_a_path(make_client, temp_root):
    client = make_client()
    answer = upload(client, "/api/caption", "../../escape/\x1bnotes.mp4", b"")
    assert answer.status_code == 415
    assert answer.json()["detail"] == "notes.mp4: not a media file (it is empty)"
    assert not (temp_root.parent / "escape").exists() and files_under(temp_root) == []
