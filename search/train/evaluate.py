"""Evaluation on held-out patients: Dice per class (``app.metrics``) and QC calibration.

Evaluation takes *predictors*, plain callables from a preprocessed input batch of one sample to
softmax probabilities, so the same code scores a PyTorch module during training and the exported
ONNX model at export time (the card's figures are the ONNX model's own).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from app.metrics import dice_per_class, qc_calibration
from search.train.datasets import IGNORE_INDEX
from search.train.seg_outputs import probs_and_uncertainty

# (1, C_in, *spatial) float32 -> (probs (1, K, *spatial), uncertainty (1, 1, *spatial))
SegPredictor = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
# (image, probs, uncertainty) -> predicted Dice, float
QcPredictor = Callable[[np.ndarray, np.ndarray, np.ndarray], float]


@dataclass
class SegEvaluation:
    """Dice of a segmentation model on a dataset.

    Attributes:
        per_class: Class value -> mean Dice over the labelled frames where it is defined.
        mean: Mean of ``per_class``.
        per_frame: Mean foreground Dice of every labelled frame (the QC target), in dataset order.
    """

    per_class: dict[int, float]
    mean: float
    per_frame: list[float] = field(default_factory=list)

    def to_card(self, class_names: dict[int, str]) -> dict:
        return {"per_class": {class_names.get(c, str(c)): round(v, 4) for c, v in self.per_class.items()},
                "mean": round(self.mean, 4)}


def torch_seg_predictor(net: nn.Module) -> SegPredictor:
    """Predictor of a logits network (eval mode, no grad), on whatever device the net is (arrays in and out)."""
    net.eval()
    device = next(net.parameters()).device

    @torch.no_grad()
    def predict(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        probs, unc = probs_and_uncertainty(net(torch.from_numpy(x).to(device)))
        return probs.cpu().numpy(), unc.cpu().numpy()

    return predict


def torch_qc_predictor(qc: nn.Module) -> QcPredictor:
    qc.eval()

    @torch.no_grad()
    def predict(image: np.ndarray, probs: np.ndarray, unc: np.ndarray) -> float:
        return float(qc(torch.from_numpy(image), torch.from_numpy(probs), torch.from_numpy(unc)).reshape(-1)[0])

    return predict


def _frames(labels: np.ndarray, pred: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Split a sample into labelled 2D frames: ``(H, W)`` or ``(T, H, W)`` -> [(gt, pred)]."""
    if labels.ndim == 2:
        return [(labels, pred)]
    return [(labels[t], pred[t]) for t in range(labels.shape[0]) if not (labels[t] == IGNORE_INDEX).all()]


def frame_dice(gt: np.ndarray, pred: np.ndarray, classes: list[int]) -> float:
    """Mean foreground Dice of one frame; 1.0 when neither side has any foreground (QC convention)."""
    scores = [v for v in dice_per_class(pred, gt, classes).values() if not np.isnan(v)]
    return float(np.mean(scores)) if scores else 1.0


def _score_frames(frames: Iterable[tuple[np.ndarray, np.ndarray]], n_classes: int) -> SegEvaluation:
    """Dice per foreground class over ``(gt, pred)`` frames: per class, the mean over the frames where
    it is defined; the mean Dice is over the classes defined anywhere."""
    classes = list(range(1, n_classes))
    sums = {c: 0.0 for c in classes}
    counts = {c: 0 for c in classes}
    per_frame: list[float] = []
    for gt, pred in frames:
        for c, v in dice_per_class(pred, gt, classes).items():
            if not np.isnan(v):
                sums[c] += v
                counts[c] += 1
        per_frame.append(frame_dice(gt, pred, classes))
    per_class = {c: (sums[c] / counts[c] if counts[c] else float("nan")) for c in classes}
    defined = [v for v in per_class.values() if not np.isnan(v)]
    return SegEvaluation(per_class, float(np.mean(defined)) if defined else float("nan"), per_frame)


