"""Attention maps (head mean, rollout), the Fig. 5 figure, and where the peaks fall on Shapes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from vidcap.cli import main
from vidcap.config import load_config
from vidcap.data.manifest import read_manifest
from vidcap.data.shapes import read_attributes
from vidcap.models.mffcl import MFFCL
from vidcap.training.checkpoint import load_run
from vidcap.video import crop_frames, load_clip, read_sampled
from vidcap.visualize import (BlockAttention, _block_matrix, attention_maps, attention_peaks,
                              box_in_model_pixels, figure_layout, patch_hits, peak_report)

from .conftest import TINY


def _softmax_rows(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)).softmax(-1)


def test_head_mean_is_the_encoders_attention(tiny_run: Path, tiny_shapes: Path):
    model = load_run(tiny_run)
    record = read_manifest(tiny_shapes, "test")[0]
    pixels = load_clip(record.video_path, model.video_cfg)
    expected = model.encode_video(pixels[None], with_attention=True).attention[0].mean(1)
    maps = attention_maps(model, pixels)  # the encoder's attention_layer (the last block)
    assert maps.shape == (4, 16)
    torch.testing.assert_close(maps, expected)
    torch.testing.assert_close(maps.sum(-1), torch.ones(4))
    first = attention_maps(model, pixels, layer=0)
    assert not torch.allclose(first, maps)
    rolled = attention_maps(model, pixels, method="rollout")
    torch.testing.assert_close(rolled.sum(-1), torch.ones(4))
    assert (rolled >= 0).all()


def test_rollout_of_one_block_without_temporal_mixing_is_its_spatial_attention():
    T, N, heads = 3, 4, 2
    spatial = _softmax_rows((T, heads, 1 + N, 1 + N), 0)
    identity = torch.eye(T).expand(N, heads, T, T)  # every patch attends to itself over time
    matrix = _block_matrix(BlockAttention(spatial, identity), T, N)
    torch.testing.assert_close(matrix.sum(-1), torch.ones(1 + T * N))  # rows stay stochastic
    cls_row = matrix[0, 1:].reshape(T, N)
    # half the CLS comes through the residual; the other half is its attention, frame-averaged
    torch.testing.assert_close(cls_row, 0.5 * spatial.mean(1)[:, 0, 1:] / T)


def test_rollout_follows_temporal_attention_to_other_frames():
    T, N, heads = 2, 2, 1
    spatial = torch.zeros(T, heads, 1 + N, 1 + N)
    spatial[:, :, :, 1] = 1.0  # everyone (the CLS too) reads patch 0 of its frame
    temporal = torch.zeros(N, heads, T, T)
    temporal[:, :, :, 1] = 1.0  # each patch reads its copy in frame 1
    matrix = _block_matrix(BlockAttention(spatial, temporal), T, N)
    cls_row = matrix[0, 1:].reshape(T, N)
    # CLS -> patch 0 of frames 0 and 1 (0.25 each) -> half stays, half comes from frame 1
    torch.testing.assert_close(cls_row, torch.tensor([[0.125, 0.0], [0.375, 0.0]]))


def test_peaks_and_boxes():
    maps = torch.zeros(2, 16)
    maps[0, 5] = 1.0  # row 1, col 1
    maps[1, 14] = 1.0  # row 3, col 2
    assert attention_peaks(maps, 4) == [(1, 1), (3, 2)]
    # patch (1, 1) of 8 px covers [8, 16) x [8, 16), its centre (12, 12)
    assert patch_hits((1, 1), (10.0, 10.0, 14.0, 14.0), 8) == (True, True)
    assert patch_hits((1, 1), (14.0, 14.0, 22.0, 22.0), 8) == (False, True)
    assert patch_hits((1, 1), (16.0, 8.0, 24.0, 16.0), 8) == (False, False)  # touches only
    # a 64 px clip seen at 32 px: every coordinate halves; a 4:3 clip is also centre-cropped
    assert box_in_model_pixels([8, 16, 24, 40], (64, 64), 32) == (4.0, 8.0, 12.0, 20.0)
    assert box_in_model_pixels([40, 0, 80, 30], (60, 80), 30) == (15.0, 0.0, 35.0, 15.0)


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """(start, length) of each run of True."""
    runs, start = [], None
    for i, flag in enumerate(list(flags) + [False]):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            runs.append((start, i - start))
            start = None
    return runs


@pytest.mark.slow
def test_attention_command_draws_every_sampled_frame(tiny_run: Path, tiny_shapes: Path,
                                                    tmp_path: Path, capsys):
    import matplotlib.image

    record = read_manifest(tiny_shapes, "test")[3]
    out = tmp_path / "fig5.png"
    assert main(["attention", str(tiny_run), str(record.video_path), "--out", str(out)]) == 0
    assert "caption:" in capsys.readouterr().out
    cfg = load_config(tiny_run / "config.yaml")
    sampled = read_sampled(record.video_path, cfg.video.num_frames)
    frames = crop_frames(sampled.frames, cfg.video.image_size)
    layout = figure_layout(len(frames), cfg.video.image_size)
    image = np.rint(matplotlib.image.imread(str(out))[..., :3] * 255).astype(np.uint8)
    assert image.shape[:2] == (layout.height, layout.width) == (352, 546)

    # find the panels by image analysis: full-height runs of non-white columns and rows
    # (runs shorter than half a panel are the title's lines of text, when a long caption spans
    # more than half the width)
    ink = (image < 250).any(-1)
    columns = [r for r in _runs(ink.mean(0) > 0.5) if r[1] >= layout.panel // 2]
    rows = [r for r in _runs(ink.mean(1) > 0.5) if r[1] >= layout.panel // 2]
    assert [length for _, length in columns] == [layout.panel] * len(frames)
    assert [length for _, length in rows] == [layout.panel] * 2
    # the top row is each sampled frame, enlarged pixel for pixel; the bottom row is not
    for (x0, w), frame in zip(columns, frames):
        (y0, h), (y1, _) = rows
        top = image[y0:y0 + h, x0:x0 + w]
        np.testing.assert_array_equal(top[::layout.scale, ::layout.scale], frame)
        bottom = image[y1:y1 + h, x0:x0 + w]
        assert np.abs(bottom.astype(int) - top.astype(int)).mean() > 20

    # rollout and another block draw the same layout
    out2 = tmp_path / "rollout.png"
    assert main(["attention", str(tiny_run), str(record.video_path), "--out", str(out2),
                 "--rollout", "--layer", "0"]) == 0
    assert matplotlib.image.imread(str(out2)).shape[:2] == (layout.height, layout.width)


def test_attention_command_fails_in_one_line_on_bad_files(tiny_run: Path, tiny_shapes: Path,
                                                         tmp_path: Path, capsys):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 4)
    out = tmp_path / "never.png"
    for video in (bad, tmp_path / "missing.mp4"):
        assert main(["attention", str(tiny_run), str(video), "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("vidcap: error: ") and video.name in err[0]
    assert not out.exists()
    assert main(["attention", str(tmp_path), str(bad), "--out", str(out)]) == 2
    assert "not a run directory" in capsys.readouterr().err
    good = read_manifest(tiny_shapes, "test")[0].video_path
    assert main(["attention", str(tiny_run), str(good), "--out", str(out), "--layer", "7"]) == 2
    assert "--layer 7: the encoder has 2 blocks" in capsys.readouterr().err
    assert not out.exists()


# -- where the peaks fall on Shapes clips (issue 6: >= 80 % of frames inside the object's box) --
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
# mass and the centre rule against the same untrained model as well as the bar.


def _align_trained(tmp: Path, shapes: Path):
    from vidcap.training.loop import train

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
    return MFFCL.load(run, with_text_encoder=False), untrained


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
    assert after["overlap"] >= 0.8  # the bar: the peak patch lies on the object
    assert after["centre"] >= 0.6 and after["centre"] > before["centre"] + 0.1
    uniform = after["chance_overlap"]
    assert after["mass_overlap"] >= 1.15 * uniform  # attention gathers on the object ...
    assert before["mass_overlap"] <= 1.05 * uniform  # ... which it did not before training
    assert rollout["overlap"] >= 0.8


def _rates(r: dict[str, float]) -> str:
    return (f"centre in box {100 * r['centre']:.0f}% (chance {100 * r['chance_centre']:.0f}), "
            f"overlapping {100 * r['overlap']:.0f}% (chance {100 * r['chance_overlap']:.0f}), "
            f"mass on object {100 * r['mass_overlap']:.0f}%")


DEMO = Path(__file__).resolve().parents[1] / "runs" / "demo"


@pytest.mark.slow
def test_attention_peaks_of_the_demo_run(capsys):
    """An extra check on the demo's model (`make demo`), when one has been trained here."""
    if not (DEMO / "trainer_state.pt").is_file():
        pytest.skip(f"no finished demo run at {DEMO} (make demo)")
    cfg = load_config(DEMO / "config.yaml")
    model = load_run(DEMO)
    records = [r for r in read_manifest(cfg.data.manifest, cfg.data.test_split)][:100]
    attributes = read_attributes(Path(cfg.data.manifest).parent)
    rates = peak_report(model, records, attributes).rates()
    with capsys.disabled():
        print(f"\ndemo run, {len(records)} test clips: {_rates(rates)}")
    assert rates["overlap"] >= 0.8
