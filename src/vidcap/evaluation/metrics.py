"""The coco-caption metrics on PTB-tokenized captions: one scorer per metric, in a table.

BLEU-1..4, METEOR 1.5, ROUGE-L and CIDEr-D, on captions `vidcap.evaluation.score.score_captions` has
cleaned and tokenized, with pycocoevalcap's numbers to the last bit but not its pure-Python
loops: BLEU's n-gram statistics are counted with numpy arrays (`vidcap.evaluation.bleu`) and scored
by pycocoevalcap's `BleuScorer`; ROUGE-L's LCS lengths come from a bit-parallel LCS over all pairs
at once (`vidcap.evaluation.rouge`); CIDEr-D is `vidcap.evaluation.cider`; METEOR is coco-caption's
jar, driven by `vidcap.evaluation.java` (on several processes for large sets) in a thread of its own
while the others run. Tests compare each with pycocoevalcap's class on real references.
`COCOEvalCap.evaluate()` is never called: it always builds SPICE, which downloads
Stanford models at run time and fails offline.

CIDEr is coco-caption's, i.e. CIDEr-D: n = 1..4, TF-IDF vectors with clipped n-gram counts, a
Gaussian length penalty (sigma = 6), x10, no stemming (coco-caption's `Cider` class *is*
CIDEr-D, as its author confirms in tylin/coco-caption#18; the separate `CiderD` of vrama91/cider
computes the same with the IDF taken from the evaluated references by default). Its IDF comes from
the references of the set being scored, so a video's CIDEr depends on the other videos.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from vidcap.evaluation.bleu import bleu_scorer
from vidcap.evaluation.cider import cider_d
from vidcap.evaluation.java import kill_meteor, meteor_score
from vidcap.evaluation.ngrams import forget_ngram_tables
from vidcap.evaluation.rouge import rouge_l

METRIC_KEYS = ("Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr")
"""coco-caption's names of the scores, in the order papers print them."""

Tokenized = dict[str, list[str]]
"""`{video_id: [PTB-tokenized caption, ...]}`."""


@dataclass
class Scores:
    """Scores of a set of captions (fractions, as coco-caption gives them; papers print ×100)."""

    corpus: dict[str, float]
    """`{name: score}` with coco-caption's names (`METRIC_KEYS`), for the metrics that ran."""
    num_videos: int
    """Videos scored."""
    per_video: dict[str, dict[str, float]] | None = None
    """`{video_id: {name: score}}` when asked for. CIDEr's per-video values use the IDF of the whole
    set; METEOR's per-video value is its segment score (the corpus METEOR is not their mean)."""
    bleu_stats: dict[str, object] = field(default_factory=dict)
    """BLEU's corpus statistics: `testlen`, `reflen` (closest), `guess` and `correct` per n."""
    seconds: dict[str, float] = field(default_factory=dict)
    """Wall time of each stage: `tokenize`, `bleu`, `meteor`, `rouge`, `cider`. METEOR runs beside
    the other scorers (see `run_scorers`): its time overlaps theirs."""
    empty_predictions: int = 0
    """Predictions that were empty (or only whitespace) before tokenization."""

    def __getitem__(self, name: str) -> float:
        return self.corpus[name]


@dataclass
class ScorerOutput:
    """What one scorer gives: corpus scores, each video's scores (in id order), statistics."""

    corpus: dict[str, float]
    per_video: dict[str, list[float]]
    stats: dict[str, object] = field(default_factory=dict)


Scorer = Callable[[Sequence[str], Tokenized, Tokenized], ScorerOutput]
"""(ids, references, hypotheses) -> ScorerOutput; hypotheses hold one caption per id."""


def score_bleu(ids: Sequence[str], gts: Tokenized, res: Tokenized) -> ScorerOutput:
    """BLEU-1..4 with coco-caption's `closest` reference length, and its corpus statistics
    (counted by `vidcap.evaluation.bleu`, scored by pycocoevalcap's `BleuScorer`)."""
    bleu = bleu_scorer([res[v][0] for v in ids], [gts[v] for v in ids])
    total, each = bleu.compute_score(option="closest", verbose=0)
    stats = {"testlen": bleu._testlen, "reflen": bleu._reflen,
             "guess": [sum(c["guess"][n] for c in bleu.ctest) for n in range(4)],
             "correct": [sum(c["correct"][n] for c in bleu.ctest) for n in range(4)]}
    return ScorerOutput({f"Bleu_{n + 1}": float(total[n]) for n in range(4)},
                        {f"Bleu_{n + 1}": [float(s) for s in each[n]] for n in range(4)}, stats)


