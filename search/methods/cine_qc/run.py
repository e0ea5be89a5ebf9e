"""The cine QC run: patients -> samples through the frozen model -> training -> scores -> export + pairing.

Each stage leaves its result in the run folder (samples per patient, ``qc.pt`` with the training
curve, ``report.json``), so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
import torch

from app.engine.models import find_model
from search.core.stats import bootstrap_mean_ci
from search.methods.cine_qc.config import CineQcConfig
from search.methods.cine_qc.data import Samples, make_samples, qc_cases, qc_split
from search.methods.cine_qc.network import CineQcNet
from search.methods.cine_qc.ship import data_field, export_qc, pair, promote_default, qc_model_id
from search.methods.cine_qc.train import fit, predict, scores
from search.train import precision

log = logging.getLogger(__name__)


def seg_dice_ci(s: Samples, n_boot: int = 2000, seed: int = 0) -> dict:
    """Mean true Dice of the segmentation over patients, with a 95% bootstrap interval over patients."""
    per_patient = np.array([float(np.mean(s.dice[s.case == i])) for i in np.unique(s.case)])
    lo, hi = bootstrap_mean_ci(per_patient, n_boot=n_boot, rng=np.random.default_rng(seed))
    return {"mean": round(float(per_patient.mean()), 4), "ci95": [round(float(lo), 4), round(float(hi), 4)],
            "patients": int(per_patient.size), "frames": len(s)}


def run(cfg: CineQcConfig, out: Path, *, models_dir: Path | None = None, ship: bool = True,
        threads: int = 1, challenge: bool = False) -> dict:
    """Train, score and (with ``ship``) export the QC model of ``cfg.seg_model``; returns the report.

    ``challenge``: also score the folder's current cine default on the same test patients, and after
    shipping make ``cfg.seg_model`` the default when it meets the real-time rule and its Dice is at
    least the incumbent's (``ship.promote_default``).
    """
    t_start = time.perf_counter()
    torch.set_num_threads(threads)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(precision.tag(cfg.to_json()), indent=1) + "\n")  # bf16 recorded
    seg = find_model(cfg.seg_model, models_dir)
    split = qc_split(qc_cases(cfg), cfg)
    samples = {name: make_samples(cases, seg, cfg, cache=out / "samples", threads=threads)
               for name, cases in split.items()}
    t_samples = time.perf_counter() - t_start
    n_classes = int(samples["train"].probs.shape[1])
    weights = out / "qc.pt"
    saved = torch.load(weights, weights_only=False) if weights.exists() else None
    if saved is not None and saved.get("config", {}).get("seg_model") != cfg.seg_model:
        log.warning("%s was trained for %s, not %s: training afresh", weights, saved.get("config", {}).get("seg_model"),
                    cfg.seg_model)
        saved = None
    trained_in = saved.get("config", {}).get("precision", "fp32") if saved is not None else None
    if saved is not None and trained_in != precision.current():
        log.warning("%s was trained in %s, this run trains in %s: training afresh", weights, trained_in,
                    precision.current())
        saved = None
    if saved is not None:
        net = CineQcNet(n_classes=n_classes, width=cfg.width)
        net.load_state_dict(saved["state_dict"])
        net.eval()
        curve = saved["curve"]
        log.info("QC network: reusing %s (delete it to retrain)", weights)
    else:
        net, curve = fit(samples["train"], samples["val"], cfg, n_classes)
        torch.save({"state_dict": net.state_dict(), "curve": curve, "config": precision.tag(cfg.to_json())}, weights)
    report = {
        "seg_model": seg.id, "preset": cfg.preset,
        "patients": {k: len(v) for k, v in split.items()}, "samples": {k: len(v) for k, v in samples.items()},
        "test_torch": scores(predict(net, samples["test"]), samples["test"]),
        "val_torch": scores(predict(net, samples["val"]), samples["val"]),
        "seg_dice_test_patients": seg_dice_ci(samples["test"]),
        "curve": curve, "seconds": {"samples": round(t_samples, 1)},
    }
    if ship:
        qc_id = qc_model_id(seg.id, cfg.preset)
        dest = Path(models_dir) if models_dir is not None else Path(seg.card_path).parent
        t = report["test_torch"]
        notes = (f"Per-frame QC of {seg.id}: predicts the Dice of its newest-frame mask (the app's mask at the "
                 f"source resolution). Trained on {len(split['train'])} phantom patients that no split of {seg.id} "
                 f"used (S2 protocol), early-stopped on {len(split['val'])}, scored on {len(split['test'])} test "
                 f"patients over every quality bin: MAE {t['qc_mae']:.3f}, Pearson r {t['qc_pearson']:.3f}. "
                 f"{seg.id}'s own Dice on those test patients: {report['seg_dice_test_patients']['mean']:.3f} "
                 f"(95% CI {report['seg_dice_test_patients']['ci95'][0]:.3f}-"
                 f"{report['seg_dice_test_patients']['ci95'][1]:.3f}). `python -m search cine-qc`.")
        card = export_qc(net, seg, samples["test"], dest, qc_id=qc_id,
                         data=data_field(cfg.to_json(), {k: [c.case_id for c in v] for k, v in split.items()}),
                         notes=notes, width=cfg.width)
        pair(seg, qc_id, report["seg_dice_test_patients"])
        report["shipped"] = {"id": card.id, "metrics": card.metrics, "models_dir": str(dest)}
        if challenge:
            from app.engine.models import default_models

            incumbent = default_models("cine", dest)[0]
            if incumbent.id == seg.id:
                report["challenge"] = {"incumbent": seg.id, "promoted": False, "note": "already the cine default"}
            else:
                theirs = seg_dice_ci(make_samples(split["test"], incumbent, cfg, cache=out / "samples", threads=threads))
                promoted = promote_default(find_model(seg.id, dest), report["seg_dice_test_patients"], incumbent,
                                           theirs, dest)
                report["challenge"] = {"incumbent": incumbent.id, "incumbent_dice_test_patients": theirs,
                                       "promoted": promoted}
                log.info("challenge: %s %.3f vs incumbent %s %.3f on the same test patients: %s", seg.id,
                         report["seg_dice_test_patients"]["mean"], incumbent.id, theirs["mean"],
                         "now the cine default" if promoted else "the incumbent stays")
    report["seconds"]["total"] = round(time.perf_counter() - t_start, 1)
    (out / "report.json").write_text(json.dumps(report, indent=1, default=float) + "\n")
    return report
