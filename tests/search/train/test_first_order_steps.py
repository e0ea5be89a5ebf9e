"""First-order architecture steps take no weight gradients (msnas-hw, rtdnas): cheaper, and the same alphas."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from search.methods.rtdnas.config import RtSearchConfig
from search.methods.rtdnas.search import RtdnasSearch
from search.train.bilevel import frozen
from tests.search.tiny_supernet import TinySupernet, tiny_loader


def test_frozen_restores_exactly_what_it_froze_even_on_errors():
    a, b = nn.Parameter(torch.zeros(2)), nn.Parameter(torch.zeros(2), requires_grad=False)
    with pytest.raises(RuntimeError, match="boom"):
        with frozen([a, b]):
            assert not a.requires_grad and not b.requires_grad
            raise RuntimeError("boom")
    assert a.requires_grad and not b.requires_grad





def _arch_step_with(freeze: bool) -> tuple[torch.Tensor, int]:
    torch.manual_seed(0)
    net = TinySupernet()
    cfg = RtSearchConfig(warmup_steps=0, search_steps=1, batch_size=2, arch_lr=0.05)
    search = RtdnasSearch(net, net.latency, tiny_loader(0), tiny_loader(1), cfg, ub_ms=4.0,
                          generator=torch.Generator().manual_seed(0))
    weights_before = [p.detach().clone() for p in net.weight_parameters()]
    computed = []  # a tensor hook runs whenever autograd computes that weight's gradient
    for p in net.weight_parameters():
        p.register_hook(lambda g: computed.append(g.shape))
    if freeze:
        ce, lat = search._arch_step()
    else:  # the same step computing (and discarding) the weight gradients, as before
        import search.methods.rtdnas.search as module
        import contextlib

        real = module.frozen
        module.frozen = lambda params: contextlib.nullcontext()
        try:
            ce, lat = search._arch_step()
        finally:
            module.frozen = real
    assert math.isfinite(ce) and lat == pytest.approx(5.5)
    for p, p0 in zip(net.weight_parameters(), weights_before):
        assert torch.equal(p.detach(), p0) and p.requires_grad
    return net.alpha.detach().clone(), len(computed)


def test_rtdnas_arch_step_skips_weight_gradients_and_moves_the_alphas_alike():
    alpha_frozen, computed = _arch_step_with(freeze=True)
    assert computed == 0  # no weight gradient was computed
    alpha_plain, computed_plain = _arch_step_with(freeze=False)
    assert computed_plain == 4  # (without freezing: both convs' weight and bias)
    assert not torch.equal(alpha_frozen, torch.zeros(2))
    assert torch.allclose(alpha_frozen, alpha_plain, atol=1e-7)  # same architecture update
