import math

import pytest
import torch
from torch import nn

from vidcap.config import StageConfig, TrainConfig
from vidcap.training.optim import build_optimizer, build_scheduler, lr_factor, parameter_groups


def test_inverse_time_is_the_papers_eq4():
    stage = StageConfig(steps=100, lr=0.01, schedule="inverse_time", decay_rate=0.5)
    assert [lr_factor(t, stage) for t in (0, 1, 2, 10)] == [1.0, 1 / 1.5, 1 / 2.0, 1 / 6.0]


def test_inverse_time_in_epochs_holds_within_an_epoch():
    stage = StageConfig(steps=100, schedule="inverse_time", decay_rate=0.5, decay_unit="epoch")
    assert lr_factor(9, stage, steps_per_epoch=10) == 1.0
    assert lr_factor(10, stage, steps_per_epoch=10) == pytest.approx(1 / 1.5)


def test_warmup_then_cosine_reaches_zero():
    stage = StageConfig(steps=110, schedule="cosine", warmup_steps=10)
    assert lr_factor(0, stage) == pytest.approx(0.1)
    assert lr_factor(9, stage) == pytest.approx(1.0)
    assert lr_factor(10, stage) == pytest.approx(1.0)
    assert lr_factor(60, stage) == pytest.approx(0.5)
    assert lr_factor(110, stage) == pytest.approx(0.0, abs=1e-12)


def test_scheduler_applies_the_factor_to_the_optimiser():
    model = nn.Linear(3, 3)
    stage = StageConfig(steps=10, lr=0.01, schedule="inverse_time", decay_rate=0.5)
    optimizer = build_optimizer(model, stage, TrainConfig())
    scheduler = build_scheduler(optimizer, stage)
    lrs = []
    for _ in range(3):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs == pytest.approx([0.01, 0.01 / 1.5, 0.01 / 2.0])


def test_norms_and_biases_get_no_weight_decay_and_frozen_parameters_are_left_out():
    model = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4), nn.Linear(4, 2))
    model[2].requires_grad_(False)
    groups = parameter_groups(model.named_parameters(), 0.009)
    decayed = {id(p) for g in groups if g["weight_decay"] for p in g["params"]}
    plain = {id(p) for g in groups if not g["weight_decay"] for p in g["params"]}
    assert decayed == {id(model[0].weight)}
    assert plain == {id(model[0].bias), id(model[1].weight), id(model[1].bias)}
    assert all(g["weight_decay"] in (0.009, 0.0) for g in groups)


def test_adamw_is_chosen_when_asked():
    optimizer = build_optimizer(nn.Linear(2, 2), StageConfig(), TrainConfig(optimizer="adamw"))
    assert isinstance(optimizer, torch.optim.AdamW)
    assert not math.isnan(optimizer.param_groups[0]["lr"])
