"""Bad configs and `--set` overrides (`vidcap.config.load_config`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.faults.conftest import HUGE_INT, clean, write
from vidcap.config import load_config
from vidcap.errors import ConfigError, VidcapError


def _bomb(levels: int) -> str:
    """A "billion laughs" YAML: a list of `levels` lists, each of ten aliases of the one before
    (ten to the `levels` strings once expanded), given where a string is expected, so that the
    type error's message shows the value."""
    lists = ['&a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lists += [f"&a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, levels)]
    return "data:\n  manifest: [" + ", ".join(lists) + "]\n"


def test_alias_bomb_is_refused_without_expanding_it(tmp_path):
    # before: PyYAML built the shared lists, and the error message repr()'d the expanded value
    # (9 levels: 2.9 GB and 150 s before a MemoryError; these 7 levels: a ~100 MB message)
    path = write(tmp_path / "bomb.yaml", _bomb(7))
    with pytest.raises(VidcapError) as err:
        load_config(path)
    clean(err, str(path), "alias")


def test_a_recursive_alias_is_refused(tmp_path):
    # before: clean ("expected float, got [[...]]"); kept as a case of the same family
    path = write(tmp_path / "self.yaml", "video:\n  mean: &m [*m]\n")
    with pytest.raises(VidcapError) as err:
        load_config(path)
    clean(err, str(path))


@pytest.mark.parametrize("data, says", [
    ("video:\n  num_frames: 4\n".encode("utf-16"), "UTF-16"),  # before: UnicodeDecodeError
    ("data:\n  manifest: caf\u00e9\n".encode("latin-1"), "line 2"),  # before: UnicodeDecodeError
    (bytes(range(256)) * 8, "binary"),  # before: UnicodeDecodeError
    (b"\x1f\x8b\x08\x00" + bytes(64), "gzip"),  # before: UnicodeDecodeError
])
def test_a_config_that_is_not_utf8_text_says_what_it_is(tmp_path, data, says):
    path = write(tmp_path / "c.yaml", data)
    with pytest.raises(VidcapError) as err:
        load_config(path)
    clean(err, str(path), says)


@pytest.mark.parametrize("text", ["- a\n- b\n", "just a scalar\n", "42\n"])
def test_a_config_that_is_not_a_mapping(tmp_path, text):
    # before: clean ("expected a mapping at the top level"); kept
    path = write(tmp_path / "c.yaml", text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    clean(err, str(path), "mapping")


def test_an_unknown_key_deep_in_a_file_names_the_file_and_the_key(tmp_path):
    # before: "model.encoder.hidden_sise: unknown key" without the file
    path = write(tmp_path / "c.yaml", "model:\n  encoder:\n    hidden_sise: 64\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    clean(err, str(path), "model.encoder.hidden_sise: unknown key")


def test_extends_a_missing_file_names_the_file_that_extends(tmp_path):
    # before: "nope.yaml: no such config file or preset", without the file that said it
    path = write(tmp_path / "c.yaml", "extends: nope.yaml\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    clean(err, str(path), "nope.yaml")


def test_extends_that_loops_through_two_files(tmp_path):
    # before: clean ("loops back to itself"); kept
    write(tmp_path / "b.yaml", "extends: c.yaml\n")
    path = write(tmp_path / "c.yaml", "extends: b.yaml\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    clean(err, "loops back")


def test_an_endless_chain_of_extends(tmp_path):
    # before: RecursionError past ~1000 files
    for i in range(1500):
        write(tmp_path / f"c{i}.yaml", f"extends: c{i + 1}.yaml\n")
    write(tmp_path / "c1500.yaml", "train:\n  seed: 1\n")
    with pytest.raises(VidcapError) as err:
        load_config(tmp_path / "c0.yaml")
    clean(err, "extends")


@pytest.mark.parametrize("text, says", [
    (f"train:\n  seed: {HUGE_INT}\n", "digits"),  # before: ValueError (int digit limit)
    ("video:\n  mean: " + "[" * 5000 + "]" * 5000 + "\n", "nested"),  # before: RecursionError
    ("train:\n  align:\n    lr: " + "9" * 400 + "\n", "finite"),  # before: OverflowError
    ('train:\n  seed: !!int ""\n', "tag"),  # before: IndexError inside PyYAML
    ("train:\n  seed: !!timestamp soon\n", "tag"),  # before: AttributeError inside PyYAML
    ("data:\n  manifest: 2001-13-01\n", "month"),  # before: ValueError (a 13th month)
])
def test_numbers_and_nesting_python_cannot_take(tmp_path, text, says):
    path = write(tmp_path / "c.yaml", text)
    with pytest.raises(VidcapError) as err:
        load_config(path)
    clean(err, str(path), says)


@pytest.mark.parametrize("text, says", [
    ("train:\n  seed: 1\n  seed: 2\n", "twice"),  # before: the second silently won
    ("train:\n  weight_decay: .nan\n", "finite"),  # before: weight_decay NaN accepted
    ("train:\n  caption:\n    decay_rate: .inf\n", "finite"),  # before: accepted
])
def test_settings_that_were_silently_wrong(tmp_path, text, says):
    path = write(tmp_path / "c.yaml", text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    clean(err, str(path), says)


def test_python_tags_never_run(tmp_path):
    # before and after: a ConstructorError, nothing run (must keep holding)
    marker = tmp_path / "ran"
    path = write(tmp_path / "c.yaml", f"video: !!python/object/apply:os.system "
                                      f"['touch {marker}']\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    clean(err, str(path))
    with pytest.raises(ConfigError):
        load_config(None, [f"data.manifest=!!python/object/apply:os.system ['touch {marker}']",
                           "train.seed=x"])
    assert not marker.exists()


@pytest.mark.parametrize("override, says", [
    (f"train.seed={HUGE_INT}", "train.seed"),  # before: ValueError (int digit limit)
    ("train.weight_decay=.nan", "finite"),  # before: accepted
    ("train.align.lr=1e999", "finite"),  # before: lr = inf accepted
    ("video.mean=&x [*x]", "video.mean"),  # before: clean; kept
    ("video.mean=[1, 2", "video.mean"),  # not YAML: the text itself, then a type error; kept
])
def test_bad_override_values(override, says):
    with pytest.raises(ConfigError) as err:
        load_config(None, [override])
    clean(err, says)


def test_an_override_error_does_not_blame_the_file(tmp_path: Path):
    path = write(tmp_path / "c.yaml", "train:\n  seed: 3\n")
    with pytest.raises(ConfigError) as err:
        load_config(path, ["train.sed=4"])
    assert clean(err, "train.sed: unknown key").startswith("train.sed")
