"""Train a seg + QC pair from scratch (derived or handcrafted) and score it on held-out patients.

The same harness serves every row of Table II, so the searched pairs and the baselines see the same
patients, epochs, optimiser and augmentation:

1. segmentation net on S1 (CE + soft Dice, ``search.train.loop.fit``, checkpoint per epoch; optionally plus a
   pixel-wise distillation term from a trained teacher, :class:`Distillation`);
2. QC net on the training part of S2 with the segmentation net frozen in eval mode: its target is
   the true Dice of the frozen net's hard segmentation of each (augmented) frame;
3. evaluation, without augmentation, on the validation part of S2 and on the test patients:
   per-frame true Dice, predicted Dice, their MAE and Pearson correlation, overall and per
   acquisition-quality bin.

The paper retrains "on 60 patients and validates on the rest": here 40 (S1, seg) + 20 (S2, QC) train
and the other 20 of S2 validate; patients the seg net trained on never train the QC net.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from app.data.case import Case
from app.metrics import qc_calibration
from search import distributed
from search.methods.segqc_hw.config import AugmentConfig, RetrainConfig
from search.methods.segqc_hw.data import frame_dataset, frame_meta
from search.train.cine_rows import read_json, write_json
from search.train.evaluate import evaluate_qc, torch_qc_predictor, torch_seg_predictor
from search.train.loop import TrainConfig, fit, seed_everything
from search.train.restarts import RestartedTraining, attempt_checkpoint, fit_with_restarts
from search.train.losses import dice_of_prediction, distillation_loss, segmentation_loss
from search.train.seg_outputs import probs_and_uncertainty

log = logging.getLogger(__name__)


class _WithFrozenPart(nn.Module):
    """A module training one submodule beside another that stays frozen: the frozen one (the attribute named by
    ``FROZEN``, so checkpoints keep their keys) gets no gradients and stays in eval mode (running BatchNorm
    statistics, as deployed) whatever ``train()`` is asked."""

    FROZEN: str

    def _freeze(self) -> None:
        for p in getattr(self, self.FROZEN).parameters():
            p.requires_grad_(False)

    def train(self, mode: bool = True) -> "_WithFrozenPart":
        super().train(mode)
        getattr(self, self.FROZEN).eval()
        return self


class QcOnFrozenSeg(_WithFrozenPart):
    """The QC net trained on the outputs of a frozen segmentation net.

    ``train()`` only ever puts the QC net in training mode; the segmentation net stays in eval mode
    (running BatchNorm statistics, as deployed) and gets no gradients.
    """

    FROZEN = "seg"

    def __init__(self, seg: nn.Module, qc: nn.Module):
        super().__init__()
        self.seg = seg
        self.qc = qc
        self._freeze()

    def forward(self, images: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``images (N, 3, H, W), masks (N, H, W) -> (predicted Dice (N,), true Dice (N,))``."""
        with torch.no_grad():
            logits = self.seg(images)
            probs, uncertainty = probs_and_uncertainty(logits)
            target = dice_of_prediction(logits, masks)
        return self.qc(images, probs, uncertainty).reshape(-1), target


@dataclass
class Distillation:
    """A trained segmentation net whose soft predictions a seg net learns from beside the labels.

    The seg loss becomes ``CE + soft Dice + weight * T^2 * KL(teacher || student)`` per pixel at temperature
    ``T`` (``search.train.losses.distillation_loss``), as once-for-all and BigNAS train their subnets from the
    largest network. The teacher stays frozen in eval mode (running BatchNorm statistics, as deployed).
    """

    teacher: nn.Module
    weight: float = 1.0
    temperature: float = 2.0

    def __post_init__(self) -> None:
        if self.weight <= 0 or self.temperature <= 0:
            raise ValueError(f"distillation weight and temperature must be > 0, got {self.weight:g} and "
                             f"{self.temperature:g}")


