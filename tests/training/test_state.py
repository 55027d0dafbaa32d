"""vidcap.training.state: RNG states survive a weights-only save and load."""

import random

import numpy as np
import torch

from vidcap.training.state import rng_state, set_rng_state


def test_rng_state_roundtrip_through_a_weights_only_load(tmp_path):
    state = rng_state()
    torch.save({"rng": [state]}, tmp_path / "s.pt")
    expected = (random.random(), float(np.random.rand()), float(torch.rand(1)))
    set_rng_state(torch.load(tmp_path / "s.pt", weights_only=True)["rng"][0])
    assert (random.random(), float(np.random.rand()), float(torch.rand(1))) == expected
