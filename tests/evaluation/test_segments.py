"""vidcap.evaluation.segments: cut matching, cut scores, attribute accuracy of segment captions
and the segments.jsonl reader, on hand-made cases."""

from __future__ import annotations

import json

import pytest

from vidcap.data.shapes import captions_for
from vidcap.data.shapes_long import (LongShapesSpec, LongVideoTruth, TrueSegment,
                                     prepare_long_shapes)
from vidcap.errors import DatasetError, MetricsError
from vidcap.evaluation.segments import (caption_at, cue_cuts, cut_scores, match_cuts,
                                        read_long_truth, segment_attribute_accuracy)
from vidcap.captioning.segments import Cue


@pytest.mark.parametrize("predicted,true,expected", [
    ([], [], (0, 0, 0)),
    ([4.0, 8.0], [4.0, 8.0], (2, 0, 0)),
    ([4.25, 7.75], [4.0, 8.0], (2, 0, 0)),  # the tolerance itself counts
    ([4.3], [4.0], (0, 1, 1)),
    ([3.9, 4.1], [4.0], (1, 1, 0)),  # one-to-one: the second prediction is a false cut
    ([4.0], [3.9, 4.1], (1, 0, 1)),
    ([1.2, 1.55], [1.0, 1.35], (2, 0, 0)),  # pairing each with its nearest would find one
    ([1.25], [1.0, 1.3], (1, 0, 1)),
    ([8.0, 4.0], [4.0, 8.0], (2, 0, 0)),  # order does not matter
    ([1.0, 2.0], [], (0, 2, 0)),
])
def test_match_cuts(predicted, true, expected) -> None:
    assert match_cuts(predicted, true, 0.25) == expected


def _truth() -> dict[str, LongVideoTruth]:
    def seg(start, end, colour, shape, motion, held_out):
        from vidcap.data.shapes import ObjectPlan
        plan = ObjectPlan(colour, shape, motion, (0.5, 0.5), (0.5, 0.5))
        return TrueSegment(start, end, start * 8, end * 8, colour, shape, motion, held_out,
                           captions_for([plan]))

    a = LongVideoTruth("a", "a.mp4", 8.0, 96, 12.0, [
        seg(0, 4, "red", "circle", "left", False), seg(4, 8, "blue", "circle", "grows", True),
        seg(8, 12, "green", "triangle", "up", False)])
    b = LongVideoTruth("b", "b.mp4", 8.0, 32, 4.0, [seg(0, 4, "white", "square", "down", False)])
    return {"a": a, "b": b}


def test_cut_scores_pool_videos_and_ignore_the_video_ends() -> None:
    truth = _truth()
    scores = cut_scores({"a": [0.0, 4.1, 9.0, 12.0], "b": []}, truth)
    assert (scores["tp"], scores["fp"], scores["fn"]) == (1, 1, 1)
    assert scores["recall"] == scores["precision"] == scores["f1"] == 0.5
    assert scores["videos"] == 2
    nothing = cut_scores({"b": [2.0]}, truth)
    assert nothing["recall"] is None and nothing["precision"] == 0.0 and nothing["f1"] is None
    with pytest.raises(MetricsError, match="'c'"):
        cut_scores({"c": []}, truth)


def test_cue_cuts_and_caption_at() -> None:
    cues = [Cue(0, 4, "x"), Cue(4, 8, "y"), Cue(9, 12, "z")]
    assert cue_cuts(cues) == [4, 9] and cue_cuts([]) == []
    assert caption_at(cues, 4.0) == "y" and caption_at(cues, 8.5) == "" and caption_at(cues, 12) == ""


def test_segment_attribute_accuracy_reads_the_cue_at_each_midpoint() -> None:
    truth = _truth()
    perfect = {"a": [Cue(0, 4, "a red circle moves to the left"),
                     Cue(4, 8, "the blue circle gets bigger"),
                     Cue(8, 12, "a green triangle rises")],
               "b": [Cue(0, 4, "a white square falls")]}
    scores = segment_attribute_accuracy(perfect, truth)
    assert scores["seen"] == {"colour": 1.0, "shape": 1.0, "motion": 1.0, "all": 1.0, "n": 3}
    assert scores["held_out"]["n"] == 1 and scores["held_out"]["all"] == 1.0
    # one cue over the first two segments (its midpoint 2 s is red; 6 s reads it too), none at 10 s
    late = {"a": [Cue(0, 9, "a red circle moves to the left")]}
    scores = segment_attribute_accuracy(late, truth)
    assert scores["seen"]["n"] == 2 and scores["seen"]["all"] == 0.5
    assert scores["held_out"] == {"colour": 0.0, "shape": 1.0, "motion": 0.0, "all": 0.0, "n": 1}
    with pytest.raises(MetricsError):
        segment_attribute_accuracy({"zz": []}, truth)


def test_read_long_truth_reads_what_prepare_writes(tmp_path) -> None:
    path = prepare_long_shapes(tmp_path, LongShapesSpec(size=32, clips=(2, 3)), 2)
    videos = read_long_truth(tmp_path)  # the folder or the file
    assert videos == read_long_truth(path) and list(videos) == ["long-00000", "long-00001"]
    video = videos["long-00000"]
    assert video.video_path == tmp_path / "videos" / "long-00000.mp4"
    assert video.video_path.is_file()
    assert video.cuts == [s.start for s in video.segments[1:]]
    lines = path.read_text().splitlines()
    assert [json.dumps(v.to_json()) for v in videos.values()] == lines


@pytest.mark.parametrize("change,message", [
    (lambda d: d.pop("fps"), "missing field 'fps'"),
    (lambda d: d.update(duration="long"), "`duration` must be a number"),
    (lambda d: d.update(segments=[]), "non-empty list"),
    (lambda d: d["segments"][0].pop("colour"), "malformed segment"),
    (lambda d: d["segments"][0].update(end=-1.0), "empty or negative"),
    (lambda d: d["segments"][1].update(start=0.5), "starts before segment 0 ends"),
    (lambda d: d.update(duration=1.0), "ends after the video"),
])
def test_read_long_truth_names_file_and_line(tmp_path, change, message) -> None:
    path = prepare_long_shapes(tmp_path, LongShapesSpec(size=32, clips=(2, 2)), 2)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    change(lines[1])
    path.write_text("".join(json.dumps(d) + "\n" for d in lines))
    with pytest.raises(DatasetError, match=f"segments.jsonl:2: .*{message}"):
        read_long_truth(path)


def test_read_long_truth_refuses_broken_files(tmp_path) -> None:
    with pytest.raises(DatasetError, match="not found"):
        read_long_truth(tmp_path)
    path = tmp_path / "segments.jsonl"
    path.write_text("{not json\n")
    with pytest.raises(DatasetError, match="segments.jsonl:1: not valid JSON"):
        read_long_truth(path)
    path.write_text("")
    with pytest.raises(DatasetError, match="no long videos"):
        read_long_truth(path)
    line = json.dumps(_truth()["b"].to_json())
    path.write_text(f"{line}\n{line}\n")
    with pytest.raises(DatasetError, match="segments.jsonl:2: video_id 'b' repeats"):
        read_long_truth(path)
