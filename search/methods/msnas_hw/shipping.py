"""Choosing and exporting the cine model this method ships into ``models/``.

Candidates are the searched rows (ours n=1, n=2 and MS-NAS n=4): this method's product. The choice,
at the input the model is deployed with (the trained clip size):

1. the best mean Dice among rows meeting the real-time rule (``app.realtime.REALTIME``: p95 latency
   <= 50 ms and throughput >= 22 FPS, one process, onnxruntime CPU), if any is also useful (mean Dice >=
   ``MeasureConfig.useful_dice``);
2. otherwise the fastest useful row, labelled in its card as *not meeting the budget*.

The export goes through the project's one export function (``search.export.onnx_export``): parity
with PyTorch, Dice measured on the exported file, latency, FLOPs, the card.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
from torch import nn

from app.cards import ModelCard
from app.realtime import REALTIME
from app.data.case import ACDC_LABELS, Case
from search.core.convergence import card_field
from search.core.genotypes import MultiscaleGenotype
from search.export.card_writer import CardContent, TensorSpec
from search.export.onnx_export import export_model
from search.methods.msnas_hw.config import MsnasHwConfig, RowSpec
from search.train.clips import ClipProbabilities, card_data, clip_dataset, onnx_clip_predictor
from search.train.datasets import CINE_NORMALISATION
from search.train.evaluate import evaluate_segmentation, newest_frame_card

__all__ = ["ClipProbabilities", "choose_row", "export_row", "meets_budget"]


def meets_budget(cfg: MsnasHwConfig, latency: dict[str, Any] | None) -> bool:
    """p95 latency and throughput meet the one real-time rule (``app.realtime.REALTIME``)."""
    return bool(latency) and REALTIME.meets(latency.get("p95_ms"), latency.get("fps"))


def choose_row(cfg: MsnasHwConfig, results: dict[str, dict[str, Any]]) -> tuple[RowSpec, str] | None:
    """The row to ship and why (see the module docstring); None when no searched row is useful."""
    rows = [r for r in cfg.rows if r.kind == "msnas" and r.key in results and (results[r.key].get("latency") or {}).get("trained")]
    useful = [r for r in rows if results[r.key]["dice"]["mean"] >= cfg.measure.useful_dice]
    fast = [r for r in useful if meets_budget(cfg, results[r.key]["latency"]["trained"])]
    if fast:
        best = max(fast, key=lambda r: results[r.key]["dice"]["mean"])
        return best, "best mean Dice among the searched rows meeting the real-time budget"
    if useful:
        best = min(useful, key=lambda r: results[r.key]["latency"]["trained"]["p50_ms"])
        return best, ("FASTEST USEFUL searched row; it does NOT meet the real-time budget "
                      f"({REALTIME.describe()}) on this CPU")
    return None


def export_row(cfg: MsnasHwConfig, row: RowSpec, net: nn.Module, genotype: MultiscaleGenotype | None,
               result: dict[str, Any], reason: str, test_cases: Sequence[Case], split, models_dir: Path, *,
               convergence: dict[str, Any] | None = None) -> ModelCard:
    """Export one trained row with its card into ``models_dir``.

    Args:
        cfg: Run configuration.
        row: The chosen row.
        net: Its trained logits network (clip in, logits out).
        genotype: Its searched architecture (None for U-nets).
        result: Its row result (Dice, latency) for the card's notes.
        reason: Why it was chosen (goes into the card's notes).
        test_cases: Held-out patients: Dice on the exported file and the parity inputs.
        split: The patient split (ids only go into the card).
        models_dir: Destination.
        convergence: Its search's convergence verdict (JSON), for the card's ``search.convergence``.
    """
    t, h, w = cfg.data.clip_length, cfg.data.height, cfg.data.width
    model_id = f"cine-msnas-hw-{row.key.replace('_', '-')}"
    datasets = [clip_dataset([c], cfg.data, train=False, seed=0) for c in test_cases]
    parity = [{"clip": ds[i][0].numpy()[None]} for ds in datasets[:2] for i in range(min(1, len(ds)))]

    def evaluate(path: Path) -> dict[str, Any]:
        predict = onnx_clip_predictor(path)
        per_patient = [evaluate_segmentation(predict, ds, n_classes=len(ACDC_LABELS)) for ds in datasets]
        per_class = {ACDC_LABELS[c]: float(np.nanmean([e.per_class[c] for e in per_patient])) for c in (1, 2, 3)}
        return {"dice": {"per_class": per_class, "mean": float(np.mean(list(per_class.values()))),
                         "evaluated_on": f"{len(test_cases)} held-out phantom patients, every frame of every clip"},
                "dice_newest_frame": newest_frame_card(predict, datasets, ACDC_LABELS)}

    content = CardContent(
        model_id=model_id, modality="cine", role="seg", method="msnas-hw",
        inputs=[TensorSpec("clip", (1, 1, t, h, w), f"{t} consecutive frames of one short-axis slice, "
                           f"resized to {h}x{w}, z-scored over the clip")],
        outputs=[TensorSpec("probs", (1, len(ACDC_LABELS), t, h, w), "softmax probabilities for every frame")],
        classes=dict(ACDC_LABELS), normalisation=dict(CINE_NORMALISATION), layout="NCTHW",
        data=card_data(cfg.data, split, cfg.preset, test_cases),  # phantom as before; --data: hashes, no ids
        genotype=None if genotype is None else genotype.to_dict(),
        clip_length=t, convergence=card_field(convergence),
        architecture={"row": row.name, "kind": row.kind, "channels_scale0": cfg.trained_channels,
                      "n_paths": row.n_paths, "latency_aware_search": row.latency_aware,
                      "layers": cfg.supernet.layers, "scales": cfg.supernet.scales},
        notes=(f"{row.name} from `python -m search msnas-hw --preset {cfg.preset}`. Chosen as the {reason}. "
               + (f"Deployment choice: each {t}-frame clip is resized to {h}x{w} by the app's preprocess "
                  f"(the paper: {'x'.join(map(str, cfg.measure.paper_shape[1:]))}) and the network is "
                  f"{cfg.width_divisor}x narrower than its paper size; Dice was measured at this input. "
                  if (h, w) != tuple(cfg.measure.paper_shape[1:]) or cfg.width_divisor > 1 else "")
               + f"Table 2 latency at this input: {result['latency']['trained']['p50_ms']:.1f} ms median "
               f"({result['latency']['trained']['fps']:.1f} FPS); the paper-sized twin at "
               f"{'x'.join(map(str, cfg.measure.paper_shape))}: "
               + (f"{result['latency']['paper_size']['p50_ms']:.1f} ms." if result['latency'].get('paper_size') else "not measured.")),
    )
    return export_model(ClipProbabilities(net).eval(), content, models_dir, parity, evaluate=evaluate,
                        latency_repeats=max(10, cfg.measure.repeats))
