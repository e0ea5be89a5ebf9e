"""Dice vs latency of the segqc-hw segmentation networks at matched input sizes (issue 16, item 3).

Input size is a choice like width: a network is only compared with others at the same input size. For
one finished ``segqc-hw`` run folder this bench retrains from scratch, at each size of ``--sizes``, the
run's searched networks (the ``genotype.json`` of each ``--variants`` search and seed) and the
handcrafted U-net(8) and U-net(16), all in the method's own harness (``retrain.train_and_score``: same
schedule, seed, augmentation and S1 patients, read from the run's ``data/`` cache), and scores Dice on the
run's held-out test patients at that size. Then, per size, every network is exported to ONNX (the
shipped seg model: probs + uncertainty) and timed interleaved in one process
(``search.latency.measure.measure_interleaved``: the app's session settings, ``--threads`` intra-op
threads, batch 1, a real preprocessed test frame). ``--controls`` adds the run's random controls and a
droppable-inputs run adds its space's U-net point; ``--train-seeds`` trains every network once per seed and
reports the Dice spread (one retraining can hide a failed one). ``--genotypes FILE...`` adds hand-written seg
genotypes of the run's U (with the baselines' ResNet18 QC); ``--stem-convs N`` rebuilds the run's networks with
another stem (a probe of the skeleton); ``--skeletons SPEC...`` adds U-nets of other per-level width, conv op and
convs per block, or run at half resolution (``search.core.derived.unet_skeleton``), and ``--variants`` with no value
leaves the searched rows out (a run made with ``segqc-hw --stop-after data`` is enough). ``--distill KEY...`` adds
a twin of those rows whose seg net also learns from a teacher row's seg net of the same seed (``--teacher``, default
U-net(16); ``retrain.Distillation``), as once-for-all and BigNAS train subnets from the largest one. ``--with-qc`` trains and
scores each network's QC net too (the run's QC epochs, on its trained seg net held frozen: a seg net already in the
cache is read back, not retrained, and only its QC net trains, in ``<size>/<key>-qc/``), reports the QC calibration
(MAE and Pearson r on the test frames) and times the seg + QC pair as Table II does (``latency_table.measure_rows``);
``--time-at SIZE...`` times the networks of the first size at other inputs too, seg + QC as Table II does (e.g. 256,
its deployment input).

Each trained network is cached under ``--work`` (default ``<run>/size_table/<size>/<key>/``: seg.pt per
epoch, weights.pt, scores.json; ``<work>/stages.json`` says what ran or was skipped and how long it took),
so an interrupted bench continues where it stopped; the timing is redone on every call::

    python bench/size_table.py --run runs/segqc-hw-bmode/gdas-warm
    python bench/size_table.py --run runs/segqc-hw/default --sizes 64 96 128 --with-qc
    python bench/size_table.py --run runs/segqc-hw-bmode/unet-space-keepprev --sizes 96 --controls --train-seeds 0 1 2
    python bench/size_table.py --run runs/segqc-hw/skeleton-probe --variants --sizes 96 --time-at 256 \\
        --skeletons /2:16c2-32c2-64c2-128c2 8s2-16s2-32c2-64c2-128c2
    python bench/size_table.py --from-json docs/bench/size_table_bmode.json   # re-render the .md

Writes ``--out`` (default ``docs/bench/size_table_<task>.json``) and the markdown table beside it (.md).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as ``python bench/size_table.py``
    sys.path.insert(0, str(ROOT))

from bench.report import write_report  # noqa: E402
from search.train import precision  # noqa: E402  (torch-free: the --precision option)

REFERENCE = "unet16"  # latency ratios are to U-net(16) at the same size
BASELINE_KEYS = ("unet8", "unet16")  # segqc_hw.experiment.BASELINES, without importing torch for the parser


@dataclass(frozen=True)
class Network:
    """One network of the table: ``build(seed)`` gives a fresh (seg logits net, QC net) initialised from ``seed``;
    ``teacher``: the key of the row whose seg net (same size and training seed) it learns from beside the labels."""

    key: str
    label: str
    build: Callable[[int], tuple[Any, Any]]
    architecture: dict
    teacher: str | None = None


@dataclass(frozen=True)
class DistillSettings:
    """``--distill``: which rows get a distilled twin, from which teacher row, with what loss weight and temperature."""

    rows: tuple[str, ...]
    teacher: str = REFERENCE
    weight: float = 1.0
    temperature: float = 2.0


def distilled_twins(nets: list[Network], settings: DistillSettings) -> list[Network]:
    """``nets`` and, after them (so every teacher trains first), a twin ``<key>-kd`` of each row of ``settings.rows``:
    the same network, its seg net trained with the teacher's soft predictions too (``retrain.Distillation``)."""
    by_key = {n.key: n for n in nets}
    unknown = [k for k in (*settings.rows, settings.teacher) if k not in by_key]
    if unknown:
        raise SystemExit(f"--distill: no row {', '.join(map(repr, unknown))} in this table (rows: {', '.join(by_key)})")
    if settings.teacher in settings.rows:
        raise SystemExit(f"--distill: {settings.teacher!r} is the teacher; it cannot learn from itself")
    if len(set(settings.rows)) != len(settings.rows):
        raise SystemExit(f"--distill: each row once, got {list(settings.rows)}")
    teacher = by_key[settings.teacher]
    twins = [Network(f"{key}-kd", f"{by_key[key].label}, distilled from {teacher.label}", by_key[key].build,
                     {**by_key[key].architecture, "distilled_from": settings.teacher, "distill_weight": settings.weight,
                      "distill_temperature": settings.temperature}, teacher=settings.teacher)
             for key in settings.rows]
    return [*nets, *twins]


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _budget_words(budget_ms: float) -> str:
    return f", latency budget {budget_ms:g} ms" if budget_ms else ""


