"""Nothing in a run folder or a model folder may run: an `auto_map` (transformers' pointer to
Python shipped with a model) is refused with one error, never a "run the custom code? [y/N]"
prompt, and the code never runs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from transformers import GPT2Config, GPT2LMHeadModel

from tests.conftest import tiny_train_config
from vidcap.errors import VidcapError
from vidcap.models.mffcl import MFFCL
from vidcap.runs.layout import RunLayout
from vidcap.runs.store import load_run

EVIL = """from pathlib import Path
Path({marker!r}).write_text("ran")
from transformers import PreTrainedTokenizerFast, GPT2Config
class EvilTokenizerFast(PreTrainedTokenizerFast):
    pass
class EvilConfig(GPT2Config):
    model_type = "evil"
"""


def _plant(folder: Path, json_name: str, marker: Path, entry: dict) -> None:
    """Add an auto_map to folder/json_name pointing at evil.py, which leaves `marker` if run;
    the model folder's checksums are made to match (a run folder downloaded as it was made)."""
    file = folder / json_name
    data = json.loads(file.read_text())
    data.update(entry)
    file.write_text(json.dumps(data))
    (folder / "evil.py").write_text(EVIL.format(marker=str(marker)))
    if (folder.parent / "checksums.json").is_file():
        from vidcap.runs.folders import write_checksums

        write_checksums(folder.parent)


TOKENIZER_MAP = {"auto_map": {"AutoTokenizer": [None, "evil.EvilTokenizerFast"]},
                 "tokenizer_class": "EvilTokenizerFast"}
CONFIG_MAP = {"auto_map": {"AutoConfig": "evil.EvilConfig", "AutoModel": "evil.EvilConfig"}}


@pytest.fixture
def run(tiny_run: Path, tmp_path: Path) -> RunLayout:
    return RunLayout(Path(shutil.copytree(tiny_run, tmp_path / "run")))


@pytest.mark.slow
def test_caption_never_offers_to_run_a_run_folders_tokenizer_code(run: RunLayout, tmp_path: Path,
                                                                  tiny_shapes: Path):
    # before: transformers asked "Do you wish to run the custom code? [y/N]" on stdin, and
    # answering y ran tokenizer/evil.py
    marker = tmp_path / "ran"
    _plant(run.model_files().tokenizer, "tokenizer_config.json", marker, TOKENIZER_MAP)
    video = next((tiny_shapes.parent / "videos").glob("*.mp4"))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "vidcap", "caption", str(run.root), str(video)],
                          input="y\ny\n", capture_output=True, text=True, env=env, timeout=300)
    assert not marker.exists(), "code from the run folder ran"
    assert "custom code?" not in done.stdout + done.stderr
    assert done.returncode == 2, done.stderr
    assert "auto_map" in done.stderr and "tokenizer_config.json" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("part", ["encoder", "decoder", "text_encoder"])
def test_model_configs_with_an_auto_map_are_refused(run: RunLayout, tmp_path: Path, part: str):
    # before: the encoder and decoder configs loaded through their own classes, auto_map
    # ignored without a word (a folder that asks for code is not what vidcap wrote)
    marker = tmp_path / "ran"
    _plant(getattr(run.model_files(), part), "config.json", marker, CONFIG_MAP)
    with pytest.raises(VidcapError, match=rf"{part}/config.json.*auto_map"):
        load_run(run.root, with_text_encoder=True)
    assert not marker.exists()


@pytest.mark.parametrize("key", ["model.decoder.pretrained", "model.decoder.tokenizer"])
def test_pretrained_folders_named_in_a_config_with_an_auto_map_are_refused(
        tiny_run: Path, tiny_shapes: Path, tmp_path: Path, key: str):
    # before: model.decoder.pretrained=<folder> loaded GPT-2 from it, auto_map ignored
    marker = tmp_path / "ran"
    source = RunLayout(tiny_run).model_files()
    folder = Path(shutil.copytree(source.decoder if key.endswith("pretrained") else
                                  source.tokenizer, tmp_path / "pretrained"))
    if key.endswith("pretrained"):  # a whole GPT-2 folder: config, weights and a tokenizer
        GPT2LMHeadModel(GPT2Config.from_pretrained(folder)).save_pretrained(folder)
        shutil.copytree(source.tokenizer, folder, dirs_exist_ok=True)
        _plant(folder, "config.json", marker, CONFIG_MAP)
    else:
        _plant(folder, "tokenizer_config.json", marker, TOKENIZER_MAP)
    cfg = tiny_train_config(tiny_shapes, f"{key}={folder}")
    with pytest.raises(VidcapError, match=rf"{key}.*auto_map"):
        MFFCL.build(cfg.model, cfg.video, captions=["a red circle moves left"])
    assert not marker.exists()
