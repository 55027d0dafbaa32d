"""`vidcap ablate`: the grid, its resumption, and the motion-direction breakdown."""

from __future__ import annotations

import json
import shlex
import shutil
import statistics
import time
from pathlib import Path

import pytest
import yaml

from vidcap.apps.ablation.grid import build_grid, select_cells
from vidcap.apps.ablation.results import steps_to_target
from vidcap.cli import main
from vidcap.config import load_config
from vidcap.errors import ConfigError

from ..conftest import TINY, TINY_TRAIN


def test_steps_to_target_reads_caption_validations():
    lines = [{"event": "eval", "stage": "caption", "step": 5, "CIDEr": 0.2},
             {"event": "train", "stage": "caption", "step": 6, "loss": 1.0},
             {"event": "eval", "stage": "caption", "step": 10, "CIDEr": 0.45},
             {"event": "eval", "stage": "caption", "step": 15, "CIDEr": 0.40}]
    assert steps_to_target(lines, 0.4) == 10
    assert steps_to_target(lines, 0.2) == 5
    assert steps_to_target(lines, 0.5) is None


def test_grid_cells_share_the_base_and_keep_the_budget(tiny_shapes: Path):
    base = load_config("shapes-tiny", TINY + [f"data.manifest={tiny_shapes}"])
    cells = {c.name: c for c in build_grid(base)}
    assert list(cells) == ["align-tau10", "align-tau30", "align-tau50", "noalign-tau10",
                           "noalign-tau30", "noalign-tau50", "mlp", "space-only", "tokens",
                           "shuffled"]
    configs = {name: load_config("shapes-tiny", TINY + list(c.overrides))
               for name, c in cells.items()}
    ref = configs["align-tau10"]  # the base: Table V's transformer, the controls' reference
    assert ref.train.stages == ["align", "caption"] and ref.model.mapper.num_queries == 10
    # same positions everywhere (the longest prefix fits), so cells differ in their factor only
    assert {c.model.decoder.max_positions for c in configs.values()} == {50 + 12 + 1}
    off = configs["noalign-tau30"]
    assert off.train.stages == ["caption"]
    assert off.train.caption.steps == base.train.align.steps + base.train.caption.steps
    # without the align stage the caption stage must train the encoder (shapes-tiny freezes it)
    assert "encoder" not in ref.train.caption.trainable
    assert set(off.train.caption.trainable) == {"encoder", *ref.train.caption.trainable}
    assert configs["mlp"].model.mapper.kind == "mlp"
    assert configs["space-only"].model.encoder.attention_type == "space_only"
    assert configs["tokens"].model.mapper.input == "tokens"
    assert configs["shuffled"].video.shuffle_frames
    for name in ("mlp", "space-only", "tokens", "shuffled"):
        assert configs[name].model.mapper.num_queries == 10
        assert configs[name].train.stages == ["align", "caption"]
    same = build_grid(base, no_align_budget="caption")
    assert load_config("shapes-tiny", TINY + list(same[3].overrides)).train.caption.steps == \
        base.train.caption.steps
    with pytest.raises(ConfigError, match="no cell named nope"):
        select_cells(list(cells.values()), ["mlp", "nope"])


def _mtimes(out: Path, name: str) -> dict[str, int]:
    return {str(p.relative_to(out)): p.stat().st_mtime_ns for p in sorted(out.glob(f"*/*/{name}"))}


@pytest.mark.slow
def test_ablate_grid_runs_in_parallel_skips_and_resumes(tiny_shapes: Path, tmp_path: Path,
                                                        capsys):
    out = tmp_path / "grid"
    args = ["ablate", "shapes-tiny", "--out", str(out), "--seeds", "2", "--taus", "4",
            "--cells", "align-tau4,noalign-tau4", "--target-cider", "0"]
    for override in TINY + TINY_TRAIN + [f"data.manifest={tiny_shapes}"]:
        args += ["--set", override]

    assert main(args + ["--jobs", "2"]) == 0
    printed = capsys.readouterr()
    assert printed.err.count(": trained") == 4
    table = (out / "table.md").read_text()
    assert table in printed.out
    assert shlex.join(["vidcap", *args, "--jobs", "2"]) in table  # the command as given
    results = json.loads((out / "results.json").read_text())
    for cell in ("align-tau4", "noalign-tau4"):
        ciders = [100 * json.loads((out / cell / f"seed-{k}" / "scores-test.json").read_text())
                  ["CIDEr"] for k in range(2)]
        stat = results["cells"][cell]["summary"]["CIDEr"]
        assert stat["n"] == 2
        assert stat["mean"] == pytest.approx(statistics.fmean(ciders))
        assert stat["sd"] == pytest.approx(statistics.stdev(ciders))
        assert f"| {cell} | " in table and f"{stat['mean']:.1f} ± {stat['sd']:.1f}" in table
        # CIDEr >= 0 holds at the first validation, caption step 4 (eval_every=4)
        assert results["cells"][cell]["summary"]["steps_to_target"]["mean"] == 4
        assert "held_out.all" in results["cells"][cell]["summary"]
    cfg = yaml.safe_load((out / "noalign-tau4" / "seed-1" / "config.yaml").read_text())
    assert cfg["train"]["stages"] == ["caption"] and cfg["train"]["caption"]["steps"] == 12
    assert cfg["train"]["seed"] == 1
    assert "## Does the contrastive stage help on held-out pairs?" in table
    assert "| 4 | " in table  # the tau row of that table
    assert "vidcap ablate shapes-tiny" in table and "Machine:" in table and "Budget" in table

    # a rerun trains nothing: every cell-seed is skipped, no file of theirs is rewritten
    before = {**_mtimes(out, "scores-test.json"), **_mtimes(out, "model/model.safetensors")}
    start = time.perf_counter()
    assert main(args) == 0
    rerun = time.perf_counter() - start
    assert capsys.readouterr().err.count(": skipped") == 4
    assert {**_mtimes(out, "scores-test.json"), **_mtimes(out, "model/model.safetensors")} == before
    print(f"rerun of a finished 2x2 grid: {rerun:.1f} s")

    # the same folder with another budget is refused before anything runs
    assert main(args + ["--set", "train.caption.lr=1e-3"]) == 2
    assert "was started with other settings" in capsys.readouterr().err

    # a run killed in its caption stage (after the checkpoint at step 6) resumes from there
    run = out / "align-tau4" / "seed-1"
    lines = (run / "metrics.jsonl").read_text().splitlines()
    kept = [line for line in lines if json.loads(line)["stage_index"] == 0
            or json.loads(line)["step"] <= 6]
    for name in ("scores-test.json", "predictions-test.json", "trainer_state.pt"):
        (run / name).unlink()
    shutil.rmtree(run / "checkpoints" / "1-caption-00000008")
    assert main(args) == 0
    assert "align-tau4 seed 1: resumed" in capsys.readouterr().err
    assert (run / "scores-test.json").is_file()
    after = (run / "metrics.jsonl").read_text().splitlines()
    assert after[:len(kept)] == kept  # the align stage and steps 1-6 were not trained again
    assert json.loads(after[-1])["step"] == 8
