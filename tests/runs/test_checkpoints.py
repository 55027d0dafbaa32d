"""vidcap.runs.checkpoints: the last K kept, half-written folders ignored."""

import shutil

import pytest
from torch import nn

from vidcap.errors import RunError
from vidcap.runs.checkpoints import CheckpointManager


def test_manager_keeps_the_last_k_and_ignores_half_written_folders(tmp_path):
    manager = CheckpointManager(tmp_path, keep_last=2)
    model = nn.Linear(2, 2)
    for step in (5, 10, 15):
        manager.save(model, {"state": {"step": step}}, stage_index=0, stage="align", step=step)
    manager.save(model, {"state": {"step": 5}}, stage_index=1, stage="caption", step=5)
    (tmp_path / "checkpoints" / ".tmp-1-caption-00000010-99").mkdir()  # a killed writer's
    names = [p.name for p in manager.list()]
    assert names == ["0-align-00000015", "1-caption-00000005"]
    state = CheckpointManager.load(manager.latest(), nn.Linear(2, 2))
    assert state["state"]["step"] == 5


def test_stray_folders_are_ignored_and_a_damaged_latest_falls_back(tmp_path, caplog):
    manager = CheckpointManager(tmp_path, keep_last=3)
    model = nn.Linear(2, 2)
    for step in (2, 4):
        manager.save(model, {"state": {"step": step}}, stage_index=0, stage="align", step=step)
    (tmp_path / "checkpoints" / "notes").mkdir()
    shutil.copytree(tmp_path / "checkpoints" / "0-align-00000002",
                    tmp_path / "checkpoints" / "x-y-z")
    assert [p.name for p in manager.list()] == ["0-align-00000002", "0-align-00000004"]
    state = tmp_path / "checkpoints" / "0-align-00000004" / "trainer_state.pt"
    state.write_bytes(b"\0" * 10)
    path, loaded = manager.load_latest(nn.Linear(2, 2))
    assert path.name == "0-align-00000002" and loaded["state"]["step"] == 2
    assert "previous good checkpoint" in caplog.text
    weights = tmp_path / "checkpoints" / "0-align-00000002" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-4])
    with pytest.raises(RunError, match="no checkpoint can be resumed from"):
        manager.load_latest(nn.Linear(2, 2))
