"""One ``segqc-hw`` run as stages of ``search.train.stages``: data, latency table, searches, retraining, Table II, export, report.

Every stage writes its result under the run folder and is skipped when that result is there and
the part of the configuration it depends on is unchanged; ``<out>/stages.json`` records whether
each ran or was skipped, and why. Training stages also resume mid-way from their checkpoints.

    <out>/config.json               the configuration
    <out>/data/                     ``data``: the S1 / S2 / test patients (cached)
    <out>/latency/lut.json          ``latency-table``: every op of both supernets at the measurement
                                    resolution, best of N on this CPU (only the missing keys)
    <out>/search/<variant>/seed<k>/ ``search:<variant>/seed<k>``: the joint search with (``hw``,
                                    ``hw_lambda<l>``) and without (``nohw``) the latency term;
                                    ``genotype.json`` is the derived architecture
    <out>/search/random/<row>.json  ``random:<row>``: the random control of each search, a random
                                    genotype of the same predicted latency (``random_control``)
    <out>/rows/<row>/               ``retrain:<row>``: each Table II row retrained from scratch in
                                    the same harness and scored on validation and test patients
                                    (the handcrafted U-net(8|16) + ResNet18 baselines and the
                                    random controls, ``random_<search row>``, included)
    <out>/table.json                ``table-ii``: framework latency (seg + QC, one process,
                                    interleaved) and FLOPs of every row
    <models>/, report/export.json   ``export``: the hardware-aware pair with the best validation
                                    score (the Table II one or a sensitivity search) with its cards
    <out>/report/ (+ docs)          ``report``: Table II beside the paper's, targets, figures
    <out>/stages.json               which stages ran or were skipped, why, and how long they took

A stage's configuration holds its own values and those of the stages it reads from, so a changed
value reruns only the stages downstream of it (e.g. other retraining epochs rerun the retraining,
export and report, not the searches); its ``inputs`` (the genotype a row retrains, the scores and
weights the export ships) rerun it when an upstream result changed.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from search import distributed
from search.core.convergence import plot_traces, report_section
from search.core.genotypes import SegQcGenotype, SkeletonQcGenotype
from search.methods.segqc_hw.config import SegQcConfig
from search.methods.segqc_hw.data import SPLITS, frame_dataset, load_protocol
from search.methods.segqc_hw.latency_model import FrameworkLatency, framework_latency, lut_stage
from search.methods.segqc_hw.latency_table import machine_line, measure_rows
from search.methods.segqc_hw.random_control import (N_CANDIDATES, REFINE_STEPS, Candidate, closest, control_record,
                                                    pair_genotype_from_dict,
                                                    random_candidates, read_control, refine_to_target, write_control)
from search.methods.segqc_hw.report import (CONTROL_PREFIX, ROW_NAMES, ROWS, control_key, random_control_verdict,
                                            row_name, sensitivity_key, verdict_text, write_report)
from search.methods.segqc_hw.retrain import PairData, load_scores, train_and_score
from search.methods.segqc_hw.search import (BASELINE_UNET_DEPTH, build_baseline, build_derived, qc_config, read_search,
                                            search_stage, seg_config)
from search.train import precision
from search.train.cine_rows import read_json, write_json
from search.train.restarts import restart_checkpoints
from search.train.stages import Stage, StageRunner, config_hash

log = logging.getLogger(__name__)

STOP_AFTER = ("data", "search", "retrain", "all")
BASELINES = ("unet8", "unet16")


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


@dataclass
class Row:
    """One retrained pair of Table II (the best search seed's, for a searched row).

    Attributes:
        key: Table II key (``searched_hw``, ``unet8``, ...).
        scores: Validation and test scores (``rows/<row>/scores.json``).
        pair: The trained seg logits net and QC net (CPU, eval mode).
        folder: The row's folder under ``rows/``.
        genotype_file: The search's ``genotype.json``, a random control's ``search/random/<search>.json`` (None
            for a handcrafted row).
        searched: The search's fields of the Table II row (genotype, record, seed, lambda2, LUT prediction).
        control: A random control's fields (``random_control.control_record``: genotype, the search it
            controls, target and predicted ms, sampling seed and candidates); None for every other row.
    """

    key: str
    scores: dict
    pair: tuple[nn.Module, nn.Module]
    folder: Path
    genotype_file: Path | None = None
    searched: dict | None = None
    control: dict | None = None


def val_score(scores: dict) -> float:
    """How a seed's retrained pair is ranked on validation: Dice minus QC MAE."""
    return float(scores["val"]["dice_mean"] - scores["val"]["qc_mae"])


