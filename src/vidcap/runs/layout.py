"""Where every file of a run directory lives, and the one check that a folder is a run.

    RUN/config.yaml              the resolved config (`vidcap.runs.store` is its only writer),
                                 ending with CONFIG_END so that a truncated copy is recognised
    RUN/model/                   the final model, written whole and swapped in by rename:
        model.safetensors          its weights
        tokenizer/ encoder/ decoder/ text_encoder/   the files to load it offline (`ModelFiles`)
        checksums.json             sha256 of every file above
    RUN/checkpoints/<k>-<stage>-<step>/model.safetensors + trainer_state.pt + checksums.json
    RUN/best/model.safetensors + info.json + checksums.json   best validation weights (swapped)
    RUN/trainer_state.pt         the final trainer state: its presence means training finished
    RUN/metrics.jsonl            one line per logged step, evaluation or event; RUN/curves.png
    RUN/clips.json               the typical length of the training clips (segment captioning)
    RUN/predictions-<split>.json, RUN/scores-<split>.json   each evaluation's output
    RUN/retrieval-<split>.json   retrieval in the aligned space (`evaluate --task retrieval`)
    RUN/lock.json                who writes into the run now (`vidcap.runs.lock`)
    RUN/predictions-<split>.jsonl  an evaluation's captions, one line each as it goes (resumable)
    (`long` stands for a split in these names for the long-video evaluation)

A folder of several files (model/, best/, a checkpoint) is filled under a hidden temporary name
beside it and renamed into place (`vidcap.runs.folders`), so a reader never sees half of one.
No other module spells these names: everyone asks a `RunLayout`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, NamedTuple

from vidcap.errors import RunError

if TYPE_CHECKING:  # the model's type only: the layout itself must not import torch
    from vidcap.models.mffcl import ModelFiles

Which = Literal["auto", "best", "final"]
"""Which weights of a run to load: best on validation, final, or best when present."""
WHICH: tuple[str, ...] = ("auto", "best", "final")

WEIGHTS = "model.safetensors"
TRAINER_STATE = "trainer_state.pt"
CHECKSUMS = "checksums.json"
CONFIG_END = "# end of vidcap run config"
"""The last line of every config.yaml a run writes: without it the file was cut short."""

_CHECKPOINT_NAME = re.compile(r"(\d+)-([a-z_]+)-(\d{8,})")


class CheckpointName(NamedTuple):
    """What a checkpoint folder's name `<k>-<stage>-<step>` says."""

    stage_index: int
    stage: str
    step: int


def checkpoint_name(stage_index: int, stage: str, step: int) -> str:
    """The folder name of the checkpoint after `step` of stage number `stage_index`."""
    return f"{stage_index}-{stage}-{step:08d}"


def parse_checkpoint_name(name: str) -> CheckpointName | None:
    """(stage index, stage, step) of a checkpoint folder name; None for any other name."""
    match = _CHECKPOINT_NAME.fullmatch(name)
    if match is None:
        return None
    return CheckpointName(int(match[1]), match[2], int(match[3]))


@dataclass(frozen=True)
class RunLayout:
    """The paths of one run directory (nothing is read or created by building one)."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def model_dir(self) -> Path:
        """The folder of the final model (swapped in whole)."""
        return self.root / "model"

    @property
    def weights(self) -> Path:
        return self.model_dir / WEIGHTS

    def model_files(self, folder: Path | None = None) -> "ModelFiles":
        """The files `MFFCL.save` writes and `MFFCL.load` reads, in `folder` (default the run's
        model folder; another when a model is written under a temporary name)."""
        from vidcap.models.mffcl import ModelFiles

        folder = folder or self.model_dir
        return ModelFiles(folder / WEIGHTS, folder / "tokenizer", folder / "encoder",
                          folder / "decoder", folder / "text_encoder")

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    def checkpoint(self, stage_index: int, stage: str, step: int) -> Path:
        return self.checkpoints / checkpoint_name(stage_index, stage, step)

    @property
    def best(self) -> Path:
        return self.root / "best"

    @property
    def best_align(self) -> Path:
        """The align stage's best weights by validation R@1 (`train.align_keep_best`)."""
        return self.root / "best-align"

    @property
    def best_weights(self) -> Path:
        return self.best / WEIGHTS

    @property
    def best_info(self) -> Path:
        return self.best / "info.json"

    @property
    def trainer_state(self) -> Path:
        return self.root / TRAINER_STATE

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def curves(self) -> Path:
        return self.root / "curves.png"

    @property
    def lock(self) -> Path:
        return self.root / "lock.json"

    def predictions(self, split: str) -> Path:
        return self.root / f"predictions-{split}.json"

    def scores(self, split: str) -> Path:
        return self.root / f"scores-{split}.json"

    def retrieval(self, split: str) -> Path:
        """Text-to-video and video-to-text retrieval of a split (`evaluate --task retrieval`)."""
        return self.root / f"retrieval-{split}.json"
    def predictions_log(self, split: str) -> Path:
        """An evaluation's captions, appended one JSON line per video as they are made."""
        return self.root / f"predictions-{split}.jsonl"

    @property
    def clip_stats(self) -> Path:
        """The typical duration of the training clips (`vidcap.runs.store.record_clip_length`)."""
        return self.root / "clips.json"

    def is_run(self) -> bool:
        """Whether the folder holds a run (its config is there)."""
        return self.config.is_file()

    def holds_training(self) -> bool:
        """Whether training has written anything here: a config, a model or checkpoints."""
        return self.is_run() or self.model_dir.exists() or self.checkpoints.is_dir()

    def is_finished(self) -> bool:
        """Whether training ran to its end (the final trainer state is written last)."""
        return self.trainer_state.is_file()


def open_run(path: str | Path) -> RunLayout:
    """The layout of an existing run directory; RunError (one line) when `path` is not one."""
    layout = RunLayout(Path(path))
    if not layout.root.exists():
        raise RunError(f"{layout.root}: run directory not found")
    if not layout.root.is_dir():
        raise RunError(f"{layout.root}: not a run directory (a file, not a folder)")
    if not layout.is_run():
        raise RunError(f"{layout.root}: not a run directory (no config.yaml); train one with "
                       "`vidcap train`")
    return layout
