"""Subtitle files hold any caption: whatever the text (any unicode, control characters, `-->`,
blank lines, markup, very long), a WebVTT or SRT file vidcap writes parses back with webvtt-py
to the same cues, times exact to the millisecond and text equal after the documented
normalisation (`vidcap.captioning.subtitles.caption_line`); JSON and timestamped text read back
likewise; writing never raises.

Before: a caption holding a lone surrogate (a decoder's broken byte) made writing every format
raise UnicodeEncodeError, and a NUL in a caption made the file look binary, so the next run
refused to replace vidcap's own SRT, JSON or text file even with --overwrite.
"""

from __future__ import annotations

import html
import itertools
import json
from pathlib import Path

import webvtt
from hypothesis import given
from hypothesis import strategies as st

from tests.property.conftest import PROPERTY
from vidcap.captioning.segments import Cue
from vidcap.captioning.subtitles import (SubtitleWriter, caption_line, safe_text,
                                         timestamp)

TRICKY = ["-->", "\n", "\n\n", "\r\n", " ", "\t", "1", "2", "00:00:01.000 --> 00:00:02.000",
          "00:00:01,000 --> 00:00:02,000", "NOTE", "WEBVTT", "STYLE", "REGION", "&", "&amp;",
          "&lt;", "<b>", "</i>", "<", ">", "\x00", "\x1b", "\x7f", "\x85", "\u2028", "\u2029",
          "\ufeff", "\u200b", "\ud800", "\udcff", "é", "☕", "\U0001f600", "\u202e"]
CAPTIONS = st.one_of(
    st.text(max_size=80),
    st.lists(st.sampled_from(TRICKY), max_size=10).map("".join),
    st.lists(st.one_of(st.sampled_from(TRICKY), st.text(max_size=5)), max_size=8).map("".join),
    st.text(alphabet="ab -\n>", min_size=2000, max_size=5000),
)
"""Caption text: arbitrary unicode (surrogates and control characters included), the pieces
that subtitle syntax gives meaning to, and very long lines."""
MILLIS = st.integers(0, 1_000 * 3600 * 120)
"""A time in milliseconds, up to 120 hours (three-digit hours)."""

_videos = itertools.count()


@st.composite
def cue_lists(draw) -> list[Cue]:
    """1-4 cues in order, each at least a millisecond long, times off the millisecond grid."""
    cues, at = [], draw(MILLIS)
    for text in draw(st.lists(CAPTIONS, min_size=1, max_size=4)):
        length = draw(st.integers(1, 600_000))
        jitter = draw(st.floats(-0.0004, 0.0004))
        cues.append(Cue(max(0.0, at / 1000 + jitter), (at + length) / 1000 + jitter, text))
        at += length
    return cues


def _write(folder: Path, fmt: str, cues: list[Cue], *, overwrite: bool = False,
           video: str | None = None) -> Path:
    video = folder / (video or f"clip{next(_videos)}.mp4")
    return SubtitleWriter(fmt, folder / "out", overwrite=overwrite).write(video, cues)


def _times(cues: list[Cue]) -> list[tuple[str, str]]:
    return [(timestamp(c.start), timestamp(c.end)) for c in cues]


@PROPERTY
@given(cues=cue_lists())
def test_vtt_reads_back_cue_for_cue(cues: list[Cue], tmp_path_factory):
    path = _write(tmp_path_factory.mktemp("vtt"), "vtt", cues)
    parsed = webvtt.read(str(path))
    assert [(c.start, c.end) for c in parsed] == _times(cues)
    assert [html.unescape(c.text) for c in parsed] == [caption_line(c.text) for c in cues]


@PROPERTY
@given(cues=cue_lists())
def test_srt_reads_back_cue_for_cue(cues: list[Cue], tmp_path_factory):
    path = _write(tmp_path_factory.mktemp("srt"), "srt", cues)
    parsed = webvtt.from_srt(str(path))
    assert [(c.start, c.end) for c in parsed] == _times(cues)
    assert [c.raw_text for c in parsed] == [caption_line(c.text) for c in cues]
    # text, never binary: --overwrite replaces it (SRT has no mark of vidcap's)
    _write(path.parent.parent, "srt", cues[::-1], overwrite=True, video=path.stem + ".mp4")
    assert len(webvtt.from_srt(str(path))) == len(cues)


@PROPERTY
@given(cues=cue_lists())
def test_json_and_text_read_back(cues: list[Cue], tmp_path_factory):
    folder = tmp_path_factory.mktemp("json")
    data = json.loads(_write(folder, "json", cues).read_text(encoding="utf-8"))
    assert [d["caption"] for d in data] == [safe_text(c.text) for c in cues]
    assert [(timestamp(d["start"]), timestamp(d["end"])) for d in data] == _times(cues)
    lines = _write(folder, "text", cues).read_text(encoding="utf-8").split("\n")
    assert lines[-1] == "" and len(lines) == len(cues) + 1
    assert [tuple(line.split("\t", 1)) for line in lines[:-1]] == [
        (f"{a} --> {b}", caption_line(c.text)) for (a, b), c in zip(_times(cues), cues)]


@PROPERTY
@given(text=CAPTIONS)
def test_the_normalised_caption_is_one_printable_line(text: str):
    line = caption_line(text)
    assert line and line == line.strip() and "  " not in line
    assert not any(ch in line for ch in "\n\r\x00\x85\u2028\u2029")
    assert all(not 0xD800 <= ord(ch) <= 0xDFFF for ch in line)
    line.encode("utf-8")
    assert caption_line(line) == line  # normalised once for all
