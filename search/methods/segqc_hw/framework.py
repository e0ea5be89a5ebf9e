"""The seg -> QC framework of the segqc-hw paper: forward pass, QC target and the loss of eq. 3.

``L = CE(seg) + lambda1 * MSE(predicted Dice, true Dice) + lambda2 * LAT``. The segmentation net
returns class logits; its probabilities and normalised-entropy uncertainty
(``search.train.seg_outputs.probs_and_uncertainty``, the same function the exported model runs)
go with the image into the QC net. The QC target is the true Dice of the *current* hard
segmentation against the ground truth, per image, detached. Only the target is detached: on S1
batches the QC error also reaches the segmentation net through its probabilities and
uncertainty, as the paper's single joint loss implies (``detach_qc_input`` turns that off).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from search.train.losses import dice_of_prediction, soft_dice_loss
from search.train.seg_outputs import probs_and_uncertainty

@dataclass
class FrameworkOutput:
    """One forward pass of seg then QC on a batch.

    Attributes:
        logits: ``(N, 2, H, W)`` segmentation logits.
        predicted_dice: ``(N,)`` QC output in [0, 1].
        true_dice: ``(N,)`` Dice of the hard segmentation (detached).
    """

    logits: torch.Tensor
    predicted_dice: torch.Tensor
    true_dice: torch.Tensor


def run_framework(seg: nn.Module, qc: nn.Module, images: torch.Tensor, masks: torch.Tensor, *,
                  seg_frozen: bool = False, detach_qc_input: bool = False) -> FrameworkOutput:
    """Segment, compute the QC target, predict Dice.

    Args:
        seg: ``(N, 3, H, W) -> (N, 2, H, W)`` logits.
        qc: ``(image, probs, uncertainty) -> (N, 1)`` predicted Dice.
        images: ``(N, 3, H, W)``.
        masks: ``(N, H, W)``.
        seg_frozen: Run the segmentation net without gradients (S2 batches).
        detach_qc_input: Stop the QC error from reaching the segmentation net.
    """
    if seg_frozen:
        with torch.no_grad():
            logits = seg(images)
    else:
        logits = seg(images)
    probs, uncertainty = probs_and_uncertainty(logits)
    if detach_qc_input or seg_frozen:
        probs, uncertainty = probs.detach(), uncertainty.detach()
    predicted = qc(images, probs, uncertainty).reshape(-1)
    return FrameworkOutput(logits=logits, predicted_dice=predicted, true_dice=dice_of_prediction(logits.detach(), masks))


@dataclass
class LossTerms:
    """The parts of eq. 3 (floats, for logging) and their weighted sum (a tensor, for backward)."""

    total: torch.Tensor
    ce: float
    mse: float
    latency_ms: float


def framework_loss(out: FrameworkOutput, masks: torch.Tensor, *, lambda1: float, lambda2: float,
                   latency_ms: torch.Tensor | None = None, with_ce: bool = True,
                   seg_dice_weight: float = 0.0, latency_budget_ms: float = 0.0) -> LossTerms:
    """``CE + lambda1 * MSE + lambda2 * LAT`` (eq. 3 of the paper).

    Args:
        out: Forward pass of the framework.
        masks: ``(N, H, W)`` ground truth.
        lambda1: Weight of the QC error.
        lambda2: Weight of the expected latency (ms).
        latency_ms: Scalar expected latency of seg + QC, or None (weight steps: no latency term).
        with_ce: Include the segmentation cross-entropy (False on S2 weight steps: seg is frozen).
        seg_dice_weight: Weight of a soft-Dice term added to the CE (0 = eq. 3 exactly; see
            ``SearchConfig.seg_dice_weight`` for why the shorter presets use 1).
        latency_budget_ms: > 0: only the expected latency above this budget is charged,
            ``lambda2 * max(0, LAT - budget)`` (``SearchConfig.latency_budget_ms``); 0: eq. 3's ``lambda2 * LAT``.
            ``LossTerms.latency_ms`` is the whole expected latency either way.
    """
    mse = F.mse_loss(out.predicted_dice, out.true_dice)
    total = lambda1 * mse
    ce_value = float("nan")
    if with_ce:
        ce = F.cross_entropy(out.logits, masks)
        total = total + ce
        ce_value = float(ce.detach())
        if seg_dice_weight:
            total = total + seg_dice_weight * soft_dice_loss(out.logits, masks)
    lat_value = float("nan")
    if latency_ms is not None:
        charged = torch.relu(latency_ms - latency_budget_ms) if latency_budget_ms > 0 else latency_ms
        total = total + lambda2 * charged
        lat_value = float(latency_ms.detach())
    return LossTerms(total=total, ce=ce_value, mse=float(mse.detach()), latency_ms=lat_value)
