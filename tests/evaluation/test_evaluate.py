"""`vidcap evaluate`: caption a split with a saved run, write predictions and scores."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vidcap.cli import main
from vidcap.data.manifest import read_manifest
from vidcap.evaluation.evaluate import evaluate_run


@pytest.mark.slow
def test_evaluate_writes_predictions_and_scores_with_shapes_attributes(tiny_run: Path,
                                                                      tiny_shapes: Path, java):
    scores = evaluate_run(tiny_run, split="test")
    test_ids = {r.video_id for r in read_manifest(tiny_shapes, "test")}
    predictions = json.loads((tiny_run / "predictions-test.json").read_text())
    assert set(predictions) == test_ids
    assert all(isinstance(c, str) for c in predictions.values())
    saved = json.loads((tiny_run / "scores-test.json").read_text())
    for key in ("Bleu_1", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr"):
        assert 0.0 <= saved[key] <= 10.0 and saved[key] == scores[key]
    assert saved["videos"] == len(test_ids) and saved["failed"] == 0
    seen, held = saved["attributes"]["seen"], saved["attributes"]["held_out"]
    assert seen["n"] + held["n"] == len(test_ids) and held["n"] > 0


def test_evaluate_cli_prints_the_table_and_honours_decoding_options(tiny_run: Path, capsys):
    assert main(["evaluate", str(tiny_run), "--split", "val", "--decode", "beam",
                 "--num-beams", "2", "--limit", "3"]) == 0
    out = capsys.readouterr().out
    assert "CIDEr" in out and "held-out" in out
    saved = json.loads((tiny_run / "scores-val.json").read_text())
    assert saved["decode"]["strategy"] == "beam" and saved["decode"]["num_beams"] == 2
    assert saved["videos"] == 3


def test_evaluate_on_something_that_is_not_a_run_is_one_line(tmp_path: Path, capsys):
    assert main(["evaluate", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a run directory" in err[0]