def seed_summary(seed: int, scores: dict, record: dict, predicted_ms: float) -> dict:
    """One search seed's line of the seed spread: its retrained pair's test and validation scores, the search's
    convergence verdict and the lookup table's prediction for its derived pair."""
    convergence = record.get("convergence") or {}
    return {"seed": seed, "dice_test": float(scores["test"]["dice_mean"]), "qc_mae_test": float(scores["test"]["qc_mae"]),
            "val_score": val_score(scores), "expected_latency_ms": float(predicted_ms),
            "converged": convergence.get("converged"), "entropy_drop": convergence.get("mean_relative_drop")}


def shipped_key(rows: dict[str, dict], sensitivity: dict[str, dict]) -> str:
    """Which hardware-aware pair ships: the Table II one or a sensitivity search, best on validation.

    The latency weight is a hyperparameter like the search seed, so it is chosen the same way
    (``val_score`` on the validation patients of S2); the test patients play no part.
    """
    candidates = {"searched_hw": rows["searched_hw"], **sensitivity}
    return max(candidates, key=lambda k: (val_score(candidates[k]), k == "searched_hw"))


def searches(cfg: SegQcConfig, only: Sequence[str] | None = None) -> list[tuple[str, float, str]]:
    """``(row key, lambda2, folder name)`` of every search: w/o hw, hw, then the sensitivity searches.

    ``only``: keep the searches of these folder names (``nohw``, ``hw``, ``hw_lambda<L>``) alone; a name that is
    not a search of ``cfg`` raises ``ValueError`` naming the ones there are.
    """
    out = [("searched_nohw", 0.0, "nohw"), ("searched_hw", cfg.search.lambda2, "hw")]
    out += [(sensitivity_key(lam), lam, f"hw_lambda{lam:g}") for lam in cfg.search.sensitivity_lambda2]
    if only is None:
        return out
    names = [variant for _, _, variant in out]
    unknown = [n for n in only if n not in names]
    if unknown or not only:
        raise ValueError(f"no search named {', '.join(unknown) or '(none given)'}: this run's searches are "
                         f"{', '.join(names)}")
    return [s for s in out if s[2] in only]


# ------------------------------------------------------------------------------- stage configs
def _part(cfg: SegQcConfig, name: str) -> Any:
    return cfg.to_dict()[name]


#: Search settings the warm-up never reads (the architecture steps' schedule, optimiser and latency sample):
#: searches that differ only in them (and in lambda2) share one warm-up.
WARMUP_UNUSED = ("alternate_epochs", "arch_lr", "arch_betas", "arch_weight_decay", "gumbel_tau", "latency_budget_ms")


def search_config(cfg: SegQcConfig, lambda2: float, seed: int) -> dict:
    """What one search depends on: data, space, search schedule, its latency weight and seed, the table."""
    unread = ("seeds", "sensitivity_lambda2", "lambda2", *(() if lambda2 > 0 else ("latency_budget_ms",)))
    search = {k: v for k, v in _part(cfg, "search").items() if k not in unread}  # no latency term: no budget
    return precision.tag({"data": _part(cfg, "data"), "space": _part(cfg, "space"), "search": search,
                          "lambda2": lambda2, "seed": seed, "lut": _lut_part(cfg)})  # bf16: another search


def _lut_part(cfg: SegQcConfig) -> dict:
    """What the lookup table's entries depend on (the latency term of a search, a random control's pricing)."""
    m = cfg.measure
    return {"resolution": m.resolution, "intra_op_threads": m.intra_op_threads, "lut_warmup": m.lut_warmup,
            "lut_repeats": m.lut_repeats}


