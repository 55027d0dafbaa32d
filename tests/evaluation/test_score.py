"""vidcap.evaluation.score and `vidcap score`: file formats, id matching, table, golden test."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from vidcap.cli import main
from vidcap.data.manifest import VideoRecord, write_manifest
from vidcap.errors import MetricsError
from vidcap.evaluation.metrics import Scores
from vidcap.evaluation.score import (format_table, load_predictions, load_references, match_ids,
                                     scores_json)

PUBLISHED = {"Bleu_1": 0.579, "Bleu_2": 0.404, "Bleu_3": 0.279, "Bleu_4": 0.191,
             "METEOR": 0.195, "ROUGE_L": 0.396, "CIDEr": 0.600}
"""coco-caption's cocoEvalCapDemo notebook on its fake results (../shared/data/SOURCES.md)."""


def _write(path: Path, data) -> Path:
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


def test_predictions_in_every_format(tmp_path):
    want = {"7": "a cat", "video8": "a dog"}
    assert load_predictions(_write(tmp_path / "a.json", {"7": "a cat", "video8": "a dog"})) == want
    listed = {"7": ["a cat"], "video8": ["a dog"]}
    assert load_predictions(_write(tmp_path / "b.json", listed)) == want
    coco = [{"image_id": 7, "caption": "a cat"}, {"video_id": "video8", "caption": "a dog"}]
    assert load_predictions(_write(tmp_path / "c.json", coco)) == want
    lines = tmp_path / "d.jsonl"
    lines.write_text("\n".join(json.dumps(x) for x in coco) + "\n")
    assert load_predictions(lines) == want


