"""Reading and writing a run's config and model: the only writer of `config.yaml`, and `load_run`.

A run's `config.yaml` is the whole resolved `Config`: written when training starts and again at
its end, always through `write_config`, atomically, ending with `CONFIG_END` (a copy cut short is
refused rather than completed with defaults). The model is a folder written whole
(`vidcap.runs.folders`): loading checks every file against its checksums, refuses files that ask
to run code, weights that do not fit the config, and weights that are not finite. A model saved
outside training (tests, benchmarks) gets a config of its `model` and `video` sections with
defaults elsewhere.

`clips.json` records how long the training clips typically are (`record_clip_length`, when
training starts), so that captioning can cut long videos into segments of about that length
(`clip_length`).
"""

from __future__ import annotations

import logging
import statistics
from collections.abc import Sequence
from pathlib import Path

import torch
import yaml

from vidcap.config import Config, VideoConfig, load_config, to_dict
from vidcap.data.manifest import VideoRecord
from vidcap.distributed import pick_device
from vidcap.errors import RunError, VideoError
from vidcap.files import write_json, write_text
from vidcap.models.mffcl import COMPONENTS, MFFCL
from vidcap.models.weights import load_weights, read_weights
from vidcap.runs import folders
from vidcap.runs.layout import CONFIG_END, WEIGHTS, WHICH, RunLayout, open_run


def _layout(run_dir: str | Path | RunLayout) -> RunLayout:
    return run_dir if isinstance(run_dir, RunLayout) else RunLayout(Path(run_dir))

log = logging.getLogger(__name__)

CLIP_PROBE_LIMIT = 200
"""Training clips measured for `record_clip_length` (evenly spread over the manifest)."""
FALLBACK_FRAME_SECONDS = 0.25
"""Runs without clips.json: a clip is taken to last this long per model frame (8 frames: 2 s,
a Shapes clip)."""


def write_config(run_dir: str | Path | RunLayout, cfg: Config, *, note: str = "") -> Path:
    """Write the resolved config as the run's config.yaml (atomically, ending with CONFIG_END).
    `note` goes first, as YAML comment lines: what the settings became on the machine that ran
    them (e.g. what `train.precision: auto` chose and why), which reading the config ignores."""
    layout = _layout(run_dir)
    comment = "".join(f"# {line}\n" for line in note.splitlines())
    text = comment + yaml.safe_dump(to_dict(cfg), sort_keys=False) + CONFIG_END + "\n"
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


def save_model(model: MFFCL, run_dir: str | Path | RunLayout, cfg: Config | None = None, *,
               note: str = "") -> None:
    """Write the model's folder (whole: it replaces the previous one only once complete) and the
    config (headed by `note`, see `write_config`) into a run directory (rank 0 only, in DDP).
    Without `cfg`, the config is the model's own sections with defaults elsewhere."""
    layout = _layout(run_dir)
    with folders.written_whole(layout.model_dir) as folder:
        model.save(layout.model_files(folder))
    write_config(layout, cfg or Config(video=model.video_cfg, model=model.cfg), note=note)


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


# ---------------------------------------------------------------------------------------------
# the typical training clip


def _clip_seconds(record: VideoRecord) -> float | None:
    if record.start is not None and record.end is not None:
        return record.end - record.start
    from vidcap.video import probe_video

    try:
        duration = probe_video(record.video_path).duration
    except VideoError:
        return None
    return duration - (record.start or 0.0) if record.end is None else record.end


def measure_clip_length(records: Sequence[VideoRecord], limit: int = CLIP_PROBE_LIMIT
                        ) -> tuple[float, int] | None:
    """(median duration in seconds, clips measured) of up to `limit` records evenly spread over
    `records`: a record's [start, end] window when it has one, else its file's duration (a demux
    pass, nothing decoded); unreadable files are left out. None when nothing could be measured."""
    step = max(1, -(-len(records) // limit))
    lengths = [s for s in map(_clip_seconds, records[::step]) if s is not None and s > 0]
    return (statistics.median(lengths), len(lengths)) if lengths else None


def record_clip_length(run_dir: str | Path | RunLayout, records: Sequence[VideoRecord]) -> None:
    """Write the run's clips.json from its training records (rank 0, when training starts)."""
    layout = run_dir if isinstance(run_dir, RunLayout) else RunLayout(Path(run_dir))
    measured = measure_clip_length(records)
    if measured is None:
        log.warning("no training clip could be measured; captioning will assume a clip length")
        return
    seconds, count = measured
    write_json(layout.clip_stats, {"median_seconds": round(seconds, 6), "clips_measured": count})


def clip_length(run_dir: str | Path | RunLayout, video_cfg: VideoConfig) -> float:
    """The run's typical training clip in seconds (clips.json), or, for a run that lacks it,
    `FALLBACK_FRAME_SECONDS` per model frame, said in a log line."""
    layout = run_dir if isinstance(run_dir, RunLayout) else open_run(run_dir)
    if layout.clip_stats.is_file():
        import json

        try:
            value = json.loads(layout.clip_stats.read_text())["median_seconds"]
            if isinstance(value, (int, float)) and value > 0:
                return float(value)
        except (ValueError, KeyError, TypeError):
            pass
        log.warning("%s is unreadable; assuming a clip length", layout.clip_stats)
    seconds = video_cfg.num_frames * FALLBACK_FRAME_SECONDS
    log.info("%s records no training clip length (trained before vidcap recorded it); assuming "
             "%.2f s (%d frames x %.2f s)", layout.root, seconds, video_cfg.num_frames,
             FALLBACK_FRAME_SECONDS)
    return seconds
