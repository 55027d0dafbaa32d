"""Training stops with one clear error instead of looping: no readable training clip, fewer
clips than one batch, an epoch that yields no step. Before, each of these looped for ever (one
run logged 6,921 empty epochs in 150 s, metrics.jsonl growing without end); here a guard counts
epochs so that the old behaviour fails the test instead of hanging it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import tiny_train_config
from vidcap.data.manifest import read_manifest, write_manifest
from vidcap.errors import VidcapError
from vidcap.runs.records import read_metrics
from vidcap.training import trainer
from vidcap.training.trainer import train

MAX_EPOCHS = 30


@pytest.fixture(autouse=True)
def epoch_guard(monkeypatch):
    """Fail (instead of hanging) when training runs through more than MAX_EPOCHS epochs."""
    original = trainer.Trainer._end_epoch
    count = {"epochs": 0}

    def guarded(self, *args, **kwargs):
        count["epochs"] += 1
        if count["epochs"] > MAX_EPOCHS:
            raise AssertionError(f"training looped through {MAX_EPOCHS} epochs without stopping")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(trainer.Trainer, "_end_epoch", guarded)


def _manifest(tiny_shapes: Path, tmp_path: Path, *, keep: int | None = None,
              unreadable: int = 0) -> Path:
    """The tiny set with `keep` training clips, the first `unreadable` of them pointing at
    files that are not videos."""
    records = read_manifest(tiny_shapes)
    train_records = [r for r in records if r.split == "train"]
    drop = set(id(r) for r in train_records[keep:]) if keep is not None else set()
    for record in records:
        record.path = str(record.video_path)
    for i, record in enumerate(train_records[:unreadable]):
        bad = tmp_path / f"bad-{i}.mp4"
        bad.write_bytes(b"not a video at all")
        record.path = str(bad)
    return write_manifest([r for r in records if id(r) not in drop], tmp_path / "manifest.jsonl")


CAPTION_ONLY = ("train.stages=[caption]", "train.eval_every=0", "train.eval_max_videos=0")


def test_every_training_clip_unreadable_stops_with_one_error(tiny_shapes: Path, tmp_path: Path):
    manifest = _manifest(tiny_shapes, tmp_path, unreadable=32)
    with pytest.raises(VidcapError, match="unreadable"):
        train(tiny_train_config(manifest, *CAPTION_ONLY), tmp_path / "run")
    assert len(read_metrics(tmp_path / "run")) <= 2  # an epoch's report, not thousands


def test_fewer_clips_than_one_batch_is_an_error_before_any_step(tiny_shapes: Path,
                                                                tmp_path: Path):
    # before: the loader dropped the one partial batch, every epoch was empty: a silent loop
    manifest = _manifest(tiny_shapes, tmp_path, keep=5)
    with pytest.raises(VidcapError, match=r"5 clip\(s\), fewer than one batch.*batch_size=8"):
        train(tiny_train_config(manifest, *CAPTION_ONLY), tmp_path / "run")
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_the_align_stage_stops_too(tiny_shapes: Path, tmp_path: Path):
    # the first stage, on 8 clips that are all unreadable: its first epoch yields no step
    manifest = _manifest(tiny_shapes, tmp_path, keep=8, unreadable=8)
    with pytest.raises(VidcapError, match="stage align gave no training step.*unreadable"):
        train(tiny_train_config(manifest, "train.eval_max_videos=0"), tmp_path / "run")
