"""coco-caption's Java tools: the PTB tokenizer and METEOR 1.5, run exactly as coco-caption does.

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

Both take captions cleaned by `vidcap.text.clean_caption` (one line each, no `|||`).
"""

from __future__ import annotations

import atexit
import logging
import os
import select
import shutil
import subprocess
import threading
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path

from vidcap.errors import MetricsError
from vidcap.text import METEOR_SEPARATOR

log = logging.getLogger(__name__)

JAVA_HINT = ("install a Java runtime, e.g. `sudo apt-get install default-jre-headless` "
             "(Debian/Ubuntu), `brew install openjdk` (macOS) or "
             "`conda install -c conda-forge openjdk`")
METEOR_TIMEOUT_S = 300.0
"""The METEOR process is declared hung when it answers nothing for this long."""


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
        if "\n" in text or "\r" in text or METEOR_SEPARATOR in text:
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
