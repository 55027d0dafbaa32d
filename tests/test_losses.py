from __future__ import annotations

import math
import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from vidcap.losses import IGNORE_INDEX, caption_loss, contrastive_loss

SQRT2 = math.sqrt(2.0)


def test_contrastive_loss_by_hand():
    # video rows v1 = (1, 0), v2 = (0, 2); text rows t1 = (3, 0), t2 = (1, 1).
    # After L2 normalisation the cosine similarities are v1.t1 = 1, v1.t2 = 1/sqrt2, v2.t1 = 0,
    # v2.t2 = 1/sqrt2; divided by the temperature 0.5: [[2, sqrt2], [0, sqrt2]].
    video = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    text = torch.tensor([[3.0, 0.0], [1.0, 1.0]])
    v2t = (-math.log(math.exp(2) / (math.exp(2) + math.exp(SQRT2)))
           - math.log(math.exp(SQRT2) / (1 + math.exp(SQRT2)))) / 2
    # text -> video: t1 sees [2, 0] (label 0), t2 sees [sqrt2, sqrt2] (label 1)
    t2v = (-math.log(math.exp(2) / (math.exp(2) + 1)) + math.log(2)) / 2
    one_way = contrastive_loss(video, text, 0.5, symmetric=False)
    both = contrastive_loss(video, text, torch.tensor(0.5), symmetric=True)
    assert one_way.item() == pytest.approx(v2t, rel=1e-6)  # the paper's eq. 3
    assert both.item() == pytest.approx((v2t + t2v) / 2, rel=1e-6)


def test_contrastive_loss_is_scale_invariant_and_rejects_bad_shapes():
    torch.manual_seed(0)
    v, t = torch.randn(5, 8), torch.randn(5, 8)
    torch.testing.assert_close(contrastive_loss(v, t, 0.07), contrastive_loss(3 * v, 0.2 * t, 0.07))
    with pytest.raises(ValueError, match="must both be"):
        contrastive_loss(v, t[:4], 0.07)


def test_caption_loss_ignores_padding():
    logits = torch.tensor([[[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]], [[0.0, 0.0, 3.0], [9.0, 9.0, 9.0]]])
    labels = torch.tensor([[0, 1], [2, IGNORE_INDEX]])
    nll = [-math.log(math.exp(2) / (math.exp(2) + 2)), -math.log(math.e / (math.e + 2)),
           -math.log(math.exp(3) / (math.exp(3) + 2))]
    assert caption_loss(logits, labels).item() == pytest.approx(sum(nll) / 3, rel=1e-6)


# -- two processes (gloo) against one ------------------------------------------------------------

WORLD, ROWS, DIM = 2, 3, 5


def global_batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(WORLD * ROWS, DIM, generator=g), torch.randn(WORLD * ROWS, DIM, generator=g)


def _worker(rank: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.distributed.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        video, text = global_batch()
        rows = slice(rank * ROWS, (rank + 1) * ROWS)
        results = {}
        for symmetric in (False, True):
            v = video[rows].clone().requires_grad_()
            t = text[rows].clone().requires_grad_()
            loss = contrastive_loss(v, t, 0.07, symmetric=symmetric)
            loss.backward()
            results[symmetric] = (loss.detach(), v.grad, t.grad)
        torch.save(results, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        torch.distributed.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_gloo_processes_equal_one_process_on_the_global_batch(tmp_path):
    mp.spawn(_worker, args=(free_port(), str(tmp_path)), nprocs=WORLD, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]
    video, text = global_batch()
    for symmetric in (False, True):
        v = video.clone().requires_grad_()
        t = text.clone().requires_grad_()
        single = contrastive_loss(v, t, 0.07, symmetric=symmetric)
        single.backward()
        # each rank averages over its own rows: their mean is the single-process loss
        mean = sum(r[symmetric][0] for r in ranks) / WORLD
        torch.testing.assert_close(mean, single.detach())
        # each rank's gradient sums every rank's loss through the gathered features; DDP divides
        # by the world size, which gives the single-process gradient exactly
        grad_v = torch.cat([r[symmetric][1] for r in ranks]) / WORLD
        grad_t = torch.cat([r[symmetric][2] for r in ranks]) / WORLD
        torch.testing.assert_close(grad_v, v.grad)
        torch.testing.assert_close(grad_t, t.grad)
