"""vidcap's coco-caption scoring against plain pycocoevalcap, at the size of MSR-VTT's test split.

References: the real MSR-VTT test captions (2,990 videos x 20, `test_videodatainfo.json`, read from
the zip in ../shared/data/msrvtt or --annotations). Predictions: for each video, the first
reference of the next video in id order (video7010 gets video7011's first caption, the last gets
the first's): real MSR-VTT sentences, fluent but about another clip, like a weak captioner's.

Plain pycocoevalcap is called as its README shows (not `COCOEvalCap.evaluate()`, which downloads
SPICE): `PTBTokenizer().tokenize` of references and of predictions, then `Bleu(4)`, `Meteor()`,
`Rouge()`, `Cider()` and their `compute_score(gts, res)`; `Meteor()` starts its JVM, so each plain
run pays that start. vidcap's side is `score_captions`, with its METEOR processes started and
closed within each run, so it pays their start too (`--warm` adds runs that reuse them), once per
`--processes` value (METEOR processes; 0 = the automatic choice). In each round every side runs
once, the first side rotating, so that load from other jobs falls on all alike. Every corpus score,
and every video's METEOR, ROUGE-L and CIDEr, must be equal on all runs (asserted).

Prints the machine, the load average around each run, a Markdown table of per-stage wall times,
CPU time (this process and its ended children: the JVMs) and the speed-ups, for BENCHMARKS.md.

    .venv/bin/python bench/score.py [--pairs 3] [--processes 0 1] [--warm 1] [--annotations PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import platform
import resource
import statistics
import time
from pathlib import Path

from vidcap.data.msrvtt import read_msrvtt
from vidcap.evaluation import java
from vidcap.evaluation.metrics import METRIC_KEYS
from vidcap.evaluation.score import score_captions

DEFAULT = (Path(__file__).resolve().parents[2] / "shared" / "data" / "msrvtt"
           / "test_videodatainfo.json.zip")
STAGES = ("tokenize", "bleu", "meteor", "rouge", "cider")


def load(annotations: Path) -> tuple[dict[str, str], dict[str, list[str]]]:
    clips = [c for c in read_msrvtt([annotations]).clips if c.split == "test"]
    clips.sort(key=lambda c: int(c.video_id.removeprefix("video")))
    references = {c.video_id: c.captions for c in clips}
    predictions = {c.video_id: clips[(i + 1) % len(clips)].captions[0] for i, c in enumerate(clips)}
    return predictions, references


def plain(predictions: dict[str, str], references: dict[str, list[str]]) -> dict:
    """pycocoevalcap as its README shows; wall time of each stage."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.meteor.meteor import Meteor
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    seconds: dict[str, float] = {}
    clock = time.perf_counter()
    tokenizer = PTBTokenizer()
    gts = tokenizer.tokenize({v: [{"caption": c} for c in caps] for v, caps in references.items()})
    res = tokenizer.tokenize({v: [{"caption": predictions[v]}] for v in references})
    seconds["tokenize"] = time.perf_counter() - clock
    corpus: dict[str, float] = {}
    each: dict[str, list[float]] = {}
    for stage, make in (("bleu", lambda: Bleu(4)), ("meteor", Meteor), ("rouge", Rouge),
                        ("cider", Cider)):
        clock = time.perf_counter()
        scorer = make()  # Meteor() starts its JVM here
        with contextlib.redirect_stdout(io.StringIO()):  # Bleu prints its statistics
            total, scores = scorer.compute_score(gts, res)
        del scorer  # Meteor's __del__ ends its JVM
        seconds[stage] = time.perf_counter() - clock
        if stage == "bleu":
            corpus.update({f"Bleu_{n + 1}": float(total[n]) for n in range(4)})
        else:
            key = {"meteor": "METEOR", "rouge": "ROUGE_L", "cider": "CIDEr"}[stage]
            corpus[key] = float(total)
            each[key] = [float(s) for s in scores]
    return {"corpus": corpus, "each": each, "seconds": seconds}


def ours(predictions: dict[str, str], references: dict[str, list[str]], processes: int | None,
         cold: bool = True) -> dict:
    """`score_captions`; when `cold`, starting and ending its METEOR processes within the run."""
    java.METEOR_PROCESSES = processes
    if cold:
        java.close_meteor()
    scores = score_captions(predictions, references, per_video=True)
    if cold:
        java.close_meteor()  # so their CPU time is counted (waited-for children)
    each = {k: [scores.per_video[v][k] for v in references] for k in ("METEOR", "ROUGE_L",
                                                                       "CIDEr")}
    return {"corpus": dict(scores.corpus), "each": each, "seconds": dict(scores.seconds)}


