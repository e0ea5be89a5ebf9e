"""Every baseline of the registry, at tiny sizes: output shapes, finite values, gradients everywhere."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from search.baselines.registry import BASELINES, get_baseline
from search.baselines.resnet_qc import ResNetQc
from search.baselines.training import build_cine_net
from search.baselines.unet import UNet, UNetConfig, pooling_factors


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_registry_entry_builds_and_trains(name):
    spec = get_baseline(name)
    small = dataclasses.replace(spec.unet, initial_filters=2)
    spec = dataclasses.replace(spec, unet=small)
    side = 2 ** (small.depth - 1) * 2
    if spec.modality == "echo":
        net = UNet(small)
        x = torch.randn(2, small.in_channels, side, side)
        out = net(x)
        assert out.shape == (2, small.n_classes, side, side)
    else:
        net, _ = build_cine_net(spec, clip_length=6)
        x = torch.randn(1, 1, 6, side, side)
        out = net(x)
        assert out.shape == (1, small.n_classes, 6, side, side)
    assert torch.isfinite(out).all()
    out.square().mean().backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing


def test_resnet_qc_predicts_a_dice_per_sample_with_gradients():
    spec = get_baseline("unet8-resnet18")
    qc = ResNetQc(dataclasses.replace(spec.qc, width=4))
    image, probs, unc = torch.randn(3, 3, 32, 32), torch.rand(3, 2, 32, 32), torch.rand(3, 1, 32, 32)
    dice = qc(image, probs, unc)
    assert dice.shape == (3, 1) and ((dice >= 0) & (dice <= 1)).all()
    dice.sum().backward()
    assert all(p.grad is not None for p in qc.parameters())


def test_3d_pooling_keeps_time_even_and_shapes_round_trip():
    cfg = UNetConfig(dims=3, in_channels=1, n_classes=4, depth=4, initial_filters=2, clip_length=20)
    assert pooling_factors(cfg) == [(2, 2, 2), (2, 2, 2), (1, 2, 2)]  # 20 -> 10 -> 5 -> 5
    assert UNet(cfg)(torch.randn(1, 1, 20, 16, 16)).shape == (1, 4, 20, 16, 16)


def test_paper_widths():
    assert get_baseline("unet2d-d5-if64").unet.initial_filters == 64
    assert get_baseline("unet3d-d3-if16").unet.depth == 3
    with pytest.raises(KeyError, match="known"):
        get_baseline("unet99")
