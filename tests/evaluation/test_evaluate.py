"""`vidcap evaluate`: caption a split with a saved run, write predictions and scores."""

from __future__ import annotations

import json
import shutil
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
    log = [json.loads(line) for line in (tiny_run / "predictions-test.jsonl").read_text()
           .splitlines()]
    assert log[0]["settings"]["split"] == "test"
    assert {line["video_id"]: line["caption"] for line in log[1:]} == predictions


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


def _log_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_an_unwritable_output_keeps_every_caption_and_a_rerun_only_scores(
        tiny_run: Path, tmp_path: Path, capsys):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    for old in run.glob("predictions-val.*"):  # left by the tests before
        old.unlink()
    (run / "predictions-val.json").mkdir()  # the final file cannot be written
    args = ["evaluate", str(run), "--split", "val", "--limit", "4", "--workers", "0"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "predictions-val.jsonl" in err[0] and "rerun" in err[0]
    lines = _log_lines(run / "predictions-val.jsonl")
    assert "settings" in lines[0] and len(lines) == 5
    captions = {line["video_id"]: line["caption"] for line in lines[1:]}
    (run / "predictions-val.json").rmdir()
    assert main(args) == 0
    assert _log_lines(run / "predictions-val.jsonl") == lines  # nothing captioned again
    assert json.loads((run / "predictions-val.json").read_text()) == captions
    assert main(args[:-2] + ["--decode", "beam", "--workers", "0"]) == 0  # other settings
    again = _log_lines(run / "predictions-val.jsonl")
    assert again[0]["settings"]["decode"]["strategy"] == "beam" and len(again) == 5


def test_evaluate_long_prints_cut_and_segment_scores_and_writes_them(tiny_run: Path,
                                                                     tmp_path: Path, capsys):
    from vidcap.data.shapes_long import LongShapesSpec, prepare_long_shapes
    from vidcap.evaluation.segments import read_long_truth

    prepare_long_shapes(tmp_path / "long", LongShapesSpec(size=32, seed=555, clips=(3, 4)), 2)
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    assert main(["evaluate", str(run), "--long", str(tmp_path / "long"), "--workers", "1"]) == 0
    out = capsys.readouterr().out
    scores = json.loads((run / "scores-long.json").read_text())
    truth = read_long_truth(tmp_path / "long")
    cuts = scores["cuts"]
    assert cuts["tp"] + cuts["fn"] == sum(len(v.cuts) for v in truth.values())
    assert scores["segments"]["mode"] == "auto" and scores["segments"]["clip_length"] == 2.0
    seen, held = scores["attributes"]["seen"], scores["attributes"]["held_out"]
    assert seen["n"] + held["n"] == sum(len(v.segments) for v in truth.values())
    for value in (cuts["recall"], seen["colour"], seen["shape"], seen["motion"],
                  held["colour"]):
        assert f"{100 * value:5.1f}" in out
    assert "precision" in out and "held-out" in out and "segments" in out
    predictions = json.loads((run / "predictions-long.json").read_text())
    assert set(predictions) == set(truth)
    for video_id, cues in predictions.items():
        assert cues[0]["start"] == 0.0 and cues[-1]["end"] == truth[video_id].duration


@pytest.mark.slow
def test_torchrun_two_processes_evaluate_as_one(tiny_run: Path, tmp_path: Path, java):
    import os
    import subprocess
    import sys

    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    runs = {}
    for name in ("one", "two"):
        runs[name] = tmp_path / name
        shutil.copytree(tiny_run, runs[name])
        for old in runs[name].glob("predictions-val.*"):
            old.unlink()
    args = ["-m", "vidcap", "evaluate", "--split", "val", "--workers", "0"]
    torchrun = Path(sys.executable).with_name("torchrun")
    for name, launcher in (("one", [sys.executable]),
                           ("two", [str(torchrun), "--standalone", "--nproc_per_node", "2"])):
        done = subprocess.run([*launcher, *args[:3], str(runs[name]), *args[3:]], env=env,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr
        assert done.stdout.count("CIDEr") == 1  # rank 0 alone prints

    def log(run: Path) -> list[tuple]:
        return [(line.get("video_id"), line.get("caption"), line.get("error"))
                for line in _log_lines(run / "predictions-val.jsonl")[1:]]

    assert log(runs["two"]) == log(runs["one"]) and len(log(runs["one"])) == 8
    for name in ("predictions-val.json", "scores-val.json"):
        assert json.loads((runs["two"] / name).read_text()) == \
            json.loads((runs["one"] / name).read_text())
