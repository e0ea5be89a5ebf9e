"""``segqc-hw`` end to end: data, latency table, joint searches, derivation, retraining, Table II, export.

Stages, each resumable (a finished stage is read back from the run folder, an unfinished one
continues from its last checkpoint):

1. ``data/``: the S1 / S2 / test phantom patients (cached).
2. ``latency/lut.json``: every op signature of the two supernets at the measurement resolution,
   profiled on this CPU with onnxruntime (only the missing keys).
3. ``search/<variant>/seed<k>/``: the joint search with (``hw``) and without (``nohw``) the latency
   term; ``genotype.json`` is the derived architecture (argmax structure, zero excluded).
4. ``rows/<row>/``: each Table II row retrained from scratch in the same harness and scored on
   validation and test patients (the handcrafted U-net(8|16) + ResNet18 baselines included).
5. ``table.json``: framework latency (seg + QC, one process, interleaved) and FLOPs of every row.
6. ``models``: the hardware-aware pair with the best validation score (the Table II one or a
   sensitivity search) exported with model cards (``report/export.json`` says what was shipped,
   INT8 included or not, and why).
7. ``report/`` (+ ``docs``): Table II beside the paper's, targets, scatter plot, cells, the export.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from search import distributed
from search.baselines.resnet_qc import ResNetQc, ResNetQcConfig
from search.baselines.unet import UNet, UNetConfig
from search.core.decode import decode_nasunet, decode_qc
from search.core.derived.nasunet import DerivedNasUnet
from search.core.derived.qcnet import DerivedQcNet
from search.core.genotypes import SegQcGenotype
from search.core.supernets.nasunet import NasUnetConfig, NasUnetSupernet
from search.core.supernets.qcnet import QcNetConfig, QcSupernet
from search.methods.segqc_hw.config import SegQcConfig
from search.methods.segqc_hw.data import frame_dataset, load_protocol
from search.methods.segqc_hw.joint_search import run_joint_search
from search.methods.segqc_hw.latency_model import FrameworkLatency, ensure_table
from search.methods.segqc_hw.latency_table import machine_line, measure_rows
from search.methods.segqc_hw.networks import QcFlat, QcOnParts, SegLogits
from search.methods.segqc_hw.report import ROW_NAMES, ROWS, row_name, sensitivity_key, write_report
from search.methods.segqc_hw.retrain import PairData, train_and_score

log = logging.getLogger(__name__)

BASELINE_UNET_DEPTH = 5  # the segqc-hw paper's U-net(IF) is (D5, IF): see search.baselines.unet


@dataclass(frozen=True)
class RunPaths:
    """Where a run writes.

    Attributes:
        out: Run folder (checkpoints, caches, results, report).
        models: Export folder for the winning pair, or None to skip the export.
        docs: Folder the report is copied to (e.g. ``docs/segqc``), or None.
    """

    out: Path
    models: Path | None
    docs: Path | None


STAGES = ("search", "retrain", "all")


def seg_config(cfg: SegQcConfig) -> NasUnetConfig:
    return NasUnetConfig(init_filters=cfg.space.seg_init_filters, depth=cfg.space.seg_depth, n_nodes=cfg.space.nodes)


def qc_config(cfg: SegQcConfig) -> QcNetConfig:
    return QcNetConfig(init_filters=cfg.space.qc_init_filters, n_stages=cfg.space.qc_stages, n_nodes=cfg.space.nodes)


def build_supernets(cfg: SegQcConfig, seed: int) -> tuple[SegLogits, QcOnParts]:
    """Fresh seg and QC supernets (weights and alphas seeded by ``seed``)."""
    return (SegLogits(NasUnetSupernet(seg_config(cfg), seed=seed)),
            QcOnParts(QcSupernet(qc_config(cfg), seed=seed + 100)))


def build_derived(cfg: SegQcConfig, genotype: SegQcGenotype, seed: int) -> tuple[nn.Module, nn.Module]:
    """The derived pair, freshly initialised (retraining from scratch)."""
    return (SegLogits(DerivedNasUnet(genotype.seg, seg_config(cfg), seed=seed)),
            QcOnParts(DerivedQcNet(genotype.qc, qc_config(cfg), seed=seed + 100)))


def build_baseline(width: int, seed: int) -> tuple[nn.Module, nn.Module]:
    """U-net(width) (D5) + ResNet18-style QC, seeded."""
    torch.manual_seed(seed)
    seg = UNet(UNetConfig(dims=2, in_channels=3, n_classes=2, depth=BASELINE_UNET_DEPTH, initial_filters=width))
    torch.manual_seed(seed + 100)
    return seg, QcFlat(ResNetQc(ResNetQcConfig()))


def _write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, indent=1, allow_nan=True))
    tmp.replace(path)


def search_stage(cfg: SegQcConfig, lambda2: float, seed: int, s1, s2, latency: FrameworkLatency,
                 folder: Path, device: str = "cpu") -> tuple[SegQcGenotype, dict]:
    """One joint search (resumable); returns the derived genotype and the search record."""
    done = folder / "genotype.json"
    if done.is_file():
        rec = json.loads(done.read_text())
        return SegQcGenotype.from_json(rec["genotype"]), rec
    seg, qc = build_supernets(cfg, seed)
    seg.to(device), qc.to(device)
    lat_fn = latency.bind(seg.net, qc.net)
    search_cfg = type(cfg.search)(**{**cfg.search.__dict__, "lambda2": lambda2})
    s1_ds = frame_dataset(s1, cfg.data.resolution, cfg.data.augment, seed=seed * 10 + 3)
    s2_ds = frame_dataset(s2, cfg.data.resolution, cfg.data.augment, seed=seed * 10 + 4)
    state = run_joint_search(seg, qc, lat_fn, s1_ds, s2_ds, search_cfg, seed=seed, checkpoint=folder / "search.pt",
                             device=device)
    genotype = SegQcGenotype(decode_nasunet(seg.net), decode_qc(qc.net))
    with torch.no_grad():
        rec = {"genotype": genotype.to_json(), "lambda2": lambda2, "seed": seed, "history": state.history,
               "expected_latency_ms_final": float(lat_fn(None, None)),
               "alphas": {n: p.detach().tolist() for n, p in list(seg.net.named_arch_parameters())
                          + list(qc.net.named_arch_parameters())}}
    if distributed.is_main():  # under torchrun every rank derives the same genotype; rank 0 writes it
        _write_json(done, rec)
    log.info("search lambda2=%g seed %d: derived %s", lambda2, seed, genotype.to_json())
    return genotype, rec


def val_score(scores: dict) -> float:
    """How a seed's retrained pair is ranked on validation: Dice minus QC MAE."""
    return float(scores["val"]["dice_mean"] - scores["val"]["qc_mae"])


