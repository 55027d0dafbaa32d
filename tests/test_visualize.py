"""Attention maps (head mean, rollout), the Fig. 5 figure, and where the peaks fall on Shapes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from vidcap.cli import main
from vidcap.config import load_config
from vidcap.data.manifest import read_manifest
from vidcap.runs.store import load_run
from vidcap.video import crop_frames, load_clip, read_sampled
from vidcap.visualize import (BlockAttention, _block_matrix, attention_maps, attention_peaks,
                              figure_layout)



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


def test_peaks():
    maps = torch.zeros(2, 16)
    maps[0, 5] = 1.0  # row 1, col 1
    maps[1, 14] = 1.0  # row 3, col 2
    assert attention_peaks(maps, 4) == [(1, 1), (3, 2)]


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
