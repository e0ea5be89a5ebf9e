"""Tiny synthetic stored runs in the methods' own formats (configs and report files written by the
methods' code wherever it writes them without training), for the report tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from search.latency.measure import LatencyStats

RUNTIME = "onnxruntime test CPUExecutionProvider"


def stats(p50: float) -> dict:
    """A latency entry as the methods store it (``LatencyStats.to_dict``)."""
    return LatencyStats(p50, p50 * 1.2, p50 * 1.05, 1000.0 / (p50 * 1.05), 3, 1, RUNTIME).to_dict()


def png(path: Path) -> Path:
    """A real (tiny) PNG, as a method's figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1, 1))
    ax.plot([0, 1], [0, 1])
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=20, metadata={"Software": None})
    plt.close(fig)
    return path


def _write(path: Path, doc) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1))


# ------------------------------------------------------------------------------------ segqc-hw
SEGQC_DICE = {"unet8": 0.611, "unet16": 0.644, "searched_nohw": 0.633, "searched_hw": 0.622}
SEGQC_LATENCY = {"unet8": 41.5, "unet16": 77.25, "searched_nohw": 30.5, "searched_hw": 21.75}


def segqc_run(folder: Path, preset: str = "smoke", sampler: str | None = None) -> Path:
    """``<folder>/report/{results.json, README.md, qc_scatter.png}`` written by segqc-hw's ``write_report``
    (``sampler``: the search sampler the config names, default the preset's)."""
    from search.methods.segqc_hw.config import preset as segqc_preset
    from search.methods.segqc_hw.report import write_report

    rows = {}
    for i, key in enumerate(SEGQC_DICE):
        rows[key] = {
            "test": {"dice_mean": SEGQC_DICE[key], "qc_mae": 0.041 + i / 1000, "qc_pearson": 0.85, "n": 12,
                     "per_bin": {"good": {"n": 6, "dice_mean": SEGQC_DICE[key] + 0.05, "qc_mae": 0.03, "qc_pearson": 0.9}},
                     "frames": [{"true": 0.6, "predicted": 0.62, "quality_bin": "good"}]},
            "cost": {"latency_ms": SEGQC_LATENCY[key], "latency_min_ms": SEGQC_LATENCY[key] - 1, "macs": 9.0e8 - i * 1e8,
                     "flops": 1.8e9 - i * 2e8, "params": 5.0e5},
        }
        if key.startswith("searched"):
            rows[key].update(search={"history": [{"epoch": 1, "phase": "warmup", "ce": 0.3, "mse_s2": 0.02,
                                                   "expected_latency_ms": 20.0, "arch_entropy": 1.5}]},
                             genotype={"seg": "cells"}, expected_latency_ms=18.0)
    sensitivity = {"searched_hw_lambda0.01": dict(rows["searched_hw"], lambda2=0.01,
                                                  cost=dict(rows["searched_hw"]["cost"], latency_ms=15.5))}
    from dataclasses import replace

    cfg = segqc_preset(preset)
    if sampler is not None:
        cfg = replace(cfg, search=replace(cfg.search, sampler=sampler))
    results = {"config": cfg.to_dict(), "machine": "test machine", "rows": rows, "n_test_frames": 12,
               "sensitivity": sensitivity}
    report = folder / "report"
    write_report(results, report, {"Predicted vs true Dice": "qc_scatter.png"})
    png(report / "qc_scatter.png")
    return report / "results.json"


# ------------------------------------------------------------------------------------ msnas-hw
MSNAS_ROWS = {"unet3d_d3_if16": (0.701, 30.0), "msnas_n4": (0.752, 60.0), "ours_n1": (0.733, 20.0)}


def msnas_run(folder: Path) -> Path:
    """config.json (the smoke preset) and three of the seven rows' ``result.json`` (the others not run)."""
    from search.methods.msnas_hw.config import preset

    cfg = preset("smoke")
    _write(folder / "config.json", cfg.to_dict())
    shape = [cfg.data.clip_length, cfg.data.height, cfg.data.width]
    for key, (dice, ms) in MSNAS_ROWS.items():
        name = next(r.name for r in cfg.rows if r.key == key)
        _write(folder / "rows" / key / "result.json", {
            "key": key, "name": name, "kind": "unet3d" if key.startswith("unet") else "msnas",
            "dice": {"per_class": {"RV": dice - 0.1, "MYO": dice, "LV": dice + 0.1}, "mean": dice,
                     "std": {"RV": 0.01, "MYO": 0.02, "LV": 0.03, "mean": 0.02}},
            "params": 1234, "latency": {"trained": {**stats(ms), "shape": shape}},
            "latency_per_frame": {"trained": None}, "flops_paper_size": 2.5e9,
        })
    png(folder / "report" / "frontier.png")
    return folder


