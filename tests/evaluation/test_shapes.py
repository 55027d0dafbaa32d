"""vidcap.evaluation.shapes: captions read back, attribute and direction accuracy, attention
peaks against the objects' boxes."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch

from vidcap.config import load_config
from vidcap.data.manifest import read_manifest
from vidcap.data.shapes import (COLOURS, MOTIONS, SHAPES, ClipAttributes, ObjectPlan, ShapeObject,
                                ShapesSpec, captions_for, prepare_shapes, read_attributes)
from vidcap.errors import MetricsError
from vidcap.evaluation.shapes import (attribute_accuracy, box_in_model_pixels,
                                      direction_accuracy, parse_caption, patch_hits, peak_report)
from vidcap.models.mffcl import MFFCL
from vidcap.runs.layout import RunLayout
from vidcap.runs.store import load_model, load_run, read_config

from ..conftest import TINY


@pytest.fixture(scope="module")
def shapes_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small Shapes set with held-out pairs in its test split (two objects in some clips)."""
    out = tmp_path_factory.mktemp("shapes") / "a"
    prepare_shapes(out, ShapesSpec(seed=3, pair_fraction=0.3), splits=(12, 4, 14))
    return out


def test_every_caption_template_parses_back() -> None:
    start, end = (0.5, 0.5), (0.5, 0.5)
    for colour, shape, motion in itertools.product(COLOURS, SHAPES, MOTIONS):
        plan = ObjectPlan(colour, shape, motion, start, end)
        for caption in captions_for([plan]):
            assert parse_caption(caption) == [(colour, shape, motion)], caption
    a = ObjectPlan("red", "circle", "left", start, end)
    b = ObjectPlan("blue", "triangle", "shrinks", start, end)
    for caption in captions_for([a, b]):
        assert parse_caption(caption) == [("red", "circle", "left"),
                                          ("blue", "triangle", "shrinks")], caption


@pytest.mark.parametrize("text,expected", [
    ("a red ball is moving towards the left", [("red", "circle", "left")]),
    ("the green square moves from left to right", [("green", "square", "right")]),
    ("A Blue Triangle getting bigger and bigger.", [("blue", "triangle", "grows")]),
    ("a yellow circle moves downward", [("yellow", "circle", "down")]),
    ("a white square goes up while a red circle shrinks",
     [("white", "square", "up"), ("red", "circle", "shrinks")]),
    ("a circle", [(None, "circle", None)]),
    ("", []),
])
def test_parse_caption_reads_natural_variants(text, expected) -> None:
    assert parse_caption(text) == expected


def test_attribute_accuracy_scores_seen_and_held_out_objects(shapes_set) -> None:
    clips = {k: c for k, c in read_attributes(shapes_set).items() if c.split == "test"}
    truth = {k: captions_for(c.objects)[0] for k, c in clips.items()}
    perfect = attribute_accuracy(truth, clips)
    assert perfect["held_out"]["n"] >= 7 and perfect["seen"]["n"] >= 7
    for group in perfect.values():
        assert group["colour"] == group["shape"] == group["motion"] == group["all"] == 1.0
    # the same captions with the two objects of each pair swapped: still matched
    swapped = {k: " and ".join(reversed(t.split(" and "))) for k, t in truth.items()}
    assert attribute_accuracy(swapped, clips)["seen"]["all"] == 1.0
    wrong_motion = {k: t.replace("left", "up").replace("right", "up").replace("down", "up")
                    .replace("grows", "up").replace("shrinks", "up") for k, t in truth.items()}
    scores = attribute_accuracy(wrong_motion, clips)
    assert scores["seen"]["colour"] == 1.0 and scores["seen"]["motion"] < 0.6
    silent = attribute_accuracy({k: "something happens" for k in clips}, clips)
    assert silent["seen"]["all"] == silent["held_out"]["colour"] == 0.0
    assert attribute_accuracy({}, clips)["seen"]["colour"] is None
    with pytest.raises(MetricsError):
        attribute_accuracy({"no-such-video": "a red circle grows"}, clips)


