"""Retrieval metrics: hand-made ties, agreement with a plain argsort, MSR-VTT 1k-A, precision@k."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vidcap.data.manifest import VideoRecord
from vidcap.data.shapes import ClipAttributes, ShapeObject
from vidcap.errors import DatasetError, ManifestError, MetricsError
from vidcap.evaluation.retrieval import (MSRVTT_1KA_FILE, caption_set, precision_at_k,
                                         read_msrvtt_1k_a, retrieval_metrics, select_msrvtt_1k_a,
                                         shapes_match, shapes_precision_at_k, shapes_precision_detail,
                                         text_to_video_ranks,
                                         video_to_text_ranks)

# ---------------------------------------------------------------------------------------------
# ranks and ties


def test_a_tie_with_a_wrong_video_counts_against_the_query():
    scores = np.array([[0.9, 0.9, 0.1],    # own video 0 tied with video 1 -> rank 2
                       [0.2, 0.5, 0.5],    # own video 1 tied with video 2 -> rank 2
                       [0.3, 0.1, 0.7]])   # own video 2 alone on top -> rank 1
    assert text_to_video_ranks(scores, [0, 1, 2]).tolist() == [2, 2, 1]
    result = retrieval_metrics(scores, [0, 1, 2])
    assert result.t2v.r1 == pytest.approx(100 / 3)
    assert result.t2v.r5 == 100.0
    assert result.t2v.median_rank == 2.0
    assert result.t2v.mean_rank == pytest.approx(5 / 3)


def test_a_constant_model_ranks_last_not_first():
    scores = np.zeros((12, 12))
    result = retrieval_metrics(scores, np.arange(12))
    assert result.t2v.r1 == 0.0 and result.v2t.r1 == 0.0
    assert result.t2v.r10 == 0.0          # rank 12 for everyone
    assert result.t2v.median_rank == 12.0 and result.v2t.mean_rank == 12.0


def test_video_query_is_right_at_its_best_caption_and_own_ties_do_not_hurt():
    # texts 0 and 1 describe video 0, text 2 video 1, text 3 video 2 (texts x videos)
    scores = np.array([[0.8, 0.1, 0.0],
                       [0.8, 0.2, 0.0],
                       [0.5, 0.9, 0.0],
                       [0.8, 0.3, 0.4]])
    # video 0: own captions 0 and 1 at 0.8, wrong caption 3 also at 0.8 -> 1 + 1 = rank 2
    # video 1: own caption 2 at 0.9, best -> rank 1
    # video 2: own caption 3 at 0.4, all others 0.0 -> rank 1
    assert video_to_text_ranks(scores, [0, 0, 1, 2]).tolist() == [2, 1, 1]
    scores[3, 0] = 0.7                    # no wrong tie left: the two own captions tie, rank 1
    assert video_to_text_ranks(scores, [0, 0, 1, 2]).tolist() == [1, 1, 1]


def test_every_caption_is_a_text_query():
    scores = np.array([[0.9, 0.1], [0.2, 0.3], [0.1, 0.8]])
    result = retrieval_metrics(scores, [0, 0, 1], name="toy")
    assert result.t2v.queries == 3 and result.v2t.queries == 2
    assert text_to_video_ranks(scores, [0, 0, 1]).tolist() == [1, 2, 1]
    protocol = result.protocol
    assert (protocol.texts, protocol.videos, protocol.captions_per_video) == (3, 2, (1, 2))
    line = protocol.describe()
    assert line.startswith("toy: 3 caption queries over 2 videos (1-2 captions per video")
    assert "every caption is a query" in line and "pessimistic" in line
    assert result.to_json()["protocol"]["every_caption_is_query"] is True
    table = result.format_table().splitlines()
    assert table[0] == line and table[1].split() == ["direction", "R@1", "R@5", "R@10", "MdR",
                                                     "MnR"]
    assert table[2].split() == ["text->video", "66.7", "100.0", "100.0", "1.0", "1.3"]


def test_a_video_without_captions_is_a_candidate_but_not_a_query():
    scores = np.array([[0.2, 0.9], [0.9, 0.1]])
    result = retrieval_metrics(scores, [0, 0])        # video 1 has no caption
    assert result.v2t.queries == 1
    assert text_to_video_ranks(scores, [0, 0]).tolist() == [2, 1]


@pytest.mark.parametrize("captions_per_video", [1, 3])
def test_ranks_equal_a_plain_argsort(captions_per_video):
    rng = np.random.default_rng(captions_per_video)
    videos = 40
    owner = np.repeat(np.arange(videos), captions_per_video)
    rng.shuffle(owner)
    text = rng.standard_normal((len(owner), 8))
    video = rng.standard_normal((videos, 8))
    scores = text @ video.T + 0.5 * (owner[:, None] == np.arange(videos))  # some signal, no ties

    order = np.argsort(-scores, axis=1)
    t2v = np.array([np.where(order[i] == owner[i])[0][0] + 1 for i in range(len(owner))])
    order_v = np.argsort(-scores.T, axis=1)
    v2t = np.array([min(np.where(np.isin(order_v[v], np.where(owner == v)[0]))[0]) + 1
                    for v in range(videos)])

    assert np.array_equal(text_to_video_ranks(scores, owner), t2v)
    assert np.array_equal(video_to_text_ranks(scores, owner), v2t)
    result = retrieval_metrics(scores, owner)
    for metrics, ranks in ((result.t2v, t2v), (result.v2t, v2t)):
        assert metrics.r1 == pytest.approx(100 * np.mean(ranks <= 1))
        assert metrics.r5 == pytest.approx(100 * np.mean(ranks <= 5))
        assert metrics.r10 == pytest.approx(100 * np.mean(ranks <= 10))
        assert metrics.median_rank == np.median(ranks)
        assert metrics.mean_rank == pytest.approx(np.mean(ranks))


@pytest.mark.parametrize("scores, owner, message", [
    (np.zeros(3), [0], "must be \\(texts, videos\\)"),
    (np.array([[0.1, np.nan]]), [0], "NaN"),
    (np.zeros((2, 2)), [0], "one integer video index per text"),
    (np.zeros((2, 2)), [0, 2], "must lie in \\[0, 2\\)"),
    (np.zeros((1, 2)), [0.5], "one integer video index"),
])
def test_bad_input_is_one_clear_error(scores, owner, message):
    with pytest.raises(MetricsError, match=message):
        retrieval_metrics(scores, owner)


def test_caption_set_makes_every_caption_a_query():
    records = [VideoRecord("a", "a.mp4", "test", ["one", "two"]),
               VideoRecord("b", "b.mp4", "test", ["three"])]
    chosen = caption_set(records, name="msvd-test")
    assert chosen.texts == ["one", "two", "three"] and chosen.video_of_text == [0, 0, 1]
    assert [v.video_id for v in chosen.videos] == ["a", "b"]


# ---------------------------------------------------------------------------------------------
# MSR-VTT 1k-A


def _manifest(ids) -> list[VideoRecord]:
    return [VideoRecord(v, f"{v}.mp4", "test", [f"caption of {v}"]) for v in ids]


def test_the_real_1k_a_file(shared_data: Path):
    path = shared_data / "msrvtt" / MSRVTT_1KA_FILE
    if not path.is_file():
        pytest.skip(f"{path} not found")
    pairs = read_msrvtt_1k_a(path)
    assert len(pairs) == 1000 and len({p.video_id for p in pairs}) == 1000
    assert pairs[0].key == "ret0" and pairs[0].video_id == "video9770"
    assert pairs[0].sentence == "a person is connecting something to system"

    chosen = select_msrvtt_1k_a(_manifest(f"video{i}" for i in range(10000)), pairs)
    assert chosen.name == "msrvtt-1k-A"
    assert [v.video_id for v in chosen.videos] == [p.video_id for p in pairs]
    assert chosen.texts == [p.sentence for p in pairs]          # not the manifest's captions
    assert chosen.video_of_text == list(range(1000))
    protocol = retrieval_metrics(np.eye(1000), chosen.video_of_text, name=chosen.name).protocol
    assert (protocol.texts, protocol.videos, protocol.captions_per_video) == (1000, 1000, (1, 1))

    some = _manifest(p.video_id for p in pairs[:990])
    with pytest.raises(DatasetError, match="10 of the 1000 MSR-VTT 1k-A videos are not in"):
        select_msrvtt_1k_a(some, pairs)
    partial = select_msrvtt_1k_a(some, pairs, allow_missing=True)
    assert len(partial.videos) == 990 and partial.name == "msrvtt-1k-A (990 of 1000 videos)"


@pytest.mark.parametrize("text, message", [
    ("", "expected the header key,vid_key,video_id,sentence, got an empty file"),
    ("video_id,sentence\nvideo1,a\n", "expected the header"),
    ("key,vid_key,video_id,sentence\nret0,msr1,video1\n", ":2: expected 4 fields"),
    ("key,vid_key,video_id,sentence\nret0,msr1,video1,a\nret1,msr2,clip2,b\n",
     ":3: video_id must look like video123, got 'clip2'"),
    ("key,vid_key,video_id,sentence\nret0,msr1,video1, \n", ":2: empty sentence"),
    ("key,vid_key,video_id,sentence\nret0,msr1,video1,a\nret0,msr2,video2,b\n",
     ":3: key 'ret0' appears twice"),
    ("key,vid_key,video_id,sentence\n", "no rows after the header"),
])
def test_a_malformed_1k_a_file_is_one_error_naming_it(tmp_path: Path, text, message):
    path = tmp_path / MSRVTT_1KA_FILE
    path.write_text(text)
    with pytest.raises(ManifestError, match=message) as err:
        read_msrvtt_1k_a(path)
    assert str(err.value).startswith(str(path)) and "\n" not in str(err.value)


def test_a_missing_or_binary_1k_a_file(tmp_path: Path):
    with pytest.raises(DatasetError, match="no such file"):
        read_msrvtt_1k_a(tmp_path / "absent.csv")
    (tmp_path / "bin.csv").write_bytes(b"\xff\xfe\x00key")
    with pytest.raises(ManifestError, match="not UTF-8"):
        read_msrvtt_1k_a(tmp_path / "bin.csv")


# ---------------------------------------------------------------------------------------------
# precision@k


def test_precision_at_k_with_a_set_or_a_predicate():
    ranked = ["a", "b", "c", "d"]
    assert precision_at_k(ranked, {"a", "c"}, 2) == 0.5
    assert precision_at_k(ranked, lambda v: v in "cd", 4) == 0.5
    assert precision_at_k(ranked, {"d"}, 10) == 0.25      # only 4 to look at
    with pytest.raises(MetricsError, match="k >= 1"):
        precision_at_k(ranked, {"a"}, 0)
    with pytest.raises(MetricsError, match="empty ranking"):
        precision_at_k([], {"a"}, 3)


def _clip(video_id: str, *objects: tuple[str, str, str]) -> ClipAttributes:
    return ClipAttributes(video_id, "test", False, [ShapeObject(*o, bboxes=[]) for o in objects])


def test_shapes_match_needs_every_named_attribute():
    red_left = _clip("v1", ("red", "circle", "left"))
    pair = _clip("v2", ("blue", "square", "grows"), ("red", "circle", "left"))
    assert shapes_match("a red circle moves to the left", red_left)
    assert shapes_match("a red circle moves to the left", pair)          # the pair holds it
    assert not shapes_match("a red circle moves to the right", red_left)
    assert not shapes_match("a green circle moves to the left", red_left)
    assert shapes_match("a circle slides left", red_left)                # colour left open
    assert shapes_match("a blue square grows and a red circle moves left", pair)
    assert not shapes_match("a blue square grows and a red circle moves left", red_left)
    assert not shapes_match("a red circle moves left and a red circle moves left", pair)
    with pytest.raises(MetricsError, match="names no Shapes"):
        shapes_match("something happens", red_left)


def test_shapes_precision_at_k_averages_over_queries():
    attributes = {"v1": _clip("v1", ("red", "circle", "left")),
                  "v2": _clip("v2", ("red", "circle", "right")),
                  "v3": _clip("v3", ("blue", "square", "up"))}
    queries = ["a red circle moves left", "a blue square moves up"]
    rankings = [["v1", "v2", "v3"], ["v1", "v2", "v3"]]
    assert shapes_precision_at_k(queries, rankings, attributes, 1) == 0.5    # (1 + 0) / 2
    assert shapes_precision_at_k(queries, rankings, attributes, 3) == pytest.approx(1 / 3)
    with pytest.raises(MetricsError, match="no Shapes attributes"):
        shapes_precision_at_k(queries, [["v9"], ["v1"]], attributes, 1)


def test_shapes_precision_detail_says_what_the_candidates_allow():
    attributes = {f"r{i}": _clip(f"r{i}", ("red", "circle", "left")) for i in range(3)}
    attributes |= {f"b{i}": _clip(f"b{i}", ("blue", "square", "up")) for i in range(5)}
    candidates = sorted(attributes)
    queries = ["a red circle moves left", "a square"]
    # the red query: its 3 matches first, then 2 misses; the square query: 4 of 5 in its top 5
    rankings = [["r0", "r1", "r2", "b0", "b1"], ["b0", "r0", "b1", "b2", "b3"]]
    detail = shapes_precision_detail(queries, rankings, candidates, attributes, 5)
    assert detail.precision == pytest.approx((3 / 5 + 4 / 5) / 2)
    assert detail.ceiling == pytest.approx((3 / 5 + 5 / 5) / 2)    # 3 red clips; 5 squares
    assert detail.attainable == pytest.approx((3 / 3 + 4 / 5) / 2)
    with pytest.raises(MetricsError, match="candidate videos have no Shapes attributes"):
        shapes_precision_detail(queries, rankings, [*candidates, "x"], attributes, 5)
