"""Fine-tune a shipped segmentation model: train from its own weights, score before/after, export.

``finetune`` does, in order:

1. rebuild the model with its weights (``search.finetune.target``) and read the data, split by
   patient (``search.finetune.data``);
2. score the shipped ONNX file on the held-out test part (Dice before);
3. train the logits network with the methods' segmentation loss (cross-entropy + soft Dice) in the
   shared loop (``search.train.loop.fit``), BatchNorm frozen (see ``search.finetune``), scoring the
   validation part after every epoch; the best epoch's weights are kept (the starting weights
   count as epoch 0, so fine-tuning never ships a model worse on validation than it started) and
   training stops after ``patience`` epochs without improvement;
4. export through ``search.export.onnx_export.export_model`` (parity check, metrics on the exported
   file: Dice after, on the same test part) with the new card's ``finetuned_from`` and ``data``;
5. echo seg models: the QC partner is not retrained; it is copied beside the new model unchanged
   (so ``pairs_with`` resolves in the export folder) and its calibration on the fine-tuned
   segmentation is measured and written into the card (``metrics.qc_partner``).

A streaming model (``streaming`` in its card) trains as the causal clip network it is: clips of its
clip card's length, every frame z-scored on its own (what the app feeds it one frame at a time); Dice
before and after is measured on the streaming ONNX files, every test clip streamed from the initial
state (as ``search.methods.rtdnas.streaming`` measures it), and it is exported in streaming form
through ``search.export.streaming.export_streaming_model`` (the one export path, with the parity
check on streamed frames and their states).

A per-frame cine model (``Target.per_frame``) trains on every frame of clips, each frame z-scored on its
own as the app feeds it; Dice before and after is that of the ONNX file run on every frame of the test
clips, and it is exported as the same one-frame network (parity on single frames).
"""

from __future__ import annotations

import copy
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from app.cards import ModelCard
from search.data import DataSpec
from search.export.card_writer import CardContent, TensorSpec
from search.export.onnx_export import export_model
from search.finetune.data import DataOptions, card_data, check_parts, split_cases
from search.finetune.target import Target, load_target
from search.train.augment import AffineAugmentation
from search.train.datasets import CineClipDataset, EchoFrameDataset
from search.train.evaluate import SegEvaluation, evaluate_qc, evaluate_segmentation, torch_seg_predictor
from search.train.loop import TrainConfig, fit, seed_everything
from search.train.losses import segmentation_loss

log = logging.getLogger(__name__)

BN_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
AUGMENT = AffineAugmentation(max_shift=0.06, max_rotation_deg=10.0, scale_range=(0.92, 1.08))
PARITY_SAMPLES = 2
BATCHNORM_POLICY = ("frozen: eval mode, running statistics fixed, scale and shift trained (the statistics of a "
                    "BN-folded ONNX file are identity by construction; batch statistics would break them)")


@dataclass(frozen=True)
class FinetuneConfig:
    """Fine-tuning settings.

    Attributes:
        epochs: Most passes over the training part.
        patience: Epochs without a better validation Dice before stopping.
        lr: Adam learning rate (cosine schedule, as every stage).
        weight_decay: Adam weight decay.
        batch_size: Samples per step (None: 8 echo frames, 2 cine clips).
        new_id: The new card's id (None: ``<model>-ft-<first 8 hex of the case-list hash>``).
        data: How much data is read, and the split seed.
    """

    epochs: int = 5
    patience: int = 3
    lr: float = 1e-4
    weight_decay: float = 1e-4
    batch_size: int | None = None
    new_id: str | None = None
    data: DataOptions = field(default_factory=DataOptions)


@dataclass
class FinetuneResult:
    """What ``finetune`` made: the verified card, Dice before/after on the test part, epoch figures."""

    card: ModelCard
    dice_before: float
    dice_after: float
    epochs_run: int
    best_epoch: int
    seconds_per_epoch: list[float]
    qc_partner: str | None = None


