"""Ship the winning (hardware-aware) seg + QC pair into ``models/`` through the one export path.

The segmentation model outputs ``probs`` and ``uncertainty`` (normalised entropy, in-graph); the QC
model takes ``image``, ``probs``, ``uncertainty`` and outputs ``dice``; the seg card names its QC
model in ``pairs_with``. The metrics on both cards are measured on the exported files themselves
(onnxruntime, test patients), the latency at the shipped resolution; the Table II figures at
256x256 go into the notes. An INT8 variant of the segmentation model (``<seg id>-int8``) is shipped
only where ``search.export.quantize.quantize_if_faster`` finds it faster on this CPU at <= 0.005
Dice loss; the decision is written to the run's report folder either way.

The ids follow ``<modality>-<method>-<role>`` (``echo-segqc-hw-seg``, ``echo-segqc-hw-qc``); the
B-mode task (``--task bmode``, ``search.methods.segqc_hw.tasks``) ships ``echo-bmode-segqc-hw-seg`` /
``-qc`` with 4 classes (0 background, 1 LV, 2 MYO, 3 LA). Both cards of a pair carry ``echo_mode``
(``"contrast"`` or ``"bmode"``), which the app matches against the recording. The app picks the seg
card as the echo default by its ``method`` (``app.engine.models.METHOD_PREFERENCE`` lists ``segqc-hw``
first) and its QC model through ``pairs_with``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from torch import nn

from app.data.case import Case
from search.core.convergence import card_field, shipping_warning
from search.export.card_writer import CardContent, TensorSpec
from search.export.onnx_export import export_model
from search.export.predictors import onnx_qc_predictor, onnx_seg_predictor
from search.export.quantize import quantize_if_faster
from search.methods.segqc_hw.config import SegQcConfig
from search.methods.segqc_hw.data import card_data, frame_dataset
from search.methods.segqc_hw.tasks import echo_task
from search.train.datasets import ECHO_NORMALISATION
from search.train.evaluate import evaluate_qc, evaluate_segmentation
from search.train.seg_outputs import SegmentationWithUncertainty

log = logging.getLogger(__name__)

SEG_ID, QC_ID = echo_task("contrast").model_ids("default")  # echo-segqc-hw-seg, echo-segqc-hw-qc
BMODE_SEG_ID, BMODE_QC_ID = echo_task("bmode").model_ids("default")  # echo-bmode-segqc-hw-seg, -qc
N_CALIBRATION = 32  # S1 training frames (no augmentation) calibrating the INT8 variant


def model_ids(preset: str, task: str = "contrast") -> tuple[str, str]:
    """Ids of the shipped pair of ``task`` (the default preset ships the plain ids; others are suffixed)."""
    return echo_task(task).model_ids(preset)


def _budget_words(budget_ms: float) -> str:
    """The card's words for a latency budget (``SearchConfig.latency_budget_ms``; none when 0)."""
    return f", only the expected latency above {budget_ms:g} ms charged" if budget_ms > 0 else ""