def score_meteor(ids: Sequence[str], gts: Tokenized, res: Tokenized) -> ScorerOutput:
    """METEOR 1.5 on the shared METEOR process(es)."""
    total, each = meteor_score([res[v][0] for v in ids], [gts[v] for v in ids])
    return ScorerOutput({"METEOR": total}, {"METEOR": each})


def score_rouge(ids: Sequence[str], gts: Tokenized, res: Tokenized) -> ScorerOutput:
    """ROUGE-L (F-measure with beta 1.2), mean over videos: `vidcap.evaluation.rouge.rouge_l`,
    equal to pycocoevalcap's `Rouge`."""
    total, each = rouge_l([res[v][0] for v in ids], [gts[v] for v in ids])
    return ScorerOutput({"ROUGE_L": total}, {"ROUGE_L": [float(s) for s in each]})


def score_cider(ids: Sequence[str], gts: Tokenized, res: Tokenized) -> ScorerOutput:
    """CIDEr-D (see the module docstring): `vidcap.evaluation.cider.cider_d`, equal to
    `pycocoevalcap.cider.cider.Cider().compute_score`."""
    total, each = cider_d([res[v][0] for v in ids], [gts[v] for v in ids])
    return ScorerOutput({"CIDEr": total}, {"CIDEr": [float(s) for s in each]})


SCORERS: dict[str, Scorer] = {"bleu": score_bleu, "meteor": score_meteor,
                              "rouge": score_rouge, "cider": score_cider}
"""The scorers `score_captions` can run (`metrics=`), in the order they run."""
METRICS = tuple(SCORERS)


def run_scorers(ids: Sequence[str], gts: Tokenized, res: Tokenized, chosen: Sequence[str],
                seconds: dict[str, float]) -> tuple[dict[str, float], dict[str, list[float]],
                                                    dict[str, object]]:
    """Run the `chosen` scorers: (corpus scores in `METRIC_KEYS` order, per-video scores, BLEU
    statistics); each one's wall time goes into `seconds`.

    METEOR runs in a thread of its own while this thread runs the others, in table order: its work
    is done by Java processes (starting them takes seconds), so the Python scorers use that time.
    Its wall time therefore overlaps theirs. When anything fails or is interrupted here, the
    METEOR processes are killed so that its thread stops at once too."""
    outputs: dict[str, ScorerOutput] = {}
    meteor = _Background(ids, gts, res, seconds) if "meteor" in chosen else None
    try:
        for name, scorer in SCORERS.items():
            if name not in chosen or name == "meteor":
                continue
            clock = time.perf_counter()
            outputs[name] = scorer(ids, gts, res)
            seconds[name] = time.perf_counter() - clock
        if meteor is not None:
            outputs["meteor"] = meteor.result()
    except BaseException:
        if meteor is not None:
            kill_meteor()
        raise
    finally:
        forget_ngram_tables()
    corpus: dict[str, float] = {}
    per_video: dict[str, list[float]] = {}
    stats: dict[str, object] = {}
    for out in outputs.values():
        corpus.update(out.corpus)
        per_video.update(out.per_video)
        stats.update(out.stats)
    return {k: corpus[k] for k in METRIC_KEYS if k in corpus}, per_video, stats


class _Background:
    """`score_meteor` in a thread, timed into `seconds["meteor"]`."""

    def __init__(self, ids: Sequence[str], gts: Tokenized, res: Tokenized,
                 seconds: dict[str, float]) -> None:
        self._out: ScorerOutput | None = None
        self._error: BaseException | None = None
        self._seconds = seconds
        self._thread = threading.Thread(target=self._run, args=(ids, gts, res), daemon=True)
        self._thread.start()

    def _run(self, ids: Sequence[str], gts: Tokenized, res: Tokenized) -> None:
        clock = time.perf_counter()
        try:
            self._out = score_meteor(ids, gts, res)
        except BaseException as err:  # handed to the calling thread by result()
            self._error = err
        self._seconds["meteor"] = time.perf_counter() - clock

    def result(self) -> ScorerOutput:
        """Wait for METEOR; its output, or its error raised here."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._out is not None
        return self._out
