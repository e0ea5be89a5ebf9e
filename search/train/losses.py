"""Segmentation losses (cross-entropy + soft Dice) and the QC target (true Dice of a prediction)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from search.train.datasets import IGNORE_INDEX


def soft_dice_loss(logits: torch.Tensor, labels: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """1 - mean soft Dice over the foreground classes, ignoring ``IGNORE_INDEX`` pixels.

    Args:
        logits: ``(N, C, *spatial)``.
        labels: ``(N, *spatial)`` int64.
    """
    if logits.dtype != torch.float32:  # bf16 autocast (search.train.precision): the loss itself in float32
        logits = logits.float()
    n_classes = logits.shape[1]
    valid = (labels != IGNORE_INDEX).unsqueeze(1).to(logits.dtype)
    probs = torch.softmax(logits, dim=1) * valid
    onehot = F.one_hot(labels.clamp(max=n_classes - 1), n_classes).movedim(-1, 1).to(logits.dtype) * valid
    dims = tuple(range(2, logits.ndim))
    inter = (probs * onehot).sum(dims)[:, 1:]
    denom = (probs + onehot).sum(dims)[:, 1:]
    return 1.0 - ((2.0 * inter + eps) / (denom + eps)).mean()


def segmentation_loss(logits: torch.Tensor, labels: torch.Tensor, dice_weight: float = 1.0) -> torch.Tensor:
    """Cross-entropy + ``dice_weight`` x soft Dice loss (both ignore ``IGNORE_INDEX``)."""
    ce = F.cross_entropy(logits, labels, ignore_index=IGNORE_INDEX)
    if dice_weight == 0:
        return ce
    return ce + dice_weight * soft_dice_loss(logits, labels)


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
                      temperature: float = 2.0) -> torch.Tensor:
    """Pixel-wise knowledge distillation: ``T^2 * KL(softmax(t / T) || softmax(s / T))`` averaged over the pixels
    that are not ``IGNORE_INDEX`` (Hinton et al. 2015; per pixel as in structured KD for segmentation, Liu et al.
    2019). The ``T^2`` keeps its gradient on the scale of a hard-label loss whatever the temperature.

    Args:
        student_logits: ``(N, C, *spatial)``, the network being trained.
        teacher_logits: ``(N, C, *spatial)``, a trained network's (no gradient flows into it).
        labels: ``(N, *spatial)`` int64, only for the ignore mask.
        temperature: Softens both distributions (> 0).
    """
    if temperature <= 0:
        raise ValueError(f"distillation temperature must be > 0, got {temperature:g}")
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(f"student logits {tuple(student_logits.shape)} and teacher logits "
                         f"{tuple(teacher_logits.shape)} differ")
    log_p_student = F.log_softmax(student_logits / temperature, dim=1)
    log_p_teacher = F.log_softmax(teacher_logits.detach() / temperature, dim=1)
    per_pixel = (log_p_teacher.exp() * (log_p_teacher - log_p_student)).sum(dim=1)
    valid = (labels != IGNORE_INDEX).to(per_pixel.dtype)
    return temperature**2 * (per_pixel * valid).sum() / valid.sum().clamp(min=1)


@torch.no_grad()
def dice_of_prediction(probs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """True Dice of the argmax segmentation per sample: the QC network's regression target.

    Mean over the foreground classes present in the prediction or the ground truth; a sample with
    no foreground on either side scores 1 (nothing to find, nothing found).

    Args:
        probs: ``(N, C, *spatial)`` softmax probabilities (or logits).
        labels: ``(N, *spatial)`` int64 (``IGNORE_INDEX`` pixels are left out).

    Returns:
        ``(N,)`` float Dice in [0, 1].
    """
    n_classes = probs.shape[1]
    pred = probs.argmax(dim=1)
    valid = labels != IGNORE_INDEX
    flat = tuple(range(1, labels.ndim))
    scores = torch.zeros(labels.shape[0], n_classes - 1, dtype=torch.float32, device=labels.device)
    present = torch.zeros_like(scores, dtype=torch.bool)
    for c in range(1, n_classes):
        p = (pred == c) & valid
        g = (labels == c) & valid
        denom = p.sum(flat) + g.sum(flat)
        present[:, c - 1] = denom > 0
        scores[:, c - 1] = 2.0 * (p & g).sum(flat) / denom.clamp(min=1)
    n_present = present.sum(1)
    mean = (scores * present).sum(1) / n_present.clamp(min=1)
    return torch.where(n_present > 0, mean, torch.ones_like(mean))
