"""Search results as text lines and as JSON."""

from __future__ import annotations

import json

from vidcap.search import Hit, format_hits, hits_json

HITS = [Hit("/v/long.mp4", 3723.5, 3727.25, 0.91234, "a red circle moves left"),
        Hit("/v/clip.mp4", None, None, 0.5),
        Hit("/v/long.mp4", 12.0, 16.0, 0.25)]


def test_text_lines_best_first_at_most_k():
    lines = format_hits(HITS, k=2).splitlines()
    assert lines == ['1.  0.9123  /v/long.mp4  1:02:03.500-1:02:07.250  "a red circle moves left"',
                     "2.  0.5000  /v/clip.mp4"]
    assert format_hits(HITS).splitlines()[2] == "3.  0.2500  /v/long.mp4  0:12.000-0:16.000"
    assert format_hits([]) == "no matches (the index is empty)"


def test_json_objects_with_path_start_end_score():
    rows = json.loads(hits_json(HITS, k=2))
    assert rows == [{"path": "/v/long.mp4", "start": 3723.5, "end": 3727.25, "score": 0.91234,
                     "caption": "a red circle moves left"},
                    {"path": "/v/clip.mp4", "start": None, "end": None, "score": 0.5}]
    assert json.loads(hits_json([])) == []
    assert len(json.loads(hits_json(HITS, k=10))) == 3