def control_config(cfg: SegQcConfig, of: str, target_ms: float) -> dict:
    """What a search's random control depends on: the space, its pricing, the target, how candidates are drawn.

    The sampling seed is the master seed: one pool of candidates per run (``random_control``)."""
    return {"random_control_of": of, "target_ms": target_ms, "sampling_seed": cfg.seed, "n_candidates": N_CANDIDATES,
            "refine_steps": REFINE_STEPS, "space": _part(cfg, "space"), "num_classes": cfg.task.num_classes,
            "lut": _lut_part(cfg)}


def baseline_config(width: int) -> dict:
    """What a handcrafted row's architecture depends on."""
    return {"unet_width": width, "unet_depth": BASELINE_UNET_DEPTH}


def retrain_config(cfg: SegQcConfig, architecture: dict) -> dict:
    """What retraining a pair depends on: its architecture's config, the data, the schedule, the seed."""
    return precision.tag({"architecture": architecture, "data": _part(cfg, "data"), "retrain": _part(cfg, "retrain"),
                          "seed": cfg.seed})  # bf16 training: another retrained row


# ------------------------------------------------------------------------------------- stages
class SegQcExperiment:
    """The whole Table II experiment of the segqc-hw paper, as stages over one run folder.

    Args:
        cfg: The configuration.
        paths: Where to write.
        device: torch device of the searches and retrainings; evaluation, latency and export run on the CPU.
    """

    def __init__(self, cfg: SegQcConfig, paths: RunPaths, *, device: str = "cpu"):
        self.cfg, self.paths, self.device = cfg, paths, device
        self.out = paths.out
        self.stages: StageRunner | None = None  # made in run(): under torchrun, after rank 0 wrote its records

    def data_stage(self) -> Stage:
        """The protocol's patients, cached under ``data/``."""
        folder = self.out / "data"
        load = partial(load_protocol, self.cfg.data, folder)
        config = {k: v for k, v in _part(self.cfg, "data").items() if k not in ("augment", "resolution")}
        outputs = (folder / "cases_key.json", *(folder / f"cases_{s}.npz" for s in SPLITS))
        return Stage("data", run=load, load=load, outputs=outputs, config=config)

    def joint_search_stage(self, lambda2: float, seed: int, variant: str, cases: dict,
                           latency: FrameworkLatency) -> Stage:
        """One joint search and its derived genotype."""
        folder = self.out / "search" / variant / f"seed{seed}"
        run = partial(search_stage, self.cfg, lambda2, seed, cases["s1"], cases["s2"], latency, folder, self.device,
                      warmup_checkpoint=self.warmup_checkpoint(seed))
        return Stage(f"search:{variant}/seed{seed}", run=run, load=partial(read_search, folder),
                     outputs=(folder / "genotype.json",), scratch=(folder / "search.pt", folder / "arch_trace.json"),
                     config=search_config(self.cfg, lambda2, seed))

    def warmup_checkpoint(self, seed: int) -> Path:
        """Where the searches of ``seed`` share their warm-up: named by what it depends on (a search's config
        without ``lambda2`` and the settings that act only after the warm-up, ``WARMUP_UNUSED``), so a changed
        config never starts from a stale warm-up, and a longer or faster architecture phase reuses it."""
        config = search_config(self.cfg, 0.0, seed)
        config = {**{k: v for k, v in config.items() if k != "lambda2"},
                  "search": {k: v for k, v in config["search"].items() if k not in WARMUP_UNUSED}}
        key = config_hash(config)
        return self.out / "search" / "warmup" / f"seed{seed}-{key}.pt"

    def row_stage(self, name: str, key: str, pair: tuple[nn.Module, nn.Module], data: PairData, architecture: dict,
                  inputs: tuple[Path, ...] = ()) -> Stage:
        """Retrain ``pair`` from scratch and score it (the result: its scores; the pair holds the weights)."""
        folder = self.out / "rows" / key
        seg, qc = pair
        cfg = self.cfg
        run = partial(train_and_score, name, seg, qc, data, cfg.retrain, cfg.data.augment, cfg.data.resolution,
                      seed=cfg.seed, row_dir=folder, device=self.device, n_classes=cfg.task.num_classes)
        return Stage(f"retrain:{key}", run=run, load=partial(load_scores, name, seg, qc, folder),
                     outputs=(folder / "scores.json",), inputs=inputs,
                     scratch=(folder / "seg.pt", *restart_checkpoints(folder / "seg.pt"), folder / "qc.pt",
                              *restart_checkpoints(folder / "qc.pt"), folder / "weights.pt"),
                     config=retrain_config(cfg, architecture))

    # ---------------------------------------------------------------------------------- run
    def run(self, stop_after: str = "all", only_searches: Sequence[str] | None = None,
            random_controls: bool = True) -> str:
        """Run every stage that is not done yet and return a short summary.

        ``only_searches``: run only these searches (folder names, :func:`searches`); only with
        ``stop_after="search"``, since the retraining, Table II and export need every search.
        ``random_controls=False`` leaves out each search's random control (a diagnostic of the report, never
        shipped) and its retraining.
        """
        if stop_after not in STOP_AFTER:
            raise ValueError(f"stop_after must be one of {STOP_AFTER}, got {stop_after!r}")
        if only_searches is not None and stop_after != "search":
            raise ValueError("running only some searches needs stop_after='search': the retraining, Table II and "
                             "export need every search")
        chosen = searches(self.cfg, only_searches)
        cfg, out = self.cfg, self.out
        torch.set_num_threads(cfg.threads)
        out.mkdir(parents=True, exist_ok=True)
        with distributed.main_first():  # under torchrun: rank 0 writes data and LUT, the others then read them
            self.stages = StageRunner(out, cfg.to_dict(), progress=log.info)
            if distributed.is_main():
                write_json(out / "config.json", precision.tag(cfg.to_dict()))  # bf16 training recorded
            cases = self.stages.run(self.data_stage())
            if stop_after == "data":
                return f"{cfg.task.method_label} ({cfg.preset}): patients cached in {out / 'data'}"
            table = self.stages.run(lut_stage(cfg, out / "latency" / "lut.json", seg_config(cfg), qc_config(cfg)))
            latency = framework_latency(cfg, table, seg_config(cfg), qc_config(cfg))
        found = {key: [(s, self.stages.run(self.joint_search_stage(lam, s, variant, cases, latency)))
                       for s in cfg.search.seeds] for key, lam, variant in chosen}
        if stop_after == "search":
            return f"{cfg.task.method_label} ({cfg.preset}): searches done in {out / 'search'}"
        data = PairData(seg_train=cases["s1"], qc_train=cases["s2_train"], val=cases["s2_val"], test=cases["test"])
        searched = self.retrain_searched(found, data, latency)
        controls = self.retrain_controls(searched, data, latency) if random_controls else {}
        rows = searched | controls | self.retrain_baselines(data)
        if stop_after == "retrain":
            return f"{cfg.task.method_label} ({cfg.preset}): searches and retraining done in {out}"
        if not distributed.is_main():  # Table II timing, report and export: rank 0 alone
            return f"{cfg.task.method_label} ({cfg.preset}): rank {distributed.rank()} done; rank 0 measures, reports and exports"
        return self.finish(rows, cases)

    def retrain_searched(self, found: dict, data: PairData, latency: FrameworkLatency) -> dict[str, Row]:
        """Retrain every search seed's pair; keep the seed best on validation per search."""
        cfg, rows = self.cfg, {}
        lambdas = {key: lam for key, lam, _ in searches(cfg)}
        variants = {key: variant for key, _, variant in searches(cfg)}
        for key, by_seed in found.items():
            best, per_seed = None, []
            for s, (genotype, rec) in by_seed:
                pair = build_derived(cfg, genotype, cfg.seed)
                genotype_file = self.out / "search" / variants[key] / f"seed{s}" / "genotype.json"
                stage = self.row_stage(f"{row_name(key)} (search seed {s})", f"{key}_seed{s}", pair, data,
                                       search_config(cfg, lambdas[key], s), inputs=(genotype_file,))
                scores = self.stages.run(stage)
                per_seed.append(seed_summary(s, scores, rec, latency.of_genotype(genotype)))
                if best is None or val_score(scores) > val_score(best.scores):
                    searched = dict(search=rec, genotype=genotype.to_dict(), search_seed=s, lambda2=lambdas[key],
                                 expected_latency_ms=latency.of_genotype(genotype))
                    best = Row(key, scores, pair, self.out / "rows" / f"{key}_seed{s}", genotype_file, searched)
            best.searched["seeds"] = per_seed
            rows[key] = best
        return rows

    def control_stage(self, key: str, target_ms: float, pool: Callable[[], list[Candidate]],
                      latency: FrameworkLatency) -> Stage:
        """The random genotype of the pool (``pool()``, drawn only when a control has to be chosen) predicted
        closest to ``target_ms``, the search ``key``'s prediction, then brought nearer to it by the cost-only
        ``refine_to_target``; its record goes to ``search/random/<key>.json``."""
        path = self.out / "search" / "random" / f"{key}.json"
        config = control_config(self.cfg, key, target_ms)

        def run() -> tuple[SegQcGenotype | SkeletonQcGenotype, dict]:
            start = closest(pool(), target_ms)
            refined = refine_to_target(start, self.cfg, latency, target_ms, config["sampling_seed"],
                                       config["refine_steps"])
            record = {**control_record(key, refined, target_ms, config["sampling_seed"], config["n_candidates"]),
                      "closest_draw_ms": start[1], "refine_steps": config["refine_steps"]}
            if distributed.is_main():  # under torchrun every rank draws the same pool; rank 0 writes it
                write_control(path, record)
            return pair_genotype_from_dict(record["genotype"]), record

        return Stage(f"random:{key}", run=run, load=partial(read_control, path), outputs=(path,), config=config)

    def retrain_controls(self, searched: dict[str, Row], data: PairData, latency: FrameworkLatency) -> dict[str, Row]:
        """Per search, a random genotype of its predicted latency, retrained exactly as the searched rows
        (``random_control``): the control its derived pair has to beat. Not a Table II row, not a
        sensitivity search, never shipped (``finish`` keeps them apart)."""
        cfg, rows = self.cfg, {}
        drawn: list[list[Candidate]] = []

        def pool() -> list[Candidate]:  # drawn once per run, and only if some control is not chosen yet
            if not drawn:
                drawn.append(random_candidates(cfg, latency, cfg.seed, N_CANDIDATES))
            return drawn[0]

        for key, row in searched.items():
            target = row.searched["expected_latency_ms"]
            stage = self.control_stage(key, target, pool, latency)
            genotype, record = self.stages.run(stage)
            ckey, path = control_key(key), stage.outputs[0]
            pair = build_derived(cfg, genotype, cfg.seed)
            architecture = {**record, "space": _part(cfg, "space")}
            scores = self.stages.run(self.row_stage(row_name(ckey), ckey, pair, data, architecture, inputs=(path,)))
            rows[ckey] = Row(ckey, scores, pair, self.out / "rows" / ckey, path, control=record)
        return rows

    def retrain_baselines(self, data: PairData) -> dict[str, Row]:
        """Retrain the handcrafted U-net(8|16) + ResNet18 rows."""
        cfg, rows = self.cfg, {}
        for width, key in zip(cfg.baseline_seg_filters, BASELINES):
            pair = build_baseline(width, cfg.seed, cfg.task.num_classes)
            scores = self.stages.run(self.row_stage(ROW_NAMES[key], key, pair, data, baseline_config(width)))
            rows[key] = Row(key, scores, pair, self.out / "rows" / key)
        return rows

    def finish(self, rows: dict[str, Row], cases: dict) -> str:
        """Table II timing, export, report; the summary."""
        costs = self.stages.run(self.measure_stage(rows, cases))
        table = {k: dict(r.scores, **(r.searched or r.control or {}), cost=costs["rows"][k]) for k, r in rows.items()}
        controls = {k: table.pop(k) for k in list(table) if k.startswith(CONTROL_PREFIX)}
        sensitivity = {k: table.pop(k) for k in list(table) if k not in ROWS}
        for k, control in controls.items():  # the second verdict on each search, beside its convergence
            searched = {**table, **sensitivity}[control["random_control_of"]]
            searched["random_control"] = random_control_verdict(k, searched, control)
        exported: list[str] = []
        if self.paths.models is not None:
            exported = self.stages.run(self.export_stage(rows, table, sensitivity, cases, costs["machine"]))
        export_record = self.out / "report" / "export.json"
        results = {"config": self.cfg.to_dict(), "machine": costs["machine"], "rows": table,
                   "sensitivity": sensitivity, "controls": controls, "n_test_frames": table["searched_hw"]["test"]["n"],
                   "n_patients": {part: len(cases[part]) for part in SPLITS},
                   "export": read_json(export_record) if exported else None}
        report = self.stages.run(self.report_stage(results, rows, exported))
        return _summary(results, report, exported)

    def measure_stage(self, rows: dict[str, Row], cases: dict) -> Stage:
        """Every row (sensitivity searches and random controls included) timed in one process, interleaved,
        so that background load hits them alike; another set of rows re-measures them all."""
        cfg, path = self.cfg, self.out / "table.json"

        def run() -> dict:
            frame = _latency_frame(cases["test"], cfg.measure.resolution)
            measured = measure_rows({k: r.pair for k, r in rows.items()}, frame, resolution=cfg.measure.resolution,
                                    warmup=cfg.measure.warmup_runs, repeats=cfg.measure.timed_runs,
                                    intra_op_threads=cfg.measure.intra_op_threads, seed=cfg.seed)
            costs = {"machine": machine_line(cfg.measure.intra_op_threads),
                     "rows": {k: v.to_dict() for k, v in measured.items()}}
            write_json(path, costs)
            return costs

        architectures = {k: r.searched["search"]["genotype"] if r.searched else r.control["genotype"] if r.control else k
                         for k, r in rows.items()}
        config = {"measure": _part(cfg, "measure"), "space": _part(cfg, "space"), "rows": architectures,
                  "baselines": list(cfg.baseline_seg_filters), "data": _part(cfg, "data")}
        return Stage("table-ii", run=run, load=partial(read_json, path), outputs=(path,), config=config)

    def export_stage(self, rows: dict[str, Row], table: dict, sensitivity: dict, cases: dict, machine: str) -> Stage:
        """The hardware-aware pair best on validation, exported with its cards."""
        from search.methods.segqc_hw.export import export_pair, model_ids

        cfg, models, record = self.cfg, self.paths.models, self.out / "report" / "export.json"
        key = shipped_key(table, sensitivity)
        row = {**table, **sensitivity}[key]
        run = partial(export_pair, cfg, rows[key].pair, row, cases, models, machine, record=record, row_key=key)
        cards = [models / f"{model_id}.{ext}" for model_id in model_ids(cfg.preset, cfg.data.task)
                 for ext in ("onnx", "json")]
        weights = rows[key].folder / "weights.pt"
        inputs = (self.out / "table.json", rows[key].folder / "scores.json", *((weights,) if weights.is_file() else ()))
        config = {"shipped": key, "models_dir": str(models), "config": cfg.to_dict()}
        return Stage("export", run=run, load=lambda: read_json(record)["shipped"], outputs=(record, *cards),
                     inputs=inputs, config=config)

    def report_stage(self, results: dict, rows: dict[str, Row], exported: list[str]) -> Stage:
        """Figures, ``README.md``, ``results.json`` and ``frames.json`` under ``report/`` (copied to docs)."""
        folder, docs = self.out / "report", self.paths.docs
        everything = {**results["rows"], **results["sensitivity"]}
        controls = results.get("controls") or {}

        def run() -> Path:
            figures = _figures(results, folder)
            report = write_report(results, folder, figures)
            searched = {row_name(k): r["search"] for k, r in everything.items() if "convergence" in (r.get("search") or {})}
            if searched:  # issue 16: entropy of the architecture weights and the verdict of every search
                with report.open("a") as fh:
                    fh.write(report_section({k: v["convergence"] for k, v in searched.items()},
                                            plot_traces({k: v["arch_trace"] for k, v in searched.items()}, folder)))
            write_json(folder / "frames.json", {k: r["test"]["frames"] for k, r in {**everything, **controls}.items()})
            if docs is not None:
                docs.mkdir(parents=True, exist_ok=True)
                for f in folder.iterdir():
                    shutil.copy2(f, docs / f.name)
            return report

        outputs = [folder / name for name in ("README.md", "results.json", "frames.json")]
        outputs += [docs / name for name in ("README.md", "results.json")] if docs is not None else []
        inputs = [self.out / "table.json", *(r.folder / "scores.json" for r in rows.values())]
        inputs += [r.genotype_file for r in rows.values() if r.genotype_file is not None]
        inputs += [folder / "export.json"] if exported else []
        config = {"config": self.cfg.to_dict(), "docs": str(docs), "exported": exported}
        return Stage("report", run=run, load=lambda: folder / "README.md", outputs=tuple(outputs),
                     inputs=tuple(inputs), config=config)


