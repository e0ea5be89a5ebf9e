"""Predictors backed by exported ONNX files (the deployment session settings), so the metrics on a
card are those of the file the scanner will load, not of the PyTorch module it came from."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from app.engine.runtime import create_session
from search.train.evaluate import QcPredictor, SegPredictor


def onnx_seg_predictor(path: Path) -> SegPredictor:
    """``x (1, C, *spatial) -> (probs, uncertainty)`` from a seg model with one input."""
    session = create_session(path)
    name = session.get_inputs()[0].name

    def predict(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        probs, unc = session.run(["probs", "uncertainty"], {name: x.astype(np.float32, copy=False)})
        return probs, unc

    return predict


def onnx_framewise_seg_predictor(path: Path) -> SegPredictor:
    """A per-frame 2D model applied to every frame of a clip: ``(1, 1, T, H, W) -> (1, K, T, H, W)``."""
    frame = onnx_seg_predictor(path)

    def predict(clip: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        outs = [frame(np.ascontiguousarray(clip[:, :, t])) for t in range(clip.shape[2])]
        return np.stack([p for p, _ in outs], axis=2), np.stack([u for _, u in outs], axis=2)

    return predict


def onnx_qc_predictor(path: Path) -> QcPredictor:
    """``(image, probs, uncertainty) -> predicted Dice`` from a QC model."""
    session = create_session(path)

    def predict(image: np.ndarray, probs: np.ndarray, unc: np.ndarray) -> float:
        out = session.run(["dice"], {"image": image, "probs": probs, "uncertainty": unc})[0]
        return float(out.reshape(-1)[0])

    return predict
