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
- A large set is scored by several METEOR processes at once (`meteor_process_count`: the idle
  usable cores, at most `METEOR_MAX_PROCESSES`, or `$VIDCAP_METEOR_PROCESSES`), each aligning a
  contiguous chunk of the videos (SCORE lines), each kept for the whole interpreter like the first. The
  statistics lines come back in video order and go, all together, in one EVAL line to the first
  process, exactly as a single process receives them: the jar's EVAL prints each segment's score
  from its statistics, then sums every statistic over the segments (`MeteorStats.addStats`) and
  computes the corpus score from the sums (`MeteorScorer.computeMetrics`: precision, recall and
  fragmentation from the total matches and chunks; so the corpus METEOR is not the mean of the
  segment scores). A SCORE line's statistics depend only on that line, so the result is the one
  process's, digit for digit (tested on real references).
- `vidcap.evaluation.metrics` runs METEOR in a thread of its own beside the Python scorers; a
  caller that fails meanwhile stops it with `kill_meteor` (the call in that thread then fails at
  once), and `close_meteor` at exit kills processes a call still holds after its time limit.

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
import time
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
METEOR_PROCESSES: int | None = None
"""How many METEOR processes may score one set in parallel; None: `$VIDCAP_METEOR_PROCESSES` when
set, else the automatic choice of `meteor_process_count`. 1 keeps a single process (with
coco-caption's 2 GB heap)."""
METEOR_PROCESSES_ENV = "VIDCAP_METEOR_PROCESSES"
METEOR_MAX_PROCESSES = 4
"""Cap of the automatic choice: each process costs about 12 s of CPU to start (loading the
paraphrase table), its own JIT compilation and about 1 GB of memory; past 4 these outweigh the
shorter scoring of a test split."""
METEOR_SEGMENTS_PER_PROCESS = 500
"""A set is split only into chunks of at least this many segments (about 2 s of one process's
work): validation-sized sets keep to one process and never start the others."""
METEOR_HEAP = "2G"
"""Heap of a lone METEOR process: coco-caption's flag."""
METEOR_SHARED_HEAP = "1G"
"""Heap of each process when several run. The jar's live data (paraphrase table and all) is under
384 MB: with -Xmx256m it dies of OutOfMemoryError, with 384m it scores MSR-VTT with little extra
GC; 1 GB leaves more than 2.5 times that, and keeps 4 processes near 4 GB resident (about 0.9 GB
each, 1.15 GB with -Xmx2G) instead of the 8 GB that four 2 GB heaps may grow to."""
_PROCESS_MEMORY = 3 << 29
"""Free memory (bytes, 1.5 GiB) the automatic choice wants per METEOR process."""


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

    def __init__(self, heap: str = METEOR_HEAP) -> None:
        cmd = [find_java(), "-jar", f"-Xmx{heap}", str(_meteor_jar()), "-", "-", "-stdio", "-l",
               "en", "-norm"]
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
        return self.evaluate(self.statistics(hypotheses, references))

    def statistics(self, hypotheses: Sequence[str], references: Sequence[Sequence[str]]
                   ) -> list[str]:
        """The jar's statistics line of each segment (its answers to the SCORE lines)."""
        score_lines = [" ||| ".join(("SCORE", " ||| ".join(refs), hyp))
                       for hyp, refs in zip(hypotheses, references)]
        # A writer thread feeds the SCORE lines while this thread reads the answers: the pipes
        # never fill up both ways, and the jar works without waiting for a round trip per line.
        writer = threading.Thread(target=self._write_lines, args=(score_lines,), daemon=True)
        writer.start()
        stats = [self._read_line() for _ in score_lines]
        writer.join()
        return stats

    def evaluate(self, stats: Sequence[str]) -> tuple[float, list[float]]:
        """(corpus score, segment scores) of statistics lines, in one EVAL line."""
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
        self.end_input()
        self.wait_or_kill(timeout)

    def end_input(self) -> None:
        """Close the jar's stdin (it exits when it has answered everything)."""
        try:
            self.proc.stdin.close()
        except OSError:
            pass

    def wait_or_kill(self, timeout: float) -> None:
        """Wait up to `timeout` seconds for the jar to exit, then kill it."""
        try:
            self.proc.wait(timeout=max(timeout, 0.0))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5.0)

    def kill(self) -> None:
        """Kill the jar now (its input and output may be out of step)."""
        self.proc.kill()
        self.proc.wait()