class SegWithTeacher(_WithFrozenPart):
    """A seg net in training beside a frozen teacher: ``images -> (student logits, teacher logits)``.

    ``train()`` only ever puts the student in training mode; the teacher gets no gradients.
    """

    FROZEN = "teacher"

    def __init__(self, seg: nn.Module, teacher: nn.Module):
        super().__init__()
        self.seg = seg
        self.teacher = teacher
        self._freeze()

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            teacher_logits = self.teacher(images)
        return self.seg(images), teacher_logits


def _on_device(model: nn.Module, batch) -> tuple[torch.Tensor, torch.Tensor]:
    """The batch moved to wherever the model's parameters are (CPU, or a GPU)."""
    device = next(model.parameters()).device
    images, masks = batch
    return images.to(device, non_blocking=True), masks.to(device, non_blocking=True)


def _seg_loss(model: nn.Module, batch) -> torch.Tensor:
    images, masks = _on_device(model, batch)
    return segmentation_loss(model(images), masks)


def _qc_loss(model: QcOnFrozenSeg, batch) -> torch.Tensor:
    images, masks = _on_device(model, batch)
    predicted, target = model(images, masks)
    return F.mse_loss(predicted, target)


def train_seg(seg: nn.Module, cases: Sequence[Case], cfg: RetrainConfig, augment: AugmentConfig, resolution: int, *,
              seed: int, checkpoint: Path, distill: Distillation | None = None, name: str = "") -> RestartedTraining:
    """The first stage alone: ``seg`` trained in place on ``cases`` (resumable from ``checkpoint``), left in
    eval mode; returns its per-epoch losses and, when it collapsed to background, its restarts from a fresh
    initialisation (``cfg.restart_policy()``, ``search.train.restarts``). With ``distill`` it also learns from
    the teacher's soft predictions (same data order, augmentation and schedule; the checkpoint then holds the
    teacher too)."""
    seg_ds = frame_dataset(cases, resolution, augment, seed=seed * 10 + 1)
    train_cfg = TrainConfig(epochs=cfg.seg_epochs, batch_size=cfg.batch_size, lr=cfg.lr,
                            weight_decay=cfg.weight_decay, seed=seed * 10 + 1)
    policy = cfg.restart_policy()
    if distill is None:
        trained = fit_with_restarts(seg, _seg_loss, seg_ds, train_cfg, checkpoint=checkpoint, policy=policy, name=name)
    else:
        distill.teacher.to(next(seg.parameters()).device)

        def loss(model: SegWithTeacher, batch) -> torch.Tensor:
            images, masks = _on_device(seg, batch)
            student, teacher = model(images)
            return (segmentation_loss(student, masks)
                    + distill.weight * distillation_loss(student, teacher, masks, distill.temperature))

        trainable = [p.requires_grad for p in distill.teacher.parameters()]
        trained = fit_with_restarts(SegWithTeacher(seg, distill.teacher), loss, seg_ds, train_cfg,
                                    checkpoint=checkpoint, net=seg, parameters=seg.parameters(), policy=policy,
                                    name=name)
        for p, flag in zip(distill.teacher.parameters(), trainable):  # the caller's teacher as it was
            p.requires_grad_(flag)
        distill.teacher.cpu()
    seg.eval()
    return trained


@dataclass
class PairData:
    """Patients of one retraining: seg training, QC training, validation, test."""

    seg_train: list[Case]
    qc_train: list[Case]
    val: list[Case]
    test: list[Case]


def retrain_pair(seg: nn.Module, qc: nn.Module, data: PairData, cfg: RetrainConfig, augment: AugmentConfig,
                 resolution: int, *, seed: int, checkpoint_dir: Path,
                 distill: Distillation | None = None, name: str = "") -> tuple[dict[str, list[float]], dict]:
    """Train ``seg`` (learning from ``distill``'s teacher too, when given) then ``qc`` in place (resumable);
    returns the per-epoch losses of both stages and the seg net's restart record (``RestartedTraining.record``).
    The QC net's checkpoint is named after the seg attempt kept (``qc.pt`` for the first, ``qc.restart<k>.pt``), so
    a QC net trained on another attempt of the seg net is never resumed on this one."""
    trained = train_seg(seg, data.seg_train, cfg, augment, resolution, seed=seed, checkpoint=checkpoint_dir / "seg.pt",
                        distill=distill, name=name)
    qc_losses = train_qc(seg, qc, data.qc_train, cfg, augment, resolution, seed=seed,
                         checkpoint=attempt_checkpoint(checkpoint_dir / "qc.pt", trained.kept))
    return {"seg": trained.losses, "qc": qc_losses}, trained.record()


