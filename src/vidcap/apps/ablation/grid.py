"""The ablation grid: named cells, each a list of `--set` overrides laid over one base config
(see the package docstring for the cells and the budget rule)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from vidcap.config import Config
from vidcap.errors import ConfigError

TAUS = (10, 30, 50)
NoAlignBudget = Literal["total", "caption"]


@dataclass(frozen=True)
class Cell:
    name: str
    overrides: tuple[str, ...]
    """`--set` strings laid over CONFIG and the user's overrides."""
    label: str
    """What the cell is, in words."""


def build_grid(base: Config, *, taus: Sequence[int] = TAUS, base_tau: int | None = None,
               no_align_budget: NoAlignBudget = "total") -> list[Cell]:
    """The cells (module docstring) for a base config (CONFIG with the user's overrides)."""
    taus = list(dict.fromkeys(int(t) for t in taus))
    if not taus or min(taus) < 1:
        raise ConfigError("ablate: the tau list must hold positive integers")
    base_tau = taus[0] if base_tau is None else base_tau
    if base_tau not in taus:
        raise ConfigError(f"ablate: the base tau {base_tau} is not one of the taus "
                          f"{', '.join(map(str, taus))}")
    align_steps, caption_steps = base.train.align.steps, base.train.caption.steps
    off_steps = caption_steps + (align_steps if no_align_budget == "total" else 0)
    factors = ["model.mapper.kind=transformer", "model.mapper.input=cls",
               "model.encoder.attention_type=divided_space_time", "video.shuffle_frames=false"]
    # every cell gets the positions of the longest prefix, so cells differ only in their factor
    need = max(taus) + base.model.decoder.max_caption_tokens + 1
    if need > base.model.decoder.max_positions:
        factors.append(f"model.decoder.max_positions={need}")

    # without the align stage the encoder must learn from the captions (the paper's ablation
    # "fine-tunes TimeSformer directly with video descriptions"), even where CONFIG freezes it
    # in the caption stage (shapes-tiny does, to keep the aligned features)
    caption_trainable = list(dict.fromkeys(["encoder", *base.train.caption.trainable]))
    off_trainable = f"train.caption.trainable=[{','.join(caption_trainable)}]"

    def tau_cell(tau: int, align: bool) -> Cell:
        stages = ["train.stages=[align,caption]"] if align else \
            ["train.stages=[caption]", f"train.caption.steps={off_steps}", off_trainable]
        name = f"{'align' if align else 'noalign'}-tau{tau}"
        label = (f"contrastive stage {'on' if align else 'off'}, tau={tau}"
                 + (" (base)" if align and tau == base_tau else ""))
        return Cell(name, tuple(factors + stages + [f"model.mapper.num_queries={tau}"]), label)

    cells = [tau_cell(t, True) for t in taus] + [tau_cell(t, False) for t in taus]
    base_cell = next(c for c in cells if c.name == f"align-tau{base_tau}")
    for name, change, label in (
            ("mlp", "model.mapper.kind=mlp", "FFN mapper (Table V)"),
            ("space-only", "model.encoder.attention_type=space_only", "no temporal attention"),
            ("tokens", "model.mapper.input=tokens", "mapper reads all video tokens"),
            ("shuffled", "video.shuffle_frames=true", "frames shuffled, training and test")):
        cells.append(Cell(name, base_cell.overrides + (change,), f"{label}, tau={base_tau}"))
    return cells


def select_cells(cells: Sequence[Cell], names: Sequence[str] | None) -> list[Cell]:
    if not names:
        return list(cells)
    known = {c.name: c for c in cells}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ConfigError(f"ablate --cells: no cell named {', '.join(unknown)} "
                          f"(cells: {', '.join(known)})")
    return [known[n] for n in dict.fromkeys(names)]
