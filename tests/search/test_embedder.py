"""The model side of search: `vidcap index` and `vidcap search` with a trained tiny run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from vidcap.cli import main
from vidcap.data.manifest import read_manifest
from vidcap.runs.store import load_run
from vidcap.video import load_clip


@pytest.fixture
def videos(tiny_shapes: Path, tmp_path: Path) -> Path:
    """Six test clips of the tiny Shapes set and one broken file, in a folder."""
    folder = tmp_path / "videos"
    folder.mkdir()
    for record in read_manifest(tiny_shapes, "test")[:6]:
        shutil.copy(record.video_path, folder / record.video_path.name)
    (folder / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 50)
    return folder


def test_index_then_search_ranks_as_the_model_does(tiny_run, videos, tmp_path, capsys):
    index = tmp_path / "index"
    assert main(["index", str(tiny_run), str(videos), "--out", str(index)]) == 1  # one bad file
    captured = capsys.readouterr()
    assert "6 added" in captured.out and "1 failed" in captured.out
    assert "broken.mp4" in captured.err and captured.err.count("\n") == 1

    query = "a red circle moves to the left"
    assert main(["search", str(index), query, "-k", "4", "--format", "json"]) == 0
    hits = json.loads(capsys.readouterr().out)
    assert len(hits) == 4 and [h["score"] for h in hits] == sorted(
        (h["score"] for h in hits), reverse=True)
    assert set(hits[0]) == {"path", "start", "end", "score"}

    # the same ranking by hand: cosine of the model's own video and text embeddings
    model = load_run(tiny_run, with_text_encoder=True)
    paths = sorted(p for p in videos.iterdir() if p.name != "broken.mp4")
    clips = torch.stack([load_clip(p, model.video_cfg) for p in paths])
    scores = (model.embed_video(clips) @ model.embed_text([query]).T)[:, 0].numpy()
    order = np.argsort(-scores)[:4]
    assert [Path(h["path"]).name for h in hits] == [paths[i].name for i in order]
    np.testing.assert_allclose([h["score"] for h in hits], scores[order], atol=1e-5)


def test_a_second_index_run_embeds_only_what_changed(tiny_run, videos, tmp_path, capsys):
    index = tmp_path / "index"
    main(["index", str(tiny_run), str(videos), "--out", str(index)])
    capsys.readouterr()
    (videos / "broken.mp4").unlink()
    first = sorted(videos.iterdir())[0]
    first.write_bytes(first.read_bytes())  # same content, a new modification time
    assert main(["index", str(tiny_run), str(videos), "--out", str(index), "--caption"]) == 0
    out = capsys.readouterr().out
    assert "1 added, 5 unchanged, 0 failed" in out and "6 files, 6 vectors" in out


def test_searching_a_broken_or_missing_index_is_one_line(tiny_run, tmp_path, capsys):
    assert main(["search", str(tmp_path / "nowhere"), "a red circle"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("vidcap: error: ") and err.count("\n") == 1
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "index.sqlite").write_bytes(b"not a database at all" * 10)
    assert main(["search", str(broken), "a red circle"]) == 2
    err = capsys.readouterr().err
    assert "index.sqlite" in err and err.count("\n") == 1


def test_a_long_video_is_indexed_segment_by_segment(tiny_run, tmp_path, capsys):
    from vidcap.data.shapes_long import LongShapesSpec, prepare_long_shapes
    from vidcap.evaluation.segments import read_long_truth

    truth_file = prepare_long_shapes(tmp_path / "long", LongShapesSpec(size=32, clips=(3, 3)), 1)
    (truth,) = read_long_truth(truth_file).values()
    index = tmp_path / "index"
    assert main(["index", str(tiny_run), str(truth.video_path), "--out", str(index),
                 "--segments", "shots", "--caption"]) == 0
    assert "1 files, 3 vectors" in capsys.readouterr().out
    assert main(["search", str(index), "a circle", "-k", "5", "--format", "json"]) == 0
    hits = json.loads(capsys.readouterr().out)
    ranges = sorted((h["start"], h["end"]) for h in hits)
    true = [(s.start, s.end) for s in truth.segments]
    assert len(ranges) == 3 and all(abs(a - b) <= 0.25 for r, t in zip(ranges, true)
                                    for a, b in zip(r, t))
    assert all(isinstance(h["caption"], str) for h in hits)  # --caption stored each segment's
