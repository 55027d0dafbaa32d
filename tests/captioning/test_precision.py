"""Inference precision: fp32 and bf16 both caption, `--precision auto` follows the (injected)
hardware, and what was used is recorded."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from vidcap import runtime
from vidcap.captioning.batch import caption_files, caption_records
from vidcap.cli import main
from vidcap.data.manifest import read_manifest
from vidcap.evaluation.evaluate import evaluate_run
from vidcap.models.mffcl import MFFCL
from vidcap.runs.store import load_run, read_config


@pytest.fixture
def clips(tiny_shapes: Path) -> list[Path]:
    return [r.video_path for r in read_manifest(tiny_shapes, "test")[:2]]


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_fp32_and_bf16_inference_both_caption(tiny_run: Path, tiny_shapes: Path,
                                              clips: list[Path], precision: str):
    model = load_run(tiny_run)
    cfg = read_config(tiny_run)
    results = list(caption_files(model, clips, model.video_cfg, cfg.generate,
                                 precision=precision))
    assert [r.key for r in results] == [str(c) for c in clips] and all(r.ok and r.caption for r in results)
    records = read_manifest(tiny_shapes, "val")[:3]
    captions, failed = caption_records(model, records, cfg, precision=precision, progress=False)
    assert set(captions) == {r.video_id for r in records} and not failed
    assert all(isinstance(c, str) and c for c in captions.values())
    assert next(model.parameters()).dtype == torch.float32  # autocast: the weights stay fp32


def _autocast_seen_by_generate(monkeypatch) -> list[bool]:
    """Record, at each MFFCL.generate call, whether bf16 autocast is on."""
    seen: list[bool] = []
    original = MFFCL.generate

    def generate(self, *args, **kwargs):
        seen.append(torch.is_autocast_enabled("cpu"))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(MFFCL, "generate", generate)
    return seen


@pytest.mark.parametrize("capability, autocast", [("AVX2", False), ("AMX_BF16", True)])
def test_caption_auto_follows_the_cpu(tiny_run: Path, clips: list[Path], monkeypatch, capsys,
                                      capability: str, autocast: bool):
    monkeypatch.setattr(runtime, "cpu_capability", lambda: capability)
    seen = _autocast_seen_by_generate(monkeypatch)
    assert main(["caption", str(tiny_run), str(clips[0]), "--threads", "1"]) == 0
    assert seen == [autocast]
    assert capsys.readouterr().out.startswith(str(clips[0]))


def test_asking_for_fp32_on_a_bf16_cpu_gets_fp32(tiny_run: Path, clips: list[Path],
                                                  monkeypatch):
    monkeypatch.setattr(runtime, "cpu_capability", lambda: "AMX_BF16")
    seen = _autocast_seen_by_generate(monkeypatch)
    assert main(["caption", str(tiny_run), str(clips[0]), "--threads", "1",
                 "--precision", "fp32"]) == 0
    assert seen == [False]


def test_bf16_asked_for_on_an_avx2_cpu_runs_with_a_warning(tiny_run: Path, clips: list[Path],
                                                          monkeypatch, caplog):
    monkeypatch.setattr(runtime, "cpu_capability", lambda: "AVX2")
    seen = _autocast_seen_by_generate(monkeypatch)
    assert main(["caption", str(tiny_run), str(clips[0]), "--threads", "1",
                 "--precision", "bf16"]) == 0
    assert seen == [True]
    assert any("emulated" in r.getMessage() and r.levelname == "WARNING" for r in caplog.records)


def test_evaluate_records_the_precision_used(tiny_run: Path, tmp_path: Path, monkeypatch):
    run = Path(shutil.copytree(tiny_run, tmp_path / "run"))
    monkeypatch.setattr(runtime, "cpu_capability", lambda: "AVX2")
    assert main(["evaluate", str(run), "--split", "val", "--limit", "2", "--threads", "1"]) == 0
    assert json.loads((run / "scores-val.json").read_text())["precision"] == "fp32"
    scores = evaluate_run(run, split="val", limit=2, precision="bf16")
    assert scores["precision"] == "bf16" and scores["videos"] == 2