def networks(run: Path, cfg, variants: list[str], controls: bool = False,
             genotypes: list[Path] | None = None, skeletons: list[str] | None = None,
             baselines: list[str] | None = None) -> list[Network]:
    """The run's searched networks (every seed of each variant), with ``controls`` the random control of each
    (``<run>/search/random/<row>.json``), the handcrafted U-net point of the run's space when it has one
    (droppable inputs, 2 nodes: ``nasunet.unet_like_genotype``, paired with the baselines' ResNet18 QC), and the
    U-net baselines. ``genotypes``: more seg networks of the run's U, each a JSON file ``{"label": ..., "seg":
    NasUnetGenotype.to_dict()}`` paired, as the U-net point is, with the baselines' ResNet18 QC. ``skeletons``: U-nets
    of other per-level widths, ops and convs (``search.core.derived.unet_skeleton`` specs), with the same QC.
    ``baselines``: the U-net baselines' keys to keep (default every one; U-net(16), the reference, always stays)."""
    import torch

    from search.core.derived.nasunet import DerivedNasUnet
    from search.core.derived.unet_skeleton import SkeletonUNet, UNetSkeleton
    from search.core.genotypes import NasUnetGenotype
    from search.core.supernets.nasunet import unet_like_genotype
    from search.methods.segqc_hw.experiment import BASELINES, baseline_config
    from search.methods.segqc_hw.networks import SegLogits
    from search.methods.segqc_hw.random_control import read_control
    from search.methods.segqc_hw.search import build_baseline, build_derived, read_search, seg_config

    space = cfg.to_dict()["space"]  # as the run records it (options at their default are left out)
    out, missing = [], []
    for variant in variants:
        for seed in cfg.search.seeds:
            folder = run / "search" / variant / f"seed{seed}"
            if not (folder / "genotype.json").is_file():
                missing.append(str(folder / "genotype.json"))
                continue
            genotype, rec = read_search(folder)
            out.append(Network(f"searched_{variant}_seed{seed}",
                               f"searched {variant} (lambda2 = {rec['lambda2']:g}"
                               f"{_budget_words(rec.get('latency_budget_ms', 0))}"
                               f"{', sandwich rule' if rec.get('sandwich') else ''}, seed {seed})",
                               partial(build_derived, cfg, genotype),
                               {"genotype": genotype.to_dict(), "space": space}))
    if missing:
        raise SystemExit(f"{run}: no finished search at {', '.join(missing)} (pick others with --variants)")
    if controls:
        files = sorted((run / "search" / "random").glob("*.json"))
        if not files:
            raise SystemExit(f"{run}: --controls: no random control under {run / 'search' / 'random'}")
        for path in files:
            genotype, rec = read_control(path)
            out.append(Network(f"random_{path.stem}",
                               f"random control of {path.stem} ({rec['expected_latency_ms']:.1f} ms predicted)",
                               partial(build_derived, cfg, genotype),
                               {"genotype": genotype.to_dict(), "space": space}))

    def with_resnet_qc(seg_genotype, seed: int):
        seg = SegLogits(DerivedNasUnet(seg_genotype, seg_config(cfg), seed=seed))
        _, qc = build_baseline(cfg.space.seg_init_filters, seed, cfg.task.num_classes)
        return seg, qc

    seg_points = []
    if cfg.space.droppable_inputs and cfg.space.nodes == 2:
        seg_points.append(("space_unet", f"U-net point of the space (IF{cfg.space.seg_init_filters}) + ResNet18 QC",
                           unet_like_genotype(cfg.space.keep_prev)))
    for path in genotypes or []:
        try:
            doc = json.loads(Path(path).read_text())
            seg_points.append((f"genotype_{Path(path).stem}", f"{doc.get('label', Path(path).stem)} + ResNet18 QC",
                               NasUnetGenotype.from_dict(doc["seg"])))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise SystemExit(f"{path}: not a seg genotype file ({{\"label\": ..., \"seg\": {{\"down\": ..., "
                             f"\"up\": ...}}}}): {exc!r}") from exc
    for key, label, seg_genotype in seg_points:
        out.append(Network(key, label, partial(with_resnet_qc, seg_genotype),
                           {"seg_genotype": seg_genotype.to_dict(), "space": space, "qc": "resnet18"}))
    def skeleton_with_resnet_qc(skeleton: UNetSkeleton, seed: int):
        torch.manual_seed(seed)
        seg = SkeletonUNet(skeleton, n_classes=cfg.task.num_classes)
        _, qc = build_baseline(cfg.space.seg_init_filters, seed, cfg.task.num_classes)
        return seg, qc

    for spec in skeletons or []:
        try:
            skeleton = UNetSkeleton.parse(spec)
        except ValueError as exc:
            raise SystemExit(f"--skeletons: {exc}") from None
        key = "skeleton_" + skeleton.spec.replace("/", "s").replace(":", "_")
        if any(n.key == key for n in out):
            raise SystemExit(f"--skeletons: {spec!r} is {skeleton.spec!r}, given twice")
        out.append(Network(key, f"U-net skeleton {skeleton.spec} + ResNet18 QC",
                           partial(skeleton_with_resnet_qc, skeleton),
                           {"skeleton": skeleton.spec, "qc": "resnet18"}))
    for width, key in zip(cfg.baseline_seg_filters, BASELINES):
        if baselines is not None and key not in baselines and key != REFERENCE:
            continue
        out.append(Network(key, f"U-net({width})", partial(build_baseline, width, n_classes=cfg.task.num_classes),
                           baseline_config(width)))
    return out


