"""The page at `/` in a real browser: headless Debian Chromium driven by Playwright against a real
uvicorn server with the tiny run. A Shapes clip chosen in the file input plays in the `<video>`,
its caption is the API's, the `<track>` holds the API's cues, a scene's time (reached with Tab,
pressed with Enter) seeks the video, the attention figure shows, a bad file puts the server's
one-line reason in the status line, and the browser asks no other host for anything.

Skips locally when /usr/bin/chromium or Playwright is missing; fails instead under CI (CI=true),
where .ci/run installs Debian's chromium. The screenshot lands in pytest's tmp folder (printed)
and, when VIDCAP_TEST_ARTIFACTS names a folder, is copied there too.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.apps.serve.conftest import TinyIndex, files_under, live_server
from vidcap.apps.serve.app import ServeSettings, create_app

CHROMIUM = Path("/usr/bin/chromium")
EXTRA_ARGS = ["--disable-gpu", "--disable-quic"]
"""Playwright itself passes --headless, --no-sandbox, --no-first-run,
--disable-background-networking, --disable-component-update and --disable-sync (seen in
chrome://version); these two it does not."""
WAIT_MS = 60_000


def _need(available: bool, reason: str) -> None:
    if available:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI must run the browser test: .ci/run installs chromium)")
    pytest.skip(reason)


@pytest.fixture
def chromium_context(tmp_path: Path):
    """A fresh headless Chromium profile (persistent context on an empty user-data-dir)."""
    _need(CHROMIUM.exists(), f"{CHROMIUM} not found (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _need(False, "the playwright package is not installed (pip install playwright)")
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=str(CHROMIUM), headless=True,
            args=EXTRA_ARGS, viewport={"width": 1000, "height": 1250},
            bypass_csp=True)  # wait_for_function evaluates strings, which the page's CSP forbids
        try:
            yield context
        finally:
            context.close()


def api_caption(base: str, clip: Path) -> dict:
    answer = httpx.post(f"{base}/api/caption", timeout=120,
                        files={"file": (clip.name, clip.read_bytes(), "video/mp4")})
    assert answer.status_code == 200, answer.text
    return answer.json()


def tab_to(page, selector: str, presses: int = 40) -> None:
    """Press Tab until the element matching `selector` has the focus."""
    for _ in range(presses):
        if page.evaluate(f"document.activeElement === document.querySelector({selector!r})"):
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"{selector} cannot be reached with Tab")


def save_screenshot(page, tmp_path: Path) -> Path:
    shot = tmp_path / "serve-page.png"
    page.screenshot(path=str(shot), full_page=True)
    copies = os.environ.get("VIDCAP_TEST_ARTIFACTS")
    if copies:
        Path(copies).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(copies) / shot.name)
    print(f"\nscreenshot of the page: {shot}" + (f" (copied to {copies})" if copies else ""))
    return shot


def check_cues(page, expected: dict) -> None:
    """The <track> is showing and holds the API's cues."""
    page.wait_for_function("() => { const t = document.querySelector('#video')"
                           ".textTracks[0]; return t && t.cues && t.cues.length > 0; }")
    cues = page.evaluate("""() => {
        const video = document.querySelector('#video');
        const track = video.querySelector('track');
        return {kind: track.kind, mode: video.textTracks[0].mode,
                cues: Array.from(video.textTracks[0].cues).map(
                    c => ({start: c.startTime, end: c.endTime, caption: c.text}))};
    }""")
    assert cues["kind"] == "captions" and cues["mode"] == "showing"
    assert cues["cues"] == [{"start": s["start"], "end": pytest.approx(s["end"], abs=1e-3),
                             "caption": s["caption"]} for s in expected["segments"]]


def check_plays(page) -> None:
    """The H.264 clip really decodes and plays in this Chromium."""
    page.wait_for_function("document.querySelector('#video').readyState >= 2")
    played = page.evaluate("""async () => {
        const video = document.querySelector('#video');
        video.muted = true;
        await video.play();
        await new Promise(r => video.addEventListener('timeupdate', r, {once: true}));
        video.pause();
        return {duration: video.duration, width: video.videoWidth, time: video.currentTime,
                error: video.error && video.error.code};
    }""")
    assert played["error"] is None and played["width"] == 32
    assert played["duration"] == pytest.approx(2.0, abs=0.1) and played["time"] > 0


