"""Ship rtdnas's winner into ``models/`` only when it beats msnas-hw's shipped cine model within the budget.

Rule (issue 10): the app's default cine model is whichever of msnas-hw and rtdnas has the higher Dice
among models meeting the real-time rule (``app.realtime.REALTIME``: p95 <= 50 ms and >= 22 FPS on this
CPU). Our candidate is the GA / top-weight row with the highest Dice among those meeting the rule in
this run (none: nothing is shipped). msnas-hw's model is its ``cine-msnas-hw-*.json`` card in the same
folder: if it meets the rule (by its card's own p95 latency and FPS) and its Dice is >= ours, we do
not ship.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from app.cards import ModelCard
from app.realtime import REALTIME
from app.data.case import ACDC_LABELS
from search.core.convergence import card_field, shipping_warning
from search.core.genotypes import MultiscaleGenotype
from search.export.card_writer import CardContent, TensorSpec
from search.export.onnx_export import export_model
from search.methods.rtdnas import space
from search.train.clips import ClipProbabilities, card_data, clip_dataset, onnx_clip_predictor
from search.train.datasets import CINE_NORMALISATION
from search.train.evaluate import evaluate_segmentation, newest_frame_card
from search.train.row_networks import build_row_network

log = logging.getLogger(__name__)


def msnas_hw_model(models_dir: Path, cfg) -> dict[str, Any] | None:
    """msnas-hw's shipped cine card: ``{"id", "dice", "meets"}`` (None if there is none)."""
    for p in sorted(Path(models_dir).glob("cine-msnas-hw-*.json")):
        card = json.loads(p.read_text())
        m = card.get("metrics", {})
        lat, fps = (m.get("latency_ms") or {}).get("p50", float("inf")), m.get("fps", 0.0)
        ok = REALTIME.meets_metrics(m)
        return {"id": card["id"], "dice": (m.get("dice") or {}).get("mean", float("nan")), "meets": ok,
                "latency_ms": lat, "fps": fps}
    return None


def choose(cfg, rows: dict[str, Any]) -> str | None:
    """Key of our best-Dice row meeting the real-time rule (p95 and FPS, ``app.realtime.REALTIME``), or None."""
    ok = [k for k, r in rows.items() if not r.get("same_network_as") and r.get("latency")
          and REALTIME.meets(r["latency"].get("p95_ms"), r["latency"].get("fps"))]
    return max(ok, key=lambda k: rows[k]["dice"]["mean"]) if ok else None


def ship(exp, results: dict[str, Any], derivation: dict[str, Any]) -> Path | None:
    """Export the winner if it beats msnas-hw's model within the budget; write ``<out>/shipping.json``."""
    cfg, rows = exp.cfg, results["rows"]
    key = choose(cfg, rows)
    theirs = msnas_hw_model(exp.models_dir, cfg)
    done = exp.out / "shipping.json"
    if done.is_file():
        prev = json.loads(done.read_text())
        if prev.get("ours") == key and prev.get("msnas_hw") == theirs and (
                not prev.get("shipped") or Path(prev["model"]).is_file()):
            exp.say(f"ship: already decided ({prev['reason']})")
            return Path(prev["model"]) if prev.get("shipped") else None
    stale = None
    if done.is_file() and prev.get("shipped"):
        stale = Path(prev["model"])  # what this run shipped before; removed if it no longer wins
    decision: dict[str, Any] = {"ours": key, "ours_dice": rows[key]["dice"]["mean"] if key else None, "msnas_hw": theirs}
    if key is None:
        decision["shipped"] = False
        decision["reason"] = f"no rtdnas network meets {REALTIME.describe()} on this CPU"
    elif theirs is not None and theirs["meets"] and theirs["dice"] >= rows[key]["dice"]["mean"]:
        decision["shipped"] = False
        decision["reason"] = f"msnas-hw's {theirs['id']} has the higher Dice within the budget"
    else:
        decision["reason"] = ("beats msnas-hw's model within the budget" if theirs and theirs["meets"]
                              else "msnas-hw has no model within the budget")
        # Issue 16: the final round's convergence verdict goes into the card; an unconverged one is said aloud.
        final_round = read_round(exp.out / "rounds" / f"r{derivation['round']}" / "result.json")
        verdict = final_round.get("convergence")
        warning = shipping_warning(verdict, f"rtdnas {key}")
        if warning:
            exp.say(warning)
        decision["convergence"] = card_field(verdict)
        card = export_winner(exp, key, rows[key], decision["reason"], convergence=verdict, pick=derivation.get("pick"))
        decision["shipped"] = True
        decision["model"] = str(card.onnx_path)
    if stale is not None and not decision["shipped"]:
        for f in (stale, stale.with_suffix(".json")):
            f.unlink(missing_ok=True)
        decision["removed"] = str(stale)
    (exp.out / "shipping.json").write_text(json.dumps(decision, indent=1))
    exp.say(f"ship: {decision['reason']}" + (f" -> {decision.get('model')}" if decision.get("shipped") else ""))
    return Path(decision["model"]) if decision.get("shipped") else None