def run_segqc_hw(cfg: SegQcConfig, paths: RunPaths, *, device: str = "cpu", stop_after: str = "all",
                 only_searches: Sequence[str] | None = None, random_controls: bool = True) -> str:
    """Run every stage (skipping finished ones) and return a short summary.

    Args:
        cfg: The configuration.
        paths: Where to write.
        device: torch device of the searches and retrainings (``"cuda"`` on a GPU machine); the
            evaluation, latency measurement and export always run on the CPU.
        stop_after: ``"search"`` or ``"retrain"`` to stop after that stage (e.g. train on a GPU
            machine, then measure Table II on the target CPU by running again there), ``"data"`` to
            only cache the patients (what ``bench/size_table.py`` reads), or ``"all"``.
        only_searches: With ``stop_after="search"``, run only these searches (``nohw``, ``hw``, ``hw_lambda<L>``).
        random_controls: Retrain each search's random control (the report's "searched vs random" verdict).
    """
    return SegQcExperiment(cfg, paths, device=device).run(stop_after, only_searches, random_controls)


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
        genotype = pair_genotype_from_dict(row["genotype"])
        title = (f"Searched cells: {row_name(key)}" if isinstance(genotype, SegQcGenotype)
                 else f"Searched U-net skeleton {genotype.seg.spec} and QC cells: {row_name(key)}")
        draw_genotype(genotype, folder / name, title)
        figures[f"Searched cells, {row_name(key)}"] = name
    return figures


