"""Reading and writing a run's config and model: the only writer of `config.yaml`, and `load_run`.

A run's `config.yaml` is the whole resolved `Config`: written when training starts and again at
its end, always through `write_config`, atomically, ending with `CONFIG_END` (a copy cut short is
refused rather than completed with defaults). The model is a folder written whole
(`vidcap.runs.folders`): loading checks every file against its checksums, refuses files that ask
to run code, weights that do not fit the config, and weights that are not finite. A model saved
outside training (tests, benchmarks) gets a config of its `model` and `video` sections with
defaults elsewhere.
"""

from __future__ import annotations

from pathlib import Path

import torch
import yaml

from vidcap.config import Config, load_config, to_dict
from vidcap.distributed import pick_device
from vidcap.errors import RunError
from vidcap.files import write_text
from vidcap.models.mffcl import COMPONENTS, MFFCL
from vidcap.models.weights import load_weights, read_weights
from vidcap.runs import folders
from vidcap.runs.layout import CONFIG_END, WEIGHTS, WHICH, RunLayout, open_run


def _layout(run_dir: str | Path | RunLayout) -> RunLayout:
    return run_dir if isinstance(run_dir, RunLayout) else RunLayout(Path(run_dir))


def write_config(run_dir: str | Path | RunLayout, cfg: Config) -> Path:
    """Write the resolved config as the run's config.yaml (atomically, ending with
    CONFIG_END)."""
    layout = _layout(run_dir)
    text = yaml.safe_dump(to_dict(cfg), sort_keys=False) + CONFIG_END + "\n"
    try:
        return write_text(layout.config, text)
    except OSError as err:
        raise RunError(f"{layout.config}: cannot be written ({err.strerror or err})") from None


def read_config(run_dir: str | Path | RunLayout) -> Config:
    """The config of an existing run (checked like every config: unknown keys and bad types
    are errors naming the key; a file without its last line was cut short and is refused)."""
    layout = run_dir if isinstance(run_dir, RunLayout) else open_run(run_dir)
    try:
        lines = layout.config.read_text(encoding="utf-8").rstrip().splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise RunError(f"{layout.config}: unreadable ({err})") from None
    if not lines or lines[-1].strip() != CONFIG_END:
        _refuse_older_layout(layout)
        raise RunError(f"{layout.config}: incomplete (its last line should be "
                       f"{CONFIG_END!r}; cut short by a full disk or a copy?); restore it whole "
                       "(a hand edit must keep that line)")
    return load_config(layout.config)


def save_model(model: MFFCL, run_dir: str | Path | RunLayout, cfg: Config | None = None) -> None:
    """Write the model's folder (whole: it replaces the previous one only once complete) and the
    config into a run directory (rank 0 only, in DDP). Without `cfg`, the config is the model's
    own sections with defaults elsewhere."""
    layout = _layout(run_dir)
    with folders.written_whole(layout.model_dir) as folder:
        model.save(layout.model_files(folder))
    write_config(layout, cfg or Config(video=model.video_cfg, model=model.cfg))


def _refuse_older_layout(layout: RunLayout) -> None:
    """RunError for a run written before model files had their own folder and checksums."""
    if not layout.model_dir.exists() and (layout.root / WEIGHTS).is_file():
        raise RunError(f"{layout.root}: written by an older vidcap (model files at the top of "
                       "the folder, without checksums); this version loads only runs it wrote: "
                       "train it again")


def model_folder(layout: RunLayout) -> Path:
    """The run's complete model folder, checked against its checksums."""
    folder = folders.current(layout.model_dir)
    if folder is None:
        _refuse_older_layout(layout)
        raise RunError(f"{layout.model_dir}: missing, so the model cannot be loaded (training "
                       "has not written it, or the folder was removed)")
    folders.verify(folder)
    return folder


def load_model(run_dir: str | Path | RunLayout, *, device: str | torch.device = "cpu",
               with_text_encoder: bool | None = None) -> MFFCL:
    """The run's final model (see `MFFCL.load` for `with_text_encoder`)."""
    layout = run_dir if isinstance(run_dir, RunLayout) else open_run(run_dir)
    cfg = read_config(layout)
    return MFFCL.load(layout.model_files(model_folder(layout)), cfg.model, cfg.video,
                      device=device, with_text_encoder=with_text_encoder)


def best_folder(layout: RunLayout, which: str) -> Path | None:
    """The folder of the best weights when `which` asks for them (`best`, or `auto` when there
    are some), checked against its checksums; None for the final weights."""
    best = folders.current(layout.best) if which != "final" else None
    if which == "best" and best is None:
        raise RunError(f"{layout.root}: no best checkpoint (validation never ran)")
    if best is not None:
        folders.verify(best)
    return best


def weights_files(layout: RunLayout, which: str = "auto") -> list[Path]:
    """The weights files `load_run(which=...)` reads, in order: the model's, then best's (when
    `which` picks them)."""
    best = best_folder(layout, which)
    return [model_folder(layout) / WEIGHTS] + ([best / WEIGHTS] if best is not None else [])


def load_run(path: str | Path, *, device: str | torch.device = "cpu", which: str = "auto",
             with_text_encoder: bool | None = False) -> MFFCL:
    """The model of a run directory, in eval mode: `best` (validation), `final`, or `auto`
    (best when present). Captioning needs no text encoder, so it is left out unless asked for
    (retrieval and search need it). Every file is checked first: RunError (one line) for a
    damaged, foreign or non-finite one, ConfigError for a device that is not there."""
    layout = open_run(path)
    if which not in WHICH:
        raise RunError(f"{which!r}: expected one of {', '.join(WHICH)}")
    target = pick_device(str(device))
    model = load_model(layout, device="cpu", with_text_encoder=with_text_encoder)
    best = best_folder(layout, which)
    if best is not None:  # best/ holds only the components training changed
        load_weights(model, read_weights(best / WEIGHTS), best / WEIGHTS, may_lack=COMPONENTS)
    return model.to(target).eval()