@pytest.mark.parametrize("content, problem", [
    ('[{"image_id": 1, "caption": "a"}, {"image_id": 1, "caption": "b"}]', "second prediction"),
    ('[{"image_id": 1.5, "caption": "a"}]', "must be a string or an integer"),
    ('[{"caption": "a"}]', "no `video_id` or `image_id`"),
    ('{"v1": ["a", "b"]}', "must be one caption"),
    ('{"v1": 3}', "must be one caption"),
    ('{"v1": "a",', "not valid JSON"),
    ('{}', "no predictions"),
])
def test_bad_prediction_files_name_the_file_and_problem(tmp_path, content, problem):
    path = tmp_path / "p.json"
    path.write_text(content)
    with pytest.raises(MetricsError, match=problem) as err:
        load_predictions(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_references_from_manifest_coco_and_dict(tmp_path):
    records = [VideoRecord("v1", "", "test", ["a cat", "the cat"]),
               VideoRecord("v2", "", "train", ["a dog"])]
    manifest = write_manifest(records, tmp_path / "m.jsonl")
    assert load_references(manifest) == {"v1": ["a cat", "the cat"], "v2": ["a dog"]}
    assert load_references(manifest, "test") == {"v1": ["a cat", "the cat"]}
    coco = {"images": [{"id": 7}], "annotations": [{"image_id": 7, "id": 1, "caption": "a"},
                                                   {"image_id": 7, "id": 2, "caption": "b"}]}
    assert load_references(_write(tmp_path / "c.json", coco)) == {"7": ["a", "b"]}
    assert load_references(_write(tmp_path / "d.json", {"7": ["a"]})) == {"7": ["a"]}
    with pytest.raises(MetricsError, match="--split applies to a vidcap manifest"):
        load_references(tmp_path / "c.json", "test")
    with pytest.raises(MetricsError, match="no videos in split 'val'"):
        load_references(manifest, "val")


def test_a_one_line_manifest_is_read_as_a_manifest(tmp_path):
    manifest = write_manifest([VideoRecord("v1", "", "test", ["a cat"])], tmp_path / "m.jsonl")
    assert load_references(manifest, "test") == {"v1": ["a cat"]}


def test_mismatched_ids_are_counted_and_named_unless_allowed():
    preds = {"v1": "a", "v2": "b", "v9": "c"}
    refs = {"v1": ["a"], "v2": ["b"], "v3": ["c"], "v4": ["d"]}
    with pytest.raises(MetricsError) as err:
        match_ids(preds, refs)
    message = str(err.value)
    assert "1 prediction(s) have no references ('v9')" in message
    assert "2 video(s) with references have no prediction ('v3', 'v4')" in message
    kept_preds, kept_refs, mismatch = match_ids(preds, refs, allow_missing=True)
    assert list(kept_preds) == list(kept_refs) == ["v1", "v2"]
    assert mismatch.unreferenced == ["v9"] and mismatch.unpredicted == ["v3", "v4"]
    with pytest.raises(MetricsError, match="share no video id"):
        match_ids({"x": "a"}, {"y": ["a"]}, allow_missing=True)


def test_table_prints_scores_times_100():
    scores = Scores(corpus={"Bleu_1": 0.5794, "Bleu_2": 0.4044, "Bleu_3": 0.2785, "Bleu_4": 0.1908,
                            "METEOR": 0.1953, "ROUGE_L": 0.3963, "CIDEr": 0.5998}, num_videos=1000)
    head, row = format_table(scores).splitlines()
    assert head.split() == ["videos", "B@1", "B@2", "B@3", "B@4", "METEOR", "ROUGE-L", "CIDEr"]
    assert row.split() == ["1000", "57.9", "40.4", "27.9", "19.1", "19.5", "39.6", "60.0"]
    assert scores_json(scores)["CIDEr"] == 0.5998


def test_cli_mismatch_is_one_line_and_exit_2(tmp_path, capsys):
    preds = _write(tmp_path / "p.json", {"v1": "a", "v9": "b"})
    refs = _write(tmp_path / "r.json", {"v1": ["a"], "v2": ["b"]})
    assert main(["score", str(preds), str(refs)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "'v9'" in err and "'v2'" in err and "--allow-missing" in err


@pytest.mark.java
@pytest.mark.slow
def test_vidcap_score_reproduces_the_coco_caption_demo(java, coco_demo, tmp_path, capsys):
    out, per_video = tmp_path / "scores.json", tmp_path / "per-video.json"
    code = main(["score", str(coco_demo / "captions_val2014_fakecap_results.json"),
                 str(coco_demo / "en_captions_val2014.json"), "--out", str(out),
                 "--per-video", str(per_video)])
    assert code == 0
    scores = json.loads(out.read_text())
    assert list(scores) == list(PUBLISHED)
    assert {k: round(v, 3) for k, v in scores.items()} == PUBLISHED
    # multicaptioneval's README gives four decimals for some of them
    assert [round(scores[f"Bleu_{n}"], 4) for n in (1, 2, 3, 4)] == [0.5794, 0.4044, 0.2785, 0.1908]
    assert round(scores["CIDEr"], 4) == 0.5998
    table = capsys.readouterr().out.splitlines()
    assert table[1].split() == ["1000", "57.9", "40.4", "27.9", "19.1", "19.5", "39.6", "60.0"]
    rows = json.loads(per_video.read_text())
    assert len(rows) == 1000 and rows["404464"]["caption"].startswith("black and white photo")
    assert sum(r["CIDEr"] for r in rows.values()) / 1000 == pytest.approx(scores["CIDEr"])


@pytest.mark.java
def test_bleu_statistics_equal_coco_captions_printout(java, coco_demo):
    from vidcap.evaluation.score import score_captions

    preds = load_predictions(coco_demo / "captions_val2014_fakecap_results.json")
    refs = load_references(coco_demo / "en_captions_val2014.json")
    stats = score_captions(preds, refs, metrics=["bleu"]).bleu_stats
    assert stats == {"testlen": 9893, "reflen": 9855, "guess": [9893, 8893, 7893, 6893],
                     "correct": [5732, 2510, 1043, 423]}


@pytest.mark.java
@pytest.mark.slow
def test_vidcap_score_on_tricky_predictions_exits_cleanly_within_seconds(java, tmp_path):
    preds = {"v1": "a man\nis running", "v2": "", "v3": "un café naïve — 日本語 😀",
             "v4": "a dog ||| jumps high", "v5": "x\r\ny\u2028z\x00\t(ok)|||"}
    refs = {"v1": ["a man is running"], "v2": ["a woman sings"], "v3": ["a cafe"],
            "v4": ["a dog jumps high"], "v5": ["x y z ok"]}
    manifest = write_manifest([VideoRecord(k, "", "test", v) for k, v in refs.items()],
                              tmp_path / "refs.jsonl")
    out = tmp_path / "scores.json"
    done = subprocess.run([sys.executable, "-m", "vidcap", "score", str(_write(tmp_path / "p.json",
                           preds)), str(manifest), "--split", "test", "--out", str(out)],
                          capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0].split()[0] == "videos"
    assert "1 of 5 predictions are empty" in done.stderr
    scores = json.loads(out.read_text())
    assert set(scores) == set(PUBLISHED) and 0 < scores["METEOR"] < 1
