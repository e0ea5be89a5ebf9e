"""Export of trained baselines through the one export path, with cards measured on held-out data."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn
from torch.utils.data import Dataset

from app.cards import ModelCard
from search.baselines.registry import BaselineSpec
from search.baselines.training import EchoPair
from search.baselines.unet import UNet
from search.citations import MSNAS_HW, SEGQC_HW
from search.export.card_writer import CardContent, TensorSpec
from search.export.onnx_export import export_model
from search.export.predictors import onnx_framewise_seg_predictor, onnx_qc_predictor, onnx_seg_predictor
from search.export.quantize import QuantizationDecision, quantize_if_faster
from search.train.datasets import CINE_NORMALISATION, ECHO_NORMALISATION
from search.train.evaluate import evaluate_qc, evaluate_segmentation, newest_frame_card
from search.train.seg_outputs import SegmentationWithUncertainty

log = logging.getLogger(__name__)

PROBS_DESC = "softmax class probabilities"
UNC_DESC = "per-pixel entropy of the softmax / log(C), in [0, 1] (computed in-graph)"
ECHO_MODE = "contrast"  # the echo baselines train on contrast echo (the phantom's default variant; the cards' echo_mode)


def _samples(dataset: Dataset, n: int) -> list[np.ndarray]:
    """The first ``n`` preprocessed inputs of ``dataset``, batch axis added."""
    return [dataset[i][0].numpy()[None] for i in range(min(n, len(dataset)))]


def _seg_metrics(predict, dataset: Dataset, classes: dict[int, str], *, newest_frame: bool = False) -> dict[str, Any]:
    """Dice over every labelled frame of every clip; with ``newest_frame`` (clip models) also
    ``dice_newest_frame``, the Dice of what the app shows: the newest frame of its sliding window
    (``search.train.evaluate.evaluate_newest_frame``). A clip network can be much worse at the last
    position of its clip than on average, and the app shows only that position."""
    ev = evaluate_segmentation(predict, dataset, len(classes))
    out = {"dice": ev.to_card(classes), "eval_frames": len(ev.per_frame)}
    if newest_frame:
        out["dice_newest_frame"] = newest_frame_card(predict, [dataset], classes)
    return out


def ship_echo_pair(spec: BaselineSpec, pair: EchoPair, test: Dataset, calibration: Dataset, out_dir: Path,
                   data: dict[str, Any], *, quantize: bool, latency_repeats: int) -> tuple[list[ModelCard], QuantizationDecision | None]:
    """Export the U-net (probs + uncertainty) and its QC network, each with a verified card.

    Args:
        spec: The registry entry.
        pair: Trained networks.
        test: Held-out frames (metrics and parity inputs).
        calibration: Training frames for INT8 calibration (s1, no augmentation).
        out_dir: Destination (``models/``).
        data: The card's ``data`` field (generator, split, seed).
        quantize: Try an INT8 variant of the U-net.
        latency_repeats: Timed runs per card.
    """
    h, w = (int(d) for d in test[0][0].shape[-2:])
    c = spec.unet.in_channels
    k = spec.unet.n_classes
    image = TensorSpec("image", (1, c, h, w), "RGB frame scaled to [0, 1]")
    seg_content = CardContent(
        model_id=spec.seg_id, modality="echo", role="seg", method="baseline-unet",
        inputs=[image],
        outputs=[TensorSpec("probs", (1, k, h, w), PROBS_DESC), TensorSpec("uncertainty", (1, 1, h, w), UNC_DESC)],
        classes=spec.classes, normalisation=dict(ECHO_NORMALISATION), layout="NCHW", data=data,
        pairs_with=spec.qc_id, clip_length=1, architecture={"unet": _cfg(spec.unet)}, echo_mode=ECHO_MODE,
        notes=f"Handcrafted baseline of Table II of the segqc-hw paper ({SEGQC_HW.cite}; {spec.paper_row}), "
              "segmentation half.",
    )
    feeds = [{"image": x} for x in _samples(test, 3)]
    seg_card = export_model(SegmentationWithUncertainty(pair.unet), seg_content, out_dir, feeds,
                            evaluate=lambda p: _seg_metrics(onnx_seg_predictor(p), test, spec.classes),
                            latency_repeats=latency_repeats)
    seg_predict = onnx_seg_predictor(seg_card.onnx_path)
    qc_feeds = []
    for f in feeds:
        probs, unc = seg_predict(f["image"])
        qc_feeds.append({"image": f["image"], "probs": probs, "uncertainty": unc})

    def qc_metrics(path: Path) -> dict[str, Any]:
        cal = evaluate_qc(seg_predict, onnx_qc_predictor(path), test, k)
        return {"qc_mae": round(float(cal["qc_mae"]), 4), "qc_pearson": round(float(cal["qc_pearson"]), 4),
                "qc_frames": cal["n"], "scored_seg_model": spec.seg_id,
                "true_dice_range": [round(min(cal["true"]), 4), round(max(cal["true"]), 4)]}

    qc_content = CardContent(
        model_id=spec.qc_id, modality="echo", role="qc", method="baseline-resnet18",
        inputs=[image, TensorSpec("probs", (1, k, h, w), f"{PROBS_DESC} of {spec.seg_id}"),
                TensorSpec("uncertainty", (1, 1, h, w), f"uncertainty map of {spec.seg_id}")],
        outputs=[TensorSpec("dice", (1, 1), "predicted Dice of the segmentation, in [0, 1]")],
        classes=spec.classes, normalisation=dict(ECHO_NORMALISATION), layout="NCHW", data=data,
        clip_length=1, architecture={"resnet_qc": _cfg(spec.qc)}, echo_mode=ECHO_MODE,
        notes=f"Handcrafted baseline of Table II of the segqc-hw paper ({SEGQC_HW.cite}; {spec.paper_row}), QC half: "
              "trained on s2 patients "
              f"with {spec.seg_id} frozen, target = true Dice of its output.",
    )
    qc_card = export_model(pair.qc, qc_content, out_dir, qc_feeds, evaluate=qc_metrics, latency_repeats=latency_repeats)
    cards = [seg_card, qc_card]
    decision = None
    if quantize:
        calib = [{"image": x} for x in _samples(calibration, 32)]
        decision = quantize_if_faster(seg_card, calib, lambda p: _seg_metrics(onnx_seg_predictor(p), test, spec.classes),
                                      feeds[0], repeats=latency_repeats)
        if decision.shipped is not None:
            cards.append(decision.shipped)
    return cards, decision


def ship_cine(spec: BaselineSpec, unet: UNet, test: Dataset, calibration: Dataset, out_dir: Path,
              data: dict[str, Any], *, clip_length: int, quantize: bool,
              latency_repeats: int) -> tuple[list[ModelCard], QuantizationDecision | None]:
    """Export a cine U-net: a clip model ``(1, 1, T, H, W)`` or a per-frame model ``(1, 1, H, W)``."""
    return export_cine_seg(
        unet, test, calibration, out_dir, model_id=spec.seg_id, classes=spec.classes, per_frame=spec.per_frame,
        method="baseline-unet3d" if spec.unet.dims == 3 else "baseline-unet2d", data=data,
        architecture={"unet": _cfg(unet.cfg)}, quantize=quantize, latency_repeats=latency_repeats,
        notes=f"Handcrafted baseline of Table 2 of the msnas-hw paper ({MSNAS_HW.cite}; {spec.paper_row}); Dice over "
              f"every labelled frame of the test clips ({clip_length}-frame clips).")


def export_cine_seg(net: nn.Module, test: Dataset, calibration: Dataset, out_dir: Path, *, model_id: str,
                    classes: dict[int, str], per_frame: bool, method: str, data: dict[str, Any],
                    architecture: dict[str, Any], notes: str, quantize: bool, latency_repeats: int,
                    convergence: dict[str, Any] | None = None, extra: dict[str, Any] | None = None
                    ) -> tuple[list[ModelCard], QuantizationDecision | None]:
    """Export a cine segmentation network with its card, scored on ``test`` (clips ``(1, T, H, W)``).

    ``per_frame``: ``net`` is 2D, ``(1, 1, H, W) -> logits``, exported with ``clip_length`` 1 and scored on
    every frame of the clips; else a clip network ``(1, 1, T, H, W)``, also scored on the newest frame of the
    app's sliding window. INT8 is tried when ``quantize`` and shipped beside it when faster and as good."""
    clip0 = test[0][0].numpy()[None]  # (1, 1, T, H, W)
    _, _, t, h, w = clip0.shape
    k = len(classes)
    if per_frame:
        inputs = [TensorSpec("image", (1, 1, h, w), "one cine frame, zscored per frame")]
        outputs = [TensorSpec("probs", (1, k, h, w), PROBS_DESC), TensorSpec("uncertainty", (1, 1, h, w), UNC_DESC)]
        feeds = [{"image": np.ascontiguousarray(x[:, :, i])} for x in _samples(test, 2) for i in (0, t - 1)]
        predictor, layout, card_clip = onnx_framewise_seg_predictor, "NCHW", 1
    else:
        inputs = [TensorSpec("clip", (1, 1, t, h, w), f"{t} consecutive frames of one slice, oldest first, zscored per clip")]
        outputs = [TensorSpec("probs", (1, k, t, h, w), PROBS_DESC), TensorSpec("uncertainty", (1, 1, t, h, w), UNC_DESC)]
        feeds = [{"clip": x} for x in _samples(test, 2)]
        predictor, layout, card_clip = onnx_seg_predictor, "NCTHW", t
    clip_model = not per_frame
    content = CardContent(
        model_id=model_id, modality="cine", role="seg", method=method, inputs=inputs, outputs=outputs, classes=classes,
        normalisation=dict(CINE_NORMALISATION), layout=layout, data=data, clip_length=card_clip,
        architecture=architecture, notes=notes, convergence=convergence, extra=dict(extra or {}))

    def metrics(path):
        return _seg_metrics(predictor(path), test, classes, newest_frame=clip_model)

    card = export_model(SegmentationWithUncertainty(net), content, out_dir, feeds, evaluate=metrics,
                        latency_repeats=latency_repeats)
    cards, decision = [card], None
    if quantize:
        cal_src = _samples(calibration, 8)
        calib = ([{"image": np.ascontiguousarray(x[:, :, i])} for x in cal_src for i in range(0, t, max(1, t // 4))]
                 if per_frame else [{"clip": x} for x in cal_src])
        decision = quantize_if_faster(card, calib, metrics, feeds[0], repeats=max(5, latency_repeats // 5))
        if decision.shipped is not None:
            cards.append(decision.shipped)
    return cards, decision


def _cfg(cfg) -> dict[str, Any]:
    return dataclasses.asdict(cfg)
