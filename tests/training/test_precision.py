"""Training precision: `train.precision: auto` decided for the (injected) hardware, and the run
directory saying what was chosen and why."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from tests.conftest import tiny_train_config
from vidcap import runtime
from vidcap.runs.records import read_metrics
from vidcap.runs.store import load_run, read_config
from vidcap.training.trainer import train

ONE_STEP = ["train.stages=[caption]", "train.caption.steps=1", "train.eval_max_videos=0",
            "train.precision=auto"]


def test_the_run_says_what_precision_it_used(tiny_run: Path):
    head = (tiny_run / "config.yaml").read_text().splitlines()[0]
    assert head == "# train.precision: fp32 ran as fp32 on cpu: asked for."
    assert read_config(tiny_run).train.precision == "fp32"  # the comment reads back as nothing
    runtime_lines = [m for m in read_metrics(tiny_run) if m["event"] == "runtime"]
    assert len(runtime_lines) == 1
    line = runtime_lines[0]
    assert line["precision"] == line["requested"] == "fp32" and line["threads"] >= 1
    assert (line["stage_index"], line["step"]) == (0, 0)
    assert line["openmp_wait"] in ("default", "passive", "active")  # as the process had it


@pytest.mark.parametrize("capability, chosen", [("AVX2", "fp32"), ("AVX512_BF16", "bf16")])
def test_auto_training_follows_the_cpu(tiny_shapes: Path, tmp_path: Path, monkeypatch,
                                       capability: str, chosen: str):
    monkeypatch.setattr(runtime, "cpu_capability", lambda: capability)
    run = train(tiny_train_config(tiny_shapes, *ONE_STEP), tmp_path / "run")
    text = (run / "config.yaml").read_text()
    assert text.startswith(f"# train.precision: auto ran as {chosen} on cpu: auto: CPU "
                           f"{capability}")
    assert yaml.safe_load(text)["train"]["precision"] == "auto"  # the setting itself is kept
    line = next(m for m in read_metrics(run) if m["event"] == "runtime")
    assert line["precision"] == chosen and line["requested"] == "auto"
    assert capability in line["reason"]
    assert len(load_run(run).generate(torch.zeros(1, 4, 3, 32, 32))) == 1
