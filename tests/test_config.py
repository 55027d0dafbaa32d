"""Typed configuration: YAML <-> dataclasses, presets, `extends`, overrides, key-naming errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from vidcap.config import Config, load_config, preset_dirs, save_config, to_dict
from vidcap.errors import ConfigError


def test_every_preset_loads_and_survives_a_yaml_roundtrip(tmp_path: Path):
    names = sorted({p.stem for d in preset_dirs() for p in d.glob("*.yaml")})
    assert {"shapes-tiny", "paper", "msvd-paper", "msrvtt-paper", "vatex-paper"} <= set(names)
    for name in names:
        cfg = load_config(name)
        save_config(cfg, tmp_path / f"{name}.yaml")
        assert to_dict(load_config(tmp_path / f"{name}.yaml")) == to_dict(cfg)


def test_overrides_set_nested_values_with_yaml_types():
    cfg = load_config("shapes-tiny", ["train.caption.lr=3e-4", "model.mapper.kind=mlp",
                                      "train.stages=[caption]", "model.decoder.pretrained=null",
                                      "video.mean=[0.5, 0.5, 0.5]"])
    assert cfg.train.caption.lr == 3e-4 and isinstance(cfg.train.caption.lr, float)
    assert cfg.model.mapper.kind == "mlp" and cfg.train.stages == ["caption"]
    assert cfg.model.decoder.pretrained is None and cfg.video.mean == [0.5, 0.5, 0.5]


@pytest.mark.parametrize("override, message", [
    ("model.mapper.kind=lstm", "model.mapper.kind: expected one of 'transformer', 'mlp'"),
    ("model.nope=1", "model.nope: unknown key"),
    ("train.caption.steps=many", "train.caption.steps: expected int"),
    ("train.caption.steps=2.5", "train.caption.steps: expected int"),
    ("train.seed=true", "train.seed: expected int"),
    ("video.num_frames=0", "video.num_frames: must be at least 1"),
    ("train.align.lr=-1", "train.align.lr: must be positive"),
    ("train.stages=[caption, finetune]", "train.stages[1]: expected one of 'align', 'caption'"),
    ("video=3", "video: expected a mapping"),
    ("video.num_frames.x=3", "video.num_frames: is a value, not a section"),
    ("novalue", "must look like key.subkey=value"),
])
def test_bad_settings_are_errors_that_name_the_key(override, message):
    with pytest.raises(ConfigError) as err:
        load_config("shapes-tiny", [override])
    assert message in str(err.value)


def test_yaml_files_extend_presets_and_unknown_keys_in_files_are_named(tmp_path: Path):
    child = tmp_path / "mine.yaml"
    child.write_text("extends: shapes-tiny\ntrain:\n  caption:\n    steps: 7\n")
    cfg = load_config(child)
    assert cfg.train.caption.steps == 7
    assert cfg.model.encoder.hidden_size == load_config("shapes-tiny").model.encoder.hidden_size
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  encoder:\n    hidden_sise: 64\n")
    with pytest.raises(ConfigError, match="model.encoder.hidden_sise: unknown key"):
        load_config(bad)
    loop = tmp_path / "loop.yaml"
    loop.write_text("extends: loop.yaml\n")
    with pytest.raises(ConfigError, match="loops back"):
        load_config(loop)
    with pytest.raises(ConfigError, match="no such config file or preset"):
        load_config("no-such-preset")


def test_defaults_are_a_valid_config():
    assert isinstance(load_config(None), Config)
