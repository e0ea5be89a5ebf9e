"""Tiny but valid ONNX models and matching cards, built with ``onnx.helper`` for engine tests.

They follow the shipped models' I/O contract (see ``app.engine.models``): a per-frame seg model
(1x1 conv + softmax -> ``probs``, ``uncertainty`` = 1 - max prob), a QC model (``dice`` = 1 - mean
uncertainty) and a cine clip model (1x1x1 conv over ``(1, 1, T, H, W)``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from app.cards import sha256_of

OPSET = 17


def _save(model: onnx.ModelProto, folder: Path, card: dict) -> Path:
    onnx.checker.check_model(model)
    folder.mkdir(parents=True, exist_ok=True)
    onnx_path = folder / f"{card['id']}.onnx"
    onnx.save(model, str(onnx_path))
    card = {"genotype": None, "data": {"source": "test", "split": "none", "seed": 0},
            "metrics": {"dice": {"mean": 0.5}, "latency_ms": {"p50": 1.0, "p95": 2.0}}, "created": "test", **card}
    card["onnx_sha256"] = sha256_of(onnx_path)
    card_path = folder / f"{card['id']}.json"
    card_path.write_text(json.dumps(card, indent=1))
    return card_path


def _uncertainty_nodes(axis_keep: str = "probs") -> list:
    return [
        helper.make_node("ReduceMax", [axis_keep], ["pmax"], axes=[1], keepdims=1),
        helper.make_node("Sub", ["one", "pmax"], ["uncertainty"]),
    ]


def seg_model(channels: int = 3, classes: int = 2, size: int = 32, gain: float = 8.0) -> onnx.ModelProto:
    """``image (1, channels, size, size)`` -> ``probs (1, classes, ...)``, ``uncertainty (1, 1, ...)``.

    Class c > 0 wins where the mean channel value exceeds c / classes (bright = foreground).
    """
    w = np.zeros((classes, channels, 1, 1), np.float32)
    b = np.zeros(classes, np.float32)
    for c in range(classes):
        w[c, :, 0, 0] = gain * c / channels
        b[c] = -gain * c * (c + 1) / (2 * classes)
    nodes = [helper.make_node("Conv", ["image", "w", "b"], ["logits"]),
             helper.make_node("Softmax", ["logits"], ["probs"], axis=1), *_uncertainty_nodes()]
    graph = helper.make_graph(
        nodes, "tiny_seg",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, channels, size, size])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, [1, classes, size, size]),
         helper.make_tensor_value_info("uncertainty", TensorProto.FLOAT, [1, 1, size, size])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b"),
         numpy_helper.from_array(np.ones((), np.float32), "one")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])


def qc_model(channels: int = 3, classes: int = 2, size: int = 32) -> onnx.ModelProto:
    """``image, probs, uncertainty`` -> ``dice (1, 1)`` = 1 - mean uncertainty (uses every input)."""
    nodes = [
        helper.make_node("ReduceMean", ["uncertainty"], ["u"], keepdims=0),
        helper.make_node("ReduceMean", ["image"], ["im"], keepdims=0),
        helper.make_node("ReduceMean", ["probs"], ["pm"], keepdims=0),
        helper.make_node("Mul", ["im", "zero"], ["im0"]),
        helper.make_node("Mul", ["pm", "zero"], ["pm0"]),
        helper.make_node("Sub", ["one", "u"], ["d0"]),
        helper.make_node("Add", ["d0", "im0"], ["d1"]),
        helper.make_node("Add", ["d1", "pm0"], ["d2"]),
        helper.make_node("Reshape", ["d2", "shape"], ["dice"]),
    ]
    graph = helper.make_graph(
        nodes, "tiny_qc",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, channels, size, size]),
         helper.make_tensor_value_info("probs", TensorProto.FLOAT, [1, classes, size, size]),
         helper.make_tensor_value_info("uncertainty", TensorProto.FLOAT, [1, 1, size, size])],
        [helper.make_tensor_value_info("dice", TensorProto.FLOAT, [1, 1])],
        [numpy_helper.from_array(np.ones((), np.float32), "one"), numpy_helper.from_array(np.zeros((), np.float32), "zero"),
         numpy_helper.from_array(np.array([1, 1], np.int64), "shape")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])


def clip_model(length: int = 4, classes: int = 4, height: int = 32, width: int = 28, gain: float = 4.0) -> onnx.ModelProto:
    """``clip (1, 1, T, H, W)`` -> ``probs (1, classes, T, H, W)``, ``uncertainty (1, 1, T, H, W)``."""
    w = (gain * np.arange(classes, dtype=np.float32)).reshape(classes, 1, 1, 1, 1)
    b = (-gain * np.arange(classes, dtype=np.float32) * (np.arange(classes) + 1) / (2 * classes) * 2).astype(np.float32)
    nodes = [helper.make_node("Conv", ["clip", "w", "b"], ["logits"]),
             helper.make_node("Softmax", ["logits"], ["probs"], axis=1), *_uncertainty_nodes()]
    shape = [1, 1, length, height, width]
    graph = helper.make_graph(
        nodes, "tiny_clip",
        [helper.make_tensor_value_info("clip", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, [1, classes, length, height, width]),
         helper.make_tensor_value_info("uncertainty", TensorProto.FLOAT, shape)],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b"),
         numpy_helper.from_array(np.ones((), np.float32), "one")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])


ECHO_CLASSES = {"0": "background", "1": "myocardium"}
ACDC_CLASSES = {"0": "background", "1": "RV", "2": "MYO", "3": "LV"}


BMODE_CLASSES = {"0": "background", "1": "lv", "2": "myocardium", "3": "la"}  # B-mode echo cards (CAMUS labels)


def write_echo_models(folder: Path, size: int = 32, seg_id: str = "tiny-echo-seg", qc_id: str = "tiny-echo-qc",
                      normalisation: dict | None = None, method: str = "baseline-tiny",
                      echo_mode: str | None = None) -> tuple[Path, Path]:
    """Echo seg + QC pair in ``folder``; returns their card paths.

    ``echo_mode="bmode"``: a 4-class B-mode pair (``BMODE_CLASSES``) with ``echo_mode`` on both cards;
    ``"contrast"`` writes the field on a 2-class pair; None leaves it out (contrast by default).
    """
    norm = normalisation or {"kind": "scale", "scale": 1 / 255}
    io = {"name": "image", "shape": [1, 3, size, size], "layout": "NCHW", "dtype": "float32", "normalisation": norm}
    classes = BMODE_CLASSES if echo_mode == "bmode" else ECHO_CLASSES
    extra = {"echo_mode": echo_mode} if echo_mode else {}
    seg = _save(seg_model(size=size, classes=len(classes)), folder, {
        "id": seg_id, "modality": "echo", "role": "seg", "method": method, "input": io, "pairs_with": qc_id,
        "outputs": [{"name": "probs"}, {"name": "uncertainty"}], "classes": classes, "clip_length": 1, **extra})
    qc = _save(qc_model(size=size, classes=len(classes)), folder, {
        "id": qc_id, "modality": "echo", "role": "qc", "method": method, "input": io,
        "outputs": [{"name": "dice"}], "classes": classes, **extra})
    return seg, qc


def write_cine_model(folder: Path, length: int = 4, height: int = 32, width: int = 28,
                     model_id: str = "tiny-cine-seg") -> Path:
    io = {"name": "clip", "shape": [1, 1, length, height, width], "layout": "NCTHW", "dtype": "float32",
          "normalisation": {"kind": "zscore"}}
    return _save(clip_model(length, 4, height, width), folder, {
        "id": model_id, "modality": "cine", "role": "seg", "method": "baseline-tiny", "input": io,
        "outputs": [{"name": "probs"}, {"name": "uncertainty"}], "classes": ACDC_CLASSES, "clip_length": length})