_meteor: _MeteorProcess | None = None
"""The first METEOR process: the one a small set, and every EVAL line, goes to."""
_helpers: list[_MeteorProcess] = []
"""The other METEOR processes, for the chunks of large sets."""
_meteor_lock = threading.Lock()


def close_meteor(timeout: float = 5.0) -> None:
    """Stop the METEOR processes (registered with atexit; safe to call any time): all are asked to
    exit at once and killed when they have not within `timeout` seconds. When a call in another
    thread holds them past `timeout`, they are killed (that call then fails)."""
    global _meteor
    deadline = time.monotonic() + timeout
    if not _meteor_lock.acquire(timeout=timeout):
        kill_meteor()
        return
    try:
        running = [p for p in (_meteor, *_helpers) if p is not None]
        _meteor = None
        _helpers.clear()
        for process in running:
            process.end_input()
        for process in running:
            process.wait_or_kill(deadline - time.monotonic())
    finally:
        _meteor_lock.release()


atexit.register(close_meteor)


def start_meteor() -> None:
    """Start the first METEOR process now, unless one runs: it loads its paraphrase table (seconds)
    while the caller cleans and tokenizes. Returns at once; does nothing while a call runs."""
    global _meteor
    if not _meteor_lock.acquire(blocking=False):
        return
    try:
        if _meteor is None or _meteor.proc.poll() is not None:
            _meteor = _start(meteor_process_count())
    finally:
        _meteor_lock.release()


def kill_meteor() -> None:
    """Kill the METEOR processes now, without waiting for a call in progress: that call then fails
    at once (and the next one starts fresh processes). For a caller interrupted while METEOR runs
    in another thread."""
    for process in [p for p in (_meteor, *_helpers) if p is not None]:
        process.proc.kill()


