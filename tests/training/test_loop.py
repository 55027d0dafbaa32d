"""Two-stage training end to end on a tiny Shapes set: run directory, resume after SIGKILL,
unreadable videos, and torchrun with 2 processes against 1."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from tests.conftest import tiny_train_config
from vidcap.config import save_config
from vidcap.data.manifest import read_manifest, write_manifest
from vidcap.errors import RunError
from vidcap.runs.layout import RunLayout
from vidcap.runs.store import load_run
from vidcap.training.trainer import train
from vidcap.runs.records import read_metrics

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
       "HF_HUB_DISABLE_PROGRESS_BARS": "1", "TOKENIZERS_PARALLELISM": "false"}


def _vidcap(*args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "vidcap", *args], env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def _write_config(path: Path, manifest: Path, *overrides: str) -> Path:
    save_config(tiny_train_config(manifest, *overrides), path)
    return path


def test_a_run_directory_holds_what_design_lists(tiny_run: Path):
    for name in ("config.yaml", "model/model.safetensors", "trainer_state.pt", "metrics.jsonl",
                 "curves.png", "model/tokenizer", "best/model.safetensors",
                 "model/checksums.json", "best/checksums.json"):
        assert (tiny_run / name).exists(), name
    lines = read_metrics(tiny_run)
    steps = {(m["stage"], m["step"]) for m in lines if m["event"] == "train"}
    assert {("align", s) for s in range(1, 5)} | {("caption", s) for s in range(1, 9)} == steps
    evals = [m for m in lines if m["event"] == "eval" and m["stage"] == "caption"]
    assert [m["step"] for m in evals] == [4, 8] and all("CIDEr" in m for m in evals)
    assert "attributes" in evals[0]  # Shapes: attribute accuracies beside the scores
    aligned = [m for m in lines if m["event"] == "eval" and m["stage"] == "align"]
    assert [m["step"] for m in aligned] == [4]  # the align stage validates by retrieval
    assert 0 <= aligned[0]["t2v_r1"] <= aligned[0]["t2v_r5"] <= aligned[0]["t2v_r10"] <= 100
    config = yaml.safe_load((tiny_run / "config.yaml").read_text())
    assert Path(config["data"]["manifest"]).is_absolute()
    assert set(config) >= {"video", "model", "data", "train", "generate"}


def test_load_run_gives_a_captioning_model(tiny_run: Path):
    model = load_run(tiny_run)
    captions = model.generate(torch.zeros(2, 4, 3, 32, 32))
    assert len(captions) == 2 and all(isinstance(c, str) for c in captions)
    best = json.loads((tiny_run / "best" / "info.json").read_text())
    assert best["metric"] == "CIDEr" and best["step"] in (4, 8)
    final = load_run(tiny_run, which="final")
    assert any(not torch.equal(a, b) for a, b in zip(model.state_dict().values(),
                                                      final.state_dict().values())) \
        or best["step"] == 8


def test_training_again_into_a_used_run_directory_is_refused(tiny_run: Path, tiny_shapes: Path):
    with pytest.raises(RunError, match="already finished"):
        train(tiny_train_config(tiny_shapes), tiny_run, resume=True)


@pytest.mark.slow
def test_sigkill_then_resume_reaches_the_same_weights(tiny_shapes: Path, tmp_path: Path):
    config = _write_config(tmp_path / "tiny.yaml", tiny_shapes, "train.caption.steps=24",
                           "train.eval_every=0", "train.checkpoint_every=2")
    whole = _vidcap("train", str(config), "--out", str(tmp_path / "whole"))
    assert whole.wait(timeout=300) == 0, whole.stderr.read()

    killed = _vidcap("train", str(config), "--out", str(tmp_path / "killed"))
    mid = tmp_path / "killed" / "checkpoints" / "1-caption-00000006"
    deadline = time.time() + 300
    while not mid.exists() and killed.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert killed.returncode == -signal.SIGKILL
    assert not (tmp_path / "killed" / "trainer_state.pt").exists(), "the run ended before the kill"

    resumed = _vidcap("train", str(config), "--out", str(tmp_path / "killed"), "--resume")
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read()
    a = load_file(RunLayout(tmp_path / "whole").weights)
    b = load_file(RunLayout(tmp_path / "killed").weights)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed weights differ from uninterrupted"
    steps = [m["step"] for m in read_metrics(tmp_path / "killed")
             if m["event"] == "train" and m["stage"] == "caption"]
    assert steps == list(range(1, 25))  # no step logged twice, none missing


@pytest.mark.slow
def test_unreadable_videos_are_skipped_counted_and_reported(tiny_shapes: Path, tmp_path: Path):
    records = read_manifest(tiny_shapes)
    train_records = [r for r in records if r.split == "train"]
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(train_records[0].video_path.read_bytes()[:600])
    train_records[0].path = str(corrupt)
    train_records[1].path = str(tmp_path / "missing.mp4")
    for record in records:
        record.path = str(record.video_path)
    manifest = write_manifest(records, tmp_path / "manifest.jsonl")
    run = train(tiny_train_config(manifest, "train.stages=[caption]", "train.eval_every=0",
                                  "train.caption.steps=6"), tmp_path / "run")
    skipped = [m for m in read_metrics(run) if m["event"] == "skipped"]
    assert skipped, "no epoch reported its unreadable videos"
    assert set(skipped[0]["videos"]) == {train_records[0].video_id, train_records[1].video_id}
    assert skipped[0]["count"] == 2
    assert RunLayout(run).weights.is_file()


@pytest.mark.slow
def test_torchrun_two_processes_follow_the_one_process_curve(tiny_shapes: Path, tmp_path: Path):
    config = _write_config(tmp_path / "tiny.yaml", tiny_shapes, "train.eval_every=0",
                           "train.checkpoint_every=0", "model.decoder.dropout=0.0")
    one = _vidcap("train", str(config), "--out", str(tmp_path / "one"))
    torchrun = Path(sys.executable).with_name("torchrun")
    two = subprocess.Popen([str(torchrun), "--standalone", "--nproc_per_node", "2", "-m",
                            "vidcap", "train", str(config), "--out", str(tmp_path / "two")],
                           env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert one.wait(timeout=300) == 0, one.stderr.read()
    assert two.wait(timeout=300) == 0, two.stderr.read()

    def curve(run: str) -> dict[tuple[str, int], float]:
        return {(m["stage"], m["step"]): m["loss"] for m in read_metrics(tmp_path / run)
                if m["event"] == "train"}

    a, b = curve("one"), curve("two")
    assert a.keys() == b.keys()
    # align: InfoNCE over the gathered global batch is the same loss, the same gradient
    for key in (k for k in a if k[0] == "align"):
        assert b[key] == pytest.approx(a[key], rel=1e-4, abs=1e-4), key
    # caption: each process averages over its own tokens, so the mean of the two process means
    # weighs tokens slightly differently from one mean over the global batch
    for key in (k for k in a if k[0] == "caption"):
        assert b[key] == pytest.approx(a[key], rel=0.02), key
    lines = read_metrics(tmp_path / "two")
    assert len(lines) == len(read_metrics(tmp_path / "one"))  # rank 0 alone wrote
    assert not RunLayout(tmp_path / "two").lock.exists()  # rank 0 held the run's lock, and let go


def test_the_caption_stage_can_start_from_the_align_stage_best(tiny_shapes: Path, tmp_path: Path):
    from vidcap.models.weights import read_weights
    from vidcap.runs.layout import RunLayout

    run = train(tiny_train_config(tiny_shapes, "train.align.steps=6", "train.eval_every=2",
                                  "train.align_keep_best=true",
                                  "train.caption.trainable=[mapper,decoder]"), tmp_path / "run")
    layout = RunLayout(run)
    info = json.loads((layout.best_align / "info.json").read_text())
    aligned = [m for m in read_metrics(run) if m["event"] == "eval" and m["stage"] == "align"]
    assert [m["step"] for m in aligned] == [2, 4, 6]
    best = max(aligned, key=lambda m: (m["t2v_r1"], -m["step"]))
    assert info["metric"] == "t2v_r1" and info["step"] == best["step"]
    # the encoder is frozen in the caption stage: the final model keeps the best-align encoder
    kept = read_weights(layout.best_align / "model.safetensors")
    final = read_weights(layout.weights)
    encoder = [k for k in kept if k.startswith("encoder.")]
    assert encoder and all(torch.equal(kept[k], final[k]) for k in encoder)