def train_qc(seg: nn.Module, qc: nn.Module, cases: Sequence[Case], cfg: RetrainConfig, augment: AugmentConfig,
             resolution: int, *, seed: int, checkpoint: Path) -> list[float]:
    """The second stage alone: ``qc`` trained in place on ``cases`` to predict the Dice of the trained ``seg``, which
    stays frozen (resumable from ``checkpoint``); both left in eval mode; returns the QC net's per-epoch losses."""
    qc_ds = frame_dataset(cases, resolution, augment, seed=seed * 10 + 2)
    losses = fit(QcOnFrozenSeg(seg, qc), _qc_loss, qc_ds,
                 TrainConfig(epochs=cfg.qc_epochs, batch_size=cfg.batch_size, lr=cfg.lr,
                             weight_decay=cfg.weight_decay, seed=seed * 10 + 2),
                 checkpoint=checkpoint, parameters=qc.parameters())
    seg.eval(), qc.eval()
    return losses


def score_pair(seg: nn.Module, qc: nn.Module | None, cases: Sequence[Case], resolution: int, n_classes: int = 2) -> dict:
    """Per-frame true and predicted Dice on ``cases`` (no augmentation), with summaries (nets moved to CPU).

    A frame's true Dice is the mean over the foreground classes (``n_classes`` with background). Without a
    QC net (``qc`` None: the segmentation net scored alone) every predicted Dice is NaN, and so are the QC
    MAE and Pearson (``n``, the QC-scored frames, is then 0; ``frames`` still holds every frame).

    Returns:
        ``{"dice_mean", "qc_mae", "qc_pearson", "n", "per_bin": {bin: {...}}, "frames": [...]}``,
        each frame ``{"patient", "quality", "quality_bin", "true", "predicted"}``.
    """
    seg.cpu()
    qc_predict = torch_qc_predictor(qc.cpu()) if qc is not None else (lambda *_: float("nan"))
    ds = frame_dataset(cases, resolution, None, seed=0)
    result = evaluate_qc(torch_seg_predictor(seg), qc_predict, ds, n_classes=n_classes)
    frames = [dict(m, true=float(t), predicted=float(p))
              for m, t, p in zip(frame_meta(cases), result["true"], result["predicted"])]
    return summarise(frames)


def summarise(frames: list[dict]) -> dict:
    """Dice mean, QC MAE and Pearson over ``frames``, overall and per quality bin."""
    def block(sel: list[dict]) -> dict:
        cal = qc_calibration([f["predicted"] for f in sel], [f["true"] for f in sel])
        return {"dice_mean": float(np.mean([f["true"] for f in sel])) if sel else float("nan"),
                "dice_std": float(np.std([f["true"] for f in sel])) if sel else float("nan"), **cal}

    out = block(frames)
    bins = sorted({f["quality_bin"] for f in frames if f["quality_bin"]})
    out["per_bin"] = {b: block([f for f in frames if f["quality_bin"] == b]) for b in bins}
    out["frames"] = frames
    return out


