"""Training the cine QC network on S2 samples, early stopping on validation MAE, and its scores."""

from __future__ import annotations

import copy
import logging
import time
from typing import Callable

import numpy as np
import torch
from torch import nn

from app.metrics import qc_calibration
from search.methods.cine_qc.config import CineQcConfig
from search.methods.cine_qc.data import Samples
from search.methods.cine_qc.network import CineQcNet
from search.train import precision

log = logging.getLogger(__name__)

GREEN_AT, RED_BELOW = 0.80, 0.70  # the viewer's default traffic-light thresholds


def _batch(s: Samples, idx: np.ndarray, flip: np.ndarray | None = None) -> tuple[torch.Tensor, ...]:
    parts = [torch.from_numpy(a[idx].astype(np.float32)) for a in (s.image, s.probs, s.uncertainty)]
    if flip is not None:  # left-right / up-down flips of all inputs together: the Dice does not change
        for k, dims in ((0, (3,)), (1, (2,))):
            sel = torch.from_numpy(flip[:, k])
            if sel.any():
                parts = [torch.where(sel[:, None, None, None], p.flip(dims), p) for p in parts]
    return (*parts, torch.from_numpy(s.dice[idx].astype(np.float32)))


def predict(net: nn.Module, s: Samples, batch: int = 256) -> np.ndarray:
    """Predicted Dice for every sample (eval mode, no gradients)."""
    net.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(s), batch):
            idx = np.arange(start, min(start + batch, len(s)))
            image, probs, unc, _ = _batch(s, idx)
            out.append(net(image, probs, unc).numpy())
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def scores(pred: np.ndarray, s: Samples) -> dict:
    """QC calibration overall and per quality bin, and how often the traffic light is right."""
    cal = qc_calibration(pred, s.dice)
    true_green, true_red = s.dice >= GREEN_AT, s.dice < RED_BELOW
    light = {
        "green_when_true_dice_ge_0.8": float(np.mean(pred[true_green] >= GREEN_AT)) if true_green.any() else None,
        "red_when_true_dice_lt_0.7": float(np.mean(pred[true_red] < RED_BELOW)) if true_red.any() else None,
    }
    per_bin = {}
    for b in sorted(set(s.quality_bin.tolist())):
        sel = s.quality_bin == b
        c = qc_calibration(pred[sel], s.dice[sel])
        per_bin[b] = {"qc_mae": round(c["qc_mae"], 4), "qc_pearson": round(c["qc_pearson"], 4)
                      if np.isfinite(c["qc_pearson"]) else None, "n": c["n"],
                      "true_dice_mean": round(float(np.mean(s.dice[sel])), 4)}
    return {"qc_mae": round(cal["qc_mae"], 4), "qc_pearson": round(cal["qc_pearson"], 4), "n": cal["n"],
            "traffic_light": light, "per_quality_bin": per_bin}


def fit(train: Samples, val: Samples, cfg: CineQcConfig, n_classes: int,
        on_epoch: Callable[[dict], None] | None = None) -> tuple[CineQcNet, list[dict]]:
    """Train with an L1 loss (Adam, cosine schedule, flips); keep the epoch with the best validation MAE."""
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    net = CineQcNet(n_classes=n_classes, width=cfg.width)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = max(1, int(np.ceil(len(train) / cfg.batch)))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs * steps_per_epoch)
    best, best_mae, curve = copy.deepcopy(net.state_dict()), float("inf"), []
    for epoch in range(cfg.epochs):
        t0 = time.perf_counter()
        net.train()
        order = rng.permutation(len(train))
        losses = []
        for start in range(0, len(order), cfg.batch):
            idx = order[start : start + cfg.batch]
            if len(idx) < 2:  # BatchNorm needs two samples
                continue
            image, probs, unc, target = _batch(train, idx, rng.random((len(idx), 2)) < 0.5)
            with precision.autocast():
                loss = nn.functional.l1_loss(net(image, probs, unc), target)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
        val_mae = float(np.mean(np.abs(predict(net, val) - val.dice))) if len(val) else float("nan")
        row = {"epoch": epoch + 1, "train_l1": round(float(np.mean(losses)) if losses else float("nan"), 5),
               "val_mae": round(val_mae, 5), "seconds": round(time.perf_counter() - t0, 2)}
        curve.append(row)
        log.info("epoch %d: train L1 %.4f, val MAE %.4f (%.1f s)", row["epoch"], row["train_l1"], val_mae, row["seconds"])
        if on_epoch is not None:
            on_epoch(row)
        if val_mae < best_mae or not np.isfinite(best_mae):
            best_mae, best = val_mae, copy.deepcopy(net.state_dict())
    net.load_state_dict(best)
    return net.eval(), curve
