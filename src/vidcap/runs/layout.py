"""Where every file of a run directory lives, and the one check that a folder is a run.

    RUN/config.yaml              the resolved config (`vidcap.runs.store` is its only writer)
    RUN/model.safetensors        final weights, with the files needed to load them offline:
    RUN/tokenizer/ encoder/ decoder/ text_encoder/   (`MFFCL.save`, see `ModelFiles`)
    RUN/checkpoints/<k>-<stage>-<step>/model.safetensors + trainer_state.pt   (the last K)
    RUN/best/model.safetensors + best/info.json      best validation weights
    RUN/trainer_state.pt         the final trainer state: its presence means training finished
    RUN/metrics.jsonl            one line per logged step, evaluation or event; RUN/curves.png
    RUN/clips.json               the typical length of the training clips (segment captioning)
    RUN/predictions-<split>.json, RUN/scores-<split>.json   each evaluation's output
    RUN/predictions-<split>.jsonl  an evaluation's captions, one line each as it goes (resumable)
    (`long` stands for a split in these names for the long-video evaluation)

No other module spells these names: everyone asks a `RunLayout`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from vidcap.errors import RunError

if TYPE_CHECKING:  # the model's type only: the layout itself must not import torch
    from vidcap.models.mffcl import ModelFiles

Which = Literal["auto", "best", "final"]
"""Which weights of a run to load: best on validation, final, or best when present."""
WHICH: tuple[str, ...] = ("auto", "best", "final")

WEIGHTS = "model.safetensors"
TRAINER_STATE = "trainer_state.pt"


@dataclass(frozen=True)
class RunLayout:
    """The paths of one run directory (nothing is read or created by building one)."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def weights(self) -> Path:
        return self.root / WEIGHTS

    def model_files(self, weights: Path | None = None) -> "ModelFiles":
        """The files `MFFCL.save` writes and `MFFCL.load` reads (other weights if given)."""
        from vidcap.models.mffcl import ModelFiles

        return ModelFiles(weights or self.weights, self.root / "tokenizer", self.root / "encoder",
                          self.root / "decoder", self.root / "text_encoder")

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def best(self) -> Path:
        return self.root / "best"

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

    def predictions(self, split: str) -> Path:
        return self.root / f"predictions-{split}.json"

    def scores(self, split: str) -> Path:
        return self.root / f"scores-{split}.json"

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

    def is_finished(self) -> bool:
        """Whether training ran to its end (the final trainer state is written last)."""
        return self.trainer_state.is_file()

    def weights_for(self, which: str) -> Path:
        """The weights file of `which`: `best` (validation), `final`, or `auto` (best when
        present). RunError when `which` is unknown or `best` was asked for and never written."""
        if which not in WHICH:
            raise RunError(f"{which!r}: expected one of {', '.join(WHICH)}")
        if which == "best" and not self.best_weights.is_file():
            raise RunError(f"{self.root}: no best checkpoint (validation never ran)")
        if which in ("auto", "best") and self.best_weights.is_file():
            return self.best_weights
        return self.weights


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