def train_all(cfg, nets: list[Network], cases: dict, sizes: list[int], *, epochs: int, with_qc: bool, work: Path,
              device: str, seeds: list[int] | None = None,
              distill: DistillSettings | None = None) -> dict[int, dict[str, dict]]:
    """Every network trained (or read back from ``work``) and scored at every size: size -> key -> entry.

    ``seeds`` (default: the run's master seed): each network is trained once per seed (initialisation, data order
    and augmentation); the entry holds the first seed's trained nets (the ones timed) and ``replicates``, every
    seed's scores. The run's seed keeps the folder and stage name it always had (``<size>/<key>``), another
    seed s gets ``<size>/<key>-seed<s>``. With ``with_qc`` each seg net's QC net trains on it, frozen, in a stage of
    its own (``<size>/<key>[-seed<s>]-qc``), so a seg net trained without QC is reused, not retrained. A network with a
    ``teacher`` learns from that row's seg net of the same size and seed (trained earlier in the loop), with the loss
    weight and temperature of ``distill``."""
    from search.methods.segqc_hw.retrain import Distillation, PairData, load_scores, train_and_score
    from search.train.restarts import restart_checkpoints
    from search.train.stages import Stage, StageRunner

    data = PairData(seg_train=cases["s1"], qc_train=cases["s2_train"], val=cases["s2_val"], test=cases["test"])
    retrain = replace(cfg.retrain, seg_epochs=epochs)
    data_cfg = {k: v for k, v in cfg.to_dict()["data"].items() if k != "resolution"}
    runner = StageRunner(work, {}, progress=lambda line: print(f"  {line}", flush=True))
    seeds = seeds or [cfg.seed]
    done: dict[int, dict[str, dict]] = {}
    teachers: dict[tuple[int, str, int], tuple[Any, str]] = {}  # (size, key, seed) -> (trained seg net, its stage)
    total, i = len(sizes) * len(nets) * len(seeds), 0
    for size in sizes:
        done[size] = {}
        for net in nets:
            for seed in seeds:
                i += 1
                seg, qc = net.build(seed)
                tag = "" if seed == cfg.seed else f"-seed{seed}"
                folder = work / str(size) / f"{net.key}{tag}"
                name = f"{net.label} @ {size}{f' (seed {seed})' if tag else ''}"
                print(f"[{i}/{total}] size {size}: {name}", flush=True)
                # the seg net alone (the first stage of a whole retraining, and all of it without --with-qc) ...
                config = precision.tag({"architecture": net.architecture, "size": size, "data": data_cfg,
                                        "seed": seed, "retrain": {**asdict(retrain), "qc_epochs": None}})
                teaching = None
                if net.teacher is not None:
                    teacher_seg, teacher_stage = teachers[(size, net.teacher, seed)]
                    teaching = Distillation(teacher_seg, distill.weight, distill.temperature)
                    config["distill"] = {"teacher": teacher_stage, "weight": distill.weight,
                                         "temperature": distill.temperature}
                seg_stage = Stage(f"{size}/{net.key}{tag}",
                                  run=partial(train_and_score, name, seg, None, data, retrain, cfg.data.augment, size,
                                              seed=seed, row_dir=folder, device=device, n_classes=cfg.task.num_classes,
                                              distill=teaching),
                                  load=partial(load_scores, name, seg, None, folder),
                                  outputs=(folder / "scores.json", folder / "weights.pt"),
                                  scratch=(folder / "seg.pt", *restart_checkpoints(folder / "seg.pt")), config=config)
                scores = runner.run(seg_stage)
                if distill is not None and net.key == distill.teacher:  # kept only for the twins that learn from it
                    teachers[(size, net.key, seed)] = (seg, seg_stage.name)
                seconds = _report(runner, seg_stage, scores)
                if with_qc:  # ... then its QC net on that frozen seg net: a seg-only cache entry is reused
                    qc_folder = work / str(size) / f"{net.key}{tag}-qc"
                    qc_stage = Stage(f"{seg_stage.name}-qc",
                                     run=partial(train_and_score, f"{name} + QC", seg, qc, data, retrain,
                                                 cfg.data.augment, size, seed=seed, row_dir=qc_folder, device=device,
                                                 n_classes=cfg.task.num_classes, seg_losses=scores["losses"]["seg"],
                                                 seg_training=scores.get("seg_training")),
                                     load=partial(load_scores, f"{name} + QC", seg, qc, qc_folder),
                                     outputs=(qc_folder / "scores.json", qc_folder / "weights.pt"),
                                     scratch=(qc_folder / "qc.pt",),
                                     config={**config, "qc_on": seg_stage.name, "qc_epochs": retrain.qc_epochs})
                    scores = runner.run(qc_stage)
                    seconds = (seconds or 0) + (_report(runner, qc_stage, scores, qc=True) or 0)
                else:
                    qc = None
                entry = done[size].setdefault(net.key, {"seg": seg, "qc": qc, "scores": scores, "train_seconds": seconds,
                                                        "replicates": {}})
                entry["replicates"][seed] = {"dice_test": scores["test"]["dice_mean"],
                                             "dice_val": scores["val"]["dice_mean"],
                                             "qc_mae_test": scores["test"]["qc_mae"] if with_qc else None,
                                             "qc_pearson_test": scores["test"]["qc_pearson"] if with_qc else None,
                                             "seg_training": scores.get("seg_training")}
    return done


