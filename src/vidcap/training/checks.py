"""What a training run checks before its first step, so that it stops at once with one clear
sentence instead of after hours (or never): every stage with steps has something to train and at
least one batch of clips, validation can score its captions (Java), and the run folder's disk has
room for what training will write. Write access is checked by taking the run's lock."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence

from torch import nn

from vidcap.config import Config
from vidcap.data.manifest import VideoRecord
from vidcap.errors import ConfigError, DatasetError, MetricsError, RunError
from vidcap.evaluation.java import find_java
from vidcap.models.mffcl import COMPONENTS
from vidcap.models.weights import unique_weights
from vidcap.runs.layout import RunLayout
from vidcap.training.stage import micro_batch, never_trained, trainable_components

log = logging.getLogger(__name__)

GB = 1e9


def check_stages(cfg: Config, train_records: Sequence[VideoRecord], world_size: int) -> None:
    """Every stage with steps trains something, splits its batch over the processes, and has at
    least one batch of training clips (ConfigError / DatasetError naming the key)."""
    for name in cfg.train.stages:
        stage = getattr(cfg.train, name)
        if stage.steps == 0:
            continue
        if not trainable_components(cfg, name):
            raise ConfigError(
                f"train.{name}.trainable: nothing to train ({stage.trainable or 'empty'}, minus "
                f"what never trains) but the stage has {stage.steps} steps; name some of "
                f"{', '.join(COMPONENTS)}, or set train.{name}.steps=0")
        micro_batch(cfg, name, world_size)
        if len(train_records) < stage.batch_size:
            raise DatasetError(
                f"{cfg.data.manifest}: split {cfg.data.train_split!r} has {len(train_records)} "
                f"clip(s), fewer than one batch (train.{name}.batch_size={stage.batch_size}), so "
                "no step could ever run; lower the batch size or add clips")


def will_validate(cfg: Config, val_records: Sequence[VideoRecord]) -> bool:
    """Whether training scores the validation split (the caption stage runs, with videos)."""
    return bool(val_records) and "caption" in cfg.train.stages and cfg.train.caption.steps > 0


def check_java(cfg: Config, val_records: Sequence[VideoRecord]) -> None:
    """MetricsError before the first step when validation will need Java and there is none."""
    if not will_validate(cfg, val_records):
        return
    try:
        find_java()
    except MetricsError as err:
        raise MetricsError(f"validation during training scores captions: {err}; or train "
                           "without validation (train.eval_max_videos=0)") from None


def _bytes(model: nn.Module, skip: set[str] | tuple[str, ...] = ()) -> int:
    return sum(t.numel() * t.element_size() for t in unique_weights(model, skip).values())


def expected_bytes(model: nn.Module, cfg: Config) -> int:
    """About what a whole run writes: the model (twice while it is replaced), keep_last + 1
    checkpoints of the trained weights with their Adam moments, and the best weights (twice)."""
    whole = _bytes(model)
    trained = _bytes(model, never_trained(cfg))
    return 2 * whole + (cfg.train.keep_last + 1) * 3 * trained + 2 * trained


def _written_bytes(layout: RunLayout) -> int:
    folders = (layout.model_dir, layout.checkpoints, layout.best)
    return sum(f.stat().st_size for folder in folders if folder.is_dir()
               for f in folder.rglob("*") if f.is_file())


def check_disk_space(layout: RunLayout, model: nn.Module, cfg: Config) -> None:
    """RunError when the run folder's disk has less room than training will still write."""
    need = max(expected_bytes(model, cfg) - _written_bytes(layout), 0)
    try:
        free = shutil.disk_usage(layout.root).free
    except OSError as err:
        raise RunError(f"{layout.root}: cannot read its free space ({err.strerror})") from None
    if free < need:
        raise RunError(f"{layout.root}: {free / GB:.2f} GB free on its disk, but training will "
                       f"write about {need / GB:.2f} GB more (the model, "
                       f"{cfg.train.keep_last} checkpoint(s) with optimiser state, the best "
                       "weights); free some space, or lower train.keep_last")
    log.debug("%s: %.2f GB free, about %.2f GB to write", layout.root, free / GB, need / GB)
