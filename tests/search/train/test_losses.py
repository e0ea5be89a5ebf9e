"""Losses and the QC target."""

from __future__ import annotations

import torch

from search.train.datasets import IGNORE_INDEX
from search.train.losses import dice_of_prediction, segmentation_loss, soft_dice_loss


def _onehot_logits(labels: torch.Tensor, n_classes: int, scale: float = 20.0) -> torch.Tensor:
    return torch.nn.functional.one_hot(labels, n_classes).movedim(-1, 1).float() * scale


def test_dice_of_prediction_perfect_disjoint_and_empty():
    y = torch.zeros(3, 8, 8, dtype=torch.long)
    y[0, 2:5, 2:5] = 1
    y[1, 2:5, 2:5] = 1
    pred = y.clone()
    pred[1] = 0
    pred[1, 6:8, 6:8] = 1  # disjoint from the truth
    d = dice_of_prediction(_onehot_logits(pred, 2), y)
    torch.testing.assert_close(d, torch.tensor([1.0, 0.0, 1.0]))  # third: nothing to find, nothing found


def test_dice_of_prediction_half_overlap_and_ignore():
    y = torch.zeros(1, 4, 4, dtype=torch.long)
    y[0, :2, :] = 1  # 8 px
    pred = torch.zeros_like(y)
    pred[0, :1, :] = 1  # 4 px, all inside
    assert abs(float(dice_of_prediction(_onehot_logits(pred, 2), y)) - 2 * 4 / 12) < 1e-6
    y_ign = y.clone()
    y_ign[0, 1, :] = IGNORE_INDEX  # the missed row no longer counts
    assert abs(float(dice_of_prediction(_onehot_logits(pred, 2), y_ign)) - 1.0) < 1e-6


def test_losses_small_for_perfect_logits_large_for_wrong():
    y = torch.randint(0, 4, (2, 6, 6))
    good = _onehot_logits(y, 4)
    bad = _onehot_logits((y + 1) % 4, 4)
    assert float(soft_dice_loss(good, y)) < 0.01
    assert float(soft_dice_loss(bad, y)) > 0.9
    assert float(segmentation_loss(good, y)) < float(segmentation_loss(bad, y))


def test_ignored_pixels_do_not_contribute():
    y = torch.randint(0, 2, (1, 6, 6))
    logits = torch.randn(1, 2, 6, 6)
    y_ign = y.clone()
    y_ign[0, :3] = IGNORE_INDEX
    changed = logits.clone()
    changed[0, :, :3] = torch.randn(2, 3, 6) * 10
    torch.testing.assert_close(segmentation_loss(logits, y_ign), segmentation_loss(changed, y_ign))
