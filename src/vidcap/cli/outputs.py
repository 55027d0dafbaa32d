"""The files commands write where the user says, checked before any work is done.

Each command checks its output paths with `vidcap.files.check_output` (never through or over a
symbolic link, never over an input, a folder, a device or media, never over a file vidcap did
not write unless `--overwrite`) before it starts, so a refused path costs nothing. Which existing
files are vidcap's own, and may be replaced, is told by their content (no file of these formats
has room for a mark, except PNG), read with a bound:

- scores (`vidcap score --out`): a JSON object of coco-caption metric names and numbers;
- per-video scores (`--per-video`): a JSON object of objects that each hold a caption;
- a manifest (`vidcap prepare ... --out`): JSON Lines whose first line is a video record;
- a results log (`vidcap caption --out FILE.jsonl`): JSON Lines of results (or empty);
- an attention figure (`vidcap attention --out`): a PNG whose Software field is vidcap.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

from vidcap.errors import VidcapError
from vidcap.files import Own, check_output

METRICS = {"Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr", "SPICE"}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_SOFTWARE = b"tEXtSoftware\x00vidcap"
"""The PNG text chunk vidcap's figures carry (`vidcap.visualize.FIGURE_SOFTWARE`)."""
SMALL = 1 << 20
LARGE = 256 << 20


def _json(path: Path, limit: int) -> object:
    """The JSON of a file not over `limit` bytes; None when it is bigger or not JSON."""
    if path.stat().st_size > limit:
        return None
    try:
        return json.loads(path.read_bytes())
    except (ValueError, RecursionError):
        return None


def _first_line(path: Path) -> object:
    """The JSON of a file's first line (read at most 1 MiB); None when it is not JSON."""
    with path.open("rb") as f:
        line = f.readline(SMALL)
    try:
        return json.loads(line)
    except (ValueError, RecursionError):
        return None


def scores_file(path: Path) -> bool:
    """Whether `path` holds scores as `vidcap score --out` writes them."""
    data = _json(path, SMALL)
    return (isinstance(data, dict) and bool(METRICS & set(data)) and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in data.values()))


def per_video_file(path: Path) -> bool:
    """Whether `path` holds per-video scores as `vidcap score --per-video` writes them."""
    data = _json(path, LARGE)
    return isinstance(data, dict) and all(
        isinstance(v, dict) and "caption" in v for v in data.values())


def manifest_file(path: Path) -> bool:
    """Whether `path` is a vidcap manifest (its first line a video record)."""
    first = _first_line(path)
    return isinstance(first, dict) and {"video_id", "split", "captions"} <= set(first)


def results_file(path: Path) -> bool:
    """Whether `path` is empty or a results log of `vidcap caption --out FILE.jsonl` (its first
    line a settings line or a result)."""
    if path.stat().st_size == 0:
        return True
    first = _first_line(path)
    return isinstance(first, dict) and ("settings" in first or {"path", "caption"} <= set(first))


def figure_file(path: Path) -> bool:
    """Whether `path` is a PNG that vidcap drew (its Software text chunk)."""
    with path.open("rb") as f:
        head = f.read(64 << 10)
    return head.startswith(PNG_SIGNATURE) and PNG_SOFTWARE in head


def check(path: Path | None, own: Own, *, inputs: Iterable[str | Path] = (),
          overwrite: bool | None = False, binary: bool = False) -> None:
    """`check_output` of an optional output (None: not asked for)."""
    if path is not None:
        check_output(path, inputs=inputs, overwrite=overwrite, own=own, binary=binary)


def distinct(**outputs: Path | None) -> None:
    """VidcapError when two options name the same output file (`--out X --per-video X`)."""
    seen: dict[str, str] = {}
    for option, path in outputs.items():
        if path is None:
            continue
        key, name = os.path.realpath(path), option.replace("_", "-")
        if key in seen:
            raise VidcapError(f"{path}: named by both --{seen[key]} and --{name}; each output "
                              "needs its own file")
        seen[key] = name
