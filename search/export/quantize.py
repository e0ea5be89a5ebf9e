"""INT8 static quantization where it pays: ship it only if faster on this CPU at <= 0.005 Dice loss.

onnxruntime static quantization (QDQ format, per-channel symmetric int8 weights, uint8 activations,
MinMax calibration) calibrated on real preprocessed phantom frames. The graph is first run
through ``quant_pre_process`` (shape inference + basic optimisation). The softmax / entropy head is
kept in float (quantizing a probability map's logarithm loses the uncertainty). Latency of the
float and int8 files is measured interleaved in one process so background load hits both alike;
the quantized file gets its own card, ``<id>-int8``, saying what it is and how it compares.
"""

from __future__ import annotations

import copy
import datetime as _dt
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import onnx
from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                      quant_pre_process, quantize_static)

from app.cards import ModelCard, sha256_of
from app.engine.benchmark import load_average
from search.export.card_writer import write_card
from search.export.latency import latency_fields
from search.latency.measure import measure_interleaved

log = logging.getLogger(__name__)

MAX_DICE_LOSS = 0.005
FLOAT_OPS = ("Softmax", "Log", "ReduceSum", "Mul", "Neg", "Div", "Clip", "Add", "Sigmoid")


class _FeedsReader(CalibrationDataReader):
    """Hands the calibration feeds to onnxruntime one by one."""

    def __init__(self, feeds: Sequence[Mapping[str, np.ndarray]]):
        self._it = iter([dict(f) for f in feeds])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._it, None)


@dataclass
class QuantizationDecision:
    """What INT8 did for one model.

    Attributes:
        shipped: The int8 card when it met both conditions, else None.
        fp32_p50_ms / int8_p50_ms: Median latencies measured interleaved.
        dice_fp32 / dice_int8: Mean Dice of each on the same held-out frames.
        reason: One line for logs and reports.
    """

    shipped: ModelCard | None
    fp32_p50_ms: float
    int8_p50_ms: float
    dice_fp32: float
    dice_int8: float
    reason: str


def quantize_model(fp32_path: Path, int8_path: Path, calibration_feeds: Sequence[Mapping[str, np.ndarray]]) -> None:
    """Write a QDQ int8 version of ``fp32_path`` calibrated on ``calibration_feeds``."""
    with tempfile.TemporaryDirectory() as tmp:
        prepped = Path(tmp) / "prep.onnx"
        quant_pre_process(str(fp32_path), str(prepped), skip_symbolic_shape=True)
        model = onnx.load(str(prepped))
        keep_float = [n.name for n in model.graph.node if n.op_type in FLOAT_OPS]
        quantize_static(str(prepped), str(int8_path), _FeedsReader(calibration_feeds), quant_format=QuantFormat.QDQ,
                        per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax, nodes_to_exclude=keep_float)


def quantize_if_faster(card: ModelCard, calibration_feeds: Sequence[Mapping[str, np.ndarray]],
                       evaluate: Callable[[Path], dict[str, Any]], latency_feeds: Mapping[str, np.ndarray], *,
                       max_dice_loss: float = MAX_DICE_LOSS, repeats: int = 50) -> QuantizationDecision:
    """Quantize a segmentation model and keep the result only if it pays.

    Args:
        card: The verified float model's card (its ``metrics.dice.mean`` is the reference).
        calibration_feeds: Preprocessed training frames (not the test frames).
        evaluate: ``evaluate(onnx_path) -> metrics`` with ``dice.mean``, on the same held-out data
            as the float card.
        latency_feeds: One input for the latency comparison.
        max_dice_loss: Largest acceptable drop in mean Dice.
        repeats: Timed rounds of the interleaved latency comparison.
    """
    out_dir = card.onnx_path.parent
    int8_id = f"{card.id}-int8"
    int8_path = out_dir / f"{int8_id}.onnx"
    quantize_model(card.onnx_path, int8_path, calibration_feeds)
    load_before = load_average()
    stats = measure_interleaved({"fp32": card.onnx_path, "int8": int8_path},
                                {"fp32": dict(latency_feeds), "int8": dict(latency_feeds)}, repeats=repeats)
    load_after = load_average()
    timing_how = f"at quantisation: {repeats} rounds interleaved with its float model, on one preprocessed frame"
    metrics = dict(evaluate(int8_path))
    dice_fp32 = float(card.metrics["dice"]["mean"])
    dice_int8 = float(metrics["dice"]["mean"])
    fp32_ms, int8_ms = stats["fp32"].p50_ms, stats["int8"].p50_ms
    faster = int8_ms < fp32_ms
    accurate = dice_fp32 - dice_int8 <= max_dice_loss
    reason = (f"int8 p50 {int8_ms:.2f} ms vs fp32 {fp32_ms:.2f} ms; Dice {dice_int8:.4f} vs {dice_fp32:.4f} "
              f"(loss {dice_fp32 - dice_int8:+.4f}, limit {max_dice_loss})")
    if not (faster and accurate):
        int8_path.unlink(missing_ok=True)
        log.info("%s: int8 not shipped: %s", card.id, reason)
        return QuantizationDecision(None, fp32_ms, int8_ms, dice_fp32, dice_int8, "not shipped: " + reason)
    raw = copy.deepcopy(card.raw)
    s = stats["int8"]
    raw["metrics"].update(metrics)
    raw["metrics"].update(latency_fields(s, how=timing_how, load_before=load_before, load_after=load_after))
    quantization = {
        "kind": "onnxruntime static quantization, QDQ, int8 per-channel weights, uint8 activations, MinMax",
        "calibration": f"{len(calibration_feeds)} preprocessed phantom training frames",
        "float_model": card.id, "kept_float": list(FLOAT_OPS),
        "fp32_p50_ms": round(fp32_ms, 3), "int8_p50_ms": round(int8_ms, 3),
        "dice_fp32": round(dice_fp32, 4), "dice_int8": round(dice_int8, 4),
    }
    raw.update({"id": int8_id, "quantization": quantization,
                "notes": (raw.get("notes") or "") + f" INT8 variant of {card.id}."})
    raw["onnx_sha256"] = sha256_of(int8_path)
    raw["created"] = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()
    shipped = write_card(raw, out_dir / f"{int8_id}.json")
    log.info("%s: int8 shipped as %s: %s", card.id, int8_id, reason)
    return QuantizationDecision(shipped, fp32_ms, int8_ms, dice_fp32, dice_int8, "shipped: " + reason)
