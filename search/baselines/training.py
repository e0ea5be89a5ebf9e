"""Training recipes of the baselines on the shared harness.

Echo pair (the protocol of the segqc-hw paper, Zeng et al. 2021, arXiv:2109.06909): the U-net
trains on s1 patients; the QC network trains on s2 patients with the U-net frozen, its target the
true Dice of the U-net's own output on frames the U-net never saw; both are scored on the test
patients. Cine: the U-net (3D on clips, or 2D frame by frame) trains on the train patients' clips.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from search.baselines.registry import BaselineSpec
from search.baselines.resnet_qc import ResNetQc
from search.baselines.unet import FrameWiseUNet, UNet
from search.train.augment import AffineAugmentation
from search.train.datasets import CineClipDataset, EchoFrameDataset
from search.train.loop import TrainConfig, fit, seed_everything
from search.train.restarts import (CLIPS_SCORED, RestartedTraining, RestartPolicy, attempt_checkpoint,
                                    fit_with_restarts)
from search.train.losses import dice_of_prediction, segmentation_loss
from search.train.seg_outputs import probs_and_uncertainty

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int, float], None]


def seg_step(model: nn.Module, batch) -> torch.Tensor:
    """CE + soft Dice on one batch ``(images, labels)``."""
    x, y = batch
    return segmentation_loss(model(x), y)


def qc_step_for(seg: nn.Module) -> Callable[[nn.Module, tuple], torch.Tensor]:
    """The QC loss with ``seg`` frozen: MSE between predicted Dice and the true Dice of ``seg``."""
    seg.eval()
    for p in seg.parameters():
        p.requires_grad_(False)

    def step(qc: nn.Module, batch) -> torch.Tensor:
        x, y = batch
        with torch.no_grad():
            probs, unc = probs_and_uncertainty(seg(x))
            target = dice_of_prediction(probs, y)
        return nn.functional.mse_loss(qc(x, probs, unc).reshape(-1), target)

    return step


@dataclass
class EchoPair:
    """A trained echo segmentation + QC pair, their training curves and the U-net's restart record
    (``search.train.restarts.RestartedTraining.record``)."""

    unet: UNet
    qc: ResNetQc
    seg_losses: list[float]
    qc_losses: list[float]
    seg_training: dict | None = None


ECHO_RESTARTS = RestartPolicy()
CINE_RESTARTS = RestartPolicy(max_frames=CLIPS_SCORED)  # clips of T frames each, as the cine rows score


def _reporter(progress: Progress | None, stage: str):
    if progress is None:
        return None
    return lambda epoch, epochs, loss: progress(stage, epoch, epochs, loss)


def train_echo_pair(spec: BaselineSpec, s1: EchoFrameDataset, s2: EchoFrameDataset, seg_cfg: TrainConfig,
                    qc_cfg: TrainConfig, work_dir: Path, progress: Progress | None = None,
                    restarts: RestartPolicy = ECHO_RESTARTS) -> EchoPair:
    """Train the U-net on ``s1`` (started again while it collapses, ``restarts``) then the QC net on ``s2``
    (checkpoints ``work_dir/{seg,qc}.pt``, a restart's ``seg.restart<k>.pt``)."""
    if spec.qc is None:
        raise ValueError(f"{spec.name} has no QC network")
    seed_everything(seg_cfg.seed)
    unet = UNet(spec.unet)
    seg = fit_with_restarts(unet, seg_step, s1, seg_cfg, checkpoint=Path(work_dir) / "seg.pt", policy=restarts,
                            progress=_reporter(progress, f"{spec.name} seg"), name=spec.name)
    seed_everything(qc_cfg.seed)
    qc = ResNetQc(spec.qc)
    # named after the U-net attempt kept: a QC net trained on another attempt is never resumed on this one
    qc_losses = fit(qc, qc_step_for(unet), s2, qc_cfg, checkpoint=attempt_checkpoint(Path(work_dir) / "qc.pt", seg.kept),
                    progress=_reporter(progress, f"{spec.name} qc"))
    return EchoPair(unet.eval(), qc.eval(), seg.losses, qc_losses, seg.record())


def build_cine_net(spec: BaselineSpec, clip_length: int) -> tuple[nn.Module, UNet]:
    """``(trainable clip network, the U-net to export)``: the same module for 3D, a frame-wise
    wrapper around the 2D U-net for per-frame baselines."""
    cfg = dataclasses.replace(spec.unet, clip_length=clip_length if spec.unet.dims == 3 else 1)
    unet = UNet(cfg)
    return (FrameWiseUNet(unet) if spec.per_frame else unet), unet


def train_cine(spec: BaselineSpec, train: CineClipDataset, cfg: TrainConfig, work_dir: Path,
               progress: Progress | None = None,
               restarts: RestartPolicy = CINE_RESTARTS) -> tuple[UNet, RestartedTraining]:
    """Train a cine U-net on clips (checkpoint ``work_dir/seg.pt``; started again while it collapses,
    ``restarts``); returns the U-net to export and its training (losses, attempts)."""
    seed_everything(cfg.seed)
    net, unet = build_cine_net(spec, train.clip_length)
    trained = fit_with_restarts(net, seg_step, train, cfg, checkpoint=Path(work_dir) / "seg.pt", policy=restarts,
                                progress=_reporter(progress, f"{spec.name} seg"), name=spec.name)
    return unet.eval(), trained


def default_augmentation() -> AffineAugmentation:
    """Translation +-8 %, rotation +-12 degrees, scale 0.9-1.1 (the segqc-hw paper: translation, rotation, scale)."""
    return AffineAugmentation()
