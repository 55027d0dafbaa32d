"""`vidcap ablate`: the paper's Tables IV and V, and three controls, under one budget.

A grid of named cells, each a list of `--set` overrides laid over CONFIG (and the user's own
overrides); every cell sets every factor of the grid, so CONFIG's own values of those factors do
not leak into it:

    align-tau{t}     contrastive stage on, tau = t            (Table IV; align-tau{base}: the base)
    noalign-tau{t}   contrastive stage off, tau = t, the encoder  (Table IV)
                     trained by the caption stage
    mlp              base with the FFN mapper                 (Table V; its transformer is the base)
    space-only       base without temporal attention          (beyond the paper)
    tokens           base, mapper reading all video tokens    (beyond the paper)
    shuffled         base, frames in a fixed random order     (beyond the paper: does order matter?)

Budget: every cell runs the same optimiser steps. A cell without the align stage gets the align
stage's steps added to its caption stage (`no_align_budget="total"`, the default: the same
number of optimiser steps in all, so the contrastive stage must earn its steps); "caption" keeps
the caption stage as it is instead (the paper's reading, which gives the align cells more steps).

Each cell x seed trains into DIR/<cell>/seed-<k>/ with `train.seed=k`, is scored on the test split
(greedy, the best-on-validation weights), and leaves its scores there. A rerun skips cell-seeds
whose scores-test.json exists, evaluates those whose training finished, resumes those with a
checkpoint, and starts the others afresh. `jobs > 1` runs cell-seeds in spawned processes, each
with max(1, cores // jobs) torch threads.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import os
import platform
import shutil
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import datetime, timezone
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Literal

from vidcap.config import Config, load_config
from vidcap.errors import ConfigError, RunError, VidcapError

log = logging.getLogger(__name__)

TAUS = (10, 30, 50)
SCORES = "scores-test.json"
PREDICTIONS = "predictions-test.json"
RECORD = "ablation.json"
COCO = ("Bleu_4", "METEOR", "ROUGE_L", "CIDEr")
ATTRIBUTES = ("colour", "shape", "motion", "all")
AXES: dict[str, tuple[str, str]] = {"left/right": ("left", "right"), "up/down": ("up", "down"),
                                    "grows/shrinks": ("grows", "shrinks")}
NoAlignBudget = Literal["total", "caption"]


# ---------------------------------------------------------------------------------------------
# the grid


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


# ---------------------------------------------------------------------------------------------
# running one cell-seed


@dataclass(frozen=True)
class CellJob:
    cell: str
    seed: int
    config: str
    """Preset name or YAML path."""
    overrides: tuple[str, ...]
    """All overrides, the seed's last."""
    run_dir: str
    device: str
    threads: int | None = None
    """torch threads of a worker process (None: leave as is)."""


@dataclass
class JobOutcome:
    cell: str
    seed: int
    action: str
    """skipped (scores were there), evaluated (training had finished), resumed, trained, failed."""
    seconds: float = 0.0
    error: str | None = None


def run_job(job: CellJob) -> JobOutcome:
    """Train (or resume) and evaluate one cell-seed; what is already done is not redone."""
    from vidcap.evaluation.evaluate import evaluate_run
    from vidcap.training.checkpoint import CheckpointManager
    from vidcap.training.loop import train

    run_dir = Path(job.run_dir)
    if (run_dir / SCORES).is_file():
        return JobOutcome(job.cell, job.seed, "skipped")
    start = time.perf_counter()
    if (run_dir / "trainer_state.pt").is_file():
        action = "evaluated"
    else:
        resume = bool(CheckpointManager(run_dir).list())
        if not resume and run_dir.exists():  # killed before its first checkpoint: start again
            shutil.rmtree(run_dir)
        action = "resumed" if resume else "trained"
        log.info("%s seed %d: %s", job.cell, job.seed,
                 "resuming" if resume else "training")
        run_dir.mkdir(parents=True, exist_ok=True)
        if not resume:
            _write_json(run_dir / RECORD, job_record(job))
        train(load_config(job.config, list(job.overrides)), run_dir, resume=resume)
        record = _read_json(run_dir / RECORD) or job_record(job)
        record.update(action=action, train_seconds=round(time.perf_counter() - start, 1))
        _write_json(run_dir / RECORD, record)
    record = _read_json(run_dir / RECORD) or job_record(job)
    evaluated = time.perf_counter()
    evaluate_run(run_dir, split="test", gen_overrides={"strategy": "greedy"}, device=job.device)
    record["eval_seconds"] = round(time.perf_counter() - evaluated, 1)
    _write_json(run_dir / RECORD, record)
    return JobOutcome(job.cell, job.seed, action, time.perf_counter() - start)


