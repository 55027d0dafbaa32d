"""Printing survives any locale: captions with characters the terminal's encoding lacks
(`PYTHONIOENCODING=ascii`) are written as backslash escapes, and file names that are not UTF-8
are written as their own bytes (as `ls` does), instead of a UnicodeEncodeError traceback."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.faults.test_cli_boundary import ENV, vidcap
from vidcap.data.manifest import read_manifest

CAPTION = "un café ☕ très naïve"
PATCHED = f"""
import sys
from vidcap.cli import main
from vidcap.models.mffcl import MFFCL

generate = MFFCL.generate
MFFCL.generate = lambda self, pixels, gen: [{CAPTION!r} for _ in generate(self, pixels, gen)]
sys.exit(main(sys.argv[1:]))
"""
"""`vidcap` whose model says CAPTION (in Shapes words it cannot)."""


def test_a_non_ascii_path_prints_on_an_ascii_stdout(tiny_shapes: Path, tmp_path: Path):
    # before: UnicodeEncodeError: 'ascii' codec can't encode character '\xe9' (traceback)
    odd = tmp_path / "ménagerie ☕.jsonl"
    shutil.copy(tiny_shapes, odd)
    done = vidcap("stats", str(odd), env={"PYTHONIOENCODING": "ascii"})
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.splitlines()[0] == str(odd).encode("ascii", "backslashreplace")
    assert b"Traceback" not in done.stderr


def test_a_file_name_that_is_not_utf8_prints_as_its_bytes(tiny_shapes: Path, tmp_path: Path):
    # before: UnicodeEncodeError: surrogates not allowed (traceback)
    name = os.fsencode(tmp_path) + b"/clip-\xff.jsonl"
    shutil.copy(tiny_shapes, name)
    done = vidcap("stats", os.fsdecode(name), env={"PYTHONIOENCODING": "utf-8"})
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.splitlines()[0] == name


def caption(*args: str, encoding: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", PATCHED, "caption", *args],
                          env={**ENV, "PYTHONIOENCODING": encoding}, capture_output=True,
                          timeout=300)


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_a_non_ascii_caption_prints_on_an_ascii_stdout(tiny_run: Path, tiny_shapes: Path, fmt):
    # before: UnicodeEncodeError: 'ascii' codec can't encode character '\xe9' (traceback, exit 1)
    video = str(read_manifest(tiny_shapes, "test")[0].video_path)
    done = caption(str(tiny_run), video, "--format", fmt, "--workers", "0", encoding="ascii")
    assert done.returncode == 0, done.stderr.decode()
    escaped = CAPTION.encode("ascii", "backslashreplace")
    if fmt == "text":
        assert done.stdout == video.encode() + b"\t" + escaped + b"\n"
    else:
        listing = json.loads(done.stdout.decode("unicode_escape"))
        assert [(r["path"], r["caption"]) for r in listing] == [(video, CAPTION)]


def test_a_video_whose_name_is_not_utf8_is_captioned_and_printed(tiny_run: Path,
                                                                 tiny_shapes: Path,
                                                                 tmp_path: Path):
    # before: the caption was made, then printing its path raised UnicodeEncodeError
    name = os.fsencode(tmp_path) + b"/clip-\xff.mp4"
    shutil.copy(read_manifest(tiny_shapes, "test")[0].video_path, name)
    done = caption(str(tiny_run), os.fsdecode(name), "--workers", "0", encoding="utf-8")
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout == name + b"\t" + CAPTION.encode() + b"\n"
