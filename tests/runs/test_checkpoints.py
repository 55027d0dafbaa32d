"""vidcap.runs.checkpoints: the last K kept, half-written folders ignored."""

from torch import nn

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