def evaluate_segmentation(predict: SegPredictor, dataset: Dataset, n_classes: int) -> SegEvaluation:
    """Dice per foreground class over every labelled frame of ``dataset`` (one sample at a time)."""

    def frames():
        for i in range(len(dataset)):
            x, y = dataset[i]
            probs, _ = predict(x.numpy()[None])
            yield from _frames(y.numpy(), probs[0].argmax(axis=0).astype(np.uint8))

    return _score_frames(frames(), n_classes)


def app_window(t: int, clip_length: int) -> np.ndarray:
    """Frames of one slice in the app's clip when frame ``t`` arrives, oldest first.

    What ``app.engine.stages.SegStage.observe`` holds: the slice's last ``clip_length`` frames, the
    first frame repeated until that many exist. The app shows the model's output at the clip's last
    position, the newest frame ``t`` (``SegStage.segment``).
    """
    return np.maximum(np.arange(t - clip_length + 1, t + 1), 0)


def evaluate_newest_frame(predict: SegPredictor, dataset: Dataset, n_classes: int) -> SegEvaluation:
    """Dice of a clip model as the app shows it: the newest frame of its sliding window.

    ``evaluate_segmentation`` scores every position of every clip; the app runs a clip model on the
    causal window ending at the arriving frame (``app_window``) and keeps only the last position, so
    a network that is worse at the end of a clip than on average is worse in the app than on its
    card. Here every labelled frame ``t`` of every slice ``dataset``'s clips come from
    (``CineClipDataset.slices``) is scored at the last position of its app window, prepared as the
    dataset prepares its clips; per class, mean over frames where the class is defined.
    """
    def frames():
        for ci, z in dataset.slices():
            for t in dataset.labelled_frames(ci):
                x, y = dataset.window(ci, z, app_window(t, dataset.clip_length))
                probs, _ = predict(x.numpy()[None])
                yield y.numpy()[-1], probs[0, :, -1].argmax(axis=0).astype(np.uint8)

    return _score_frames(frames(), n_classes)


NEWEST_FRAME_NOTE = ("each labelled frame as the newest frame of the app's sliding window (the slice's last T "
                     "frames, the first frame repeated until T exist; the output's last position), at the model grid")


def newest_frame_card(predict: SegPredictor, datasets: Sequence[Dataset], classes: Mapping[int, str]) -> dict:
    """A cine clip card's ``metrics.dice_newest_frame``: ``evaluate_newest_frame`` on each dataset, per
    class the mean over the datasets (one per test patient for the searched cine cards, as their
    ``metrics.dice``; one for the baselines, whose ``metrics.dice`` pools frames), on the slices the
    card's ``metrics.dice`` was measured on.
    """
    n = len(classes)
    evs = [evaluate_newest_frame(predict, ds, n) for ds in datasets]
    per_class = {classes[c]: round(float(np.nanmean([e.per_class[c] for e in evs])), 4) for c in range(1, n)}
    n_slices = sum(len(ds.slices()) for ds in datasets)
    return {"per_class": per_class, "mean": round(float(np.nanmean(list(per_class.values()))), 4),
            "frames": sum(len(e.per_frame) for e in evs),
            "evaluated_on": f"the {n_slices} test slices of metrics.dice, {NEWEST_FRAME_NOTE}"}


def evaluate_qc(seg: SegPredictor, qc: QcPredictor, dataset: Dataset, n_classes: int) -> dict[str, object]:
    """Predicted vs true Dice of the segmentation on each frame of ``dataset`` (2D frames only).

    Returns:
        ``{"qc_mae", "qc_pearson", "n", "predicted": [...], "true": [...]}``.
    """
    classes = list(range(1, n_classes))
    predicted, true = [], []
    for i in range(len(dataset)):
        x, y = dataset[i]
        image = x.numpy()[None]
        probs, unc = seg(image)
        predicted.append(qc(image, probs, unc))
        true.append(frame_dice(y.numpy(), probs[0].argmax(axis=0).astype(np.uint8), classes))
    out: dict[str, object] = dict(qc_calibration(predicted, true))
    out["predicted"], out["true"] = predicted, true
    return out
