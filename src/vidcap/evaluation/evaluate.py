"""`vidcap evaluate`: caption a split with a trained run and score it against the manifest; or, with
`--long`, caption long Shapes videos segment by segment and score the cuts and the captions.

Captions are appended to the run's `predictions-<split>.jsonl` one line per video as they are
made (`vidcap.captioning.results`), so an evaluation that stops (killed, or unable to write its
final files) keeps every caption it made, and a rerun with the same settings (manifest, split,
weights, decoding) captions only the videos still missing; other settings start the log afresh.
Then it writes `predictions-<split>.json` and `scores-<split>.json` (coco-caption scores as
fractions, the Shapes attribute accuracies when the set has them, the decoding used, and how many
videos were captioned and failed). Under torchrun each process captions a block of the videos;
rank 0 scores. The long-video evaluation writes `predictions-long.json` (each video's cues) and
`scores-long.json` (cut recall and precision, per-segment attribute accuracy).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from vidcap.captioning.batch import CaptionJob, FileSource, RecordSource, result_record
from vidcap.captioning.engine import default_workers
from vidcap.captioning.frames import SegmentRequest
from vidcap.captioning.results import ResultsLog, read_results
from vidcap.captioning.segments import Cue
from vidcap.captioning.subtitles import cue_objects
from vidcap.config import Config, GenerateConfig
from vidcap.data.manifest import read_manifest
from vidcap.data.shapes import attributes_beside
from vidcap.distributed import DistInfo, setup_distributed, teardown_distributed
from vidcap.errors import RunError
from vidcap.evaluation.score import score_predictions
from vidcap.evaluation.segments import (cue_cuts, cut_scores, read_long_truth,
                                        segment_attribute_accuracy)
from vidcap.files import write_json
from vidcap.runs.layout import RunLayout, open_run
from vidcap.runs.store import clip_length, load_run, read_config, weights_files
from vidcap.runtime import resolve_precision

log = logging.getLogger(__name__)

LONG = "long"
"""The name the long-video evaluation's files take in place of a split."""


@dataclass
class _Setup:
    layout: RunLayout
    cfg: Config
    gen: GenerateConfig
    info: DistInfo
    workers: int
    precision: str
    """What the model runs under (fp32, bf16 or fp16): `precision` decided for the device."""


def _setup(run_dir: str | Path, gen_overrides: dict[str, Any] | None, device: str,
           workers: int | None, precision: str) -> _Setup:
    layout = open_run(run_dir)
    cfg = read_config(layout)
    info = setup_distributed(device)
    gen = replace(cfg.generate, **(gen_overrides or {}))
    chosen = default_workers(info.world_size) if workers is None else workers
    chosen_precision, reason = resolve_precision(precision, info.device)
    log.debug("precision %s (%s)", chosen_precision, reason)
    return _Setup(layout, cfg, gen, info, chosen, chosen_precision)


def _weights_stamp(layout: RunLayout, which: str) -> str:
    """The weights files `load_run(which=...)` reads and their times: a log of other weights
    is started again."""
    return ";".join(f"{weights.relative_to(layout.root)}@{weights.stat().st_mtime_ns}"
                    for weights in weights_files(layout, which))


def _run_job(setup: _Setup, which: str, log_file: ResultsLog, make_source, ids: list[str],
             record=result_record) -> None:
    model = load_run(setup.layout.root, device=setup.info.device, which=which)
    job = CaptionJob(model, setup.gen, make_source, log=log_file, record=record,
                     workers=setup.workers, device=setup.info.device, rank=setup.info.rank,
                     world_size=setup.info.world_size, precision=setup.precision)
    for result in job.run(ids):
        if not result.ok:
            log.warning("%s: %s", result.key, result.error)
    log.info("captioning: %s", job.summary.line())


def evaluate_run(run_dir: str | Path, *, split: str = "test", manifest: str | Path | None = None,
                 gen_overrides: dict[str, Any] | None = None, which: str = "auto",
                 device: str = "cpu", limit: int | None = None, workers: int | None = None,
                 precision: str = "auto") -> dict[str, Any] | None:
    """Caption a split with a saved run (resuming its predictions log), write
    predictions-<split>.json and scores-<split>.json; the scores (None on ranks other than 0).
    `workers`: decoding processes (default: `default_workers`); `precision`: auto, fp32, bf16 or
    fp16, as `vidcap.runtime.resolve_precision` decides it for the device."""
    setup = _setup(run_dir, gen_overrides, device, workers, precision)
    try:
        manifest = Path(manifest or setup.cfg.data.manifest)
        records = read_manifest(manifest, split)[:limit]
        if not records:
            raise RunError(f"{manifest}: no videos in split {split!r}")
        settings = {"manifest": str(manifest.resolve()), "split": split,
                    "weights": _weights_stamp(setup.layout, which), "decode": asdict(setup.gen),
                    "precision": setup.precision}
        log_file = ResultsLog(setup.layout.predictions_log(split), "video_id", settings)
        index = {r.video_id: i for i, r in enumerate(records)}

        def make_source(todo):
            return RecordSource(records, setup.cfg, [index[k] for k in todo])

        _run_job(setup, which, log_file, make_source, list(index),
                 record=lambda r: result_record(r, "video_id"))
        if not setup.info.is_main_process:
            return None
        predictions, failed = _read_log(log_file, index)
        scores = score_predictions(predictions, records,
                                   attributes_file=attributes_beside(manifest))
        scores.update(videos=len(predictions), failed=len(failed), decode=asdict(setup.gen),
                      precision=setup.precision)
        _write_outputs({setup.layout.predictions(split): predictions,
                        setup.layout.scores(split): scores}, log_file)
        return scores
    finally:
        teardown_distributed()


