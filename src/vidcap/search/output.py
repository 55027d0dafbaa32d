"""Search results for people (one line per hit) and for programs (JSON)."""

from __future__ import annotations

import json
from collections.abc import Sequence

from vidcap.search.base import Hit


def _clock(seconds: float) -> str:
    minutes, secs = divmod(seconds, 60.0)
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours}:{minutes:02d}:{secs:06.3f}" if hours else f"{minutes}:{secs:06.3f}"


def hit_line(rank: int, hit: Hit) -> str:
    """'1. 0.4123  /videos/a.mp4  0:12.000-0:16.000  "a caption"' (time range and caption only
    when the hit has them)."""
    parts = [f"{rank}.", f"{hit.score:.4f}", hit.path]
    if hit.start is not None or hit.end is not None:
        start = _clock(hit.start) if hit.start is not None else "start"
        end = _clock(hit.end) if hit.end is not None else "end"
        parts.append(f"{start}-{end}")
    if hit.caption:
        parts.append(json.dumps(hit.caption, ensure_ascii=False))
    return "  ".join(parts)


def format_hits(hits: Sequence[Hit], k: int | None = None) -> str:
    """The hits (at most k), best first, one numbered line each; a line saying so when none."""
    shown = list(hits[:k] if k is not None else hits)
    if not shown:
        return "no matches (the index is empty)"
    return "\n".join(hit_line(rank, hit) for rank, hit in enumerate(shown, start=1))


def hits_json(hits: Sequence[Hit], k: int | None = None) -> str:
    """A JSON list of {"path", "start", "end", "score"} objects (at most k), best first."""
    shown = hits[:k] if k is not None else hits
    return json.dumps([hit.to_json() for hit in shown], ensure_ascii=False)