def _report(runner, stage, scores: dict, *, qc: bool = False) -> float | None:
    """Print one trained (or read back) stage's scores (with ``qc``, its QC net's calibration too); its seconds."""
    record = runner.records[stage.name]
    seconds = record.get("seconds")
    how = "read back, trained" if record["status"] == "skipped" else "trained"
    calibration = f", QC MAE {scores['test']['qc_mae']:.3f} r {scores['test']['qc_pearson']:.2f}" if qc else ""
    print(f"    test Dice {scores['test']['dice_mean']:.3f} (val {scores['val']['dice_mean']:.3f}){calibration}, "
          f"{how} in {seconds if seconds is not None else '?'} s", flush=True)
    return seconds


def time_size(trained: dict[str, dict], test_cases, size: int, *, threads: int, warmup: int, repeats: int,
              seed: int, with_qc: bool) -> dict:
    """Latency (and MACs) of every network of one size, interleaved in one process; with several training seeds
    each network's Dice over them (``seeds``, mean and sd), and Pareto judged on the mean."""
    import numpy as np
    import torch

    from app.engine.benchmark import load_average
    from search.export.flops import count_flops, count_params
    from search.latency.measure import measure_interleaved
    from search.latency.onnx_bytes import export_onnx_bytes
    from search.methods.segqc_hw.experiment import _latency_frame
    from search.methods.segqc_hw.latency_table import measure_rows
    from search.train.seg_outputs import SegmentationWithUncertainty

    frame = _latency_frame(test_cases, size)
    image = torch.from_numpy(frame)
    shipped = {k: SegmentationWithUncertainty(t["seg"]).eval() for k, t in trained.items()}
    models = {k: export_onnx_bytes(m, image) for k, m in shipped.items()}
    before, started = load_average(), now()
    stats = measure_interleaved(models, {k: {"input0": frame} for k in models}, warmup=warmup, repeats=repeats,
                                intra_op_threads=threads, seed=seed)
    pairs = (measure_rows({k: (t["seg"], t["qc"]) for k, t in trained.items()}, frame, resolution=size, warmup=warmup,
                          repeats=repeats, intra_op_threads=threads, seed=seed) if with_qc else {})
    out = {"loadavg_before": before, "loadavg_after": load_average(), "started": started, "finished": now(),
           "networks": {}}
    for key, t in trained.items():
        test = t["scores"]["test"]
        entry = {"dice_test": test["dice_mean"], "dice_test_std": test["dice_std"],
                 "dice_val": t["scores"]["val"]["dice_mean"], "n_test_frames": len(test["frames"]),
                 "latency": stats[key].to_dict(), "macs": count_flops(shipped[key], [image]) // 2,
                 "params": count_params(t["seg"]), "train_seconds": t["train_seconds"]}
        replicates = t.get("replicates") or {}
        entry["seg_training"] = {str(s): r.get("seg_training") for s, r in replicates.items()}
        if len(replicates) > 1:  # training seeds: the spread a single retraining hides
            dice = np.array([r["dice_test"] for r in replicates.values()])
            entry["seeds"] = {str(s): r for s, r in replicates.items()}
            entry["dice_test_mean"], entry["dice_test_sd"] = float(dice.mean()), float(dice.std(ddof=1))
        if with_qc:
            entry["qc"] = {"qc_mae_test": test["qc_mae"], "qc_pearson_test": test["qc_pearson"],
                           "pair": pairs[key].to_dict()}
        out["networks"][key] = entry
    ref = out["networks"][REFERENCE]["latency"]["p50_ms"]
    points = {k: (e.get("dice_test_mean", e["dice_test"]), e["latency"]["p50_ms"]) for k, e in out["networks"].items()}
    for key, e in out["networks"].items():
        e["ratio_to_unet16"] = e["latency"]["p50_ms"] / ref
        e["pareto"] = pareto(points[key], [p for k, p in points.items() if k != key])
        print(f"  {size}: {key:<28} Dice {e['dice_test']:.3f}  p50 {e['latency']['p50_ms']:.2f} ms  "
              f"x{e['ratio_to_unet16']:.2f} U-net(16){'  Pareto' if e['pareto'] else ''}", flush=True)
    return out