# -------------------------------------------------------------------------------------- rtdnas
def rtdnas_run(folder: Path) -> Path:
    """A finished smoke-shaped rtdnas run: one round, derivation (GA = top-weight at N_l = 2), rows,
    a cloud network and latency.json."""
    from search.methods.rtdnas.config import preset

    cfg = preset("smoke")
    _write(folder / "config.json", cfg.to_dict())

    from search.core.sampling import sample_random_genotype

    rng = np.random.default_rng(0)

    def row(key: str, dice: float) -> dict:
        g = sample_random_genotype("rtdnas", rng, n_layers=cfg.supernet.layers, n_scales=cfg.supernet.scales,
                                   n_paths=int(key[-1]) if key[-1].isdigit() and not key.startswith("cloud") else 1,
                                   n_nodes=cfg.supernet.nodes)
        return {"key": key, "name": key, "genotype": json.loads(g.to_json()),
                "dice": {"per_class": {"RV": dice, "MYO": dice, "LV": dice}, "mean": dice,
                         "std": {"RV": 0.0, "MYO": 0.0, "LV": 0.0, "mean": 0.0}}}

    for key, dice in {"tw_n2": 0.581, "tw_n3": 0.592, "ga_n3": 0.597, "ga_n1": 0.555, "cloud_00": 0.2}.items():
        _write(folder / "rows" / key / "result.json", row(key, dice))
    _write(folder / "latency.json", {"tw_n2": stats(24.0), "tw_n3": stats(35.0), "ga_n3": stats(31.0),
                                     "ga_n1": stats(12.0), "cloud_00": stats(15.0)})
    _write(folder / "derivation.json", {"round": 1, "ub_ms": 50.0, "cells": {}, "pool": [], "by_n": {
        "1": {"top_weight": [0], "best": [1], "top_weight_latency_ms": 14.0, "latency_ms": 11.0},
        "2": {"top_weight": [0, 1], "best": [0, 1], "top_weight_latency_ms": 22.0, "latency_ms": 22.0},
        "3": {"top_weight": [0, 1, 2], "best": [0, 1, 3], "top_weight_latency_ms": 33.0, "latency_ms": 29.0}}})
    _write(folder / "rounds" / "r1" / "result.json", {
        "round": 1, "ub_ms": 50.0, "final_l_t_ms": 21.5, "seconds": 3.0,
        "check": {"n_paths": 1, "paths": [], "lut_ms": 11.0, "measured": stats(12.0), "meets": True}})
    _method_report(cfg, folder)
    return folder


def _method_report(cfg, folder: Path) -> None:
    """rtdnas' own ``write_report`` on the same rows (what the method holds in memory at the end of
    a run), so the test can compare its tables with the report's reconstruction from the files."""
    from search.methods.rtdnas.report import write_report

    stored = {p.parent.name: json.loads(p.read_text()) for p in sorted(folder.glob("rows/*/result.json"))}
    latency = json.loads((folder / "latency.json").read_text())
    derivation = json.loads((folder / "derivation.json").read_text())
    for key, r in stored.items():
        r["latency"] = latency[key]
    stored["ga_n2"] = {**stored["tw_n2"], "key": "ga_n2", "same_network_as": "tw_n2"}
    for n, d in derivation["by_n"].items():
        for key, lut in ((f"tw_n{n}", d["top_weight_latency_ms"]), (f"ga_n{n}", d["latency_ms"])):
            if key in stored:
                stored[key]["lut_ms"] = lut
    rows = {k: v for k, v in stored.items() if not k.startswith("cloud_")}
    cloud = {k: v for k, v in stored.items() if k.startswith("cloud_")}
    for d in derivation["by_n"].values():
        d["evaluated"] = 10
    rounds = [{"round": 1, "ub_ms": 50.0, "final_l_t_ms": 21.5, **json.loads(
        (folder / "rounds" / "r1" / "result.json").read_text())["check"], "seconds": 3.0}]
    write_report(cfg, folder, {"rows": rows, "cloud": cloud}, derivation, rounds, {})