def train_and_score(name: str, seg: nn.Module, qc: nn.Module | None, data: PairData, cfg: RetrainConfig,
                    augment: AugmentConfig, resolution: int, *, seed: int, row_dir: Path,
                    device: str | torch.device = "cpu", n_classes: int = 2,
                    seg_losses: list[float] | None = None, seg_training: dict | None = None,
                    distill: Distillation | None = None) -> dict:
    """Retrain a pair on ``device`` (resuming mid-way from ``row_dir/seg.pt`` and ``qc.pt``) and score it on
    validation and test (on the CPU) with ``n_classes`` classes; writes ``row_dir/scores.json`` and
    ``weights.pt``. The pair is left on the CPU, trained, in eval mode. With ``qc`` None the segmentation
    net is trained and scored alone (its QC fields NaN, see ``score_pair``; ``weights.pt`` holds ``qc: None``).
    With ``seg_losses`` (the learning curve of a ``seg`` already trained, e.g. read back from a seg-only row)
    only the QC net is trained, on that frozen ``seg``: the same pair as a whole retraining, whose first stage is
    exactly that seg-only training (``seg_training``: that row's restart record, carried over).
    ``distill``: the seg net also learns from a teacher (:class:`Distillation`).
    ``scores.json`` carries ``seg_training``, the seg net's attempts (``search.train.restarts``): more than one
    when a training collapsed to background and was started again."""
    if seg_losses is not None and qc is None:
        raise ValueError(f"{name}: a trained seg net (seg_losses given) but no QC net to train")
    if seg_losses is not None and distill is not None:
        raise ValueError(f"{name}: a trained seg net (seg_losses given) has nothing left to distil")
    row_dir.mkdir(parents=True, exist_ok=True)
    seg.to(device)
    if qc is None:
        trained = train_seg(seg, data.seg_train, cfg, augment, resolution, seed=seed, checkpoint=row_dir / "seg.pt",
                            distill=distill, name=name)
        losses, seg_training = {"seg": trained.losses}, trained.record()
    else:
        qc.to(device)
        if seg_losses is None:
            losses, seg_training = retrain_pair(seg, qc, data, cfg, augment, resolution, seed=seed,
                                                checkpoint_dir=row_dir, distill=distill, name=name)
        else:
            losses = {"seg": list(seg_losses), "qc": train_qc(seg, qc, data.qc_train, cfg, augment, resolution,
                                                              seed=seed, checkpoint=row_dir / "qc.pt")}
        qc.cpu()
    seg.cpu()
    if not distributed.is_main():  # under torchrun rank 0 scores and writes the row; the others get its scores
        return distributed.share_from_main(None)
    scores = {"name": name, "losses": losses, "seg_training": seg_training,
              "val": score_pair(seg, qc, data.val, resolution, n_classes),
              "test": score_pair(seg, qc, data.test, resolution, n_classes)}
    log.info("%s: val Dice %.3f MAE %.3f | test Dice %.3f MAE %.3f r %.2f", name, scores["val"]["dice_mean"],
             scores["val"]["qc_mae"], scores["test"]["dice_mean"], scores["test"]["qc_mae"], scores["test"]["qc_pearson"])
    torch.save({"seg": seg.state_dict(), "qc": qc.state_dict() if qc is not None else None}, row_dir / "weights.pt")
    write_json(row_dir / "scores.json", scores)
    return distributed.share_from_main(scores)


def load_scores(name: str, seg: nn.Module, qc: nn.Module | None, row_dir: Path) -> dict:
    """A finished row read back: its ``scores.json``, and its trained weights loaded into ``seg`` and ``qc``.

    A row trained elsewhere (e.g. on a GPU machine, ``--stop-after retrain``) may bring only its scores:
    latency and FLOPs need only the architecture, and the scores then say ``weights_here: False`` (the
    export refuses such a pair, naming the missing file). The pair is left on the CPU, in eval mode.
    ``qc`` None: a segmentation net trained alone (``train_and_score`` without a QC net).
    """
    scores = read_json(row_dir / "scores.json")
    weights = row_dir / "weights.pt"
    if weights.is_file():
        state = torch.load(weights, map_location="cpu", weights_only=True)
        seg.load_state_dict(state["seg"])
        if qc is not None:
            qc.load_state_dict(state["qc"])
    else:
        log.info("%s: scores from an earlier run, weights not here (architecture only)", name)
        scores["weights_here"] = False
    nets = [n.cpu().eval() for n in (seg, qc) if n is not None]
    distributed.finish_stage(f"loaded {row_dir.name}", *nets)  # under torchrun: every rank read the same pair
    return scores


def init_seed(seed: int) -> None:
    """Seed weight initialisation of the next networks built."""
    seed_everything(seed)
