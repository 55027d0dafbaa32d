"""Reading and writing a run's config and model: the only writer of `config.yaml`, and `load_run`.

A run's `config.yaml` is the whole resolved `Config`: written when training starts and again at
its end, always through `write_config`, atomically. A model saved outside training (tests,
benchmarks) gets a config of its `model` and `video` sections with defaults elsewhere.
"""

from __future__ import annotations

from pathlib import Path

import torch
import yaml

from vidcap.config import Config, load_config, to_dict
from vidcap.files import write_text
from vidcap.models.mffcl import COMPONENTS, MFFCL
from vidcap.models.weights import load_weights, read_weights
from vidcap.runs.layout import RunLayout, open_run


def write_config(run_dir: str | Path | RunLayout, cfg: Config, *, note: str = "") -> Path:
    """Write the resolved config as the run's config.yaml (atomically). `note` goes first, as
    YAML comment lines: what the settings became on the machine that ran them (e.g. what
    `train.precision: auto` chose and why), which reading the config back ignores."""
    layout = run_dir if isinstance(run_dir, RunLayout) else RunLayout(Path(run_dir))
    comment = "".join(f"# {line}\n" for line in note.splitlines())
    return write_text(layout.config, comment + yaml.safe_dump(to_dict(cfg), sort_keys=False))


def read_config(run_dir: str | Path | RunLayout) -> Config:
    """The config of an existing run (checked like every config: unknown keys and bad types
    are errors naming the key)."""
    layout = run_dir if isinstance(run_dir, RunLayout) else open_run(run_dir)
    return load_config(layout.config)


def save_model(model: MFFCL, run_dir: str | Path | RunLayout, cfg: Config | None = None, *,
               note: str = "") -> None:
    """Write the model's files and the config (headed by `note`, see `write_config`) into a run
    directory (rank 0 only, in DDP). Without `cfg`, the config is the model's own sections with
    defaults elsewhere."""
    layout = run_dir if isinstance(run_dir, RunLayout) else RunLayout(Path(run_dir))
    layout.root.mkdir(parents=True, exist_ok=True)
    model.save(layout.model_files())
    write_config(layout, cfg or Config(video=model.video_cfg, model=model.cfg), note=note)


def load_model(run_dir: str | Path | RunLayout, *, device: str | torch.device = "cpu",
               with_text_encoder: bool | None = None) -> MFFCL:
    """The run's final model (see `MFFCL.load` for `with_text_encoder`)."""
    layout = run_dir if isinstance(run_dir, RunLayout) else open_run(run_dir)
    cfg = read_config(layout)
    return MFFCL.load(layout.model_files(), cfg.model, cfg.video, device=device,
                      with_text_encoder=with_text_encoder)


def load_run(path: str | Path, *, device: str | torch.device = "cpu", which: str = "auto",
             with_text_encoder: bool | None = False) -> MFFCL:
    """The model of a run directory, in eval mode: `best` (validation), `final`, or `auto`
    (best when present). Captioning needs no text encoder, so it is left out unless asked for
    (retrieval and search need it)."""
    layout = open_run(path)
    weights = layout.weights_for(which)
    model = load_model(layout, device="cpu", with_text_encoder=with_text_encoder)
    if weights != layout.weights:  # best/ holds only the components training changed
        load_weights(model, read_weights(weights), weights, may_lack=COMPONENTS)
    return model.to(device).eval()