def cpu_seconds() -> float:
    """CPU time of this process and of its children that have ended."""
    own, children = (resource.getrusage(w) for w in (resource.RUSAGE_SELF,
                                                     resource.RUSAGE_CHILDREN))
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed(side: str, run, *args) -> dict:
    load_before = os.getloadavg()[0]
    cpu = cpu_seconds()
    clock = time.perf_counter()
    out = run(*args)
    out["total"] = time.perf_counter() - clock
    out["cpu"] = cpu_seconds() - cpu
    out["side"] = side
    out["load"] = (load_before, os.getloadavg()[0])
    return out


def check_equal(a: dict, b: dict) -> None:
    """Every corpus score and every video's METEOR, ROUGE-L and CIDEr identical."""
    for key in METRIC_KEYS:
        assert a["corpus"][key] == b["corpus"][key], (key, a["corpus"][key], b["corpus"][key])
    for key, values in a["each"].items():
        assert values == b["each"][key], f"per-video {key} differs"


def machine() -> str:
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (f"{model}; {os.cpu_count()} CPUs, {usable} usable; METEOR processes: "
            f"{java.meteor_process_count()}; python {platform.python_version()}")


def row(run: dict, label: str) -> str:
    s = run["seconds"]
    load = f"{run['load'][0]:.1f} / {run['load'][1]:.1f}"
    cpu = f"{run['cpu']:.1f}" if run["pair"] != "-" else "-"
    return (f"| {label} | {run['total']:.1f} | {cpu} | " + " | ".join(f"{s[k]:.1f}" for k in STAGES)
            + f" | {load} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--annotations", type=Path, default=DEFAULT,
                        help="MSR-VTT test_videodatainfo.json (or its .zip)")
    parser.add_argument("--pairs", type=int, default=3,
                        help="rounds of cold runs (plain, then vidcap per --processes)")
    parser.add_argument("--processes", type=int, nargs="+", default=[0],
                        help="METEOR processes of the vidcap runs, one vidcap run each per round "
                             "(0: the automatic choice)")
    parser.add_argument("--warm", type=int, default=1,
                        help="extra vidcap runs reusing its METEOR processes")
    args = parser.parse_args()

    predictions, references = load(args.annotations)
    print(f"{len(references)} videos, {sum(len(r) for r in references.values())} references; "
          f"{machine()}")
    sides = [("plain", plain, predictions, references)]
    sides += [(f"vidcap, METEOR x{k or java.meteor_process_count()}", ours, predictions,
               references, k or None) for k in args.processes]
    runs = []
    for round_ in range(args.pairs):
        shift = round_ % len(sides)  # each side goes first in turn
        for side, run, *rest in sides[shift:] + sides[:shift]:
            runs.append(timed(side, run, *rest) | {"pair": round_ + 1})
    if args.warm:
        ours(predictions, references, args.processes[0] or None, False)  # starts METEOR
        runs += [timed("vidcap warm", ours, predictions, references, args.processes[0] or None,
                       False) | {"pair": "-"} for _ in range(args.warm)]
    for run in runs[1:]:
        check_equal(runs[0], run)
    report(runs)


def report(runs: list[dict]) -> None:
    print("\n| round: side | total s | CPU s | PTB s | BLEU s | METEOR s | ROUGE-L s | CIDEr s "
          "| load before / after |")
    print("|---|---|---|---|---|---|---|---|---|")
    for run in runs:
        print(row(run, f"{run['pair']}: {run['side']}"))
    plain_runs = {r["pair"]: r for r in runs if r["side"] == "plain"}
    for side in dict.fromkeys(r["side"] for r in runs if r["side"].startswith("vidcap,")):
        mine = [r for r in runs if r["side"] == side]
        wall = [plain_runs[r["pair"]]["total"] / r["total"] for r in mine]
        cpu = [plain_runs[r["pair"]]["cpu"] / r["cpu"] for r in mine]
        print(f"\n{side}: speed-up per round (plain / vidcap wall time, both starting METEOR): "
              f"{', '.join(f'{x:.2f}x' for x in wall)}; median {statistics.median(wall):.2f}x; "
              f"CPU time {statistics.median(cpu):.2f}x")
        for stage in STAGES:
            p = statistics.median(r["seconds"][stage] for r in plain_runs.values())
            o = statistics.median(r["seconds"][stage] for r in mine)
            print(f"  {stage}: plain {p:.1f} s, vidcap {o:.1f} s ({p / o:.1f}x)")
    corpus = runs[0]["corpus"]
    print("\nidentical scores on every run (asserted): "
          + ", ".join(f"{k} {100 * corpus[k]:.4f}" for k in METRIC_KEYS))


if __name__ == "__main__":
    main()