def time_pairs_at(trained: dict[str, dict], nets: list[Network], test_cases, size: int, *, threads: int, warmup: int,
                  repeats: int, seed: int) -> dict:
    """Every network trained at one size timed at another input ``size`` (e.g. Table II's deployment 256) as Table II
    times it: seg + QC end to end, interleaved in one process (``latency_table.measure_rows``). A network trained
    without ``--with-qc`` is paired with a freshly built QC net of its own kind (a QC net's latency does not depend on
    its weights). Dice is not rescored here: it is the training size's."""
    from app.engine.benchmark import load_average
    from search.methods.segqc_hw.experiment import _latency_frame
    from search.methods.segqc_hw.latency_table import measure_rows

    builders = {n.key: n for n in nets}
    pairs = {k: (t["seg"].eval(), (t["qc"] or builders[k].build(seed)[1]).eval()) for k, t in trained.items()}
    before, started = load_average(), now()
    costs = measure_rows(pairs, _latency_frame(test_cases, size), resolution=size, warmup=warmup, repeats=repeats,
                         intra_op_threads=threads, seed=seed)
    out = {"loadavg_before": before, "loadavg_after": load_average(), "started": started, "finished": now(),
           "networks": {k: asdict(c) for k, c in costs.items()}}
    ref = costs[REFERENCE]
    for key, e in out["networks"].items():
        e["pair_ratio_to_unet16"] = e["latency_ms"] / ref.latency_ms
        e["seg_ratio_to_unet16"] = e["seg_ms"] / ref.seg_ms
        print(f"  at {size}: {key:<28} seg + QC {e['latency_ms']:.2f} ms x{e['pair_ratio_to_unet16']:.2f}, "
              f"seg {e['seg_ms']:.2f} ms x{e['seg_ratio_to_unet16']:.2f} U-net(16)", flush=True)
    return out


def pareto(point: tuple[float, float], others: list[tuple[float, float]]) -> bool:
    """Whether ``(dice, latency)`` is dominated by none of ``others`` (as accurate and as fast, better in one)."""
    dice, lat = point
    return not any(d >= dice and t <= lat and (d > dice or t < lat) for d, t in others)


def _shown(path: Path) -> str:
    """``path`` relative to the repository when it lies inside it (what the committed table names)."""
    try:
        return str(path.relative_to(ROOT.resolve()))
    except ValueError:
        return str(path)


def run(run_dir: Path, *, sizes: list[int], variants: list[str] | None, epochs: int | None, with_qc: bool,
        threads: int, torch_threads: int, warmup: int | None, repeats: int | None, work: Path | None,
        device: str = "cpu", controls: bool = False, train_seeds: list[int] | None = None,
        genotypes: list[Path] | None = None, stem_convs: int | None = None,
        skeletons: list[str] | None = None, time_at: list[int] | None = None, qc_epochs: int | None = None,
        distill: DistillSettings | None = None, seg_restarts: int | None = None,
        baselines: list[str] | None = None) -> dict:
    """Train (or read back), score and time every network at every size; the JSON document."""
    import onnxruntime as ort
    import torch

    from app.engine.benchmark import load_average
    from search.core.derived.unet_skeleton import UNetSkeleton
    from search.latency.lut import hardware_fingerprint
    from search.methods.segqc_hw.config import SegQcConfig
    from search.methods.segqc_hw.data import read_cached
    from search.methods.segqc_hw.latency_table import machine_line
    from search.report.sections import config_from_dict, read_json

    started, load_start = now(), load_average()
    torch.set_num_threads(torch_threads)
    cfg = config_from_dict(SegQcConfig, read_json(run_dir / "config.json"))
    if qc_epochs is not None:  # the seg nets' cache entries do not depend on it
        cfg = replace(cfg, retrain=replace(cfg.retrain, qc_epochs=qc_epochs))
    if seg_restarts is not None:  # a collapsed training started again (search.train.restarts), or not (0)
        cfg = replace(cfg, retrain=replace(cfg.retrain, seg_restarts=seg_restarts))
    if stem_convs is not None:  # a skeleton probe: the run's genotypes in a U with another stem
        cfg = replace(cfg, space=replace(cfg.space, stem_convs=stem_convs))
    variants = ["hw", "nohw"] if variants is None else variants
    epochs = epochs or cfg.retrain.seg_epochs
    warmup = cfg.measure.warmup_runs if warmup is None else warmup
    repeats = repeats or cfg.measure.timed_runs
    # absolute: the stage harness joins relative outputs onto its own folder
    run_dir = Path(run_dir).resolve()
    work = Path(work).resolve() if work else run_dir / "size_table"
    nets = networks(run_dir, cfg, variants, controls, genotypes, skeletons, baselines)
    if distill is not None:
        nets = distilled_twins(nets, distill)
    for spec in skeletons or []:  # refused before any training, not when that network first runs
        divisor = UNetSkeleton.parse(spec).divisor
        if any(size % divisor for size in [*sizes, *(time_at or [])]):
            raise SystemExit(f"--skeletons: {spec!r} needs input sizes divisible by {divisor}; "
                             f"{[x for x in [*sizes, *(time_at or [])] if x % divisor]} are not")
    print(f"{run_dir} ({cfg.data.task}): {len(nets)} networks x sizes {sizes}, {epochs} seg epochs"
          f"{f' + {cfg.retrain.qc_epochs} QC epochs' if with_qc else ''}, seed {cfg.seed}, work {work}", flush=True)
    cases = read_cached(run_dir / "data")
    train_seeds = train_seeds or [cfg.seed]
    trained = train_all(cfg, nets, cases, sizes, epochs=epochs, with_qc=with_qc, work=work, device=device,
                        seeds=train_seeds, distill=distill)
    by_size = {}
    for size in sizes:
        print(f"timing size {size}: {len(nets)} networks interleaved, {repeats} rounds, {threads} threads", flush=True)
        by_size[str(size)] = time_size(trained[size], cases["test"], size, threads=threads, warmup=warmup, repeats=repeats,
                                       seed=cfg.seed, with_qc=with_qc)
    timed_at = {}
    for size in time_at or []:
        print(f"timing at {size} the networks trained at {sizes[0]}: seg + QC, {repeats} rounds", flush=True)
        timed_at[str(size)] = {"trained_at": sizes[0], **time_pairs_at(
            trained[sizes[0]], nets, cases["test"], size, threads=threads, warmup=warmup, repeats=repeats, seed=cfg.seed)}
    return {
        "run": _shown(run_dir), "task": cfg.data.task, "preset": cfg.preset, "sizes": sizes, "reference": REFERENCE,
        "networks": {n.key: n.label for n in nets}, "by_size": by_size, "timed_at": timed_at,
        "settings": {"seed": cfg.seed, "seg_epochs": epochs, "qc_epochs": cfg.retrain.qc_epochs if with_qc else None,
                     "with_qc": with_qc, "batch_size": cfg.retrain.batch_size, "lr": cfg.retrain.lr,
                     "seg_restarts": cfg.retrain.seg_restarts, "restart_floor": cfg.retrain.restart_floor,
                     "variants": variants, "controls": controls, "genotypes": [str(g) for g in genotypes or []],
                     "skeletons": list(skeletons or []), "baselines": [n.key for n in nets if n.key in BASELINE_KEYS],
                     "distill": asdict(distill) if distill is not None else None,
                     "stem_convs": cfg.space.stem_convs,
                     "train_seeds": train_seeds, "search_seeds": list(cfg.search.seeds), "device": device,
                     "torch_threads": torch_threads, "precision": precision.current(), "ort_threads": threads,
                     "warmup": warmup, "repeats": repeats,
                     "n_train_patients": len(cases["s1"]), "n_test_patients": len(cases["test"]),
                     "work": _shown(work)},
        "machine": {**hardware_fingerprint(), "line": machine_line(threads), "onnxruntime": ort.__version__,
                    "torch": torch.__version__},
        "loadavg_start": load_start, "loadavg_end": load_average(), "started": started, "finished": now(),
    }