def _clip(video_id: str, *objects: tuple[str, str, str]) -> ClipAttributes:
    made = [ShapeObject(c, s, m, bboxes=[[0, 0, 1, 1]] * 16) for c, s, m in objects]
    held_out = any((c, s) in {("blue", "circle"), ("red", "triangle")} for c, s, _ in objects)
    return ClipAttributes(video_id, "test", held_out, made)


def test_direction_accuracy_on_hand_made_captions():
    attributes = {
        "a": _clip("a", ("red", "circle", "left")),
        "b": _clip("b", ("green", "square", "up")),
        "c": _clip("c", ("white", "square", "grows")),
        "d": _clip("d", ("red", "circle", "left")),
        "e": _clip("e", ("blue", "circle", "right"), ("yellow", "square", "down")),
        "f": _clip("f", ("red", "square", "shrinks")),
    }
    predictions = {
        "a": "a red circle moves to the right",  # left/right axis, wrong way
        "b": "the green square rises",  # up/down, right way
        "c": "a white square moves up",  # grows, but the caption's motion is off its axis
        "d": "",  # nothing said
        # two objects, named in the other order: matched by agreement, not by position
        "e": "a yellow square falls and a blue circle slides left",
        "f": "the red square gets smaller",
    }
    result = direction_accuracy(predictions, attributes)
    lr, ud, gs = (result["all"][axis] for axis in ("left/right", "up/down", "grows/shrinks"))
    assert (lr["objects"], lr["on_axis"], lr["correct"]) == (3, 2, 0)
    assert lr["accuracy"] == 0.0 and lr["axis_rate"] == pytest.approx(2 / 3)
    assert (ud["objects"], ud["on_axis"], ud["correct"], ud["accuracy"]) == (2, 2, 2, 1.0)
    assert (gs["objects"], gs["on_axis"], gs["correct"], gs["accuracy"]) == (2, 1, 1, 1.0)
    # the blue circle is a held-out pair; the others are seen
    assert result["held_out"]["left/right"] == {"objects": 1, "on_axis": 1, "correct": 0,
                                                "accuracy": 0.0, "axis_rate": 1.0}
    assert result["seen"]["left/right"]["objects"] == 2
    assert result["seen"]["up/down"]["accuracy"] == 1.0


def test_patch_hits_and_boxes_in_model_pixels():
    # patch (1, 1) of 8 px covers [8, 16) x [8, 16), its centre (12, 12)
    assert patch_hits((1, 1), (10.0, 10.0, 14.0, 14.0), 8) == (True, True)
    assert patch_hits((1, 1), (14.0, 14.0, 22.0, 22.0), 8) == (False, True)
    assert patch_hits((1, 1), (16.0, 8.0, 24.0, 16.0), 8) == (False, False)  # touches only
    # a 64 px clip seen at 32 px: every coordinate halves; a 4:3 clip is also centre-cropped
    assert box_in_model_pixels([8, 16, 24, 40], (64, 64), 32) == (4.0, 8.0, 12.0, 20.0)
    assert box_in_model_pixels([40, 0, 80, 30], (60, 80), 30) == (15.0, 0.0, 35.0, 15.0)


# -- where the peaks fall on Shapes clips (target: >= 80 % of frames inside the object's box) --
#
# Measured before this test was written (tiny encoder at 32 px, 4 x 4 patches of 8 px, 48 test
# clips of 4 frames, the default map: head mean of the last block; the rule "peak patch overlaps
# the box", with the stricter "peak patch centre inside the box" and the attention mass on the
# object's patches beside it):
# - an untrained model: peak overlaps the box in 79-96 % of frames (the object patch is the one
#   outlier on a uniform background) though its attention is uniform (mass = the uniform share);
# - the caption stage alone (from scratch, 120-600 steps): seed-dependent; one seed in three
#   localised, the others put the peak off the object (centre rule 0-15 %), mass uniform;
# - the align stage alone with the offline MiniLM text encoder, 150 steps at batch 32: all 4
#   seeds tried localise (centre rule 77-87 %, overlap 99-100 %, mass 1.3-1.8x uniform); 300
#   steps likewise;
# - align 150 steps, then 100 caption steps (encoder trainable, lr 3e-4 or 1e-3): the attention
#   goes back to uniform (mass = uniform share; peaks 5-83 % by the centre rule);
# - at the shapes-tiny preset's own size (64 px, width 128, 8 frames, 600 training clips, one
#   seed), 300 align steps then 300 caption steps: localised after align (centre 75 %, overlap
#   100 %, mass 1.7x uniform) and still after captioning (centre 82 %, overlap 100 %, mass 1.7x;
#   untrained: centre 72 %, overlap 99 %, mass 1.0x).
# So this test trains the align stage, the one that makes the attention localise, and checks the
# mass and the centre rule against the same untrained model as well as the 80 % bar.