def _summary(results: dict, report: Path, exported: list[str]) -> str:
    from search.methods.segqc_hw.tasks import echo_task

    label = echo_task(results["config"]["data"].get("task", "contrast")).method_label
    lines = [f"{label} ({results['config']['preset']}): report {report}"]
    for k in ROWS:
        r = results["rows"][k]
        lines.append(f"  {ROW_NAMES[k]:<34} Dice {r['test']['dice_mean']:.3f}  QC MAE {r['test']['qc_mae']:.3f}  "
                     f"r {r['test']['qc_pearson']:.2f}  {r['cost']['latency_ms']:.1f} ms  {r['cost']['macs'] / 1e6:.0f} M MACs")
    for k, r in (results.get("sensitivity") or {}).items():
        lines.append(f"  {row_name(k):<34} Dice {r['test']['dice_mean']:.3f}  QC MAE {r['test']['qc_mae']:.3f}  "
                     f"r {r['test']['qc_pearson']:.2f}  {r['cost']['latency_ms']:.1f} ms  {r['cost']['macs'] / 1e6:.0f} M MACs")
    for k, r in (results.get("controls") or {}).items():
        verdict = {**results["rows"], **(results.get("sensitivity") or {})}[r["random_control_of"]]["random_control"]
        lines.append(f"  {row_name(k)}: Dice {r['test']['dice_mean']:.3f}  {r['cost']['latency_ms']:.1f} ms; the search "
                     f"{verdict_text(verdict)}")
    if exported:
        lines.append("  exported: " + ", ".join(exported))
    return "\n".join(lines)
