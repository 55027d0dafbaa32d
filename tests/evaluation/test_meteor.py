"""METEOR on several processes (`vidcap.evaluation.java`): how many, how the set is cut, and that
the scores are one process's, digit for digit, on real references."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.evaluation.captions import real_captions, words
from vidcap.errors import MetricsError
from vidcap.evaluation import java as java_tools
from vidcap.evaluation.java import (chunk_bounds, meteor_process_count, meteor_score,
                                     start_meteor)


def test_chunks_are_contiguous_and_cover_everything():
    for size, chunks in ((10, 3), (2990, 4), (5, 5), (7, 1)):
        bounds = chunk_bounds(size, chunks)
        assert bounds[0][0] == 0 and bounds[-1][1] == size
        assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
        lengths = [end - start for start, end in bounds]
        assert max(lengths) - min(lengths) <= 1


def test_process_count_setting_environment_and_cores(monkeypatch):
    monkeypatch.setattr(java_tools, "METEOR_PROCESSES", None)
    monkeypatch.delenv(java_tools.METEOR_PROCESSES_ENV, raising=False)
    automatic = meteor_process_count()
    assert 1 <= automatic <= max(1, min(len(os.sched_getaffinity(0)) // 2,
                                        java_tools.METEOR_MAX_PROCESSES))
    monkeypatch.setenv(java_tools.METEOR_PROCESSES_ENV, "3")
    assert meteor_process_count() == 3
    monkeypatch.setattr(java_tools, "METEOR_PROCESSES", 1)  # the module setting wins
    assert meteor_process_count() == 1
    monkeypatch.setattr(java_tools, "METEOR_PROCESSES", None)
    for bad in ("0", "two", "-1"):
        monkeypatch.setenv(java_tools.METEOR_PROCESSES_ENV, bad)
        with pytest.raises(MetricsError, match="VIDCAP_METEOR_PROCESSES must be a positive"):
            meteor_process_count()


def test_automatic_count_uses_idle_cores_only(monkeypatch):
    monkeypatch.setattr(java_tools, "METEOR_PROCESSES", None)
    monkeypatch.delenv(java_tools.METEOR_PROCESSES_ENV, raising=False)
    monkeypatch.setattr(java_tools.os, "sched_getaffinity", lambda pid: set(range(16)))
    monkeypatch.setattr(java_tools, "_memory_allows", lambda: 10)
    for load, want in ((0.3, 4), (7.5, 4), (11.5, 2), (13.2, 1), (40.0, 1)):
        monkeypatch.setattr(java_tools.os, "getloadavg", lambda load=load: (load, 0.0, 0.0))
        assert meteor_process_count() == want, load
    monkeypatch.setattr(java_tools, "_memory_allows", lambda: 1)  # memory for one JVM only
    assert meteor_process_count() == 1
    monkeypatch.setenv(java_tools.METEOR_PROCESSES_ENV, "3")  # a setting is taken as it is
    assert meteor_process_count() == 3


@pytest.fixture
def msrvtt_held_out(shared_data: Path) -> tuple[list[str], list[list[str]]]:
    """120 real MSR-VTT test videos: each one's first caption as the hypothesis (every fifth one
    emptied), the other 19 as references."""
    clips = real_captions(shared_data, "msrvtt", 120)
    hypotheses = ["" if i % 5 == 4 else words(c[0]) for i, c in enumerate(clips)]
    return hypotheses, [[words(r) for r in c[1:]] for c in clips]


@pytest.fixture
def fresh_meteor(monkeypatch):
    """No METEOR process before and after the test (it starts several)."""
    java_tools.close_meteor()
    monkeypatch.setattr(java_tools, "METEOR_SEGMENTS_PER_PROCESS", 1)
    yield
    java_tools.close_meteor()


def _pids() -> list[int]:
    return [p.proc.pid for p in (java_tools._meteor, *java_tools._helpers)]


@pytest.mark.java
@pytest.mark.slow  # starts four METEOR JVMs (~10 s of CPU each)
def test_three_processes_score_like_one_and_recover(java, msrvtt_held_out, fresh_meteor,
                                                    monkeypatch):
    hypotheses, references = msrvtt_held_out
    monkeypatch.setattr(java_tools, "METEOR_PROCESSES", 1)
    with java_tools._meteor_lock:  # a call in progress: starting one more would wait; it does not
        start_meteor()
    assert java_tools._meteor is None
    start_meteor()  # returns at once; the scoring below uses this process
    started = java_tools._meteor.proc.pid
    alone = meteor_score(hypotheses, references)
    assert java_tools._helpers == [] and _pids() == [started]

    monkeypatch.setattr(java_tools, "METEOR_PROCESSES", 3)
    shared = meteor_score(hypotheses, references)
    assert len(set(_pids())) == 3
    assert shared == alone  # corpus score and all 120 segment scores, exactly
    assert 0.1 < alone[0] < 0.6 and alone[1][4] == 0.0
    pids = _pids()
    assert meteor_score(hypotheses[:30], references[:30]) == meteor_score(
        hypotheses[:30], references[:30])
    assert _pids() == pids  # the same processes, reused

    # a process dying in the middle of its chunk: every process is killed, the error comes out
    processes = [java_tools._meteor, *java_tools._helpers]
    real = java_tools._MeteorProcess.statistics

    def dies(self, hyps, refs):
        if self is processes[2]:
            self.proc.kill()
        return real(self, hyps, refs)

    monkeypatch.setattr(java_tools._MeteorProcess, "statistics", dies)
    with pytest.raises(MetricsError, match="METEOR \\(Java\\) stopped"):
        meteor_score(hypotheses, references)
    assert all(p.proc.poll() is not None for p in processes)
    assert java_tools._meteor is None and java_tools._helpers == []
    monkeypatch.setattr(java_tools._MeteorProcess, "statistics", real)
    monkeypatch.setattr(java_tools, "METEOR_PROCESSES", 1)
    assert meteor_score(hypotheses[:10], references[:10]) == meteor_score(
        hypotheses[:10], references[:10])

    java_tools.close_meteor(timeout=10)
    assert all(p.proc.poll() is not None for p in processes)
    assert java_tools._meteor is None and java_tools._helpers == []


def _fake_scorers(monkeypatch, meteor, **others):
    """SCORERS and METEOR replaced by fakes (no Java): `meteor(ids, gts, res)` runs in the
    background thread of `run_scorers`."""
    from vidcap.evaluation import metrics

    ok = metrics.ScorerOutput({"ROUGE_L": 0.5}, {"ROUGE_L": [0.5]})
    table = {name: others.get(name, lambda *a: ok) for name in ("bleu", "rouge", "cider")}
    monkeypatch.setattr(metrics, "SCORERS", {"meteor": meteor, **table})
    monkeypatch.setattr(metrics, "score_meteor", meteor)
    return metrics


def test_meteor_runs_beside_the_others_and_its_error_comes_out(monkeypatch):
    import threading

    started = threading.Event()

    def meteor(ids, gts, res):
        started.set()
        return metrics.ScorerOutput({"METEOR": 0.25}, {"METEOR": [0.25]})

    def bleu(ids, gts, res):  # runs while METEOR's thread has started (or already finished)
        assert started.wait(10)
        return metrics.ScorerOutput({"Bleu_4": 0.1}, {"Bleu_4": [0.1]})

    metrics = _fake_scorers(monkeypatch, meteor, bleu=bleu)
    seconds: dict[str, float] = {}
    corpus, per_video, _ = metrics.run_scorers(["v"], {}, {}, ["bleu", "meteor", "rouge"],
                                               seconds)
    assert list(corpus) == ["Bleu_4", "METEOR", "ROUGE_L"]  # table order, whatever ran first
    assert per_video["METEOR"] == [0.25] and set(seconds) == {"bleu", "meteor", "rouge"}

    def broken(ids, gts, res):
        raise MetricsError("METEOR (Java) stopped")

    metrics = _fake_scorers(monkeypatch, broken)
    with pytest.raises(MetricsError, match="stopped"):
        metrics.run_scorers(["v"], {}, {}, ["meteor", "cider"], {})


def test_a_failing_scorer_kills_the_running_meteor(monkeypatch):
    import threading

    killed = threading.Event()

    def meteor(ids, gts, res):  # a METEOR call that ends only when its processes are killed
        if not killed.wait(30):
            raise AssertionError("never killed")
        raise MetricsError("METEOR (Java) stopped with exit status -9")

    def cider(ids, gts, res):
        raise KeyboardInterrupt

    metrics = _fake_scorers(monkeypatch, meteor, cider=cider)
    monkeypatch.setattr(metrics, "kill_meteor", killed.set)
    with pytest.raises(KeyboardInterrupt):
        metrics.run_scorers(["v"], {}, {}, ["meteor", "cider"], {})
    assert killed.is_set()