def shipped_key(rows: dict[str, dict], sensitivity: dict[str, dict]) -> str:
    """Which hardware-aware pair ships: the Table II one or a sensitivity search, best on validation.

    The latency weight is a hyperparameter like the search seed, so it is chosen the same way
    (``val_score`` on the validation patients of S2); the test patients play no part.
    """
    candidates = {"searched_hw": rows["searched_hw"], **sensitivity}
    return max(candidates, key=lambda k: (val_score(candidates[k]), k == "searched_hw"))


def run_segqc_hw(cfg: SegQcConfig, paths: RunPaths, *, device: str = "cpu", stop_after: str = "all") -> str:
    """Run every stage (resuming finished ones) and return a short summary.

    Args:
        cfg: The configuration.
        paths: Where to write.
        device: torch device of the searches and retrainings (``"cuda"`` on a GPU machine); the
            evaluation, latency measurement and export always run on the CPU.
        stop_after: ``"search"`` or ``"retrain"`` to stop after that stage (e.g. train on a GPU
            machine, then measure Table II on the target CPU by running again there), or ``"all"``.
    """
    if stop_after not in STAGES:
        raise ValueError(f"stop_after must be one of {STAGES}, got {stop_after!r}")
    torch.set_num_threads(cfg.threads)
    out = paths.out
    out.mkdir(parents=True, exist_ok=True)
    with distributed.main_first():  # under torchrun: rank 0 writes data and LUT, the others then read them
        if distributed.is_main():
            _write_json(out / "config.json", cfg.to_dict())
        cases = load_protocol(cfg.data, out / "data")
        latency = ensure_table(cfg, out / "latency" / "lut.json", seg_config(cfg), qc_config(cfg))
    pair_data = PairData(seg_train=cases["s1"], qc_train=cases["s2_train"], val=cases["s2_val"], test=cases["test"])

    rows: dict[str, dict] = {}
    nets: dict[str, tuple[nn.Module, nn.Module]] = {}
    searches = [("searched_nohw", 0.0, "nohw"), ("searched_hw", cfg.search.lambda2, "hw")]
    searches += [(sensitivity_key(lam), lam, f"hw_lambda{lam:g}") for lam in cfg.search.sensitivity_lambda2]
    for key, lam, variant in searches:
        best = None
        for s in cfg.search.seeds:
            genotype, rec = search_stage(cfg, lam, s, cases["s1"], cases["s2"], latency,
                                         out / "search" / variant / f"seed{s}", device)
            if stop_after == "search":
                continue
            seg, qc = build_derived(cfg, genotype, cfg.seed)
            scores = train_and_score(f"{row_name(key)} (search seed {s})", seg, qc, pair_data, cfg.retrain,
                                     cfg.data.augment, cfg.data.resolution, seed=cfg.seed,
                                     row_dir=out / "rows" / f"{key}_seed{s}", device=device)
            if best is None or val_score(scores) > val_score(best[0]):
                best = (scores, rec, genotype, (seg, qc), s)
        if stop_after == "search":
            continue
        scores, rec, genotype, pair, s = best
        rows[key] = dict(scores, search=rec, genotype=genotype.to_dict(), search_seed=s, lambda2=lam,
                         expected_latency_ms=latency.of_genotype(genotype))
        nets[key] = pair
    if stop_after == "search":
        return f"segqc-hw ({cfg.preset}): searches done in {out / 'search'}"
    for width, key in zip(cfg.baseline_seg_filters, ("unet8", "unet16")):
        seg, qc = build_baseline(width, cfg.seed)
        rows[key] = train_and_score(ROW_NAMES[key], seg, qc, pair_data, cfg.retrain, cfg.data.augment,
                                    cfg.data.resolution, seed=cfg.seed, row_dir=out / "rows" / key, device=device)
        nets[key] = (seg, qc)
    if stop_after == "retrain":
        return f"segqc-hw ({cfg.preset}): searches and retraining done in {out}"
    if not distributed.is_main():  # Table II timing, report and export: rank 0 alone
        return f"segqc-hw ({cfg.preset}): rank {distributed.rank()} done; rank 0 measures, reports and exports"

    costs_path = out / "table.json"
    costs = json.loads(costs_path.read_text()) if costs_path.is_file() else None
    if costs is None or set(costs["rows"]) != set(nets):
        # Every row (the sensitivity searches included) in the same process, interleaved, so that
        # background load hits them alike; a row added to a finished run re-measures them all.
        frame = _latency_frame(cases["test"], cfg.measure.resolution)
        measured = measure_rows(dict(nets), frame, resolution=cfg.measure.resolution,
                                warmup=cfg.measure.warmup_runs, repeats=cfg.measure.timed_runs,
                                intra_op_threads=cfg.measure.intra_op_threads, seed=cfg.seed)
        costs = {"machine": machine_line(cfg.measure.intra_op_threads),
                 "rows": {k: v.to_dict() for k, v in measured.items()}}
        _write_json(costs_path, costs)
    for k in rows:
        rows[k]["cost"] = costs["rows"][k]
    sensitivity = {k: rows.pop(k) for k in list(rows) if k not in ROWS}

    report_dir = out / "report"
    exported: list[str] = []
    export_record = report_dir / "export.json"
    if paths.models is not None:
        from search.methods.segqc_hw.export import export_pair

        key = shipped_key(rows, sensitivity)
        exported = export_pair(cfg, nets[key], {**rows, **sensitivity}[key], cases, paths.models, costs["machine"],
                               record=export_record, row_key=key)
    results = {"config": cfg.to_dict(), "machine": costs["machine"], "rows": rows, "sensitivity": sensitivity,
               "n_test_frames": rows["searched_hw"]["test"]["n"],
               "n_patients": {part: len(cases[part]) for part in ("s1", "s2_train", "s2_val", "test")},
               "export": json.loads(export_record.read_text()) if exported else None}
    figures = _figures(results, report_dir)
    report = write_report(results, report_dir, figures)
    _write_json(report_dir / "frames.json", {k: r["test"]["frames"] for k, r in {**rows, **sensitivity}.items()})
    if paths.docs is not None:
        paths.docs.mkdir(parents=True, exist_ok=True)
        for f in report_dir.iterdir():
            shutil.copy2(f, paths.docs / f.name)
    return _summary(results, report, exported)