def read_round(path: Path) -> dict[str, Any]:
    """A search round's ``result.json`` (empty when missing)."""
    return json.loads(path.read_text()) if path.is_file() else {}


def export_winner(exp, key: str, result: dict[str, Any], reason: str, *,
                  convergence: dict[str, Any] | None = None, pick: dict[str, Any] | None = None) -> ModelCard:
    """ONNX (clip -> softmax probabilities for every frame) + verified card into ``exp.models_dir``; ``pick``: the
    derivation's cell pick (``RtdnasConfig.pick``), said in the card's notes and its ``cell_pick``."""
    cfg = exp.cfg
    command = f"python -m search rtdnas --preset {cfg.preset} --seed {cfg.seed}"
    picked = ""
    if pick:
        from search.methods.rtdnas.report import pick_words

        command += f" --cell-candidates {cfg.pick.candidates} --candidate-steps {cfg.pick.train_steps}"
        if cfg.pick.paths != "heaviest":
            command += f" --candidate-paths {cfg.pick.paths}"
        picked = (f" {pick_words(pick)}: candidate {pick['picked']} ({pick['source']}) of {len(pick['val_dice'])}, "
                  f"picked by {pick['rule']}.")
    g = MultiscaleGenotype.from_dict(result["genotype"])
    row = space.row(key, key, len(g.paths))
    net = build_row_network(space.rows_view(cfg, (row,)), row, genotype=g)
    net.load_state_dict(torch.load(exp.out / "rows" / key / "weights.pt", map_location="cpu"))
    t, h, w = cfg.data.clip_length, cfg.data.height, cfg.data.width
    split = exp.helper.split
    test_cases = exp.helper.subset(split.test)
    datasets = [clip_dataset([c], cfg.data, train=False, seed=0) for c in test_cases]
    parity = [{"clip": ds[0][0].numpy()[None]} for ds in datasets[:2] if len(ds)]

    def evaluate(path: Path) -> dict[str, Any]:
        predict = onnx_clip_predictor(path)
        per = [evaluate_segmentation(predict, ds, n_classes=len(ACDC_LABELS)) for ds in datasets]
        per_class = {ACDC_LABELS[c]: float(np.nanmean([e.per_class[c] for e in per])) for c in (1, 2, 3)}
        return {"dice": {"per_class": per_class, "mean": float(np.mean(list(per_class.values()))),
                         "evaluated_on": f"{len(test_cases)} held-out phantom patients, every frame of every clip"},
                "dice_newest_frame": newest_frame_card(predict, datasets, ACDC_LABELS)}

    lat = result["latency"]
    content = CardContent(
        model_id=f"cine-rtdnas-{key.replace('_', '-')}", modality="cine", role="seg", method="rtdnas",
        inputs=[TensorSpec("clip", (1, 1, t, h, w), f"{t} consecutive frames of one short-axis slice, resized to "
                           f"{h}x{w}, z-scored over the clip")],
        outputs=[TensorSpec("probs", (1, len(ACDC_LABELS), t, h, w), "softmax probabilities for every frame")],
        classes=dict(ACDC_LABELS), normalisation=dict(CINE_NORMALISATION), layout="NCTHW",
        data=card_data(cfg.data, split, cfg.preset, test_cases),  # phantom as before; --data: hashes, no ids
        genotype=g.to_dict(), clip_length=t, convergence=card_field(convergence),
        architecture={"row": result["name"], "channels_scale0": cfg.trained_channels, "n_paths": len(g.paths),
                      "layers": cfg.supernet.layers, "scales": cfg.supernet.scales,
                      "path_selection": "genetic" if key.startswith("ga_") else "top-weight"},
        notes=(f"{result['name']} from `{command}` "
               f"(RT-DNAS, Lu et al., MICCAI 2022, arXiv:2206.04682).{picked} "
               f"Best Dice among this run's networks meeting {REALTIME.describe()} "
               f"on this CPU ({lat['p50_ms']:.1f} ms median, {lat['fps']:.1f} FPS in "
               f"the run's interleaved timing); shipped because: {reason}. Trained {cfg.retrain.steps} steps at "
               f"{h}x{w}, {cfg.width_divisor}x narrower than the paper's widths."),
        # Shipped only when it beats msnas-hw's model within the budget (issue 10) -> the app's default cine model
        # (app.engine.models ranks a card with "default": true first among those meeting the rule).
        # meets_realtime is written by the card writer from the exported file's own figures.
        extra={"default": True, **({"cell_pick": {"candidates": len(pick["val_dice"]), "picked": pick["picked"],
                                                  "source": pick["source"], "train_steps": pick["train_steps"],
                                                  "gene_pool": pick.get("gene_pool", "heaviest"),
                                                  "validation_dice": pick["val_dice"]}} if pick else {})},
    )
    return export_model(ClipProbabilities(net).eval(), content, exp.models_dir, parity, evaluate=evaluate,
                        latency_repeats=max(10, cfg.measure.repeats))
