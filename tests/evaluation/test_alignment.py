"""vidcap.evaluation.alignment: retrieval of a trained run in its aligned space."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from vidcap.data.manifest import read_manifest
from vidcap.errors import RunError
from vidcap.evaluation.alignment import evaluate_retrieval, guess_dataset
from vidcap.evaluation.retrieval import retrieval_metrics
from vidcap.runs.layout import RunLayout
from vidcap.runs.store import load_run
from vidcap.video import load_clip


def test_retrieval_of_a_run_equals_the_metrics_of_its_own_embeddings(tiny_run, tiny_shapes):
    report = evaluate_retrieval(tiny_run, split="test")
    records = read_manifest(tiny_shapes, "test")
    captions = [c for r in records for c in r.captions]
    assert report["protocol"]["texts"] == len(captions)
    assert report["protocol"]["videos"] == len(records)
    assert "every caption is a query" in report["table"]
    # by hand: the model's embeddings, their cosine matrix, the same metrics
    model = load_run(tiny_run, with_text_encoder=True)
    clips = torch.stack([load_clip(r.video_path, model.video_cfg) for r in records])
    similarity = (model.embed_text(captions) @ model.embed_video(clips).T).numpy()
    owner = [i for i, r in enumerate(records) for _ in r.captions]
    expected = retrieval_metrics(similarity, owner).to_json()
    for direction in ("t2v", "v2t"):
        for key in ("r1", "r5", "r10", "median_rank", "mean_rank"):
            assert report[direction][key] == pytest.approx(expected[direction][key], abs=1e-6)
    saved = json.loads(RunLayout(tiny_run).retrieval("test").read_text())
    assert saved["t2v"] == report["t2v"]
    shapes = report["shapes_precision"]
    assert shapes["k"] == 10 and shapes["seen"]["queries"] + shapes["held_out"]["queries"] \
        == len(captions)
    for group in ("seen", "held_out"):
        p = shapes[group]
        assert 0 <= p["precision"] <= p["ceiling"] <= 100 and 0 <= p["attainable"] <= 100
    assert "Shapes" in report["standard"]


def test_guess_dataset_and_bad_limits(tiny_run):
    assert guess_dataset([_record("vid1301")]) == "msvd"
    assert guess_dataset([_record("video7010")]) == "msrvtt"
    assert guess_dataset([_record("abc_000010_000020")]) == "vatex"
    assert guess_dataset([_record("shapes-test-00001")]) == "shapes"
    with pytest.raises(RunError, match="--limit must be at least 1"):
        evaluate_retrieval(tiny_run, limit=0)


def _record(video_id: str):
    from vidcap.data.manifest import VideoRecord

    return VideoRecord(video_id, "x.mp4", "test", ["a caption"])


def test_every_caption_ranks_its_video_first_when_embeddings_agree():
    # a sanity check of the protocol on an ideal similarity matrix: 3 videos, 2 captions each
    similarity = np.kron(np.eye(3), np.ones((2, 1)))
    result = retrieval_metrics(similarity, [0, 0, 1, 1, 2, 2])
    assert result.t2v.r1 == 100.0 and result.v2t.r1 == 100.0


def test_evaluate_task_retrieval_prints_the_protocol_and_both_directions(tiny_run, capsys):
    from vidcap.cli import main

    assert main(["evaluate", str(tiny_run), "--task", "retrieval", "--limit", "6"]) == 0
    out = capsys.readouterr().out
    assert "every caption is a query" in out and "text->video" in out and "video->text" in out
    assert "precision@10 of attribute matches" in out and "usual protocol: Shapes" in out
    assert main(["evaluate", str(tiny_run), "--jsfusion", "x.csv"]) == 2