def _latency_frame(test_cases, resolution: int) -> np.ndarray:
    """A real preprocessed test frame at the measurement resolution, ``(1, 3, R, R)``."""
    ds = frame_dataset(test_cases[:1], resolution, None, seed=0)
    return ds[0][0].numpy()[None]


def _figures(results: dict, folder: Path) -> dict[str, str]:
    from search.methods.segqc_hw.plots import draw_genotype, scatter_predicted_vs_true

    rows = results["rows"]
    scatter = "qc_scatter.png"
    panels = {ROW_NAMES[k]: rows[k]["test"]["frames"] for k in ROWS}
    panels.update({row_name(k): r["test"]["frames"] for k, r in (results.get("sensitivity") or {}).items()})
    scatter_predicted_vs_true(panels, folder / scatter,
                              f"Predicted vs true Dice, test patients ({results['n_test_frames']} frames)")
    figures = {"Predicted vs true Dice on the test patients": scatter}
    searched = {k: rows[k] for k in ("searched_hw", "searched_nohw")}
    searched.update(results.get("sensitivity") or {})
    for key, row in searched.items():
        name = f"cells_{key}.png"
        draw_genotype(SegQcGenotype.from_dict(row["genotype"]), folder / name, f"Searched cells: {row_name(key)}")
        figures[f"Searched cells, {row_name(key)}"] = name
    return figures


def _summary(results: dict, report: Path, exported: list[str]) -> str:
    lines = [f"segqc-hw ({results['config']['preset']}): report {report}"]
    for k in ROWS:
        r = results["rows"][k]
        lines.append(f"  {ROW_NAMES[k]:<34} Dice {r['test']['dice_mean']:.3f}  QC MAE {r['test']['qc_mae']:.3f}  "
                     f"r {r['test']['qc_pearson']:.2f}  {r['cost']['latency_ms']:.1f} ms  {r['cost']['macs'] / 1e6:.0f} M MACs")
    for k, r in (results.get("sensitivity") or {}).items():
        lines.append(f"  {row_name(k):<34} Dice {r['test']['dice_mean']:.3f}  QC MAE {r['test']['qc_mae']:.3f}  "
                     f"r {r['test']['qc_pearson']:.2f}  {r['cost']['latency_ms']:.1f} ms  {r['cost']['macs'] / 1e6:.0f} M MACs")
    if exported:
        lines.append("  exported: " + ", ".join(exported))
    return "\n".join(lines)
