"""`vidcap demo` end to end on a small Shapes set with the tiny model (the CLI smoke test)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import TINY, TINY_TRAIN
from vidcap.cli import main


@pytest.mark.slow
def test_demo_prepares_trains_evaluates_and_reports(tmp_path: Path, capsys, java):
    sets = [arg for o in TINY + TINY_TRAIN for arg in ("--set", o)]
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--videos", "60", *sets]) == 0
    printed = capsys.readouterr().out
    assert "CIDEr" in printed and "held-out" in printed and "reference:" in printed
    scores = json.loads((out / "scores-test.json").read_text())
    for group in ("seen", "held_out"):
        assert set(scores["attributes"][group]) == {"colour", "shape", "motion", "all", "n"}
    assert {"Bleu_4", "METEOR", "ROUGE_L", "CIDEr"} <= set(scores)
    for name in ("manifest.jsonl", "attributes.jsonl"):
        assert (out / "shapes" / name).is_file()
    for name in ("config.yaml", "model/model.safetensors", "metrics.jsonl", "curves.png",
                 "predictions-test.json"):
        assert (out / name).is_file()
    # a second demo replaces the finished run, reusing the generated clips
    clips_before = (out / "shapes" / "manifest.jsonl").stat().st_mtime_ns
    assert main(["demo", "--out", str(out), "--videos", "60", *sets]) == 0
    assert (out / "shapes" / "manifest.jsonl").stat().st_mtime_ns == clips_before
