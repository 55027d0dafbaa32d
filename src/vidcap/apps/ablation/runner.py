"""Running the ablation grid: each cell-seed trained (or resumed, or skipped) and scored, one at a
time or in spawned processes, then the results read back and written as results.json and
table.md."""

from __future__ import annotations

import logging
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from vidcap.apps.ablation.grid import TAUS, Cell, NoAlignBudget, build_grid, select_cells
from vidcap.apps.ablation.machine import machine_info, torch_threads
from vidcap.apps.ablation.report import format_markdown
from vidcap.apps.ablation.results import RECORD, TEST_SPLIT, collect_results, read_json
from vidcap.config import Config, load_config
from vidcap.errors import ConfigError, VidcapError
from vidcap.files import write_json, write_text
from vidcap.runs.layout import RunLayout
from vidcap.runtime import default_threads

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------
# one cell-seed


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

    @property
    def layout(self) -> RunLayout:
        return RunLayout(Path(self.run_dir))

    def is_scored(self) -> bool:
        return self.layout.scores(TEST_SPLIT).is_file()


@dataclass
class JobOutcome:
    cell: str
    seed: int
    action: str
    """skipped (scores were there), evaluated (training had finished), resumed, trained, failed."""
    seconds: float = 0.0
    error: str | None = None


def _train_job(job: CellJob) -> str:
    """Train or resume one cell-seed: "trained" or "resumed"."""
    from vidcap.runs.checkpoints import CheckpointManager
    from vidcap.training.trainer import train

    run_dir = Path(job.run_dir)
    resume = bool(CheckpointManager(run_dir).list())
    if not resume and run_dir.exists():  # killed before its first checkpoint: start again
        shutil.rmtree(run_dir)
    log.info("%s seed %d: %s", job.cell, job.seed, "resuming" if resume else "training")
    run_dir.mkdir(parents=True, exist_ok=True)
    if not resume:
        write_json(run_dir / RECORD, job_record(job))
    train(load_config(job.config, list(job.overrides)), run_dir, resume=resume)
    return "resumed" if resume else "trained"


def run_job(job: CellJob) -> JobOutcome:
    """Train (or resume) and evaluate one cell-seed; what is already done is not redone."""
    from vidcap.evaluation.evaluate import evaluate_run

    run_dir = Path(job.run_dir)
    if job.is_scored():
        return JobOutcome(job.cell, job.seed, "skipped")
    start = time.perf_counter()
    action = "evaluated"
    if not job.layout.is_finished():
        action = _train_job(job)
        record = read_json(run_dir / RECORD) or job_record(job)
        record.update(action=action, train_seconds=round(time.perf_counter() - start, 1))
        write_json(run_dir / RECORD, record)
    record = read_json(run_dir / RECORD) or job_record(job)
    evaluated = time.perf_counter()
    evaluate_run(run_dir, split=TEST_SPLIT, gen_overrides={"strategy": "greedy"},
                 device=job.device)
    record["eval_seconds"] = round(time.perf_counter() - evaluated, 1)
    write_json(run_dir / RECORD, record)
    return JobOutcome(job.cell, job.seed, action, time.perf_counter() - start)


def job_record(job: CellJob) -> dict[str, Any]:
    """What a cell-seed folder was started with (DIR/<cell>/seed-<k>/ablation.json)."""
    return {"cell": job.cell, "seed": job.seed, "config": job.config,
            "overrides": list(job.overrides)}


def check_reuse(job: CellJob) -> None:
    """A folder started with other settings must not be skipped or resumed as if it were this
    cell-seed (a changed budget would mix into the means unseen)."""
    record = read_json(Path(job.run_dir) / RECORD)
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
# the grid


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


def _make_jobs(config: str, out: Path, overrides: Sequence[str], cells: Sequence[Cell],
               seeds: int, device: str, threads: int | None) -> list[CellJob]:
    """One job per cell and seed, seed-major (early seeds finish first); each config is built
    once first, so a bad override fails now, in one line, before anything trains."""
    for cell in cells:
        load_config(config, [*overrides, *cell.overrides])
    jobs = [CellJob(cell.name, seed, str(config),
                    (*overrides, *cell.overrides, f"train.seed={seed}"),
                    str(out / cell.name / f"seed-{seed}"), device, threads)
            for seed in range(seeds) for cell in cells]
    for job in jobs:
        check_reuse(job)
    return jobs


def _run_jobs(jobs: Sequence[CellJob], workers: int, threads: int,
              done: Callable[[JobOutcome], None]) -> None:
    """Run the jobs not scored yet, in this process or in `workers` spawned ones."""
    pending = [j for j in jobs if not j.is_scored()]
    for job in jobs:
        if job not in pending:
            done(JobOutcome(job.cell, job.seed, "skipped"))
    if workers == 1 or len(pending) <= 1:
        for job in pending:
            done(_run_guarded(job))
        return
    level = logging.getLogger().getEffectiveLevel()
    with ProcessPoolExecutor(max_workers=min(workers, len(pending)),
                             mp_context=get_context("spawn"), initializer=_worker_init,
                             initargs=(threads, level)) as pool:
        for future in as_completed([pool.submit(_run_guarded, job) for job in pending]):
            done(future.result())


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
    from vidcap.distributed import pick_device

    if seeds < 1 or jobs < 1:
        raise ConfigError("ablate: --seeds and --jobs must be at least 1")
    out = Path(out)
    base: Config = load_config(config, list(overrides))
    chosen = select_cells(build_grid(base, taus=taus, base_tau=base_tau,
                                     no_align_budget=no_align_budget), cells)
    threads = default_threads(jobs)
    device = device or pick_device(base.train.device).type
    job_list = _make_jobs(config, out, overrides, chosen, seeds, device,
                          threads if jobs > 1 else None)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    outcomes: list[JobOutcome] = []

    def done(outcome: JobOutcome) -> None:
        outcomes.append(outcome)
        if outcome.action == "failed":
            log.error("%s seed %d failed: %s", outcome.cell, outcome.seed, outcome.error)
        if progress is not None:
            progress(outcome, len(outcomes), len(job_list))

    _run_jobs(job_list, jobs, threads, done)
    seconds = time.perf_counter() - start
    machine = machine_info(threads if jobs > 1 else torch_threads(), jobs, device)
    results = collect_results(out, chosen, seeds, base, target_cider=target_cider,
                              no_align_budget=no_align_budget, machine=machine, command=command,
                              config=str(config), overrides=list(overrides), taus=list(taus),
                              base_tau=base_tau if base_tau is not None else list(taus)[0])
    table = format_markdown(results)
    write_json(out / "results.json", results)
    write_text(out / "table.md", table)
    return GridResult(out, outcomes, results, table, seconds)