def _distill_lines(distill: dict | None) -> list[str]:
    if not distill:
        return []
    return [f"Distilled rows (`-kd`): the same network, its seg net trained with CE + soft Dice + "
            f"{distill['weight']:g} x T^2 KL(teacher || student) per pixel at T = {distill['temperature']:g}, the "
            f"teacher being row `{distill['teacher']}`'s seg net of the same training seed (trained first, frozen); "
            f"same data, epochs, order and augmentation as every other row. The teacher's own training is not "
            f"counted in the twin's training time.", ""]


def _restart_lines(result: dict) -> list[str]:
    """The trainings that collapsed and were started again (``search.train.restarts``), from the seeds' records."""
    s = result["settings"]
    if "seg_restarts" not in s:  # a table made before the restarts
        return []
    from search.train.restart_report import restart_table

    rows = [([label, x, str(seed)], record or {})
            for x in (str(v) for v in result["sizes"])
            for key, label in result["networks"].items()
            for seed, record in (result["by_size"][x]["networks"][key].get("seg_training") or {}).items()]
    return ["", *restart_table(rows, ["Network", "size", "training seed"], s["restart_floor"], s["seg_restarts"])]


def markdown(result: dict) -> str:
    """The table: one row per network, per size Dice (test), p50 ms, ratio to U-net(16), Pareto mark."""
    import numpy as np

    s, m = result["settings"], result["machine"]
    sizes = [str(x) for x in result["sizes"]]
    qc_epochs = f", {s['qc_epochs']} QC epochs" if s["with_qc"] else ""
    n_frames = result["by_size"][sizes[0]]["networks"][result["reference"]]["n_test_frames"]
    lines = [f"# Dice vs latency at matched input size: segqc-hw, {result['task']}", "",
             f"Run `{result['run']}` ({result['preset']} preset). Every network retrained from scratch at each input "
             f"size with the same schedule ({s['seg_epochs']} seg epochs"
             f"{qc_epochs}, batch {s['batch_size']}, seed "
             f"{s['seed']}, the run's {s['n_train_patients']} S1 patients); Dice (mean over the foreground classes per "
             f"frame, labels resampled to that size) on the run's {s['n_test_patients']} held-out test patients "
             f"({n_frames} frames). Latency: the segmentation model as shipped (probs + uncertainty), onnxruntime "
             f"{m['onnxruntime']}, {s['ort_threads']} intra-op threads, batch 1, all networks of one size interleaved "
             f"in one process ({s['repeats']} rounds, median). x U-net(16): latency over U-net(16)'s at the same size. "
             "Pareto: no other network of that size is at least as accurate and at least as fast (better in one). "
             "Compare networks within a size only.", "",
             *([f"Skeleton probe: the run's searched, control and genotype networks rebuilt with {s['stem_convs']} "
                "stem convs (the searches ran with the run's own stem).", ""] if s.get("stem_convs", 1) != 1 else []),
             *_distill_lines(s.get("distill")),
             f"Machine: {m['cpu']} ({m['logical_cores']} logical cores), torch {m['torch']} ({s['torch_threads']} "
             f"threads for training{', bf16 autocast' if s.get('precision') == 'bf16' else ''}). Load average "
             f"{result['loadavg_start']} at the start, {result['loadavg_end']} at the end; {result['started']} to {result['finished']}.", ""]
    head = ["Network"] + [f"{c} @{x}" for x in sizes for c in ("Dice", "p50 ms", "x U-net(16)", "Pareto")]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key, label in result["networks"].items():
        cells = [label]
        for x in sizes:
            e = result["by_size"][x]["networks"][key]
            cells += [f"{e['dice_test']:.3f}", f"{e['latency']['p50_ms']:.2f}", f"{e['ratio_to_unet16']:.2f}",
                      "yes" if e["pareto"] else ""]
        lines.append("| " + " | ".join(cells) + " |")
    seeds = s.get("train_seeds") or [s["seed"]]
    if len(seeds) > 1:
        head = ["Network"] + [f"Dice @{x}: mean ± sd (min-max)" for x in sizes]
        lines += ["", f"Dice over {len(seeds)} training seeds {seeds} (initialisation, data order, augmentation; same "
                      "architecture, patients and schedule); the tables above show seed "
                      f"{seeds[0]}'s networks, and Pareto is judged on these means:", "",
                  "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for key, label in result["networks"].items():
            cells = [label]
            for x in sizes:
                e = result["by_size"][x]["networks"][key]
                dice = [r["dice_test"] for r in e["seeds"].values()]
                cells.append(f"{e['dice_test_mean']:.3f} ± {e['dice_test_sd']:.3f} ({min(dice):.3f}-{max(dice):.3f})")
            lines.append("| " + " | ".join(cells) + " |")
    lines += _restart_lines(result)
    lines += ["", "Timing load average per size (before -> after): " + "; ".join(
        f"{x}: {result['by_size'][x]['loadavg_before']} -> {result['by_size'][x]['loadavg_after']}" for x in sizes)]
    for x, t in (result.get("timed_at") or {}).items():
        lines += ["", f"Timed at {x}x{x} (the networks trained at {t['trained_at']}; Dice is not rescored at this size): "
                      "seg + QC end to end as Table II times it, interleaved in one process "
                      f"({s['repeats']} rounds, median; without --with-qc each network's QC net is freshly built, "
                      f"its latency does not depend on its weights); load average {t['loadavg_before']} -> "
                      f"{t['loadavg_after']}:", "",
                  "| Network | seg + QC p50 ms | x U-net(16)+QC | seg p50 ms | seg x U-net(16) |", "|---|---|---|---|---|"]
        for key, label in result["networks"].items():
            e = t["networks"][key]
            lines.append(f"| {label} | {e['latency_ms']:.2f} | {e['pair_ratio_to_unet16']:.2f} | {e['seg_ms']:.2f} | "
                         f"{e['seg_ratio_to_unet16']:.2f} |")
    if s["with_qc"]:
        spread = len(seeds) > 1 and all(r.get("qc_pearson_test") is not None for x in sizes
                                        for e in result["by_size"][x]["networks"].values() for r in e["seeds"].values())
        head = ["Network"] + [f"{c} @{x}" for x in sizes
                              for c in ("QC MAE", "QC r", *(("QC MAE over seeds", "QC r over seeds") if spread else ()),
                                        "seg+QC p50 ms")]
        lines += ["", "With each network's QC net (trained on the QC patients with the trained seg net frozen, to "
                      "predict its Dice per frame; calibration on the test frames: mean absolute error and Pearson r "
                      "of predicted vs true Dice; the pair timed as in Table II"
                      f"{f'; over seeds: mean ± sd over the {len(seeds)} training seeds' if spread else ''}):", "",
                  "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for key, label in result["networks"].items():
            cells = [label]
            for x in sizes:
                e = result["by_size"][x]["networks"][key]
                q = e["qc"]
                cells += [f"{q['qc_mae_test']:.3f}", f"{q['qc_pearson_test']:.2f}"]
                if spread:
                    for field, digits in (("qc_mae_test", 3), ("qc_pearson_test", 2)):
                        v = np.array([r[field] for r in e["seeds"].values()], dtype=float)
                        cells.append(f"{v.mean():.{digits}f} ± {v.std(ddof=1):.{digits}f}")
                cells.append(f"{q['pair']['latency_ms']:.2f}")
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, help="a finished segqc-hw run folder (config.json, data/, search/)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 96, 128])
    ap.add_argument("--variants", nargs="*", default=None,
                    help="searches under <run>/search/ (default: hw nohw; none: no searched rows, e.g. on a run "
                         "made with --stop-after data)")
    ap.add_argument("--epochs", type=int, default=None, help="seg epochs (default: the run's retrain seg_epochs)")
    ap.add_argument("--seg-restarts", type=int, default=None, metavar="N",
                    help="trainings of a seg net from a fresh initialisation after one that collapsed to background "
                         "(search.train.restarts; default: the run's retrain seg_restarts; 0: one training each, as "
                         "before the restarts)")
    ap.add_argument("--with-qc", action="store_true",
                    help="also train (on each seg net, frozen; a cached seg net is reused), score and time the QC nets")
    ap.add_argument("--qc-epochs", type=int, default=None, metavar="N",
                    help="with --with-qc: QC epochs (default: the run's retrain qc_epochs)")
    ap.add_argument("--controls", action="store_true",
                    help="also the run's random controls (<run>/search/random/*.json), each a random genotype of the "
                         "space at its search's predicted latency")
    ap.add_argument("--train-seeds", type=int, nargs="+", default=None, metavar="S",
                    help="train every network once per seed (default: the run's master seed) and report the Dice "
                         "spread over them; the first seed's networks are the ones timed")
    ap.add_argument("--genotypes", type=Path, nargs="+", default=None, metavar="FILE",
                    help="more seg networks of the run's U: JSON files {\"label\": ..., \"seg\": {\"down\": ..., "
                         "\"up\": ...}} (a NasUnetGenotype), each paired with the baselines' ResNet18 QC")
    ap.add_argument("--stem-convs", type=int, default=None, metavar="N",
                    help="rebuild the run's searched, control and genotype networks with N stem convs instead of the "
                         "run's (a probe of the U's skeleton; the searches themselves ran with the run's stem)")
    ap.add_argument("--skeletons", nargs="+", default=None, metavar="SPEC",
                    help="U-nets of other per-level width, op and convs, e.g. 8c2-32c2-64c2-128c2-256c2 or "
                         "/2:16c2-32c2-64s2-128s2 (search.core.derived.unet_skeleton), each with ResNet18 QC")
    ap.add_argument("--baselines", nargs="+", default=None, metavar="KEY", choices=BASELINE_KEYS,
                    help=f"the U-net baselines to train (default: all of {', '.join(BASELINE_KEYS)}; {REFERENCE}, the "
                         "reference of every ratio, is always trained)")
    ap.add_argument("--time-at", type=int, nargs="+", default=None, metavar="SIZE",
                    help="also time the networks trained at the first --sizes at these input sizes, seg + QC as "
                         "Table II does (e.g. 256, its deployment input)")
    ap.add_argument("--distill", nargs="+", default=None, metavar="KEY",
                    help="also train a twin of these rows (keys as in the table, e.g. searched_hw_seed1 or "
                         "skeleton_s2_16c2-32c2-64c2-128c2) whose seg net learns from the --teacher row's seg net of the "
                         "same seed beside the labels (pixel-wise KD); the twin's key ends in -kd")
    ap.add_argument("--teacher", default=REFERENCE, metavar="KEY", help=f"with --distill: the teacher row "
                    f"(default {REFERENCE})")
    ap.add_argument("--distill-weight", type=float, default=1.0, metavar="W",
                    help="with --distill: weight of the distillation term beside CE + soft Dice (default 1)")
    ap.add_argument("--distill-temperature", type=float, default=2.0, metavar="T",
                    help="with --distill: softmax temperature of both nets in the distillation term (default 2)")
    ap.add_argument("--threads", type=int, default=2, help="onnxruntime intra-op threads")
    ap.add_argument("--torch-threads", type=int, default=2, help="torch threads for training and scoring")
    ap.add_argument("--warmup", type=int, default=None, help="untimed runs per network (default: the run's)")
    ap.add_argument("--repeats", type=int, default=None, help="timed rounds (default: the run's timed_runs)")
    ap.add_argument("--work", type=Path, default=None, help="cache of trained networks (default: <run>/size_table)")
    ap.add_argument("--device", default="cpu", help="torch device for training (scoring and timing: CPU)")
    precision.add_argument(ap, default="fp32", why=": the tables before this option trained in fp32, and their "
                           "cached networks are read back only under it")
    ap.add_argument("--out", type=Path, default=None, help="default: docs/bench/size_table_<task>.json")
    ap.add_argument("--from-json", type=Path, default=None, help="re-render the markdown of a written JSON")
    args = ap.parse_args(argv)
    if args.from_json is not None:
        result = json.loads(args.from_json.read_text())
        out = args.out or args.from_json
    else:
        if args.run is None:
            ap.error("--run is required (or --from-json)")
        if args.qc_epochs is not None and (args.qc_epochs < 1 or not args.with_qc):
            ap.error(f"--qc-epochs {args.qc_epochs}: needs --with-qc and at least 1 epoch")
        if args.stem_convs is not None and args.stem_convs < 1:
            ap.error(f"--stem-convs must be at least 1, got {args.stem_convs}")
        if args.distill_weight <= 0 or args.distill_temperature <= 0:
            ap.error(f"--distill-weight and --distill-temperature must be > 0, got {args.distill_weight:g} and "
                     f"{args.distill_temperature:g}")
        distill = (DistillSettings(tuple(args.distill), args.teacher, args.distill_weight, args.distill_temperature)
                   if args.distill else None)
        logging.basicConfig(level=logging.INFO, format="    %(message)s")
        precision.use_args(args, None)
        result = run(args.run, sizes=args.sizes, variants=args.variants, epochs=args.epochs, with_qc=args.with_qc,
                     threads=args.threads, torch_threads=args.torch_threads, warmup=args.warmup, repeats=args.repeats,
                     work=args.work, device=args.device, controls=args.controls, train_seeds=args.train_seeds,
                     genotypes=args.genotypes, stem_convs=args.stem_convs, skeletons=args.skeletons,
                     time_at=args.time_at, qc_epochs=args.qc_epochs, distill=distill, seg_restarts=args.seg_restarts,
                     baselines=args.baselines)
        out = args.out or ROOT / "docs" / "bench" / f"size_table_{result['task']}.json"
    # re-rendered from a JSON file: that file is left as it is (unless --out names another)
    write_report(out, None if args.from_json is not None and out == args.from_json else result, markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
