"""Properties of config reading: a saved config loads back equal; any YAML, any dict, any bytes,
any `--set` text give a Config or a clean ConfigError."""

from __future__ import annotations

import functools
import json

import yaml
from hypothesis import given
from hypothesis import strategies as st

from tests.property.conftest import FEW, JSON, PROPERTY, TEXT, clean_or_value
from vidcap.config import Config, apply_overrides, from_dict, load_config, save_config, to_dict

FINITE = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
VALID = {
    "train.seed": st.integers(0, 2**63),
    "train.weight_decay": st.floats(0, 1),
    "train.grad_clip": st.floats(0, 100),
    "train.caption.lr": st.floats(1e-8, 10),
    "train.align.steps": st.integers(0, 10**9),
    "train.optimizer": st.sampled_from(["adam", "adamw"]),
    "train.stages": st.sampled_from([["align", "caption"], ["caption"], ["align"]]),
    "train.eval_max_videos": st.one_of(st.none(), st.integers(1, 10**6)),
    "model.mapper.kind": st.sampled_from(["transformer", "mlp"]),
    "model.decoder.pretrained": st.one_of(st.none(), TEXT),
    "data.manifest": TEXT,
    "data.cache_dir": st.one_of(st.none(), TEXT),
    "video.mean": st.lists(FINITE, min_size=3, max_size=3),
    "generate.top_p": st.floats(0.01, 1),
}
"""Dotted keys and strategies of values each field takes."""


def _nested(flat: dict[str, object]) -> dict:
    tree: dict = {}
    for key, value in flat.items():
        node = tree
        *parents, last = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return tree


SETTINGS = st.dictionaries(st.sampled_from(sorted(VALID)), st.none()).flatmap(
    lambda keys: st.fixed_dictionaries({k: VALID[k] for k in keys}))


@PROPERTY
@given(SETTINGS)
def test_a_saved_config_loads_back_equal(scratch, flat):
    cfg = from_dict(Config, _nested(flat))
    path = scratch("config.yaml", b"")
    save_config(cfg, path)
    assert to_dict(load_config(path)) == to_dict(cfg)


@PROPERTY
@given(st.dictionaries(st.sampled_from(["video", "model", "train", "data", "generate", "x"]),
                       JSON, max_size=3))
def test_any_dict_is_a_config_or_a_clean_error(data):
    cfg = clean_or_value(lambda: from_dict(Config, data))
    assert cfg is None or isinstance(cfg, Config)


@PROPERTY
@given(st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), TEXT),
                    lambda inner: st.one_of(st.lists(inner, max_size=3),
                                            st.dictionaries(TEXT, inner, max_size=3)),
                    max_leaves=10))
def test_any_yaml_document_is_a_config_or_a_clean_error(scratch, value):
    path = scratch("c.yaml", yaml.safe_dump(value, allow_unicode=True))
    cfg = clean_or_value(lambda: load_config(path))
    assert cfg is None or isinstance(cfg, Config)


@PROPERTY
@given(st.one_of(st.binary(max_size=200), TEXT.map(str.encode),
                 st.text("abcdeilmnorstv:{}[]-&*!|>'\"#%@`\n ,.0123456789", max_size=80)
                 .map(str.encode)))
def test_any_bytes_are_a_config_or_a_clean_error(scratch, data):
    path = scratch("c.yaml", data)
    cfg = clean_or_value(lambda: load_config(path))
    assert cfg is None or isinstance(cfg, Config)


TAGS = ["!!int", "!!float", "!!bool", "!!null", "!!str", "!!timestamp", "!!binary", "!!set",
        "!!omap", "!!pairs", "!!seq", "!!map", "!!merge", "!!python/object", "!custom", ""]


@PROPERTY
@given(st.sampled_from(TAGS), st.one_of(
    st.text("0123456789-:.TZ +eE_xob", max_size=30), TEXT.map(json.dumps),
    st.sampled_from(["[1, 2]", "{a: 1}", "2001-13-01", "2001-02-30 25:61:61", "0x_", "1_0",
                     "=", "<<", "~", ".nan", "-.inf", "0o9", "0b2", "1:2:3"])))
def test_any_tagged_scalar_is_a_config_or_a_clean_error(scratch, tag, value):
    for key in ("train.seed", "train.caption.lr", "data.manifest", "video.mean"):
        section, _, field = key.rpartition(".")
        text = "".join(f"{'  ' * i}{part}:\n" for i, part in enumerate(section.split(".")))
        text += f"{'  ' * (section.count('.') + 1)}{field}: {tag} {value}\n"
        cfg = clean_or_value(functools.partial(load_config, scratch("c.yaml", text)))
        assert cfg is None or isinstance(cfg, Config)


@FEW
@given(st.sampled_from(sorted(VALID)).flatmap(lambda k: st.tuples(st.just(k), VALID[k])))
def test_an_override_sets_the_value(pair):
    key, value = pair
    text = f"{key}={yaml.safe_dump(value, default_flow_style=True, width=10**6).strip()}"
    if text.endswith("\n..."):
        text = text[:-4]
    cfg = clean_or_value(lambda: load_config(None, [text]))
    assert cfg is not None, text
    node = to_dict(cfg)
    for part in key.split("."):
        node = node[part]
    assert node == value


@PROPERTY
@given(st.lists(st.text(max_size=40).filter(lambda t: "\x00" not in t), max_size=3))
def test_any_override_text_is_a_config_or_a_clean_error(overrides):
    data = clean_or_value(lambda: apply_overrides({}, overrides))
    cfg = clean_or_value(lambda: load_config(None, overrides))
    assert cfg is None or isinstance(cfg, Config)
    if data is None:
        assert cfg is None
