"""vidcap: video captioning with MFFCL (TimeSformer, contrastive alignment, query-prefix GPT-2)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:  # pragma: no cover
    from vidcap.models.mffcl import MFFCL


def load_run(path: str, device: str = "cpu", which: str = "auto") -> "MFFCL":
    """Load the model saved in a run directory (see DESIGN.md), ready for captioning: the best
    validation weights when there are some (`which="auto"`), else the final ones."""
    from vidcap.runs.store import load_run as _load_run

    return _load_run(path, device=device, which=which)


def __getattr__(name: str) -> Any:  # lazy: `import vidcap` must not import torch
    if name == "MFFCL":
        from vidcap.models.mffcl import MFFCL

        return MFFCL
    raise AttributeError(name)
