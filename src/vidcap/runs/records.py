"""`metrics.jsonl` (one line per logged step, evaluation or event) and `curves.png`.

A line is appended whole or, when the process is killed mid-write, cut short: readers skip a line
that is not JSON (with a warning) rather than fail on it, and a resumed run drops it.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any

from vidcap.errors import RunError
from vidcap.files import atomic_path, write_lines
from vidcap.runs.layout import RunLayout

log = logging.getLogger(__name__)


class MetricsLog:
    """Appends JSON lines; only the main process writes (others hold a disabled log)."""

    def __init__(self, run_dir: str | Path, *, enabled: bool = True) -> None:
        self.file = RunLayout(Path(run_dir)).metrics
        self.enabled = enabled

    def write(self, **fields: Any) -> None:
        if not self.enabled:
            return
        fields.setdefault("time", round(time.time(), 3))
        try:
            with self.file.open("a", encoding="utf-8") as out:
                out.write(json.dumps(fields) + "\n")
        except OSError as err:
            raise RunError(f"{self.file}: cannot be written ({err.strerror or err})") from None

    def truncate_after(self, stage_index: int, step: int) -> None:
        """Drop lines logged after (stage_index, step), and lines cut short: a resumed run logs
        those steps again."""
        if not self.enabled or not self.file.is_file():
            return
        kept = [json.dumps(line) for line in _parsed(self.file)
                if _position(line) <= (stage_index, step)]
        write_lines(self.file, kept)

    def has_line(self, event: str, stage_index: int, step: int) -> bool:
        """Whether an `event` line of (stage_index, step) was logged."""
        return any(line.get("event") == event and _position(line) == (stage_index, step)
                   for line in _parsed(self.file))


def _position(line: dict[str, Any]) -> tuple[int, int]:
    return int(line.get("stage_index", -1)), int(line.get("step", -1))


def _parsed(file: Path) -> list[dict[str, Any]]:
    """The JSON object lines of `file` ([] when it is absent); others are skipped, with a
    warning."""
    if not file.is_file():
        return []
    lines = []
    for number, text in enumerate(file.read_text(encoding="utf-8", errors="replace")
                                  .splitlines(), 1):
        if not text.strip():
            continue
        try:
            line = json.loads(text)
        except ValueError:
            line = None
        if isinstance(line, dict):
            lines.append(line)
        else:
            log.warning("%s:%d: not a JSON object line (cut short?), skipped", file, number)
    return lines


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """The lines of a run's metrics.jsonl ([] when there is none)."""
    return _parsed(RunLayout(Path(run_dir)).metrics)


EVAL_PANELS = {"caption": ("CIDEr", "Bleu_4", "METEOR", "ROUGE_L"),
               "align": ("t2v_r1", "t2v_r5", "t2v_r10", "v2t_r1")}
"""Validation lines drawn per stage (the caption stage's first one is `metric` when given)."""


def plot_curves(run_dir: str | Path, *, metric: str = "CIDEr") -> Path | None:
    """Losses per stage and validation scores against steps (the caption stage's scores, the
    align stage's retrieval), saved as RUN/curves.png."""
    lines = read_metrics(run_dir)
    losses = [m for m in lines if m.get("event") == "train"]
    if not losses:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stages = list(dict.fromkeys(m["stage"] for m in losses))
    evals = {stage: [m for m in lines if m.get("event") == "eval" and m.get("stage", "caption")
                     == stage] for stage in EVAL_PANELS}
    evals = {stage: found for stage, found in evals.items() if found}
    panels = len(stages) + len(evals)
    fig, axes = plt.subplots(1, panels, figsize=(4.2 * panels, 3.4), squeeze=False)
    for ax, stage in zip(axes[0], stages):
        points = [(m["step"], m["loss"]) for m in losses
                  if m["stage"] == stage and math.isfinite(m["loss"])]
        ax.plot(*zip(*points), lw=1.2)
        ax.set_title(f"{stage} loss")
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    for ax, (stage, found) in zip(axes[0][len(stages):], evals.items()):
        keys = dict.fromkeys(((metric,) if stage == "caption" else ()) + EVAL_PANELS[stage])
        for key in keys:
            points = [(m["step"], m[key]) for m in found if key in m]
            if points:
                ax.plot(*zip(*points), marker="o", ms=3, label=key)
        ax.set_title("validation" if stage == "caption" else "align validation (retrieval, %)")
        ax.set_xlabel(f"{stage} step")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    out = RunLayout(Path(run_dir)).curves
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
    return out