def check_scene_seeks(page, start: float) -> None:
    """A scene's time, reached with Tab (its focus visible) and pressed with Enter, seeks the
    video to the scene's start."""
    page.evaluate("""() => new Promise(r => { const v = document.querySelector('#video');
        v.addEventListener('seeked', r, {once: true}); v.currentTime = 1.5; })""")
    page.focus("#describe")
    tab_to(page, "#scenes button")
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline not in ("", "none")
    page.keyboard.press("Enter")
    page.wait_for_function(f"Math.abs(document.querySelector('#video').currentTime - "
                           f"{start}) < 0.05")


def check_bad_file(page, tmp_path: Path) -> None:
    """A file that is no video: the server's one-line reason in the status line."""
    notes = tmp_path / "notes.txt"
    notes.write_text("not a video\n")
    page.set_input_files("#file", str(notes))
    page.wait_for_function("document.querySelector('#status').classList.contains('error')")
    assert page.inner_text("#status") == ("notes.txt: not a media file (no audio or video "
                                          "format recognised)")


def open_page(context, base: str):
    """Open the page at `base` in a new tab; (page, the URLs of other hosts it asked for, each
    refused)."""
    elsewhere: list[str] = []

    def only_this_server(route) -> None:
        if urlsplit(route.request.url).netloc != urlsplit(base).netloc:
            elsewhere.append(route.request.url)
            return route.abort()
        return route.continue_()

    context.route("**/*", only_this_server)
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    page.goto(base)
    return page, elsewhere


def test_page_captions_a_clip_plays_it_with_cues_and_seeks_by_keyboard(
        chromium_context, engine, clips, temp_root, tmp_path):
    app = create_app(engine, ServeSettings(temp_root=temp_root))
    with live_server(app) as base:
        expected = api_caption(base, clips[0])
        page, elsewhere = open_page(chromium_context, base)
        page.set_input_files("#file", str(clips[0]))
        page.wait_for_selector("#scenes button")
        # the caption, in the region screen readers announce
        assert page.inner_text("#caption") == expected["caption"]
        assert page.get_attribute("#description", "aria-live") == "polite"
        check_cues(page, expected)
        check_plays(page)
        check_scene_seeks(page, expected["segments"][0]["start"])
        # the attention figure, with a text alternative
        page.wait_for_function("document.querySelector('#attention').naturalWidth > 0")
        assert expected["caption"] in page.get_attribute("#attention", "alt")
        save_screenshot(page, tmp_path)
        check_bad_file(page, tmp_path)
        page.close()
    assert elsewhere == []
    assert files_under(temp_root) == []


def test_page_search_plays_a_result_from_its_time(chromium_context, engine, clips, temp_root,
                                                 monkeypatch):
    monkeypatch.setattr(engine, "index", TinyIndex(clips))
    app = create_app(engine, ServeSettings(temp_root=temp_root))
    with live_server(app) as base:
        page, elsewhere = open_page(chromium_context, base)
        page.wait_for_selector("#search:not([hidden])")  # shown only when an index is loaded
        page.fill("#query", "blue square")
        page.press("#query", "Enter")
        page.wait_for_selector("#results button")
        assert page.inner_text("#results li").startswith("blue/square at 0:00.5")
        # the page seeks, then plays on: record where the first seek landed (polling currentTime
        # alone races the playback on a loaded machine)
        page.evaluate("window.seeks = []; document.querySelector('#video').addEventListener("
                      "'seeked', e => window.seeks.push(e.target.currentTime))")
        page.click("#results button")
        page.wait_for_function("window.seeks.length > 0")
        assert abs(page.evaluate("window.seeks[0]") - 0.5) < 0.05
        assert page.evaluate("document.querySelector('#video').src") == \
            f"{base}/api/videos/blue%2Fsquare"
        page.close()
    assert elsewhere == []
