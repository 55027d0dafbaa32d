"""vidcap.models.weights: the one writer and the one check of weights files."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from torch import nn

from vidcap.errors import RunError
from vidcap.models.weights import load_weights, read_weights, save_weights


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
    save_weights(source, file, skip={"text_encoder"})
    assert set(read_weights(file)) == {"decoder.weight"}  # the tied head is stored once
    frozen_before = target.text_encoder.weight.clone()
    load_weights(target, read_weights(file), file, may_lack={"text_encoder"})
    assert torch.equal(target.decoder.weight, source.decoder.weight)
    assert target.head.weight is target.decoder.weight
    assert torch.equal(target.text_encoder.weight, frozen_before)  # not in the file: kept
    assert not list(tmp_path.glob(".*tmp*"))  # the temporary file was renamed away


def test_a_component_absent_without_leave_is_an_error(tmp_path):
    file = tmp_path / "w.safetensors"
    save_weights(Tied(), file, skip={"text_encoder"})
    with pytest.raises(RunError, match="lacks 2 weights"):
        load_weights(Tied(), read_weights(file), file)


def test_loading_weights_of_another_model_is_a_clear_error(tmp_path):
    file = tmp_path / "w.safetensors"
    save_weights(nn.Linear(2, 2), file)
    with pytest.raises(RunError, match="do not fit"):
        load_weights(Tied(), read_weights(file), file)
    with pytest.raises(RunError, match="not found"):
        read_weights(tmp_path / "missing.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(RunError, match="junk.safetensors: not a readable safetensors file"):
        read_weights(tmp_path / "junk.safetensors")


def test_shapes_are_checked_before_anything_is_copied(tmp_path):
    file = tmp_path / "w.safetensors"
    save_weights(nn.Linear(2, 3, bias=False), file)
    target = nn.Linear(2, 4, bias=False)
    before = target.weight.clone()
    with pytest.raises(RunError, match=r"weight has shape \(3, 2\) but the config makes it "
                                       r"\(4, 2\)"):
        load_weights(target, read_weights(file), file)
    assert torch.equal(target.weight, before)


def test_non_finite_weights_are_refused_naming_the_tensor(tmp_path):
    model = nn.Linear(2, 2)
    with torch.no_grad():
        model.bias[1] = float("inf")
    file = tmp_path / "w.safetensors"
    save_weights(model, file)
    with pytest.raises(RunError, match="w.safetensors: tensor bias holds NaN or infinite"):
        read_weights(file)


_SAVE_IN_A_NEW_PROCESS = """
import sys, torch
from torch import nn
from vidcap.models.weights import save_weights
torch.manual_seed(0)
model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
save_weights(model, sys.argv[1], metadata={"format": "pt", "text_encoder": "from-pretrained",
                                           "a": "1", "z": "2"})
"""


def test_the_same_weights_give_the_same_bytes_in_every_process(tmp_path: Path):
    # safetensors orders the metadata by a hash map seeded per process: without the rewrite,
    # some of these files differ in their header
    files = [tmp_path / f"w{i}.safetensors" for i in range(3)]
    for file in files:
        subprocess.run([sys.executable, "-c", _SAVE_IN_A_NEW_PROCESS, str(file)], check=True)
    assert len({f.read_bytes() for f in files}) == 1
    with safe_open(str(files[0]), "pt") as f:
        assert f.metadata() == {"format": "pt", "text_encoder": "from-pretrained", "a": "1",
                                "z": "2"}
        assert sorted(f.keys()) == ["0.bias", "0.weight", "1.bias", "1.weight"]
