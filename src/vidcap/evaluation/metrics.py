"""Caption metrics exactly as coco-caption computes them, on `pycocoevalcap`'s scorers.

`score_captions` cleans the captions, PTB-tokenizes them (Stanford CoreNLP 3.4.1, lower case,
punctuation dropped) and runs BLEU-1..4, METEOR 1.5, ROUGE-L and CIDEr-D one by one.
`COCOEvalCap.evaluate()` is never called: it always builds SPICE, which downloads Stanford models at
run time and fails offline.

Where this module departs from calling pycocoevalcap's classes, and why:

- PTB tokenization runs the same jar with the same flags (`-preserveLines -lowerCase`) and drops the
  same punctuation tokens, but feeds the sentences on stdin: pycocoevalcap's `PTBTokenizer` writes a
  temporary file next to its own code, which fails when site-packages is read-only. The output is
  identical (tested against coco-caption's own tokenized demo files).
- METEOR runs the same jar with the same flags (`-stdio -l en -norm`, 2 GB heap) and speaks the same
  SCORE/EVAL protocol, through one process kept for the whole interpreter. pycocoevalcap's `Meteor`
  starts a JVM per instance (~10 s), never reads its stderr, and holds a lock across a call: when
  a caption makes the jar's reply unreadable, the lock is never released and `Meteor.__del__`
  blocks the interpreter at exit. Here a failed call kills the process, and `atexit` closes it with
  a time limit.

Captions are cleaned before anything else (`clean_caption`): line breaks, control and format
characters and METEOR's field separator `|||` become spaces. An empty prediction stays empty: it
is scored as a caption with no words (zero on every metric for its video, and its references still
count in BLEU's brevity penalty), and a warning says how many there were.
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import select
import shutil
import subprocess
import threading
import time
import unicodedata
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from vidcap.errors import MetricsError

log = logging.getLogger(__name__)

METRIC_KEYS = ("Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr")
"""coco-caption's names of the scores, in the order papers print them."""
METRICS = ("bleu", "meteor", "rouge", "cider")
"""Scorers `score_captions` can run (`metrics=`); PTB tokenization always runs."""
JAVA_HINT = ("install a Java runtime, e.g. `sudo apt-get install default-jre-headless` "
             "(Debian/Ubuntu), `brew install openjdk` (macOS) or "
             "`conda install -c conda-forge openjdk`")
METEOR_TIMEOUT_S = 300.0
"""The METEOR process is declared hung when it answers nothing for this long."""

_SEPARATOR = "|||"  # METEOR's field separator on its stdin protocol


# ---------------------------------------------------------------------------------------------
# cleaning


def clean_caption(text: str) -> str:
    """One line of plain text: line breaks, tabs, control and format characters and `|||` become
    single spaces; leading and trailing space is dropped. Case, punctuation and non-ASCII letters
    are kept (the PTB tokenizer lower-cases and drops punctuation afterwards)."""
    chars = []
    for ch in text:
        category = unicodedata.category(ch)
        if category in ("Cc", "Zl", "Zp"):  # control (\n, \r, \t, \x00...), line/paragraph sep.
            chars.append(" ")
        elif category not in ("Cf", "Cs"):  # format (zero-width space, BOM) and lone surrogates
            chars.append(ch)
    text = "".join(chars)
    while _SEPARATOR in text:
        text = text.replace(_SEPARATOR, " ")
    return " ".join(text.split())  # str.split() also splits on NBSP, \x1c-\x1f, \x85, U+2028 ...


# ---------------------------------------------------------------------------------------------
# Java


def find_java() -> str:
    """The `java` executable: `$JAVA_HOME/bin/java`, else `java` on PATH; MetricsError if none."""
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").is_file():
        return str(Path(home) / "bin" / "java")
    java = shutil.which("java")
    if java is None:
        raise MetricsError("the PTB tokenizer and METEOR need a Java runtime and there is no "
                           f"`java` on PATH (nor JAVA_HOME): {JAVA_HINT}")
    return java


def _ptb_jar() -> Path:
    from pycocoevalcap.tokenizer import ptbtokenizer

    return Path(ptbtokenizer.__file__).resolve().parent / ptbtokenizer.STANFORD_CORENLP_3_4_1_JAR


def _meteor_jar() -> Path:
    from pycocoevalcap.meteor import meteor

    return Path(meteor.__file__).resolve().parent / meteor.METEOR_JAR