def job_record(job: CellJob) -> dict[str, Any]:
    """What a cell-seed folder was started with (DIR/<cell>/seed-<k>/ablation.json)."""
    return {"cell": job.cell, "seed": job.seed, "config": job.config,
            "overrides": list(job.overrides)}


def check_reuse(job: CellJob) -> None:
    """A folder started with other settings must not be skipped or resumed as if it were this
    cell-seed (a changed budget would mix into the means unseen)."""
    record = _read_json(Path(job.run_dir) / RECORD)
    if record is None:
        return
    if record.get("config") != job.config or record.get("overrides") != list(job.overrides):
        raise ConfigError(f"{job.run_dir}: was started with other settings (config or --set "
                          "overrides); use another --out, or delete that folder to redo it")


def _worker_init(threads: int | None, level: int) -> None:
    """A spawned worker: its own torch threads, logs like the parent, no progress bars (bars of
    several processes on one terminal garble each other; tqdm draws only on a terminal)."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    logging.basicConfig(level=level, format="%(message)s", stream=sys.stderr)
    sys.stderr = _NotATerminal(sys.stderr)


class _NotATerminal:
    def __init__(self, stream) -> None:
        self._stream = stream

    def isatty(self) -> bool:
        return False

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


def _run_guarded(job: CellJob) -> JobOutcome:
    try:
        return run_job(job)
    except VidcapError as err:  # one bad cell does not stop the grid
        return JobOutcome(job.cell, job.seed, "failed", error=str(err))


# ---------------------------------------------------------------------------------------------
# the grid run


@dataclass
class GridResult:
    out: Path
    outcomes: list[JobOutcome]
    results: dict[str, Any]
    table: str
    seconds: float = 0.0

    @property
    def failed(self) -> list[JobOutcome]:
        return [o for o in self.outcomes if o.action == "failed"]


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def run_grid(config: str, out: str | Path, *, overrides: Sequence[str] = (), seeds: int = 3,
             jobs: int = 1, cells: Sequence[str] | None = None, taus: Sequence[int] = TAUS,
             base_tau: int | None = None, target_cider: float | None = None,
             no_align_budget: NoAlignBudget = "total", device: str | None = None,
             command: str | None = None,
             progress: Callable[[JobOutcome, int, int], None] | None = None) -> GridResult:
    """Run (or finish) the grid into `out`, then write out/results.json and out/table.md.

    `target_cider` is a validation CIDEr in table units (x100); `progress(outcome, done, total)`
    is called as each cell-seed ends. A cell-seed that fails with a VidcapError is reported, not
    raised; the others go on.
    """
    if seeds < 1 or jobs < 1:
        raise ConfigError("ablate: --seeds and --jobs must be at least 1")
    out = Path(out)
    base = load_config(config, list(overrides))
    chosen = select_cells(build_grid(base, taus=taus, base_tau=base_tau,
                                     no_align_budget=no_align_budget), cells)
    # check every cell's config before anything trains: a bad override fails now, in one line
    for cell in chosen:
        load_config(config, [*overrides, *cell.overrides])
    cores = usable_cores()
    threads = max(1, cores // jobs)
    device = device or _device(base)
    job_list = [CellJob(cell.name, seed, str(config),
                        (*overrides, *cell.overrides, f"train.seed={seed}"),
                        str(out / cell.name / f"seed-{seed}"), device,
                        threads if jobs > 1 else None)
                for seed in range(seeds) for cell in chosen]  # seed-major: early seeds finish first
    for job in job_list:
        check_reuse(job)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    outcomes: list[JobOutcome] = []

    def done(outcome: JobOutcome) -> None:
        outcomes.append(outcome)
        if outcome.action == "failed":
            log.error("%s seed %d failed: %s", outcome.cell, outcome.seed, outcome.error)
        if progress is not None:
            progress(outcome, len(outcomes), len(job_list))

    pending = [j for j in job_list if not (Path(j.run_dir) / SCORES).is_file()]
    for job in job_list:
        if job not in pending:
            done(JobOutcome(job.cell, job.seed, "skipped"))
    if jobs == 1 or len(pending) <= 1:
        for job in pending:
            done(_run_guarded(job))
    else:
        context = get_context("spawn")
        level = logging.getLogger().getEffectiveLevel()
        with ProcessPoolExecutor(max_workers=min(jobs, len(pending)), mp_context=context,
                                 initializer=_worker_init, initargs=(threads, level)) as pool:
            futures = [pool.submit(_run_guarded, job) for job in pending]
            for future in as_completed(futures):
                done(future.result())
    seconds = time.perf_counter() - start
    machine = machine_info(threads if jobs > 1 else _torch_threads(), jobs, device)
    results = collect_results(out, chosen, seeds, base, target_cider=target_cider,
                              no_align_budget=no_align_budget, machine=machine, command=command,
                              config=str(config), overrides=list(overrides), taus=list(taus),
                              base_tau=base_tau if base_tau is not None else list(taus)[0])
    table = format_markdown(results)
    _write_json(out / "results.json", results)
    (out / "table.md").write_text(table)
    return GridResult(out, outcomes, results, table, seconds)


def _device(cfg: Config) -> str:
    if cfg.train.device != "auto":
        return cfg.train.device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def machine_info(threads: int, jobs: int, device: str) -> dict[str, Any]:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {"cores": usable_cores(), "cpu": cpu, "torch_threads": threads, "jobs": jobs,
            "device": device, "torch": torch.__version__, "python": platform.python_version()}
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


# ---------------------------------------------------------------------------------------------
# reading results back


def direction_accuracy(predictions: Mapping[str, str], attributes: Mapping[str, Any]
                       ) -> dict[str, dict[str, dict[str, Any]]]:
    """Telling left from right, up from down, grows from shrinks, read from the captions.

    Objects are matched to the objects a caption names as `attribute_accuracy` does (the
    pairing with the most agreeing attributes). For each axis, among the objects whose true
    motion lies on it: `objects`, `on_axis` (the caption's motion is on the same axis: either
    direction), `correct` (it is the true direction), `accuracy` = correct / on_axis (chance is
    0.5 for a model that knows the axis but not the order of frames; None when on_axis is 0),
    `axis_rate` = on_axis / objects. Groups: all objects, seen pairs, held-out pairs.
    """
    from vidcap.data.shapes import HELD_OUT_PAIRS, parse_caption

    counts = {g: {axis: [0, 0, 0] for axis in AXES} for g in ("all", "seen", "held_out")}
    axis_of = {m: axis for axis, pair in AXES.items() for m in pair}
    for video_id, caption in predictions.items():
        clip = attributes.get(video_id)
        if clip is None:
            continue
        guesses = list(parse_caption(caption)[:len(clip.objects)])
        guesses += [None] * (len(clip.objects) - len(guesses))
        best = max(itertools.permutations(guesses), key=lambda order: sum(
            _agree(o, g) for o, g in zip(clip.objects, order)))
        for obj, guess in zip(clip.objects, best):
            axis = axis_of.get(obj.motion)
            if axis is None:
                continue
            said = guess[2] if guess is not None else None
            group = "held_out" if (obj.colour, obj.shape) in HELD_OUT_PAIRS else "seen"
            for g in ("all", group):
                tally = counts[g][axis]
                tally[0] += 1
                tally[1] += said in AXES[axis]
                tally[2] += said == obj.motion
    return {g: {axis: {"objects": n, "on_axis": on, "correct": ok,
                       "accuracy": ok / on if on else None, "axis_rate": on / n if n else None}
                for axis, (n, on, ok) in axes.items()} for g, axes in counts.items()}


def _agree(obj: Any, guess: tuple | None) -> int:
    if guess is None:
        return 0
    return (guess[0] == obj.colour) + (guess[1] == obj.shape) + (guess[2] == obj.motion)


def steps_to_target(metrics: Sequence[Mapping[str, Any]], target: float, *,
                    metric: str = "CIDEr") -> int | None:
    """The caption-stage step of the first validation whose `metric` (a fraction) >= target."""
    for line in metrics:
        if line.get("event") == "eval" and line.get("stage") == "caption" \
                and isinstance(line.get(metric), (int, float)) and line[metric] >= target:
            return int(line["step"])
    return None


def _flat_scores(scores: Mapping[str, Any]) -> dict[str, float | None]:
    """{"Bleu_4": .., "held_out.all": .., ...} as percentages (x100)."""
    flat: dict[str, float | None] = {k: 100 * scores[k] for k in COCO if k in scores}
    for group, table in (scores.get("attributes") or {}).items():
        for key in ATTRIBUTES:
            value = table.get(key)
            flat[f"{group}.{key}"] = None if value is None else 100 * value
    return flat


def summarize(values: Sequence[float | None]) -> dict[str, Any]:
    """mean, sample sd (None with fewer than 2 values) and n of the values that are not None."""
    kept = [v for v in values if v is not None and not math.isnan(v)]
    if not kept:
        return {"mean": None, "sd": None, "n": 0}
    return {"mean": statistics.fmean(kept), "sd": statistics.stdev(kept) if len(kept) > 1 else None,
            "n": len(kept)}


def collect_results(out: Path, cells: Sequence[Cell], seeds: int, base: Config, *,
                    target_cider: float | None, no_align_budget: str, machine: dict[str, Any],
                    command: str | None, config: str, overrides: list[str], taus: list[int],
                    base_tau: int) -> dict[str, Any]:
    """Read every finished cell-seed back and summarise each cell over its seeds."""
    from vidcap.evaluation.evaluate import attributes_beside
    from vidcap.training.records import read_metrics

    attributes_file = attributes_beside(base.data.manifest) if base.data.manifest else None
    attributes = None
    if attributes_file is not None:
        from vidcap.data.shapes import read_attributes

        attributes = read_attributes(attributes_file)
    result_cells: dict[str, Any] = {}
    missing = []
    for cell in cells:
        per_seed: dict[str, Any] = {}
        for seed in range(seeds):
            run_dir = out / cell.name / f"seed-{seed}"
            scores = _read_json(run_dir / SCORES)
            if scores is None:
                missing.append(f"{cell.name}/seed-{seed}")
                continue
            entry: dict[str, Any] = {"scores": _flat_scores(scores)}
            record = _read_json(run_dir / RECORD) or {}
            entry["train_seconds"] = record.get("train_seconds")
            entry["action"] = record.get("action")
            if target_cider is not None:
                entry["steps_to_target"] = steps_to_target(read_metrics(run_dir),
                                                           target_cider / 100)
            predictions = _read_json(run_dir / PREDICTIONS)
            if attributes is not None and predictions is not None:
                entry["direction"] = direction_accuracy(predictions, attributes)
            per_seed[str(seed)] = entry
        summary = {key: summarize([s["scores"].get(key) for s in per_seed.values()])
                   for key in sorted({k for s in per_seed.values() for k in s["scores"]})}
        for group in ("all", "seen"):
            for axis in AXES:
                summary[f"direction.{group}.{axis}"] = summarize(
                    [_pct(s.get("direction", {}).get(group, {}).get(axis, {}).get("accuracy"))
                     for s in per_seed.values()])
        if target_cider is not None:
            reached = [s["steps_to_target"] for s in per_seed.values()
                       if s.get("steps_to_target") is not None]
            summary["steps_to_target"] = {**summarize(reached), "reached": len(reached),
                                          "seeds": len(per_seed)}
        summary["train_seconds"] = summarize([s.get("train_seconds") for s in per_seed.values()])
        result_cells[cell.name] = {"label": cell.label, "overrides": list(cell.overrides),
                                   "seeds": per_seed, "summary": summary}
    train = base.train
    budget = {"align_steps": train.align.steps, "align_batch": train.align.batch_size,
              "caption_steps": train.caption.steps, "caption_batch": train.caption.batch_size,
              "no_align_budget": no_align_budget,
              "no_align_caption_steps": train.caption.steps + (
                  train.align.steps if no_align_budget == "total" else 0),
              "eval_every": train.eval_every, "eval_max_videos": train.eval_max_videos,
              "precision": train.precision, "seeds": seeds}
    return {"command": command, "config": config, "overrides": overrides,
            "manifest": base.data.manifest, "taus": taus, "base_tau": base_tau,
            "target_cider": target_cider, "machine": machine, "budget": budget,
            "written": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "missing": missing, "cells": result_cells}


def _pct(value: float | None) -> float | None:
    return None if value is None else 100 * value


# ---------------------------------------------------------------------------------------------
# Markdown


def _ms(stat: Mapping[str, Any] | None, digits: int = 1) -> str:
    if not stat or stat.get("mean") is None:
        return "–"
    text = f"{stat['mean']:.{digits}f}"
    if stat.get("sd") is not None:
        text += f" ± {stat['sd']:.{digits}f}"
    return text


def _steps(stat: Mapping[str, Any] | None) -> str:
    if not stat:
        return "–"
    if not stat.get("reached"):
        return f"not reached (0/{stat.get('seeds', 0)})"
    return f"{stat['mean']:.0f} ({stat['reached']}/{stat['seeds']})"


def _difference(a: Mapping[str, Any], b: Mapping[str, Any]) -> tuple[str, str]:
    """(Δ text, reading) of a − b, with the standard error of the difference of two means."""
    if a.get("mean") is None or b.get("mean") is None:
        return "–", "–"
    delta = a["mean"] - b["mean"]
    if a.get("sd") is None or b.get("sd") is None:
        return f"{delta:+.1f}", "one seed: no spread to judge by"
    se = math.sqrt(a["sd"] ** 2 / a["n"] + b["sd"] ** 2 / b["n"])
    if se == 0:
        reading = "equal" if delta == 0 else ("helps" if delta > 0 else "hurts")
    elif abs(delta) > 2 * se:
        reading = "helps" if delta > 0 else "hurts"
    else:
        reading = "no clear difference (|Δ| ≤ 2 se)"
    return f"{delta:+.1f} ± {se:.1f}", reading


def format_markdown(results: Mapping[str, Any]) -> str:
    """The whole table.md: header (command, machine, budget), the key question, Tables IV and V,
    the controls, motion directions, and every cell in full."""
    cells: Mapping[str, Any] = results["cells"]
    m, b = results["machine"], results["budget"]
    target = results.get("target_cider")
    lines = [f"# Ablations: {results['config']}", ""]
    if results.get("command"):
        lines += ["Command:", "", "```", results["command"], "```", ""]
    gpu = f", GPU {m['gpu']}" if m.get("gpu") else ""
    lines += [
        f"- Machine: {m['cores']} cores ({m['cpu']}){gpu}; {m['jobs']} cell(s) at a time, "
        f"{m['torch_threads']} torch thread(s) each; torch {m['torch']}, device {m['device']}.",
        f"- Budget per cell and seed: align stage {b['align_steps']} steps (batch "
        f"{b['align_batch']}), caption stage {b['caption_steps']} steps (batch "
        f"{b['caption_batch']}); cells without the align stage train the caption stage for "
        f"{b['no_align_caption_steps']} steps ("
        + ("the align steps added: the same optimiser steps in all"
           if b["no_align_budget"] == "total" else "align steps not added") + "). "
        f"Precision {b['precision']}. Validation every {b['eval_every'] or 'end of'} "
        f"step(s) on {b['eval_max_videos'] or 'all'} videos; the best-on-validation weights are "
        "scored on the test split with greedy decoding.",
        f"- Seeds 0..{b['seeds'] - 1} (`train.seed`: weights, data order, caption draws); every "
        "figure is mean ± sample sd over seeds, in % (coco scores x100); \"train s\": wall "
        "seconds of training (of its last part, for a resumed run).",
        f"- Written {results['written']}. Manifest: `{results['manifest']}`.",
    ]
    if results.get("missing"):
        lines.append(f"- Not finished (left out of the means): {', '.join(results['missing'])}.")
    lines.append("")

    taus = [t for t in results["taus"] if f"align-tau{t}" in cells and f"noalign-tau{t}" in cells]
    if taus:
        lines += ["## Does the contrastive stage help on held-out pairs?", "",
                  "Held-out pairs are (colour, shape) compositions never seen in training. "
                  "Δ = on − off ± its standard error; \"helps\"/\"hurts\" when |Δ| > 2 se.", "",
                  "| τ | held-out all-3, align on | align off | Δ | reading | test CIDEr, on | off "
                  "| Δ | reading |", "|---|---|---|---|---|---|---|---|---|"]
        for tau in taus:
            on = cells[f"align-tau{tau}"]["summary"]
            off = cells[f"noalign-tau{tau}"]["summary"]
            ho_on, ho_off = on.get("held_out.all", {}), off.get("held_out.all", {})
            c_on, c_off = on.get("CIDEr", {}), off.get("CIDEr", {})
            d1, r1 = _difference(ho_on, ho_off)
            d2, r2 = _difference(c_on, c_off)
            lines.append(f"| {tau} | {_ms(ho_on)} | {_ms(ho_off)} | {d1} | {r1} | {_ms(c_on)} "
                         f"| {_ms(c_off)} | {d2} | {r2} |")
        lines.append("")

    groups = [
        ("Table IV: contrastive stage × τ",
         [f"{p}-tau{t}" for p in ("align", "noalign") for t in results["taus"]]),
        ("Table V: mapper", [f"align-tau{results['base_tau']}", "mlp"]),
        ("Beyond the paper", [f"align-tau{results['base_tau']}", "space-only", "tokens",
                              "shuffled"]),
    ]
    for title, names in groups:
        names = [n for n in names if n in cells]
        if len(names) < 2:  # nothing to compare; the last table has every cell
            continue
        lines += [f"## {title}", ""] + _score_table(cells, names, target) + [""]

    order = [n for n in (f"align-tau{results['base_tau']}", "shuffled", "space-only")
             if n in cells]
    order += [n for n in cells if n not in order]
    if any(cells[n]["summary"].get("direction.all.left/right", {}).get("n") for n in order):
        lines += ["## Motion direction: is frame order used?", "",
                  "Of the objects whose motion lies on an axis and whose caption names a motion "
                  "on that axis, the % named in the right direction (chance: 50). Motion (seen) "
                  "is the plain attribute accuracy.", "",
                  "| cell | motion, seen | left vs right | up vs down | grows vs shrinks |",
                  "|---|---|---|---|---|"]
        for name in order:
            s = cells[name]["summary"]
            lines.append(f"| {name} | {_ms(s.get('seen.motion'))} | "
                         + " | ".join(_ms(s.get(f"direction.all.{axis}")) for axis in AXES)
                         + " |")
        lines.append("")
    lines += ["## Every cell", ""] + _score_table(cells, list(cells), target, with_label=True)
    return "\n".join(lines) + "\n"


def _score_table(cells: Mapping[str, Any], names: Sequence[str], target: float | None, *,
                 with_label: bool = False) -> list[str]:
    has_attributes = any("seen.all" in cells[n]["summary"] for n in names)
    head = ["cell"] + (["what"] if with_label else []) + ["BLEU-4", "METEOR", "ROUGE-L", "CIDEr"]
    if has_attributes:
        head += [f"{g} {k}" for g in ("seen", "held-out") for k in ATTRIBUTES]
    if target is not None:
        head.append(f"steps to val CIDEr ≥ {target:g}")
    head += ["seeds", "train s"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in names:
        s = cells[name]["summary"]
        row = [name] + ([cells[name]["label"]] if with_label else [])
        row += [_ms(s.get(k)) for k in COCO]
        if has_attributes:
            row += [_ms(s.get(f"{g}.{k}")) for g in ("seen", "held_out") for k in ATTRIBUTES]
        if target is not None:
            row.append(_steps(s.get("steps_to_target")))
        row += [str(len(cells[name]["seeds"])), _ms(s.get("train_seconds"), 0)]
        rows.append("| " + " | ".join(row) + " |")
    return rows


# ---------------------------------------------------------------------------------------------
# files


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False))
    os.replace(tmp, path)


def _read_json(path: Path) -> Any:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise RunError(f"{path}: not valid JSON ({err})") from None
