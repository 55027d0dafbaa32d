"""coco-caption scores: PTB tokenization and the METEOR process (`vidcap.evaluation.java`), the
scorers (`metrics`) and `score.score_captions`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from vidcap.errors import MetricsError
from vidcap.evaluation import java as java_tools
from vidcap.evaluation.java import find_java, ptb_tokenize
from vidcap.evaluation.metrics import METRIC_KEYS
from vidcap.evaluation.score import describe_mismatch, score_captions
from vidcap.text import clean_caption


def test_describe_mismatch_counts_and_names_a_few():
    problems = describe_mismatch(["v1", "v2", "x10", "x2", "x3", "x4"], ["v1", "v2", "v3"])
    assert problems[0].startswith("4 prediction(s) have no references ('x2', 'x3', 'x4', ...)")
    assert problems[1] == "1 video(s) with references have no prediction ('v3')"
    assert describe_mismatch(["a"], ["a"]) == []


def test_missing_java_is_one_clear_sentence(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    with pytest.raises(MetricsError, match="apt-get install default-jre-headless"):
        find_java()
    with pytest.raises(MetricsError, match="Java runtime"):
        score_captions({"v": "a cat"}, {"v": ["a cat"]})


def test_ids_must_match_and_references_must_hold_words():
    with pytest.raises(MetricsError, match="1 prediction\\(s\\) have no references \\('b'\\)"):
        score_captions({"a": "x", "b": "y"}, {"a": ["x"]})
    with pytest.raises(MetricsError, match="no non-empty reference"):
        score_captions({"a": "x"}, {"a": [" ", "\n"]})
    with pytest.raises(MetricsError, match="unknown metric"):
        score_captions({"a": "x"}, {"a": ["x"]}, metrics=["spice"])


@pytest.mark.java
def test_ptb_tokenization_equals_coco_captions_own_tokenized_files(java, coco_demo):
    refs_in = json.loads((coco_demo / "en_captions_val2014.json").read_text())
    results = json.loads((coco_demo / "captions_val2014_fakecap_results.json").read_text())
    refs: dict[str, list[str]] = {}
    for a in refs_in["annotations"]:
        refs.setdefault(str(a["image_id"]), []).append(clean_caption(a["caption"]))
    hyps = {str(r["image_id"]): [clean_caption(r["caption"])] for r in results}

    want_refs = json.loads((coco_demo / "en_captions_val2014_references_after_tokenization.json")
                           .read_text())
    want_hyps = json.loads((coco_demo / "en_captions_val2014_results_after_tokenization.json")
                           .read_text())
    got_refs = ptb_tokenize(refs)
    assert sum(len(v) for v in got_refs.values()) == 5005
    assert ({k: sorted(v) for k, v in got_refs.items()}
            == {k: sorted(v) for k, v in want_refs.items()})
    assert ptb_tokenize(hyps) == want_hyps


@pytest.mark.java
def test_ptb_tokenizer_writes_nothing_beside_its_jar(java, tmp_path, monkeypatch):
    """pycocoevalcap's tokenizer writes a temporary file beside its jar; this one must not, so it
    works from a read-only site-packages. The jar is copied into a folder made read-only (which
    alone proves it for non-root users); for root, who may write anyway, the folder's listing and
    modification time must not change either."""
    folder = tmp_path / "readonly"
    folder.mkdir()
    jar = folder / java_tools._ptb_jar().name
    shutil.copy(java_tools._ptb_jar(), jar)
    folder.chmod(0o555)
    monkeypatch.setattr(java_tools, "_ptb_jar", lambda: jar)
    before = (sorted(os.listdir(folder)), folder.stat().st_mtime_ns)
    try:
        out = ptb_tokenize({"a": ["A man (young), is running.", "..."], "b": ["It's O.K."]})
        after = (sorted(os.listdir(folder)), folder.stat().st_mtime_ns)
    finally:
        folder.chmod(0o755)
    assert out == {"a": ["a man -lrb- young -rrb- is running", ""], "b": ["it 's o.k."]}
    assert after == before


@pytest.mark.java
@pytest.mark.slow  # the first METEOR call of a session starts its JVM (~10 s)
def test_scores_known_values_and_per_video(java):
    preds = {"v1": "a man is running", "v2": "a dog barks at a cat", "v3": ""}
    refs = {"v1": ["a man is running", "someone runs"], "v2": ["a cat sleeps on a sofa"],
            "v3": ["a woman sings", "someone sings a song"]}
    scores = score_captions(preds, refs, per_video=True)
    assert list(scores.corpus) == list(METRIC_KEYS)
    assert scores.num_videos == 3 and scores.empty_predictions == 1
    v1, v3 = scores.per_video["v1"], scores.per_video["v3"]
    # an exact match of a reference: BLEU and ROUGE-L are 1; an empty caption earns nothing
    assert v1["Bleu_4"] == pytest.approx(1.0, abs=1e-6)
    assert v1["ROUGE_L"] == pytest.approx(1.0)
    assert v1["METEOR"] > 0.9
    assert all(v == 0.0 for v in v3.values())
    # corpus values are the metric's own aggregates: ROUGE-L and CIDEr average the videos
    for key in ("ROUGE_L", "CIDEr"):
        assert scores[key] == pytest.approx(sum(v[key] for v in scores.per_video.values()) / 3)
    # BLEU statistics are corpus sums: hypothesis words 4 + 6 + 0, closest reference lengths
    assert scores.bleu_stats["testlen"] == 10
    assert scores.bleu_stats["reflen"] == 4 + 6 + 3
    assert set(scores.seconds) == {"tokenize", "bleu", "meteor", "rouge", "cider"}


@pytest.mark.java
def test_cider_idf_depends_on_the_scored_set(java):
    preds = {"a": "a man is cooking pasta", "b": "a dog runs on the grass"}
    refs = {"a": ["a man is cooking pasta in a kitchen", "someone cooks"],
            "b": ["a dog runs on the grass", "a dog plays outside"]}
    alone = score_captions({"a": preds["a"]}, {"a": refs["a"]}, metrics=["cider"])
    both = score_captions(preds, refs, metrics=["cider"], per_video=True)
    # alone, every n-gram has document frequency 1 = the set size: IDF log(1/1) = 0, CIDEr 0
    assert alone["CIDEr"] == 0.0
    assert both.per_video["a"]["CIDEr"] > 1.0


@pytest.mark.java
def test_tricky_captions_score_and_meteor_process_is_reused(java):
    preds = {"v1": "a man\nis running", "v2": "", "v3": "un café naïve — 日本語 😀",
             "v4": "a dog ||| jumps high|||", "v5": "x\r\ny\u2028z\x00\ttab\x85 (ok)",
             "v6": "...", "v7": "a \ud800 lone |||| surrogate"}
    refs = {v: ["a man is running", "a dog jumps high"] for v in preds}
    first = score_captions(preds, refs, metrics=["meteor"], per_video=True)
    pid = java_tools._meteor.proc.pid
    second = score_captions(preds, refs, metrics=["meteor"])
    assert java_tools._meteor.proc.pid == pid
    assert first["METEOR"] == second["METEOR"] > 0
    assert first.per_video["v4"]["METEOR"] > 0.9  # "a dog jumps high" once `|||` is gone
    assert first.per_video["v2"]["METEOR"] == 0.0


@pytest.mark.java
@pytest.mark.slow
def test_meteor_failure_recovers_and_the_interpreter_exits_promptly(java, tmp_path):
    """The reason for the own METEOR wrapper: pycocoevalcap's hangs the interpreter at exit after a
    failed call. In a fresh interpreter: score tricky captions; drive the jar out of step so a call
    fails (the process must be killed and the next call must work); leave a process out of step
    and exit (the interpreter must end promptly, with status 0)."""
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent("""
        import sys
        from vidcap.errors import MetricsError
        from vidcap.evaluation import java
        from vidcap.evaluation.score import score_captions

        def out_of_step(self, hypotheses, references):
            self.proc.stdin.write(b"SCORE ||| a ||| b\\nstray line\\n")
            self.proc.stdin.flush()
            return self._read_score(), []  # reads statistics where a score is expected

        s = score_captions({"a": "x\\ny ||| z", "b": ""}, {"a": ["x y z"], "b": ["q"]})
        print("scored", round(s["METEOR"], 3))
        first = java._meteor.proc
        real, java._MeteorProcess.score = java._MeteorProcess.score, out_of_step
        try:
            score_captions({"a": "x"}, {"a": ["x"]}, metrics=["meteor"])
        except MetricsError as err:
            print("failed:", err)
        java._MeteorProcess.score = real
        print("killed:", first.poll() is not None, java._meteor is None)
        again = score_captions({"a": "a cat"}, {"a": ["a cat"]}, metrics=["meteor"])
        print("again:", again["METEOR"] > 0.9)
        java._meteor.proc.stdin.write(b"EVAL ||| nonsense\\nstray\\n")  # left out of step
        java._meteor.proc.stdin.flush()
    """))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=150)
    assert done.returncode == 0, done.stderr
    assert "scored" in done.stdout
    assert "failed: METEOR replied" in done.stdout
    assert "killed: True True" in done.stdout
    assert "again: True" in done.stdout
