from __future__ import annotations

import dataclasses

import pytest
import torch

from vidcap.config import MapperConfig
from vidcap.errors import ConfigError
from vidcap.models.mapper import Mapper

B, DV, DLM, S = 3, 24, 32, 1 + 4 * 16


@pytest.mark.parametrize("kind", ["transformer", "mlp"])
@pytest.mark.parametrize("source", ["cls", "tokens"])
def test_prefix_shapes_and_gradients(kind, source):
    torch.manual_seed(0)
    cfg = MapperConfig(kind=kind, input=source, prefix_length=3, num_queries=5, num_layers=1,
                       num_heads=4)
    mapper = Mapper(cfg, DV, DLM, S)
    video = torch.randn(B, DV, requires_grad=True) if source == "cls" else \
        torch.randn(B, S, DV, requires_grad=True)
    prefix = mapper(video)
    assert prefix.shape == (B, 5, DLM)
    prefix.sum().backward()
    assert video.grad is not None and video.grad.abs().sum() > 0
    # each clip's prefix depends on its own features only
    torch.testing.assert_close(mapper(video[:1]), prefix[:1], atol=1e-5, rtol=1e-5)


def test_transformer_prefix_is_the_query_outputs():
    torch.manual_seed(0)
    cfg = MapperConfig(prefix_length=3, num_queries=2, num_layers=1, num_heads=4)
    mapper = Mapper(cfg, DV, DLM, S).eval()
    cls = torch.randn(B, DV)
    p = mapper.expand(cls).view(B, 3, DLM)
    q = mapper.queries.expand(B, -1, -1)
    expected = mapper.transformer(torch.cat([p, q], 1))[:, 3:]
    torch.testing.assert_close(mapper(cls), expected)
    with torch.no_grad():  # the queries are part of the computation
        mapper.queries.add_(1.0)
    assert not torch.allclose(mapper(cls), expected)


def test_errors():
    with pytest.raises(ConfigError, match="num_heads"):
        Mapper(MapperConfig(num_heads=5), DV, DLM, S)
    mapper = Mapper(dataclasses.replace(MapperConfig(num_heads=4, num_layers=1), input="tokens"),
                    DV, DLM, S)
    with pytest.raises(ValueError, match="expects a 3-d tensor"):
        mapper(torch.randn(B, DV))