class _FrozenBatchNorm(nn.Module):
    """Trains ``net`` with every BatchNorm kept in eval mode (running statistics fixed)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def train(self, mode: bool = True) -> "_FrozenBatchNorm":
        super().train(mode)
        for m in self.net.modules():
            if isinstance(m, BN_TYPES):
                m.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class _Stop(Exception):
    """Raised from the epoch callback to end ``fit`` early (patience exhausted)."""


def _datasets(target: Target, parts: dict[str, list], seed: int) -> tuple[Dataset, Dataset, Dataset]:
    """Train (augmented), validation and test datasets in the model's preprocessing."""
    shape = target.input_shape
    if target.modality == "echo":
        def make(cases, train):
            return EchoFrameDataset(cases, size=shape[-2:], channels=shape[1], augment=AUGMENT if train else None,
                                    seed=seed)
    else:
        t = target.train_clip_length
        per_frame = target.streaming is not None or target.per_frame  # the app z-scores each frame these get

        def make(cases, train):
            return CineClipDataset(cases, clip_length=t, size=shape[-2:], stride=max(1, t // 2) if train else t,
                                   augment=AUGMENT if train else None, seed=seed, per_frame_norm=per_frame)
    return make(parts["train"], True), make(parts["val"], False), make(parts["test"], False)


def _onnx_predictor(target: Target, path: Path):
    if target.streaming:  # every clip streamed frame by frame from the initial state
        from search.export.streaming import onnx_stream_predictor

        return onnx_stream_predictor(path, target.streaming)
    if target.modality == "echo":
        from search.export.predictors import onnx_seg_predictor

        return onnx_seg_predictor(path)
    if target.per_frame:  # every frame of a clip, one call each
        from search.export.predictors import onnx_framewise_seg_predictor

        return onnx_framewise_seg_predictor(path)
    from search.train.clips import onnx_clip_predictor

    return onnx_clip_predictor(path)


def _card_dice(ev: SegEvaluation, target: Target) -> dict[str, Any]:
    return ev.to_card(target.classes)


def _qc_partner(target: Target, out_dir: Path) -> Path | None:
    """Copy the QC partner (unchanged) beside the new model; its ONNX path there, or None."""
    partner = target.pairs_with
    if not partner:
        return None
    src = target.card_path.with_name(f"{partner}.json")
    if not src.is_file():
        log.warning("%s: QC partner %s not found beside it; the new card keeps pairs_with", target.model_id, partner)
        return None
    out_dir.mkdir(parents=True, exist_ok=True)
    for suffix in (".json", ".onnx", ".pt"):
        s, d = src.with_suffix(suffix), out_dir / f"{partner}{suffix}"
        if s.is_file() and s.resolve() != d.resolve():
            shutil.copyfile(s, d)
    return out_dir / f"{partner}.onnx"


def _qc_mae(target: Target, seg_onnx: Path, qc_onnx: Path, dataset: Dataset) -> float | None:
    """QC MAE of the partner on ``seg_onnx``'s segmentations of ``dataset`` (echo only)."""
    if target.modality != "echo":
        return None
    from search.export.predictors import onnx_qc_predictor, onnx_seg_predictor

    out = evaluate_qc(onnx_seg_predictor(seg_onnx), onnx_qc_predictor(qc_onnx), dataset, len(target.classes))
    return round(float(out["qc_mae"]), 4)


def echo_mode_after(target: Target, spec: DataSpec) -> str | None:
    """The new card's ``echo_mode``: the model's own, except ``bmode`` once it has trained on a B-mode
    dataset (CAMUS, EchoNet: ``search.methods.segqc_hw.tasks.BMODE_DATASETS``). Cine: None."""
    if target.modality != "echo":
        return None
    from search.methods.segqc_hw.tasks import BMODE_DATASETS

    return "bmode" if spec.kind in BMODE_DATASETS else target.raw.get("echo_mode")


def _content(target: Target, new_id: str, data: dict[str, Any], extra: dict[str, Any], notes: str,
             pairs_with: str | None, echo_mode: str | None = None) -> CardContent:
    raw = target.raw
    return CardContent(
        model_id=new_id, modality=raw["modality"], role="seg", method=raw["method"],
        inputs=[TensorSpec(t["name"], tuple(t["shape"]), t.get("description", "")) for t in raw["inputs"]],
        outputs=[TensorSpec(t["name"], tuple(t["shape"]), t.get("description", "")) for t in raw["outputs"]],
        classes=target.classes, normalisation=dict(raw["input"]["normalisation"]), layout=raw["input"]["layout"],
        data=data, genotype=raw.get("genotype"), pairs_with=pairs_with, clip_length=raw.get("clip_length"),
        architecture=raw["architecture"], notes=notes, extra=extra,
        echo_mode=echo_mode if raw["modality"] == "echo" else None)  # the kind of echo it is now for


def _export_streaming(target: Target, new_id: str, data: dict[str, Any], extra: dict[str, Any], notes: str,
                      out_dir: Path, clips: list, evaluate: Callable[[Path], dict[str, Any]]) -> ModelCard:
    """Export the fine-tuned causal clip network in streaming form (``export_streaming_model``: parity
    on streamed frames); the card keeps the base card's ``retrained_from`` (its clip card), and its
    ``streaming`` field is made afresh (the same states: the architecture is unchanged)."""
    from search.export.architecture import Architecture
    from search.export.streaming import export_streaming_model

    raw = target.raw
    keep = {k: raw[k] for k in ("retrained_from",) if k in raw}
    return export_streaming_model(
        target.clip_module, model_id=new_id, architecture=Architecture.from_json(raw["architecture"]),
        classes=target.classes, data=data, clips=clips, out_dir=out_dir, genotype=raw.get("genotype"),
        method=raw["method"], notes=notes, pairs_with=target.pairs_with, evaluate=evaluate,
        extra={**keep, **extra})


def _train(target: Target, train_ds: Dataset, val_ds: Dataset, cfg: FinetuneConfig,
           say: Callable[[str], None]) -> dict[str, Any]:
    """Fine-tune ``target.net`` in place; returns the epoch record (best weights are loaded at the end)."""
    n_classes = len(target.classes)
    batch = cfg.batch_size or (8 if target.modality == "echo" else 2)
    model = _FrozenBatchNorm(target.trainable)

    def val_dice() -> float:
        return evaluate_segmentation(torch_seg_predictor(model.net), val_ds, n_classes).mean

    best = {"dice": val_dice(), "epoch": 0, "state": copy.deepcopy(target.net.state_dict())}
    record: dict[str, Any] = {"val_dice": [round(best["dice"], 4)], "train_loss": [], "seconds": []}
    say(f"{target.model_id}: validation Dice {best['dice']:.3f} before fine-tuning")
    clock = [time.perf_counter()]

    def loss_fn(net: nn.Module, batch_: Any) -> torch.Tensor:
        x, y = batch_
        return segmentation_loss(net(x), y)

    def progress(epoch: int, epochs: int, loss: float) -> None:
        record["seconds"].append(round(time.perf_counter() - clock[0], 2))
        dice = val_dice()
        record["train_loss"].append(round(loss, 4))
        record["val_dice"].append(round(dice, 4))
        say(f"epoch {epoch}/{epochs}: loss {loss:.3f}, validation Dice {dice:.3f} [{record['seconds'][-1]:.0f} s]")
        if dice > best["dice"]:
            best.update(dice=dice, epoch=epoch, state=copy.deepcopy(target.net.state_dict()))
        elif epoch - best["epoch"] >= cfg.patience:
            raise _Stop
        clock[0] = time.perf_counter()

    tcfg = TrainConfig(epochs=cfg.epochs, batch_size=batch, lr=cfg.lr, weight_decay=cfg.weight_decay,
                       seed=cfg.data.seed)
    try:
        fit(model, loss_fn, train_ds, tcfg, progress=progress)  # minutes: no checkpoint to resume
    except _Stop:
        say(f"early stop: no better validation Dice for {cfg.patience} epoch(s)")
    target.net.load_state_dict(best["state"])
    target.module.eval()
    record.update(best_epoch=best["epoch"], best_val_dice=round(best["dice"], 4), epochs_run=len(record["train_loss"]))
    return record


def finetune(model_id: str, spec: DataSpec, out_dir: Path | str, cfg: FinetuneConfig = FinetuneConfig(), *,
             models_dir: Path | str = "models", say: Callable[[str], None] = log.info) -> FinetuneResult:
    """Fine-tune ``models_dir/<model_id>`` on ``spec`` and export it into ``out_dir``.

    Args:
        model_id: A shipped float segmentation model.
        spec: The data (``search.data.parse_data_spec``).
        out_dir: Export folder (the new ``<id>.onnx``, ``.json``, ``.pt``, and the QC partner).
        cfg: Settings.
        models_dir: Where the shipped model is read.
        say: Progress lines.

    Raises:
        FinetuneError: the model cannot be fine-tuned; DataError: the data cannot give its classes.
    """
    target = load_target(model_id, models_dir)
    seed_everything(cfg.data.seed)
    parts = split_cases(spec, target, cfg.data)
    check_parts(parts, spec.root or "phantom")
    data = card_data(spec, target, parts, cfg.data)
    new_id = cfg.new_id or f"{model_id}-ft-{data['case_list_sha256'][:8]}"
    say(f"{model_id} ({target.weights_source}) -> {new_id}: "
        + ", ".join(f"{k} {len(v)} patients" for k, v in parts.items()))
    train_ds, val_ds, test_ds = _datasets(target, parts, cfg.data.seed)
    n_classes = len(target.classes)
    before = evaluate_segmentation(_onnx_predictor(target, target.onnx_path), test_ds, n_classes)
    say(f"{model_id}: test Dice {before.mean:.3f} before fine-tuning (shipped ONNX)")
    record = _train(target, train_ds, val_ds, cfg, say)

    out_dir = Path(out_dir)
    qc_onnx = _qc_partner(target, out_dir)
    qc_before = _qc_mae(target, target.onnx_path, qc_onnx, test_ds) if qc_onnx else None
    after: dict[str, SegEvaluation] = {}

    def evaluate(path: Path) -> dict[str, Any]:
        after["dice"] = evaluate_segmentation(_onnx_predictor(target, path), test_ds, n_classes)
        metrics: dict[str, Any] = {
            "dice": _card_dice(after["dice"], target), "dice_before": _card_dice(before, target),
            "evaluated_on": f"{len(parts['test'])} held-out patients (the test part), every labelled "
                            f"{'frame' if target.modality == 'echo' else 'frame of every clip'}"
                            + (", each clip streamed from the initial state" if target.streaming else ""),
        }
        if qc_onnx is not None and qc_before is not None:
            metrics["qc_partner"] = {"id": target.pairs_with, "mae_before": qc_before,
                                     "mae_after": _qc_mae(target, path, qc_onnx, test_ds),
                                     "note": "QC partner not retrained; MAE of its predicted Dice on the test part"}
        return metrics

    samples = [test_ds[i][0].numpy()[None] for i in range(min(PARITY_SAMPLES, len(test_ds)))]
    if target.per_frame:  # the exported network takes one frame: its first and last of each test clip
        samples = [np.ascontiguousarray(x[:, :, t]) for x in samples for t in (0, x.shape[2] - 1)]
    extra = {"finetuned_from": {"id": model_id, "sha256": target.onnx_sha256},
             "finetune": {"epochs": cfg.epochs, "patience": cfg.patience, "lr": cfg.lr,
                          "weights_from": target.weights_source, "batchnorm": BATCHNORM_POLICY, **record}}
    notes = (f"Fine-tuned from {model_id} (python -m search finetune, {record['epochs_run']} epoch(s), best "
             f"validation epoch {record['best_epoch']}) on {data['dataset']}. Architecture unchanged.")
    if target.streaming:
        notes += (f" Streaming: the causal clip network trained on {target.train_clip_length}-frame clips z-scored "
                  "per frame; Dice on the streaming file, every test clip streamed from the initial state.")
    if target.per_frame:
        notes += (f" Per frame: trained on every frame of {target.train_clip_length}-frame clips, each frame z-scored "
                  "on its own; Dice on the ONNX file run on every frame of the test clips.")
    if target.pairs_with:
        notes += f" QC partner {target.pairs_with} kept unchanged (not retrained on the fine-tuned outputs)."
    if target.streaming:
        card = _export_streaming(target, new_id, data, extra, notes, out_dir, samples, evaluate)
    else:
        feeds = [{target.raw["inputs"][0]["name"]: x} for x in samples]
        echo_mode = echo_mode_after(target, spec)
        if echo_mode and echo_mode != target.raw.get("echo_mode"):
            notes += (f" Made for {target.raw.get('echo_mode')} echo, fine-tuned on {data['dataset']} ({echo_mode}): "
                      f"echo_mode {echo_mode}.")
        card = export_model(target.module, _content(target, new_id, data, extra, notes, target.pairs_with, echo_mode),
                            out_dir, feeds, evaluate=evaluate)
    say(f"{new_id}: test Dice {before.mean:.3f} -> {after['dice'].mean:.3f}; wrote {card.onnx_path}")
    return FinetuneResult(card=card, dice_before=before.mean, dice_after=after["dice"].mean,
                          epochs_run=record["epochs_run"], best_epoch=record["best_epoch"],
                          seconds_per_epoch=list(record["seconds"]),
                          qc_partner=target.pairs_with if qc_onnx is not None else None)


__all__ = ["BATCHNORM_POLICY", "FinetuneConfig", "FinetuneResult", "finetune"]