def export_pair(cfg: SegQcConfig, pair: tuple[nn.Module, nn.Module], row: dict, cases: dict[str, list[Case]],
                models_dir: Path, machine: str, *, record: Path | None = None, row_key: str = "searched_hw") -> list[str]:
    """Export ``pair`` (trained seg logits net, QC net) with cards; returns the shipped ids.

    Args:
        cfg: The run's configuration (ids, resolution, timed runs).
        pair: The trained segmentation logits net and its QC net.
        row: The pair's Table II row (genotype, test scores, cost at the measurement resolution).
        cases: The protocol's patients (``s1`` calibrates INT8, ``test`` scores every file).
        models_dir: Destination (``models/``).
        machine: The machine line of Table II, quoted in the cards' notes.
        record: JSON file for what was shipped and the INT8 decision (e.g. ``<run>/report/export.json``).
        row_key: Which search the pair comes from (``searched_hw`` or a sensitivity search).
    """
    seg, qc = pair
    if row.get("weights_here") is False:
        raise FileNotFoundError("the hardware-aware pair was trained elsewhere and its weights.pt is not in the run "
                                "folder; bring rows/searched_hw_seed*/weights.pt along to export it")
    seg.eval(), qc.eval()
    task = cfg.task
    seg_id, qc_id = task.model_ids(cfg.preset)
    classes = {int(k): v for k, v in task.classes.items()}
    k = task.num_classes
    r = cfg.data.resolution
    test = frame_dataset(cases["test"], r, None, seed=0)
    data = card_data(cfg.data, cases, cfg.preset)  # the phantom's description, or the --data dataset's hashes
    cost = row["cost"]
    table_note = (f"In the Table II harness (seg + QC at {cfg.measure.resolution}x{cfg.measure.resolution}, {machine}): "
                  f"{cost['latency_ms']:.1f} ms, {cost['macs'] / 1e6:.0f} M MACs; test Dice "
                  f"{row['test']['dice_mean']:.3f}, QC MAE {row['test']['qc_mae']:.3f}. See docs/{task.docs_name}/README.md.")
    class_words = ", ".join(f"{v} {n}" for v, n in sorted(classes.items()))
    image = TensorSpec("image", (1, 3, r, r), "RGB frame scaled to [0, 1]")
    probs = TensorSpec("probs", (1, k, r, r), f"softmax class probabilities ({class_words})")
    unc = TensorSpec("uncertainty", (1, 1, r, r), f"per-pixel entropy of the softmax / log({k}), in [0, 1] (in-graph)")
    genotype = row["genotype"]
    verdict = (row.get("search") or {}).get("convergence")  # issue 16: never shipped silently when unconverged
    warning = shipping_warning(verdict, seg_id)
    if warning:
        log.warning("%s", warning)
    convergence = card_field(verdict)
    if "skeleton" in genotype:  # the skeleton space: the U is its spec (the card's architecture), no seg cells
        seg_genotype, seg_architecture = None, {"unet_skeleton": {"spec": genotype["skeleton"]}}
    else:
        seg_genotype = {"kind": "nasunet", **genotype["seg"]}
        seg_architecture = {"nasunet": {"init_filters": cfg.space.seg_init_filters, "depth": cfg.space.seg_depth,
                                        "n_nodes": cfg.space.nodes,
                                        **({"stem_convs": cfg.space.stem_convs} if cfg.space.stem_convs != 1 else {})}}
    seg_content = CardContent(
        model_id=seg_id, modality="echo", role="seg", method="segqc-hw", inputs=[image], outputs=[probs, unc],
        classes=classes, normalisation=dict(ECHO_NORMALISATION), layout="NCHW", data=data, echo_mode=task.name,
        genotype=seg_genotype, pairs_with=qc_id, clip_length=1, convergence=convergence,
        architecture=seg_architecture,
        notes=("" if task.name == "contrast" else f"{task.words[:1].upper() + task.words[1:]}. ") +
              "Searched jointly with its QC model (segqc-hw, Zeng et al. 2021, arXiv:2109.06909; hardware-aware, "
              f"lambda2 = {row.get('lambda2', cfg.search.lambda2):g}"
              f"{_budget_words(cfg.search.latency_budget_ms)}; the hardware-aware search with the best validation "
              "score), retrained from scratch on S1. " + table_note)
    feeds = [{"image": test[i][0].numpy()[None]} for i in range(min(3, len(test)))]

    def seg_metrics(path: Path) -> dict[str, Any]:
        if k == 2:  # one foreground class: the mean of the frames' Dice (1 where neither side has any)
            cal = evaluate_qc(onnx_seg_predictor(path), lambda *_: 0.0, test, 2)
            dice = float(sum(cal["true"]) / len(cal["true"]))
            return {"dice": {"per_class": {classes[1]: round(dice, 4)}, "mean": round(dice, 4)},
                    "eval_frames": len(cal["true"])}
        ev = evaluate_segmentation(onnx_seg_predictor(path), test, k)  # per class, mean over the classes
        return {"dice": ev.to_card(classes), "eval_frames": len(ev.per_frame),
                "dice_frame_mean": round(float(sum(ev.per_frame) / len(ev.per_frame)), 4)}

    bare = seg.net if "skeleton" in genotype else seg  # the card's unet_skeleton builder is the bare SkeletonUNet
    seg_card = export_model(SegmentationWithUncertainty(bare), seg_content, models_dir, feeds, evaluate=seg_metrics)
    seg_predict = onnx_seg_predictor(seg_card.onnx_path)
    qc_feeds = []
    for f in feeds:
        p, u = seg_predict(f["image"])
        qc_feeds.append({"image": f["image"], "probs": p, "uncertainty": u})

    def qc_metrics(path: Path) -> dict[str, Any]:
        cal = evaluate_qc(seg_predict, onnx_qc_predictor(path), test, k)
        return {"qc_mae": round(float(cal["qc_mae"]), 4), "qc_pearson": round(float(cal["qc_pearson"]), 4),
                "qc_frames": cal["n"], "scored_seg_model": seg_id,
                "true_dice_range": [round(min(cal["true"]), 4), round(max(cal["true"]), 4)]}

    qc_content = CardContent(
        model_id=qc_id, modality="echo", role="qc", method="segqc-hw",
        inputs=[image, TensorSpec("probs", (1, k, r, r), f"probs of {seg_id}"),
                TensorSpec("uncertainty", (1, 1, r, r), f"uncertainty of {seg_id}")],
        outputs=[TensorSpec("dice", (1,), "predicted Dice of the segmentation, in [0, 1]")],
        classes=classes, normalisation=dict(ECHO_NORMALISATION), layout="NCHW", data=data, echo_mode=task.name,
        genotype={"kind": "qc", **genotype["qc"]}, clip_length=1, convergence=convergence,
        architecture={"qcnet": {"init_filters": cfg.space.qc_init_filters, "n_stages": cfg.space.qc_stages,
                                "n_nodes": cfg.space.nodes}},
        notes=f"QC half of the segqc-hw pair ({task.words}): trained on S2 patients with {seg_id} frozen, target = "
              f"true Dice of its hard segmentation{' (mean over LV, MYO and LA)' if k > 2 else ''}. " + table_note)
    qc_card = export_model(qc, qc_content, models_dir, qc_feeds, evaluate=qc_metrics)
    shipped = [seg_id, qc_id]
    s1 = frame_dataset(cases["s1"], r, None, seed=0)
    calibration = [{"image": s1[i][0].numpy()[None]} for i in range(min(N_CALIBRATION, len(s1)))]
    decision = quantize_if_faster(seg_card, calibration, seg_metrics, feeds[0], repeats=max(5, cfg.measure.timed_runs))
    if decision.shipped is not None:
        shipped.append(decision.shipped.id)
    log.info("exported %s into %s (int8 %s)", ", ".join(shipped), models_dir, decision.reason)
    if record is not None:
        record.parent.mkdir(parents=True, exist_ok=True)
        record.write_text(json.dumps({
            "shipped": shipped, "models_dir": str(models_dir), "from_search": row_key,
            "lambda2": row.get("lambda2", cfg.search.lambda2), "convergence": convergence,
            "seg": {"id": seg_id, "sha256": seg_card.raw["onnx_sha256"], "metrics": seg_card.metrics},
            "qc": {"id": qc_id, "sha256": qc_card.raw["onnx_sha256"], "metrics": qc_card.metrics},
            "int8": {"shipped": decision.shipped is not None, "reason": decision.reason,
                     "fp32_p50_ms": decision.fp32_p50_ms, "int8_p50_ms": decision.int8_p50_ms,
                     "dice_fp32": decision.dice_fp32, "dice_int8": decision.dice_int8},
        }, indent=1) + "\n")
    return shipped