def _write_outputs(files: dict[Path, Any], log_file: ResultsLog) -> None:
    """Write the final JSON files; when one cannot be written, say that the captions are kept."""
    for path, data in files.items():
        try:
            write_json(path, data)
        except OSError as err:
            raise RunError(f"{path}: cannot be written ({err.strerror or err}); the captions are "
                           f"kept in {log_file.path}: rerun the same command to score them "
                           "without captioning again") from None


def _read_log(log_file: ResultsLog, wanted) -> tuple[dict[str, str], dict[str, str]]:
    """({video_id: caption}, {video_id: error}) of the log's lines for the `wanted` ids."""
    predictions: dict[str, str] = {}
    failed: dict[str, str] = {}
    for line in read_results(log_file.path, log_file.key):
        video_id = line["video_id"]
        if video_id not in wanted:
            continue
        if line.get("caption") is not None:
            predictions[video_id] = line["caption"]
        if line.get("error"):
            failed[video_id] = line["error"]
    return predictions, failed


def evaluate_long(run_dir: str | Path, long_dir: str | Path, *,
                  request: SegmentRequest | None = None,
                  gen_overrides: dict[str, Any] | None = None, which: str = "auto",
                  device: str = "cpu", workers: int | None = None,
                  precision: str = "auto") -> dict[str, Any] | None:
    """Caption the long Shapes videos of `long_dir` segment by segment (default `--segments
    auto` with the run's clip length) and score cuts and per-segment attributes; writes
    predictions-long.json and scores-long.json; the scores (None on ranks other than 0)."""
    setup = _setup(run_dir, gen_overrides, device, workers, precision)
    try:
        truth = read_long_truth(long_dir)
        request = request or SegmentRequest("auto")
        if request.clip_length is None:
            request = replace(request, clip_length=clip_length(setup.layout, setup.cfg.video))
        settings = {"long": str(Path(long_dir).resolve()), "segments": _request_json(request),
                    "weights": _weights_stamp(setup.layout, which), "decode": asdict(setup.gen),
                    "precision": setup.precision}
        log_file = ResultsLog(setup.layout.predictions_log(LONG), "video_id", settings)

        def make_source(todo):
            return FileSource([str(truth[k].video_path) for k in todo], setup.cfg.video,
                              request, keys=todo)

        _run_job(setup, which, log_file, make_source, list(truth),
                 record=lambda r: result_record(r, "video_id"))
        if not setup.info.is_main_process:
            return None
        cues, failed = _read_cues(log_file, truth)
        scores = {"cuts": cut_scores({k: cue_cuts(c) for k, c in cues.items()}, truth),
                  "attributes": segment_attribute_accuracy(cues, truth),
                  "videos": len(cues), "failed": len(failed),
                  "segments": _request_json(request), "decode": asdict(setup.gen),
                  "precision": setup.precision}
        _write_outputs({setup.layout.predictions(LONG): {k: cue_objects(v)
                                                        for k, v in cues.items()},
                        setup.layout.scores(LONG): scores}, log_file)
        return scores
    finally:
        teardown_distributed()


def _request_json(request: SegmentRequest) -> dict[str, Any]:
    return {"mode": request.mode, "clip_length": request.clip_length, "window": request.window,
            "stride": request.stride}


def _read_cues(log_file: ResultsLog, truth) -> tuple[dict[str, list[Cue]], dict[str, str]]:
    """Each long video's cues from the log (a video that failed outright has none, and still
    counts: its cuts are missed, its segments wrong), and the errors."""
    cues: dict[str, list[Cue]] = {k: [] for k in truth}
    failed: dict[str, str] = {}
    for line in read_results(log_file.path, log_file.key):
        video_id = line["video_id"]
        if video_id not in truth:
            continue
        if line.get("segments"):
            cues[video_id] = [Cue(s["start"], s["end"], s["caption"]) for s in line["segments"]]
        elif line.get("caption") is not None:
            cues[video_id] = [Cue(0.0, truth[video_id].duration, line["caption"])]
        if line.get("error"):
            failed[video_id] = line["error"]
    return cues, failed
