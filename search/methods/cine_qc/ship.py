"""Export the cine QC network through the one export path and pair it with its segmentation model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from app.cards import ModelCard
from search.export.card_writer import CardContent, TensorSpec
from search.export.onnx_export import export_model
from search.export.predictors import onnx_qc_predictor
from search.methods.cine_qc.data import Samples, case_list_hash
from search.methods.cine_qc.train import scores


def qc_model_id(seg_id: str, preset: str) -> str:
    """``<seg id>-qc`` for the default preset, ``<seg id>-qc-<preset>`` otherwise."""
    return f"{seg_id}-qc" if preset == "default" else f"{seg_id}-qc-{preset}"


def export_qc(net: nn.Module, seg: ModelCard, test: Samples, models_dir: Path, *, qc_id: str, data: dict,
              notes: str, width: int) -> ModelCard:
    """Export ``net`` as ``qc_id`` with a card whose metrics are measured on the ONNX file (test patients)."""
    _, n_classes, h, w = (1, *test.probs.shape[1:])
    image = TensorSpec("image", (1, 1, h, w), f"newest frame of the clip as {seg.id} sees it (z-scored)")
    probs = TensorSpec("probs", (1, n_classes, h, w), f"newest-frame probs of {seg.id}")
    unc = TensorSpec("uncertainty", (1, 1, h, w), f"normalised entropy of {seg.id}'s newest-frame probs")
    feeds = [test.feeds(i) for i in range(min(3, len(test)))]

    def qc_metrics(path: Path) -> dict[str, Any]:
        predict = onnx_qc_predictor(path)
        pred = np.array([predict(*test.feeds(i).values()) for i in range(len(test))], dtype=np.float64)
        s = scores(pred, test)
        return {"qc_mae": s["qc_mae"], "qc_pearson": s["qc_pearson"], "qc_frames": s["n"],
                "qc_patients": len(test.case_ids), "scored_seg_model": seg.id,
                "true_dice_range": [round(float(test.dice.min()), 4), round(float(test.dice.max()), 4)],
                "traffic_light": s["traffic_light"], "per_quality_bin": s["per_quality_bin"]}

    content = CardContent(
        model_id=qc_id, modality="cine", role="qc", method="cine-qc", inputs=[image, probs, unc],
        outputs=[TensorSpec("dice", (1,), "predicted Dice of the segmentation, in [0, 1]")],
        classes={int(k): v for k, v in seg.classes.items()}, normalisation={"kind": "zscore"}, layout="NCHW",
        data=data, genotype=None, clip_length=1, notes=notes,
        architecture={"cine_qc": {"n_classes": int(n_classes), "width": int(width)}})
    return export_model(net, content, models_dir, feeds, evaluate=qc_metrics)


def pair(seg: ModelCard, qc_id: str, fresh_dice: dict | None = None) -> None:
    """Name ``qc_id`` as the QC partner in the segmentation card (``pairs_with``), keeping its key order.

    ``fresh_dice`` (the segmentation's Dice on the QC test patients, with its 95% interval) goes into
    the card's ``metrics.dice_fresh_patients``: patients no split of the segmentation model used.
    """
    path = Path(seg.card_path)
    card = json.loads(path.read_text())
    card["pairs_with"] = qc_id
    if fresh_dice is not None:
        card.setdefault("metrics", {})["dice_fresh_patients"] = {
            **fresh_dice, "evaluated_on": "phantom patients no split of this model used (the cine-qc test part), "
                                          "the app's mask at the source resolution, every 2nd frame of every slice"}
    path.write_text(json.dumps(card, indent=2, allow_nan=False) + "\n")


def data_field(cfg_json: dict, split: dict[str, list[str]]) -> dict:
    """The card's ``data``: generator, seed, split sizes and case-list hashes (no patient identifiers)."""
    return {"source": "phantom-cine (app.data.phantom)", "seed": cfg_json["phantom_seed"],
            "protocol": "S2 of the joint seg + QC paper: segmentation frozen, target = true Dice of its mask",
            "split": {k: {"patients": len(v), "case_list_sha256": case_list_hash(v)} for k, v in split.items()},
            "slices": cfg_json["slices"] or "all", "frame_stride": cfg_json["frame_stride"],
            "preset": cfg_json["preset"]}


def promote_default(seg: ModelCard, ours: dict, incumbent: ModelCard, theirs: dict, models_dir: Path) -> bool:
    """Make ``seg`` the cine default when it beats the ``incumbent`` default on the same fresh patients.

    ``ours`` and ``theirs`` are the two models' Dice on the cine-qc test patients (``seg_dice_ci``,
    the app's mask at the source resolution, the same frames). ``seg`` must meet the real-time rule
    on its card and have its QC partner. On success ``seg``'s card gets ``"default": true`` with a
    ``default_reason``, and every other cine segmentation card in ``models_dir`` loses its flag (the
    app's ranking would otherwise fall back to the cards' own Dice, measured at different sizes).
    Returns whether ``seg`` was promoted.
    """
    from app.cards import discover

    if seg.id == incumbent.id or not seg.raw.get("meets_realtime") or not seg.pairs_with:
        return False
    if ours["mean"] < theirs["mean"]:
        return False
    for card in discover(models_dir):
        if card.modality != "cine" or card.role != "seg":
            continue
        path = Path(card.card_path)
        raw = json.loads(path.read_text())
        if card.id == seg.id:
            raw["default"] = True
            raw["default_reason"] = (
                f"Dice {ours['mean']:.3f} (95% CI {ours['ci95'][0]:.3f}-{ours['ci95'][1]:.3f}) against the previous "
                f"default {incumbent.id}'s {theirs['mean']:.3f} ({theirs['ci95'][0]:.3f}-{theirs['ci95'][1]:.3f}) on "
                f"the same {ours['patients']} fresh phantom patients through the app's stages "
                "(`python -m search cine-qc --challenge`)")
        elif raw.pop("default", None) is None:
            continue
        else:
            raw.pop("default_reason", None)
        path.write_text(json.dumps(raw, indent=2, allow_nan=False) + "\n")
    return True
