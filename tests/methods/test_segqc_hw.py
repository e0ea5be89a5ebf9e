"""segqc-hw: presets, the loss of eq. 3, the S1/S2 protocol of the joint search, resume, and the smoke run."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from search.methods.segqc_hw.config import PRESETS, preset
from search.methods.segqc_hw.framework import framework_loss, run_framework
from search.train.losses import dice_of_prediction


class TinySeg(nn.Module):
    """A 1-layer logits net with one architecture logit, enough to test the protocol."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 3, padding=1)
        self.bn = nn.BatchNorm2d(2)
        self.alpha = nn.Parameter(torch.zeros(2))

    def forward(self, x):
        w = torch.softmax(self.alpha, 0)
        return self.bn(self.conv(x)) * w[0] + self.conv(x) * w[1]

    def arch_parameters(self):
        return [self.alpha]

    def weight_parameters(self):
        return [p for n, p in self.named_parameters() if n != "alpha"]


class TinyQc(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(6, 4, 3, padding=1)
        self.fc = nn.Linear(4, 1)
        self.alpha = nn.Parameter(torch.zeros(2))

    def forward(self, image, probs, unc):
        x = torch.relu(self.conv(torch.cat([image, probs, unc], 1))).mean((2, 3))
        return torch.sigmoid(self.fc(x) + self.alpha[0] - self.alpha[1])

    def arch_parameters(self):
        return [self.alpha]

    def weight_parameters(self):
        return [p for n, p in self.named_parameters() if n != "alpha"]


def test_presets_are_typed_values_and_seed_override_shifts_search_seeds() -> None:
    for name in PRESETS:
        cfg = preset(name)
        assert cfg.preset == name
        assert cfg.search.lambda1 == 1.0 and cfg.search.lambda2 == pytest.approx(0.001)
        assert cfg.space.seg_init_filters == 4 and cfg.space.qc_init_filters == 8 and cfg.space.nodes == 3
        json.dumps(cfg.to_dict())
    paper = preset("paper")
    assert (paper.search.warmup_epochs, paper.search.alternate_epochs, len(paper.search.seeds)) == (40, 40, 5)
    assert (paper.data.n_s1, paper.data.n_s2, paper.data.n_test, paper.data.resolution) == (40, 40, 20, 256)
    shifted = preset("default", seed=3)
    assert shifted.seed == 3 and shifted.search.seeds == (3,)
    with pytest.raises(ValueError, match="unknown segqc-hw preset"):
        preset("huge")


def test_qc_target_is_true_dice_of_hard_segmentation_and_detached() -> None:
    logits = torch.zeros(2, 2, 4, 4, requires_grad=True)
    with torch.no_grad():
        logits[0, 1, :2] = 1.0  # predicts the top half
        logits[1, 1] = 1.0  # predicts everything
    masks = torch.zeros(2, 4, 4, dtype=torch.int64)
    masks[:, :2] = 1
    dice = dice_of_prediction(logits, masks)
    assert dice.tolist() == pytest.approx([1.0, 2 * 8 / (16 + 8)])
    assert not dice.requires_grad


def test_loss_is_ce_plus_lambda1_mse_plus_lambda2_latency() -> None:
    torch.manual_seed(0)
    seg, qc = TinySeg(), TinyQc()
    x = torch.rand(4, 3, 8, 8)
    y = (torch.rand(4, 8, 8) > 0.5).long()
    out = run_framework(seg, qc, x, y)
    lat = torch.tensor(40.0, requires_grad=True)
    terms = framework_loss(out, y, lambda1=1.0, lambda2=0.001, latency_ms=lat)
    ce = nn.functional.cross_entropy(out.logits, y)
    mse = nn.functional.mse_loss(out.predicted_dice, out.true_dice)
    assert float(terms.total.detach()) == pytest.approx(float((ce + mse).detach()) + 0.001 * 40.0, rel=1e-6)
    terms.total.backward()
    assert lat.grad is not None and float(lat.grad) == pytest.approx(0.001)
    # The QC error reaches the segmentation weights through its probabilities (joint loss) ...
    seg.zero_grad()
    out = run_framework(seg, qc, x, y)
    framework_loss(out, y, lambda1=1.0, lambda2=0.0, with_ce=False).total.backward()
    assert seg.conv.weight.grad is not None and seg.conv.weight.grad.abs().sum() > 0
    # ... but not when the segmentation net is frozen (S2 batches).
    seg.zero_grad()
    out = run_framework(seg, qc, x, y, seg_frozen=True)
    framework_loss(out, y, lambda1=1.0, lambda2=0.0, with_ce=False).total.backward()
    assert seg.conv.weight.grad is None or seg.conv.weight.grad.abs().sum() == 0
