"""Time coco-caption scoring at the size of MSR-VTT's test split (2,990 videos x 20 references).

References: the real MSR-VTT test captions (`test_videodatainfo.json`, read from the zip in
../shared/data/msrvtt or --annotations). Predictions: for each video, the first reference of the
next video in id order (video7010 gets video7011's first caption, the last gets the first's): real
MSR-VTT sentences, fluent but about another clip, like a weak captioner's.

The first run starts the METEOR JVM (the cost every `vidcap score` pays once); the next runs reuse
it. Prints a Markdown table (one row per run) for BENCHMARKS.md, and the machine's load average,
since the figure is wall time on a shared machine.

    .venv/bin/python bench/score.py [--runs 2] [--annotations PATH]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

from vidcap.data.msrvtt import read_msrvtt
from vidcap.evaluation.score import score_captions

DEFAULT = (Path(__file__).resolve().parents[2] / "shared" / "data" / "msrvtt"
           / "test_videodatainfo.json.zip")


def load(annotations: Path) -> tuple[dict[str, str], dict[str, list[str]]]:
    clips = [c for c in read_msrvtt([annotations]).clips if c.split == "test"]
    clips.sort(key=lambda c: int(c.video_id.removeprefix("video")))
    references = {c.video_id: c.captions for c in clips}
    predictions = {c.video_id: clips[(i + 1) % len(clips)].captions[0] for i, c in enumerate(clips)}
    return predictions, references


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--annotations", type=Path, default=DEFAULT,
                        help="MSR-VTT test_videodatainfo.json (or its .zip)")
    parser.add_argument("--runs", type=int, default=2,
                        help="scoring runs (the first starts METEOR)")
    args = parser.parse_args()

    predictions, references = load(args.annotations)
    refs = sum(len(r) for r in references.values())
    print(f"{len(references)} videos, {refs} references; {os.cpu_count()} CPUs, "
          f"{platform.processor() or platform.machine()}; load average before: "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print()
    print("| run | total s | METEOR s | METEOR share | PTB s | BLEU s | ROUGE-L s | CIDEr s | "
          "B@4 | METEOR | CIDEr |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for run in range(1, args.runs + 1):
        clock = time.perf_counter()
        scores = score_captions(predictions, references)
        total = time.perf_counter() - clock
        s = scores.seconds
        label = "1 (starts METEOR)" if run == 1 else str(run)
        print(f"| {label} | {total:.1f} | {s['meteor']:.1f} | {100 * s['meteor'] / total:.0f}% | "
              f"{s['tokenize']:.1f} | {s['bleu']:.1f} | {s['rouge']:.1f} | {s['cider']:.1f} | "
              f"{100 * scores['Bleu_4']:.1f} | {100 * scores['METEOR']:.1f} | "
              f"{100 * scores['CIDEr']:.1f} |")
    print()
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