# ---------------------------------------------------------------------------------------------
# PTB tokenization


def ptb_tokenize(captions: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """coco-caption's tokenization of `{key: [caption, ...]}`: Stanford PTBTokenizer, lower case,
    punctuation tokens removed. Captions should be `clean_caption`ed (one line each).

    Like coco-caption, brackets survive as `-lrb-` / `-rrb-` (its punctuation list has them in upper
    case but the tokenizer has already lower-cased them); kept for parity with published scores.
    """
    from pycocoevalcap.tokenizer.ptbtokenizer import PUNCTUATIONS

    keys = [k for k, caps in captions.items() for _ in caps]
    lines = [c for caps in captions.values() for c in caps]
    if any("\n" in c or "\r" in c for c in lines):
        raise MetricsError("a caption given to the PTB tokenizer holds a line break "
                           "(clean it first)")
    cmd = [find_java(), "-cp", str(_ptb_jar()), "edu.stanford.nlp.process.PTBTokenizer",
           "-preserveLines", "-lowerCase"]
    text = "".join(line + "\n" for line in lines)
    try:
        done = subprocess.run(cmd, input=text.encode("utf-8"), capture_output=True, check=False)
    except OSError as err:
        raise MetricsError(f"cannot start the PTB tokenizer ({err}): {JAVA_HINT}") from None
    if done.returncode != 0:
        tail = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no message"]
        raise MetricsError(f"the PTB tokenizer (Java) failed with exit status {done.returncode}: "
                           f"{tail[0]}")
    out = done.stdout.decode("utf-8", "replace").split("\n")
    if out and out[-1] == "":
        out.pop()
    if len(out) != len(lines):
        raise MetricsError(f"the PTB tokenizer returned {len(out)} lines for {len(lines)} captions")
    punctuation = set(PUNCTUATIONS)
    tokenized: dict[str, list[str]] = {k: [] for k in captions}
    for key, line in zip(keys, out):
        tokenized[key].append(" ".join(w for w in line.rstrip().split(" ") if w not in punctuation))
    return tokenized


# ---------------------------------------------------------------------------------------------
# METEOR: one process for the whole interpreter


class _MeteorProcess:
    """meteor-1.5.jar in `-stdio` mode. Written here (not pycocoevalcap's `Meteor`) to read its
    stderr, time out instead of hanging, and close cleanly at exit (see the module docstring)."""

    def __init__(self) -> None:
        cmd = [find_java(), "-jar", "-Xmx2G", str(_meteor_jar()), "-", "-", "-stdio", "-l", "en",
               "-norm"]
        try:
            self.proc = subprocess.Popen(cmd, cwd=_meteor_jar().parent, stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        except OSError as err:
            raise MetricsError(f"cannot start METEOR ({err}): {JAVA_HINT}") from None
        self._stdout = self.proc.stdout.fileno()
        self._buffer = bytearray()
        self._stderr: deque[str] = deque(maxlen=20)
        threading.Thread(target=self._drain_stderr, daemon=True).start()

    def _drain_stderr(self) -> None:
        for raw in self.proc.stderr:
            self._stderr.append(raw.decode("utf-8", "replace").rstrip())

    def _why(self) -> str:
        lines = [line for line in self._stderr if line.strip()]
        return lines[-1] if lines else "no message"

    def _read_line(self) -> str:
        while (end := self._buffer.find(b"\n")) < 0:
            ready, _, _ = select.select([self._stdout], [], [], METEOR_TIMEOUT_S)
            if not ready:
                raise MetricsError(f"METEOR answered nothing for {METEOR_TIMEOUT_S:.0f} s")
            chunk = os.read(self._stdout, 1 << 16)
            if not chunk:
                self.proc.wait(timeout=5)
                raise MetricsError(f"METEOR (Java) stopped with exit status "
                                   f"{self.proc.returncode}: {self._why()}")
            self._buffer += chunk
        line = self._buffer[:end].decode("utf-8", "replace").strip()
        del self._buffer[:end + 1]
        return line

    def _write_lines(self, lines: Sequence[str]) -> None:
        try:
            for line in lines:
                self.proc.stdin.write(line.encode("utf-8") + b"\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, ValueError, OSError):
            pass  # the process died; the reader reports it

    def score(self, hypotheses: Sequence[str], references: Sequence[Sequence[str]]
              ) -> tuple[float, list[float]]:
        """Corpus METEOR and one score per segment (coco-caption's protocol: SCORE, then EVAL)."""
        score_lines = [" ||| ".join(("SCORE", " ||| ".join(refs), hyp))
                       for hyp, refs in zip(hypotheses, references)]
        # A writer thread feeds the SCORE lines while this thread reads the answers: the pipes
        # never fill up both ways, and the jar works without waiting for a round trip per line.
        writer = threading.Thread(target=self._write_lines, args=(score_lines,), daemon=True)
        writer.start()
        stats = [self._read_line() for _ in score_lines]
        writer.join()
        self._write_lines([" ||| ".join(["EVAL", *stats])])
        segments = [self._read_score() for _ in stats]
        return self._read_score(), segments

    def _read_score(self) -> float:
        line = self._read_line()
        try:
            return float(line)
        except ValueError:
            raise MetricsError(f"METEOR replied {line[:60]!r} where a score was expected (its "
                               f"input and output went out of step)") from None

    def close(self, timeout: float = 5.0) -> None:
        """End of input makes the jar exit; kill it when it does not within `timeout`."""
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=timeout)


_meteor: _MeteorProcess | None = None
_meteor_lock = threading.Lock()


def close_meteor() -> None:
    """Stop the shared METEOR process (registered with atexit; safe to call any time)."""
    global _meteor
    with _meteor_lock:
        if _meteor is not None:
            _meteor.close()
            _meteor = None


atexit.register(close_meteor)


def meteor_score(hypotheses: Sequence[str], references: Sequence[Sequence[str]]
                 ) -> tuple[float, list[float]]:
    """METEOR 1.5 of tokenized, cleaned captions on the shared process (started on first use)."""
    global _meteor
    for text in [*hypotheses, *(r for refs in references for r in refs)]:
        if "\n" in text or "\r" in text or _SEPARATOR in text:
            raise MetricsError(f"caption {text!r} still holds a line break or `|||` "
                               f"(clean it first)")
    with _meteor_lock:
        if _meteor is None or _meteor.proc.poll() is not None:
            _meteor = _MeteorProcess()
            log.debug("METEOR process started (pid %d)", _meteor.proc.pid)
        try:
            result = _meteor.score(hypotheses, references)
        except BaseException:
            _meteor.proc.kill()  # its state is unknown now: the next call starts a fresh one
            _meteor.proc.wait()
            _meteor = None
            raise
        return result


# ---------------------------------------------------------------------------------------------
# scores


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
    """Wall time of each stage: `tokenize`, `bleu`, `meteor`, `rouge`, `cider`."""
    empty_predictions: int = 0
    """Predictions that were empty (or only whitespace) before tokenization."""

    def __getitem__(self, name: str) -> float:
        return self.corpus[name]


def describe_mismatch(predictions: Sequence[str], references: Sequence[str], shown: int = 3
                      ) -> list[str]:
    """Sentences counting and naming ids only predicted / only referenced ([] when they match)."""
    preds, refs = set(predictions), set(references)
    problems = []
    for ids, what in ((sorted(preds - refs, key=_natural), "prediction(s) have no references"),
                      (sorted(refs - preds, key=_natural), "video(s) with references have no "
                                                           "prediction")):
        if ids:
            named = ", ".join(repr(i) for i in ids[:shown]) + (", ..." if len(ids) > shown else "")
            problems.append(f"{len(ids)} {what} ({named})")
    return problems


def _natural(text: str) -> list[object]:
    """Sort key that puts video2 before video10."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def score_captions(predictions: Mapping[str, str], references: Mapping[str, Sequence[str]], *,
                   per_video: bool = False, metrics: Sequence[str] | None = None) -> Scores:
    """coco-caption scores of `{video_id: caption}` against `{video_id: [reference, ...]}`.

    Both must hold the same ids (MetricsError counting and naming the differences otherwise; see
    `vidcap.evaluation.score.match_ids` to score the common ones). `metrics` picks among
    `METRICS` (default all). CIDEr is coco-caption's, i.e. CIDEr-D: n = 1..4, TF-IDF vectors
    with clipped n-gram counts, a Gaussian length penalty (sigma = 6), ×10, no stemming
    (coco-caption's `Cider` class *is* CIDEr-D, as its author confirms in tylin/coco-caption#18;
    the separate `CiderD` of vrama91/cider computes the same with the IDF taken from the evaluated
    references by default). Its IDF comes from the references of the set being scored, so a video's
    CIDEr depends on the other videos: scores of different splits or subsets are not comparable
    video by video, and scoring a subset is not averaging the per-video scores of the whole.
    """
    from pycocoevalcap.bleu.bleu_scorer import BleuScorer
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    find_java()  # fail first, in one sentence, where there is no Java runtime
    chosen = tuple(METRICS if metrics is None else metrics)
    unknown = sorted(set(chosen) - set(METRICS))
    if unknown:
        raise MetricsError(f"unknown metric(s) {unknown}; known: {', '.join(METRICS)}")
    preds = {str(k): v for k, v in predictions.items()}
    refs = {str(k): v for k, v in references.items()}
    problems = describe_mismatch(list(preds), list(refs))
    if problems:
        raise MetricsError("predictions and references differ: " + "; ".join(problems))
    if not preds:
        raise MetricsError("nothing to score: no predictions")
    ids = list(refs)

    hyps_clean: dict[str, list[str]] = {}
    refs_clean: dict[str, list[str]] = {}
    empty = 0
    for vid in ids:
        caption = preds[vid]
        if not isinstance(caption, str):
            raise MetricsError(f"the prediction for {vid!r} is not a string: {caption!r}")
        hyps_clean[vid] = [clean_caption(caption)]
        empty += not hyps_clean[vid][0]
        if isinstance(refs[vid], str) or not all(isinstance(r, str) for r in refs[vid]):
            raise MetricsError(f"the references of {vid!r} must be a list of strings")
        refs_clean[vid] = [c for c in (clean_caption(r) for r in refs[vid]) if c]
        if not refs_clean[vid]:
            raise MetricsError(f"video {vid!r} has no non-empty reference caption")
    if empty:
        log.warning("%d of %d predictions are empty; each scores as a caption with no words",
                    empty, len(ids))

    seconds: dict[str, float] = {}
    clock = time.perf_counter()
    tokenized = ptb_tokenize({**{f"r{v}": c for v, c in refs_clean.items()},
                              **{f"h{v}": c for v, c in hyps_clean.items()}})
    gts = {v: tokenized[f"r{v}"] for v in ids}
    res = {v: tokenized[f"h{v}"] for v in ids}
    seconds["tokenize"] = time.perf_counter() - clock
    if not any(w for refs_v in gts.values() for r in refs_v for w in r.split()):
        raise MetricsError("the references hold no words after tokenization")

    corpus: dict[str, float] = {}
    video_scores: dict[str, list[float]] = {}
    stats: dict[str, object] = {}
    if "bleu" in chosen:
        clock = time.perf_counter()
        bleu = BleuScorer(n=4)
        for vid in ids:
            bleu += (res[vid][0], gts[vid])
        total, each = bleu.compute_score(option="closest", verbose=0)  # coco-caption's option
        for n in range(4):
            corpus[f"Bleu_{n + 1}"] = float(total[n])
            video_scores[f"Bleu_{n + 1}"] = [float(s) for s in each[n]]
        stats = {"testlen": bleu._testlen, "reflen": bleu._reflen,
                 "guess": [sum(c["guess"][n] for c in bleu.ctest) for n in range(4)],
                 "correct": [sum(c["correct"][n] for c in bleu.ctest) for n in range(4)]}
        seconds["bleu"] = time.perf_counter() - clock
    if "meteor" in chosen:
        clock = time.perf_counter()
        total, each = meteor_score([res[v][0] for v in ids], [gts[v] for v in ids])
        corpus["METEOR"], video_scores["METEOR"] = total, each
        seconds["meteor"] = time.perf_counter() - clock
    if "rouge" in chosen:
        clock = time.perf_counter()
        total, each = Rouge().compute_score(gts, res)
        corpus["ROUGE_L"], video_scores["ROUGE_L"] = float(total), [float(s) for s in each]
        seconds["rouge"] = time.perf_counter() - clock
    if "cider" in chosen:
        clock = time.perf_counter()
        total, each = Cider().compute_score(gts, res)
        corpus["CIDEr"], video_scores["CIDEr"] = float(total), [float(s) for s in each]
        seconds["cider"] = time.perf_counter() - clock

    corpus = {k: corpus[k] for k in METRIC_KEYS if k in corpus}
    table = None
    if per_video:
        table = {vid: {k: video_scores[k][i] for k in corpus} for i, vid in enumerate(ids)}
    return Scores(corpus=corpus, num_videos=len(ids), per_video=table, bleu_stats=stats,
                  seconds=seconds, empty_predictions=empty)