def _align_trained(tmp: Path, shapes: Path):
    from vidcap.training.trainer import train

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cfg = load_config("shapes-tiny", TINY + [
            "train.stages=[align]", "model.text_encoder.pretrained=all-MiniLM-L6-v2",
            "model.text_encoder.pooling=mean", "train.align.steps=150",
            "train.align.batch_size=32", "train.align.lr=1e-3", "train.align.warmup_steps=10",
            "train.align.schedule=cosine", "train.log_every=50", "train.checkpoint_every=0",
            f"data.manifest={shapes}", f"data.cache_dir={tmp / 'cache'}"])
        torch.manual_seed(cfg.train.seed)  # the trainer's initial weights, kept for comparison
        captions = [c for r in read_manifest(shapes, "train") for c in r.captions]
        untrained = MFFCL.build(cfg.model, cfg.video, captions=captions,
                                with_text_encoder=False).eval()
        run = train(cfg, tmp / "run")
    finally:
        torch.set_num_threads(threads)
    return load_model(run, with_text_encoder=False), untrained


@pytest.fixture(scope="module")
def localisation_shapes(tmp_path_factory) -> Path:
    from vidcap.data.shapes import ShapesSpec, prepare_shapes

    return prepare_shapes(tmp_path_factory.mktemp("loc"), ShapesSpec(size=32, seed=7),
                          splits=(256, 0, 48))


@pytest.mark.slow
def test_attention_peaks_fall_on_the_object_after_training(localisation_shapes: Path,
                                                           tmp_path: Path, capsys):
    trained, untrained = _align_trained(tmp_path, localisation_shapes)
    records = read_manifest(localisation_shapes, "test")
    attributes = read_attributes(localisation_shapes.parent)
    after = peak_report(trained, records, attributes).rates()
    before = peak_report(untrained, records, attributes).rates()
    rollout = peak_report(trained, records, attributes, method="rollout").rates()
    with capsys.disabled():
        print("\nattention peaks, 48 clips x 4 frames (head mean, last block): trained "
              + _rates(after) + "; untrained " + _rates(before) + "; rollout " + _rates(rollout))
    assert after["overlap"] >= 0.8  # the 80 % bar: the peak patch lies on the object
    assert after["centre"] >= 0.6 and after["centre"] > before["centre"] + 0.1
    uniform = after["chance_overlap"]
    assert after["mass_overlap"] >= 1.15 * uniform  # attention gathers on the object ...
    assert before["mass_overlap"] <= 1.05 * uniform  # ... which it did not before training
    assert rollout["overlap"] >= 0.8


def _rates(r: dict[str, float]) -> str:
    return (f"centre in box {100 * r['centre']:.0f}% (chance {100 * r['chance_centre']:.0f}), "
            f"overlapping {100 * r['overlap']:.0f}% (chance {100 * r['chance_overlap']:.0f}), "
            f"mass on object {100 * r['mass_overlap']:.0f}%")


DEMO = Path(__file__).resolve().parents[2] / "runs" / "demo"


@pytest.mark.slow
def test_attention_peaks_of_the_demo_run(capsys):
    """An extra check on the demo's model (`make demo`), when one has been trained here."""
    if not RunLayout(DEMO).is_finished():
        pytest.skip(f"no finished demo run at {DEMO} (make demo)")
    cfg = read_config(DEMO)
    model = load_run(DEMO)
    records = [r for r in read_manifest(cfg.data.manifest, cfg.data.test_split)][:100]
    attributes = read_attributes(Path(cfg.data.manifest).parent)
    rates = peak_report(model, records, attributes).rates()
    with capsys.disabled():
        print(f"\ndemo run, {len(records)} test clips: {_rates(rates)}")
    assert rates["overlap"] >= 0.8