def meteor_process_count() -> int:
    """How many METEOR processes may score one set: `METEOR_PROCESSES` when set, else
    `$VIDCAP_METEOR_PROCESSES`, else one per two idle usable cores (cores in
    `os.sched_getaffinity` less the 1-minute load average), at least one, at most
    `METEOR_MAX_PROCESSES` and as many as free memory holds.

    Why two cores each: a METEOR process keeps more than one core busy. Measured per thread on
    MSR-VTT's test split, its start took 8.8 s of CPU on the main thread plus 3 s in garbage
    collection and JIT compilation, and its scoring 12.1 s on the main thread plus 7.8 s in the JIT
    compiler's threads; every extra process pays the start and the compilation again. So on 2
    cores a second process cannot shorten the wall time, and on 2 cores shared with other jobs
    (load average 9-13) 2 processes took 54-64 s of CPU and 0.7-1.0x plain pycocoevalcap's wall
    time, against 36-41 s and 1.2-1.7x with one (BENCHMARKS.md)."""
    if METEOR_PROCESSES is not None:
        if not isinstance(METEOR_PROCESSES, int) or METEOR_PROCESSES < 1:
            raise MetricsError(f"vidcap.evaluation.java.METEOR_PROCESSES must be a positive "
                               f"whole number, not "
                               f"{METEOR_PROCESSES!r}")
        return METEOR_PROCESSES
    setting = os.environ.get(METEOR_PROCESSES_ENV, "").strip()
    if setting:
        if not setting.isdigit() or int(setting) < 1:
            raise MetricsError(f"${METEOR_PROCESSES_ENV} must be a positive whole number, not "
                               f"{setting!r}")
        return int(setting)
    cores = (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
             else os.cpu_count() or 1)
    return max(1, min(METEOR_MAX_PROCESSES, _memory_allows(), _idle_cores(cores) // 2))


def _idle_cores(cores: int) -> int:
    """Cores nobody is using, by the 1-minute load average (all of them where it is unknown)."""
    try:
        return max(0, int(cores - os.getloadavg()[0]))
    except (AttributeError, OSError):
        return cores


def _memory_allows() -> int:
    """METEOR processes that fit in the memory available now (Linux's MemAvailable)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024 // _PROCESS_MEMORY
    except (OSError, ValueError, IndexError):
        pass
    return METEOR_MAX_PROCESSES


def chunk_bounds(size: int, chunks: int) -> list[tuple[int, int]]:
    """`chunks` contiguous (start, end) ranges covering 0..size, lengths differing by at most 1."""
    return [(i * size // chunks, (i + 1) * size // chunks) for i in range(chunks)]


def _start(configured: int) -> _MeteorProcess:
    """A new METEOR process, with coco-caption's heap when one process is `configured`."""
    process = _MeteorProcess(METEOR_HEAP if configured == 1 else METEOR_SHARED_HEAP)
    log.debug("METEOR process started (pid %d)", process.proc.pid)
    return process


def _processes(count: int, configured: int) -> list[_MeteorProcess]:
    """`count` live METEOR processes (the first one first), starting the missing ones together."""
    global _meteor
    if _meteor is None or _meteor.proc.poll() is not None:
        _meteor = _start(configured)
    _helpers[:] = [p for p in _helpers if p.proc.poll() is None]
    while len(_helpers) < count - 1:
        _helpers.append(_start(configured))
    return [_meteor, *_helpers[:count - 1]]


def _score_chunks(processes: Sequence[_MeteorProcess], hypotheses: Sequence[str],
                  references: Sequence[Sequence[str]]) -> tuple[float, list[float]]:
    """Statistics of contiguous chunks on the processes in parallel, then one EVAL of them all on
    the first process. A failing chunk kills every process, so the others stop at once."""
    bounds = chunk_bounds(len(hypotheses), len(processes))
    stats: list[list[str]] = [[] for _ in processes]
    errors: list[BaseException] = []

    def work(i: int) -> None:
        start, end = bounds[i]
        try:
            stats[i] = processes[i].statistics(hypotheses[start:end], references[start:end])
        except BaseException as err:  # handed to the calling thread
            errors.append(err)
            for process in processes:
                process.proc.kill()

    threads = [threading.Thread(target=work, args=(i,), daemon=True)
               for i in range(len(processes))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return processes[0].evaluate([line for chunk in stats for line in chunk])


def meteor_score(hypotheses: Sequence[str], references: Sequence[Sequence[str]]
                 ) -> tuple[float, list[float]]:
    """METEOR 1.5 of tokenized, cleaned captions on the shared process(es), started on first use;
    sets of `METEOR_SEGMENTS_PER_PROCESS` segments or more are split across up to
    `meteor_process_count()` processes (same result as one)."""
    global _meteor
    for text in [*hypotheses, *(r for refs in references for r in refs)]:
        if "\n" in text or "\r" in text or METEOR_SEPARATOR in text:
            raise MetricsError(f"caption {text!r} still holds a line break or `|||` "
                               f"(clean it first)")
    configured = meteor_process_count()
    count = max(1, min(configured, len(hypotheses) // max(METEOR_SEGMENTS_PER_PROCESS, 1)))
    with _meteor_lock:
        processes = _processes(count, configured)
        try:
            if count == 1:
                return processes[0].score(hypotheses, references)
            return _score_chunks(processes, hypotheses, references)
        except BaseException:
            for process in processes:  # their state is unknown: the next call starts fresh ones
                process.kill()
            _meteor = None
            _helpers[:] = [p for p in _helpers if p not in processes]
            raise
