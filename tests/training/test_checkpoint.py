import random

import numpy as np
import pytest
import torch
from torch import nn

from vidcap.errors import RunError
from vidcap.training.checkpoint import (CheckpointManager, load_weights, rng_state, save_weights,
                                        set_rng_state)


class Tied(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.decoder = nn.Embedding(10, 4)
        self.head = nn.Linear(4, 10, bias=False)
        self.head.weight = self.decoder.weight  # tied, as GPT-2's lm_head and wte
        self.text_encoder = nn.Linear(4, 4)


def test_weights_roundtrip_keeps_ties_and_skips_excluded_components(tmp_path):
    torch.manual_seed(0)
    source, target = Tied(), Tied()
    file = tmp_path / "w.safetensors"
    save_weights(source, file, exclude={"text_encoder"})
    frozen_before = target.text_encoder.weight.clone()
    load_weights(target, file)
    assert torch.equal(target.decoder.weight, source.decoder.weight)
    assert target.head.weight is target.decoder.weight
    assert torch.equal(target.text_encoder.weight, frozen_before)  # not in the file: kept


def test_loading_weights_of_another_model_is_a_clear_error(tmp_path):
    file = tmp_path / "w.safetensors"
    save_weights(nn.Linear(2, 2), file)
    with pytest.raises(RunError, match="do not fit"):
        load_weights(Tied(), file)
    with pytest.raises(RunError, match="not found"):
        load_weights(Tied(), tmp_path / "missing.safetensors")


def test_rng_state_roundtrip_through_a_weights_only_load(tmp_path):
    state = rng_state()
    torch.save({"rng": [state]}, tmp_path / "s.pt")
    expected = (random.random(), float(np.random.rand()), float(torch.rand(1)))
    set_rng_state(torch.load(tmp_path / "s.pt", weights_only=True)["rng"][0])
    assert (random.random(), float(np.random.rand()), float(torch.rand(1))) == expected


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
