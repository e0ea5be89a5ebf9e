"""One ``rtdnas`` run end to end: constrained search rounds, GA vs top-weight, retraining, latency, report.

Stages (each writes its result under the run folder and is skipped when it is there, so a rerun resumes):

    <out>/config.json                 the configuration
    <out>/split.json, cases/          patients (``search.train.clips``: msnas-hw's split rule)
    <out>/latency_table.json          LUT at the deployed clip (started from msnas-hw's table of the
                                      same preset when there is one: same machine, runtime, keys)
    <out>/rounds/r<k>/result.json     search round k: L_ub, cells, beta, history, the checked network's
                                      LUT and measured latency, whether it met 50 ms / 22 FPS
    <out>/pick.json                   with ``pick.candidates`` > 1: the candidate cells of the final round,
                                      their short training's Dice on validation patients (``rows/pick_c<i>``),
                                      the cells picked for the derivation
    <out>/derivation.json             final round: gene pool, top-weight and GA paths per N_l
    <out>/rows/<key>/result.json      retrained networks (Table 1, sweep) and the cloud (short training)
    <out>/latency.json                every row timed with onnxruntime (interleaved groups)
    <out>/report/                     table1.md, table2.md, fig2.png, report.md (copied to docs_dir)
    <out>/shipping.json               whether the winner was shipped into models_dir, and why
    <out>/stages.json                 which stages ran or were skipped, why, and how long they took
"""

from __future__ import annotations

import json
import logging
import math
import shutil
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch.utils.data import DataLoader

from search import distributed
from search.core.convergence import plot_traces, report_section
from search.core.decode import beta_probabilities, draw_distinct, sample_multiscale_cells, top_n_paths
from search.core.genotypes import CellGenotype, MultiscaleGenotype, PathGenotype
from search.core.sampling import sample_random_genotype
from search.latency.lut import LatencyTable
from search.latency.measure import measure_interleaved
from search.latency.onnx_bytes import export_onnx_bytes
from search.latency.profiler import ProfileSettings
from search.methods.rtdnas import space
from search.methods.rtdnas.config import RtdnasConfig
from search.methods.rtdnas.ga import GenePool, GeneticPathSelection, gene_pool
from search.methods.rtdnas.search import RtdnasSearch
from search.train.cine_config import stage_config
from search.train.cine_rows import (CineRows, candidate_scores, check_run_config, ranked_candidates, read_json,
                                    scored_on_test, write_json)
from search.train.clips import clip_dataset
from search.train.loop import seed_everything
from search.train.row_networks import build_row_network
from search.train.stages import Stage, StageRunner, Stopwatch, latency_table_stage

log = logging.getLogger(__name__)
Progress = Callable[[str], None]


def meets(cfg: RtdnasConfig, stats: dict[str, Any]) -> bool:
    """The one real-time rule (``app.realtime.REALTIME``) on p95 latency and throughput (1000 / mean, clips of T frames)."""
    from app.realtime import REALTIME

    return REALTIME.meets(stats.get("p95_ms"), stats.get("fps"))


def next_ub(cfg: RtdnasConfig, ub_ms: float, lut_ms: float, measured: dict[str, Any]) -> float:
    """L_ub of the next round after a miss: ``min(L_ub, LUT ms) x (budget / measured) x margin``, floored.

    The ratio is the tighter of the latency and throughput shortfalls (both < 1 on a miss), so the next
    search aims that much below what the checked network's lookup-table latency was. Latency is the
    p95 of the one real-time rule (``app.realtime.REALTIME``).
    """
    from app.realtime import REALTIME

    p95 = measured.get("p95_ms", measured["p50_ms"])
    ratio = min(REALTIME.p95_ms / p95, measured["fps"] / REALTIME.fps)
    return max(cfg.rounds.min_ub_ms, min(ub_ms, lut_ms) * ratio * cfg.rounds.shrink_margin)


class RtdnasExperiment:
    """The RT-DNAS paper's Table 1, Table 2 and Fig. 2 on phantom cine MR, on this machine.

    Args:
        cfg: The run configuration.
        out: Run folder.
        docs_dir: Where the report is copied (None: only under ``out``).
        msnas_dir: msnas-hw's run folder of the same preset (its LUT seeds ours, its rows are Table 2's
            baselines); None or missing: no baselines.
        models_dir: Where the winning model goes (None: not shipped).
        progress: One-line status messages.
        cloud: Train and report Fig. 2's random-network cloud (False: the run ends with the searched rows'
            report and model, which the cloud never changes; a later run with the cloud goes on from there).
    """

    def __init__(self, cfg: RtdnasConfig, out: Path, *, docs_dir: Path | None = None, msnas_dir: Path | None = None,
                 models_dir: Path | None = None, progress: Progress | None = None, cloud: bool = True):
        self.cfg, self.out, self.docs_dir, self.msnas_dir, self.models_dir = cfg, Path(out), docs_dir, msnas_dir, models_dir
        self.with_cloud = cloud
        self.say = progress or (lambda msg: log.info("%s", msg))
        self.helper = CineRows(space.rows_view(cfg, ()), self.out, progress=self.say)

    # ------------------------------------------------------------------------------------ run
    def run(self) -> dict[str, Any]:
        """Run every stage that has not finished yet; return the row and cloud results.

        The stages go through ``search.train.stages.StageRunner``: ``<out>/stages.json`` records
        whether each ran or was skipped, and why.
        """
        from search.methods.rtdnas.shipping import ship

        self.out.mkdir(parents=True, exist_ok=True)
        stages = StageRunner(self.out, stage_config(self.cfg.to_dict()), progress=self.say)
        with distributed.main_first():  # under torchrun: rank 0 writes config, LUT, data and split; the others read
            self._check_config()
            torch.set_num_threads(self.cfg.threads)
            self.seed_latency_table()
            table = stages.run(self.latency_table_stage())
            self.helper.split  # noqa: B018  (the phantom cache and the patient split, written here)
        final = self.search_rounds(table, stages)
        if self.cfg.pick.candidates > 1:  # the best of several cell sets on validation patients (PickConfig)
            final = stages.run(self.pick_stage(final, table))
        # derive() reads derivation.json back (adding a missing exhaustive optimum), so it is its own loader.
        derive = partial(distributed.main_only, self.derive, final, table)
        picked = (self.out / "pick.json",) if self.cfg.pick.candidates > 1 else ()  # a new pick derives again
        derivation = stages.run(Stage("derivation", run=derive, load=derive, outputs=(self.out / "derivation.json",),
                                      inputs=picked))
        rows = self.train_rows(derivation, stages)
        if distributed.is_main():  # under torchrun the others only join the trainings below
            stages.run(self.measure_stage("latency:rows", rows))
            # Report and ship from the searched rows first (the cloud only adds Fig. 2's background), then again.
            results = stages.run(Stage("report:rows", run=partial(self.report, rows, {}, derivation)))
            if self.models_dir is not None:
                stages.run(Stage("ship:rows", run=partial(ship, self, results, derivation)))
        if not self.with_cloud:  # --no-cloud: Fig. 2's random networks left out; the rows' report and model stand
            self.say("cloud: left out (--no-cloud); the report has the searched rows only")
            return results if distributed.is_main() else {}
        cloud = self.train_cloud(stages)
        if distributed.is_main() and cloud:  # timed before the pick, which retrains the slowest meeting the budget
            stages.run(self.measure_stage("latency:cloud", cloud))
        picks = distributed.main_only(self.pick_full_cloud, cloud)
        full = self.train_full_cloud(cloud, picks, stages)
        cloud.update(full)
        if not distributed.is_main():
            return {}
        if full:
            stages.run(self.measure_stage("latency:cloud_full", full))
        results = stages.run(Stage("report", run=partial(self.report, rows, cloud, derivation)))
        if self.models_dir is not None:
            stages.run(Stage("ship", run=partial(ship, self, results, derivation)))
        return results

    def report(self, rows: dict[str, Any], cloud: dict[str, Any], derivation: dict[str, Any]) -> dict[str, Any]:
        """Write the report (and ``results.json``) under ``<out>/report`` and copy it to ``docs_dir``."""
        from search.methods.rtdnas.report import write_report

        results = self.results(rows, cloud)
        path = write_report(self.cfg, self.out, results, derivation, self.rounds_summary(), self.baselines())
        rounds = {f"round {d['round']} (L_ub {d['ub_ms']:.1f} ms)": d for d in map(read_json, sorted(
            (self.out / "rounds").glob("r*/result.json"), key=lambda p: int(p.parent.name[1:]))) if "convergence" in d}
        if rounds:  # issue 16: the entropy of the architecture weights and the convergence verdict of every round
            figures = plot_traces({name: d["arch_trace"] for name, d in rounds.items()}, path.parent)
            with path.open("a") as fh:
                fh.write(report_section({name: d["convergence"] for name, d in rounds.items()}, figures))
        if self.docs_dir is not None:
            self.docs_dir.mkdir(parents=True, exist_ok=True)
            for f in path.parent.iterdir():
                shutil.copy2(f, self.docs_dir / f.name)
        self.say(f"report: {path} ({len(cloud)} cloud networks)")
        return results

    def _check_config(self) -> None:
        from search.train import precision

        # bf16 training recorded (never fp32's); a run made before dataset folders were hashed is rewritten
        check_run_config(self.out / "config.json", precision.tag(self.cfg.to_dict()), self.say)

    # -------------------------------------------------------------------------- latency table
    def seed_latency_table(self) -> None:
        """Start the run's table from msnas-hw's of the same preset (same machine, runtime, keys) if there is none."""
        path = self.out / "latency_table.json"
        seed_table = None if self.msnas_dir is None else Path(self.msnas_dir) / "latency_table.json"
        if not path.is_file() and seed_table is not None and seed_table.is_file():
            shutil.copy2(seed_table, path)
            self.say(f"latency table: starting from {seed_table}")

    def latency_table_stage(self) -> Stage:
        """Profile every op the search can choose at the deployed clip (resumable, only the missing keys)."""
        settings = ProfileSettings(warmup=self.cfg.measure.warmup, repeats=max(5, self.cfg.measure.repeats),
                                   seed=self.cfg.seed)
        return latency_table_stage(self.out / "latency_table.json", lambda: space.required_keys(self.cfg), settings,
                                   progress=self.say)

    def latency_table(self) -> LatencyTable:
        """The run's lookup table (seeded from msnas-hw's), profiled first where it lacks keys."""
        self.seed_latency_table()
        return self.latency_table_stage().run()

    # ------------------------------------------------------------------------------- rounds
    def search_rounds(self, table: LatencyTable, stages: StageRunner | None = None) -> dict[str, Any]:
        """Search at L_ub; measure the GA network of ``check_paths``; lower L_ub and repeat if it misses.

        Every round is a stage of ``stages`` (skipped when its result is there); None: run each round.
        """
        cfg = self.cfg
        ub = cfg.search.latency_ub_ms
        doc = None
        for k in range(1, cfg.rounds.max_rounds + 1):
            doc = _staged(stages, self.round_stage(k, ub, table))
            if doc["check"]["meets"]:
                self.say(f"round {k}: constraints met (p95 {doc['check']['measured'].get('p95_ms', float('nan')):.1f} ms, "
                         f"{doc['check']['measured']['fps']:.1f} FPS) at L_ub {ub:.1f} ms")
                break
            m = doc["check"]["measured"]
            new_ub = next_ub(cfg, ub, doc["check"]["lut_ms"], m)
            self.say(f"round {k}: constraints MISSED (p95 {m.get('p95_ms', float('nan')):.1f} ms, {m['fps']:.1f} FPS at L_ub {ub:.1f} ms)"
                     + (f"; next L_ub {new_ub:.1f} ms" if k < cfg.rounds.max_rounds else "; no rounds left"))
            ub = new_ub
        return doc

    def rounds_summary(self) -> list[dict[str, Any]]:
        out = []
        for k in range(1, self.cfg.rounds.max_rounds + 1):
            p = self.out / "rounds" / f"r{k}" / "result.json"
            if p.is_file():
                d = read_json(p)
                out.append({"round": k, "ub_ms": d["ub_ms"], "final_l_t_ms": d["final_l_t_ms"], **d["check"],
                            "seconds": d["seconds"]})
        return out

    def round_stage(self, k: int, ub: float, table: LatencyTable) -> Stage:
        """Search round ``k`` at ``ub``: its result is read back when it is there; its checkpoint is scratch."""
        folder = self.out / "rounds" / f"r{k}"
        return Stage(f"search:round{k}", run=partial(self.search_round, k, ub, table),
                     load=partial(read_json, folder / "result.json"), outputs=(folder / "result.json",),
                     scratch=(folder / "checkpoint.pt",))

    def search_round(self, k: int, ub: float, table: LatencyTable) -> dict[str, Any]:
        """Search at ``ub``, pick ``check_paths`` paths with the GA, time that network; write ``rounds/r<k>``."""
        folder = self.out / "rounds" / f"r{k}"
        path = folder / "result.json"
        cfg, helper = self.cfg, self.helper
        seed_everything(cfg.seed + 11 + k)
        supernet = space.build_supernet(cfg, seed=cfg.seed + 101)
        estimator = space.latency_estimator(cfg, supernet, table)
        proxy = cfg.search.proxy_clip
        datasets = [clip_dataset(helper.subset(ids), cfg.data, train=True, seed=cfg.seed + 1 + i, clip=proxy)
                    for i, ids in enumerate((helper.split.weight, helper.split.arch))]
        loaders = [
            DataLoader(ds, batch_size=cfg.search.batch_size, shuffle=True, drop_last=len(ds) > cfg.search.batch_size,
                       generator=torch.Generator().manual_seed(cfg.seed + 3 + i))
            for i, ds in enumerate(datasets)
        ]
        searcher = RtdnasSearch(supernet, estimator, loaders[0], loaders[1], cfg.search, ub_ms=ub,
                                generator=torch.Generator().manual_seed(cfg.seed + 7), checkpoint=folder / "checkpoint.pt",
                                checkpoint_every=max(1, (cfg.search.warmup_steps + cfg.search.search_steps) // 10))
        watch = Stopwatch()
        every = max(1, searcher.total_steps // 8)

        def on_step(rec) -> None:
            if rec.step % every == 0 or rec.step == searcher.total_steps:
                lat = "" if math.isnan(rec.latency_ms) else f", L_t {rec.latency_ms:.1f} ms"
                self.say(f"round {k} (L_ub {ub:.1f} ms): step {rec.step}/{searcher.total_steps} ({rec.phase}) "
                         f"CE {rec.weight_ce:.3f}{lat} [{watch.elapsed():.0f} s]")

        history = searcher.run(on_step=on_step)
        if not distributed.is_main():  # under torchrun rank 0 selects, measures and writes the round
            return distributed.share_from_main(None)

        def argmax_choice() -> dict[str, Any]:  # what the arch weights pick: cells and top-weight check paths
            return {"cells": {kk: c.to_dict() for kk, c in space.decode_cells(supernet).items()},
                    "paths": [list(p.kinds) for p, _ in top_n_paths(beta_probabilities(supernet), cfg.rounds.check_paths)]}

        convergence = searcher.trace.verdict(argmax_choice(), searcher.trace.initial_argmax(argmax_choice))
        self.say(f"round {k}: " + convergence.summary())
        cells = space.decode_cells(supernet, cfg.cell_max_free_ops)
        beta = beta_probabilities(supernet)
        with torch.no_grad():
            final_lt = float(estimator())
        pool = GenePool.from_beta(beta, cfg.ga.pool_size)
        n = cfg.rounds.check_paths
        ga = self.ga_paths(pool, n, space.FusedLatencyModel(cfg, cells, pool.paths, table))
        stats = self.measure_one(space.genotype(cfg, cells, ga.paths))
        doc = {
            "round": k, "ub_ms": ub, "final_l_t_ms": final_lt, "seconds": watch.elapsed(),
            "cells": {kk: c.to_dict() for kk, c in cells.items()}, "beta_probs": np.round(beta, 5).tolist(),
            "history": [r.__dict__ for r in history],
            "convergence": convergence.to_json(), "arch_trace": searcher.trace.to_json(),
            "check": {"n_paths": n, "paths": [list(p.kinds) for p in ga.paths], "lut_ms": ga.latency_ms,
                      "measured": stats, "meets": meets(cfg, stats)},
        }
        write_json(path, doc)
        torch.save(supernet.state_dict(), folder / "supernet.pt")
        return distributed.share_from_main(doc)

    def ga_paths(self, pool: GenePool, n: int, fused: space.FusedLatencyModel):
        """The GA's ``n`` paths of ``pool`` under ``fused`` (seeded by N_l: the round check, the pick and the
        derivation select the same paths for the same cells)."""
        return GeneticPathSelection(pool, n, fused, self.cfg.ga, seed=self.cfg.seed + 31 * n).run()

    def measure_one(self, g: MultiscaleGenotype) -> dict[str, Any]:
        """One derived network (initial weights: they do not change the cost) timed at the deployed clip."""
        cfg = self.cfg
        shape = (1, 1, cfg.data.clip_length, cfg.data.height, cfg.data.width)
        net = space.build_derived(cfg, g).eval()
        return measure_interleaved({"net": export_onnx_bytes(net, torch.zeros(shape))}, warmup=cfg.measure.warmup,
                                   repeats=cfg.measure.repeats, seed=cfg.seed)["net"].to_dict()

    def round_supernet(self, final: dict[str, Any], path: Path | None = None):
        """The supernet saved by ``final``'s round (``path``: another file), checked to derive the round's cells.

        Raises:
            ValueError: it does not (a file of another search).
        """
        path = path or self.out / "rounds" / f"r{final['round']}" / "supernet.pt"
        supernet = space.build_supernet(self.cfg, seed=self.cfg.seed + 101)
        supernet.load_state_dict(torch.load(path, map_location="cpu"))
        argmax = {k: CellGenotype.from_dict(v) for k, v in final["cells"].items()}
        if space.decode_cells(supernet, self.cfg.cell_max_free_ops) != argmax:
            raise ValueError(f"{path}: this supernet does not derive round {final['round']}'s cells")
        return supernet

    # ----------------------------------------------------------------------------------- pick
    def pick_stage(self, final: dict[str, Any], table: LatencyTable, supernet: Path | None = None) -> Stage:
        """The pick of ``RtdnasConfig.pick`` as a stage: ``pick_cells`` reads ``pick.json`` back, so it is its loader."""
        run = partial(self.pick_cells, final, table, supernet)
        return Stage("pick", run=run, load=run, outputs=(self.out / "pick.json",))

    def pick_cells(self, final: dict[str, Any], table: LatencyTable, supernet: Path | None = None) -> dict[str, Any]:
        """``final`` (the last round's result) with the cells (and gene pool) of the best candidate on validation
        patients.

        Candidate 0 is the round's argmax cells; the others are drawn from the round's architecture distribution
        (``search.core.decode.sample_multiscale_cells``, distinct). Each becomes the GA network of ``cfg.pick_paths`` paths on the round's
        gene pool (its heaviest paths), or (``PickConfig.paths``) the drawn cells on a pool drawn from the round's path
        distribution (``GenePool.sampled``) with as many paths (up to ``cfg.pick_paths``) as fit L_ub, or both; the
        picked candidate's pool (``"pool"``) and N_l (``pick.picked_n_paths``) go on. Those within the round's L_ub
        by the lookup table are trained ``pick.train_steps`` steps and scored by mean Dice on patients that training
        did not see (rows ``pick_c<i>``, resumable): trained on the weight patients and scored on the architecture
        patients, or, when the split has validation patients (``DataConfig.n_val``), trained on all training patients
        and scored on those. The test patients are never used. The best score wins (ties: the lower index) if its network meets the real-time rule when measured,
        else the next best; none within L_ub, or none meeting the rule: the argmax, and ``pick.json`` says why.
        Writes ``pick.json`` (read back when it is there, after checking it was made from this round).

        Args:
            final: The final round's ``result.json``.
            table: The run's lookup table.
            supernet: The round's saved supernet (default ``rounds/r<k>/supernet.pt`` of this run).

        Raises:
            ValueError: the supernet does not derive the round's cells, or ``pick.json`` was made from another round.
        """
        path = self.out / "pick.json"
        if path.is_file():
            doc = read_json(path)
            made_from = (doc["round"], doc["ub_ms"], doc["candidates"][0]["cells"])
            if made_from != (final["round"], final["ub_ms"], json.loads(json.dumps(final["cells"]))):
                raise ValueError(f"{path}: made from another search round than this run's final one; delete it, its "
                                 "rows/pick_c* and derivation.json to pick again")
        else:
            doc = self._pick(final, table, self.round_supernet(final, supernet))
            if distributed.is_main():
                write_json(path, doc)
        picked = doc["candidates"][doc["picked"]]
        return {**final, "cells": picked["cells"], "argmax_cells": final["cells"],
                **({"pool": picked["pool"]} if "pool" in picked else {}),
                "pick": {k: doc[k] for k in ("picked", "n_paths", "train_steps", "rule")}
                | {"source": picked["source"], "why": doc.get("why"), "gene_pool": gene_pool(picked),
                   "paths": self.cfg.pick.paths,
                   "picked_n_paths": picked.get("n_paths", doc["n_paths"]),
                   "val_dice": [c.get("val_dice") for c in doc["candidates"]],
                   "lut_ms": [c["lut_ms"] for c in doc["candidates"]]}}

    def _pick(self, final: dict[str, Any], table: LatencyTable, supernet) -> dict[str, Any]:
        cfg, pick = self.cfg, self.cfg.pick
        rng = np.random.default_rng(cfg.seed + 700)
        argmax = {k: CellGenotype.from_dict(v) for k, v in final["cells"].items()}
        drawn = draw_distinct(lambda: sample_multiscale_cells(supernet, rng, cfg.cell_max_free_ops), pick.candidates,
                              have=[argmax])  # a converged search may have fewer to give
        beta = np.asarray(final["beta_probs"])
        heaviest = GenePool.from_beta(beta, cfg.ga.pool_size)
        path_rng = np.random.default_rng(cfg.seed + 800)  # its own generator: the cell draws stay those of "heaviest"
        n, split = cfg.pick_paths, self.helper.split
        train_ids, eval_ids, words = split.pick_patients()
        retrain = cfg.retrain.proxy(pick.train_steps)
        # which gene pool each candidate takes: the argmax always the heaviest paths; the cell draws the heaviest
        # ("heaviest"), a drawn pool each ("sampled"), or both, the drawn-pool ones after ("both": 2K - 1 candidates)
        plan = pick.plan(drawn)
        out, nets = [], []
        for i, (source, cells, draw_pool) in enumerate(plan):
            pool, n_i, short = heaviest, n, None
            if draw_pool:
                drawn = GenePool.sampled(beta, cfg.ga.pool_size, path_rng)
                if len(drawn) == cfg.ga.pool_size:  # the derivation's every N_l needs a full pool
                    pool = drawn
                else:
                    short = (f"the path distribution gave {len(drawn)} distinct paths, not {cfg.ga.pool_size}: "
                             "the heaviest paths kept")
                    self.say(f"pick: candidate {i}: {short}")
            fused = space.FusedLatencyModel(cfg, cells, pool.paths, table)
            ga = self.ga_paths(pool, n_i, fused)
            while pool is not heaviest and ga.latency_ms > final["ub_ms"] and n_i > 1:
                n_i -= 1  # drawn paths share fewer cells than the heaviest: as many of them as fit L_ub
                ga = self.ga_paths(pool, n_i, fused)
            g = space.genotype(cfg, cells, ga.paths)
            nets.append(g)
            entry = {"index": i, "source": source, "cells": {k: c.to_dict() for k, c in cells.items()},
                     "paths": [list(p.kinds) for p in ga.paths], "n_paths": n_i, "lut_ms": ga.latency_ms,
                     "within_ub": bool(ga.latency_ms <= final["ub_ms"])}
            if pool is not heaviest:
                entry["pool"] = pool.to_doc()
            if short:
                entry["pool_note"] = short
            if entry["within_ub"]:
                res = self.train_network(f"pick_c{i}", f"pick candidate {i} ({source}, N_l={n_i})", g, retrain,
                                         train_ids=train_ids, eval_ids=eval_ids)
                if res["genotype"] != json.loads(g.to_json()):
                    raise ValueError(f"{self.out / 'rows' / f'pick_c{i}'}: trained for another candidate network; "
                                     "delete the pick's rows (rows/pick_c*) and pick.json to pick again")
                entry.update(candidate_scores(res))
                self.say(f"pick: candidate {i} ({source}, N_l={n_i}) LUT {ga.latency_ms:.1f} ms, {words} Dice "
                         f"{entry['val_dice']:.3f}")
            else:
                self.say(f"pick: candidate {i} ({source}) LUT {ga.latency_ms:.1f} ms > L_ub {final['ub_ms']:.1f} ms: "
                         "not trained")
            out.append(entry)
        best, why = 0, "no candidate's network fits L_ub by the lookup table: the argmax kept"
        for c in ranked_candidates(out):
            c["measured"] = self.measure_one(nets[c["index"]])
            if meets(cfg, c["measured"]):
                best, why = c["index"], "the best score whose network meets the real-time rule when measured"
                break
            why = "no trained candidate's network meets the real-time rule when measured: the argmax kept"
            self.say(f"pick: candidate {c['index']} misses the real-time rule when measured "
                     f"(p95 {c['measured'].get('p95_ms', float('nan')):.1f} ms)")
        self.say(f"pick: candidate {best} ({out[best]['source']}) of {len(out)}: {why}")
        return {"round": final["round"], "ub_ms": final["ub_ms"], "n_paths": n, "train_steps": pick.train_steps,
                "rule": (f"the highest mean Dice on the {len(eval_ids)} {words} patients after {pick.train_steps} "
                         f"steps on {len(train_ids)} other training patients, among the candidates whose GA network "
                         f"(N_l = {n}" + (", or on a drawn gene pool the most paths up to it that fit" if
                                          pick.paths != "heaviest" else "")
                         + ") fits L_ub by the lookup table and meets the real-time rule when measured"),
                "why": why, "candidates": out, "picked": best}

    # ----------------------------------------------------------------------------- derivation
    def derive(self, final: dict[str, Any], table: LatencyTable) -> dict[str, Any]:
        """Top-weight and GA paths for every N_l of Table 1, the sweep and the pick, on the final round's cells.

        The gene pool is the round's heaviest paths, or the picked candidate's drawn pool (``final["pool"]``, from
        ``pick_cells``): top-weight is then the heaviest paths of that pool."""
        path = self.out / "derivation.json"
        cfg = self.cfg
        pool = (GenePool.from_doc(final["pool"]) if "pool" in final  # the pick's drawn pool
                else GenePool.from_beta(np.asarray(final["beta_probs"]), cfg.ga.pool_size))
        if path.is_file():
            doc = read_json(path)
            kinds = [[p["kinds"] for p in doc["pool"]], [list(p.kinds) for p in pool.paths]]
            if doc["cells"] != json.loads(json.dumps(final["cells"])) or kinds[0] != kinds[1]:
                raise ValueError(f"{path}: derived from other cells or paths than this run's final round (or pick); "
                                 "delete it to derive again")
            if any("exhaustive_ms" not in d for d in doc["by_n"].values()):
                self.check_optimality(doc, table)
                write_json(path, doc)
            return doc
        cells = {k: CellGenotype.from_dict(v) for k, v in final["cells"].items()}
        fused = space.FusedLatencyModel(cfg, cells, pool.paths, table)
        by_n = {}
        for n in derived_paths(cfg, final):
            res = self.ga_paths(pool, n, fused)
            by_n[str(n)] = res.to_dict()
            self.say(f"derive N_l={n}: top-weight {res.top_weight_latency_ms:.1f} ms (LUT) -> GA {res.latency_ms:.1f} ms, "
                     f"genes {list(res.best)}")
        doc = {"round": final["round"], "ub_ms": final["ub_ms"], "cells": final["cells"],
               "pool": pool.to_doc(),
               "by_n": by_n, **({"pick": final["pick"]} if "pick" in final else {})}
        self.check_optimality(doc, table)
        write_json(path, doc)
        return doc

    def check_optimality(self, doc: dict[str, Any], table: LatencyTable, max_combinations: int = 1000) -> None:
        """Add the exhaustive optimum (``exhaustive_ms``, ``exhaustive_best``) to every N_l of ``doc["by_n"]``.

        Enumerates all C(pool, N_l) individuals with the GA's own fitness; skipped (None) above
        ``max_combinations``. Shows whether a GA that returns the top-weight individual missed anything.
        """
        from search.methods.rtdnas.ga import exhaustive_best

        cells = {k: CellGenotype.from_dict(v) for k, v in doc["cells"].items()}
        pool = GenePool.from_doc(doc["pool"])
        fused = space.FusedLatencyModel(self.cfg, cells, pool.paths, table)
        for n, res in doc["by_n"].items():
            if math.comb(len(pool), int(n)) > max_combinations:
                res["exhaustive_ms"] = res["exhaustive_best"] = None
                continue
            best, ms = exhaustive_best(pool, int(n), fused)
            res["exhaustive_ms"], res["exhaustive_best"] = ms, list(best)

    def genotypes(self, derivation: dict[str, Any]) -> dict[str, MultiscaleGenotype]:
        """Row key -> genotype: ``tw_n<N>`` / ``ga_n<N>`` (GA rows identical to top-weight map to it)."""
        cells = {k: CellGenotype.from_dict(v) for k, v in derivation["cells"].items()}
        pool = [PathGenotype(tuple(p["kinds"])) for p in derivation["pool"]]
        out = {}
        for n, res in derivation["by_n"].items():
            out[f"tw_n{n}"] = space.genotype(self.cfg, cells, [pool[i] for i in res["top_weight"]])
            out[f"ga_n{n}"] = space.genotype(self.cfg, cells, [pool[i] for i in res["best"]])
        return out

    # ---------------------------------------------------------------------------------- rows
    def row_stage(self, key: str, train: Callable[[], dict[str, Any]]) -> Stage:
        """Row ``key``: ``train`` reads its result back when it is there, so it is also the loader."""
        return Stage(f"row:{key}", run=train, load=train, outputs=(self.out / "rows" / key / "result.json",))

    def train_network(self, key: str, name: str, g: MultiscaleGenotype, retrain=None, **patients) -> dict[str, Any]:
        """Retrain the network ``g`` from scratch as row ``key`` (``rows/<key>/``; read back when it is there) and
        evaluate it on the test patients; ``retrain``: another schedule than the preset's; ``patients``:
        ``train_ids`` / ``eval_ids`` of ``CineRows.train_row``. Its ``result.json``."""
        row = space.row(key, name, len(g.paths))
        self.helper.cfg = space.rows_view(self.cfg, (row,), retrain)
        res = self.helper.train_row(row, g, **patients)
        res["genotype_paths"] = [list(p.kinds) for p in g.paths]
        return res

    def train_rows(self, derivation: dict[str, Any], stages: StageRunner | None = None) -> dict[str, Any]:
        """Retrain every Table 1 / sweep network from scratch (identical GA / top-weight nets trained once)."""
        gens = self.genotypes(derivation)
        wanted = [f"tw_n{n}" for n in self.cfg.table1_paths] + [f"ga_n{n}" for n in derived_paths(self.cfg, derivation)]
        results: dict[str, Any] = {}
        for key in dict.fromkeys(wanted):
            twin = f"tw_n{key.split('_n')[1]}"
            if key.startswith("ga_") and twin in results and gens[twin].paths == gens[key].paths:
                results[key] = {**results[twin], "key": key, "same_network_as": twin}
                continue
            method = "top-weight" if key.startswith("tw_") else "GA"
            train = partial(self.train_network, key, f"{method} (N_l={len(gens[key].paths)})", gens[key])
            results[key] = _staged(stages, self.row_stage(key, train))
        return results

    def train_cloud(self, stages: StageRunner | None = None) -> dict[str, Any]:
        """The Fig. 2 cloud: random architectures of the space, trained ``cloud.train_steps`` steps each.

        With ``train_steps == 0`` the cloud is latency-only: no training, no Dice (NaN); its result files
        hold the genotype and parameter count, and ``measure`` times the networks at their initial weights
        (weights do not change the exported graph's cost).
        """
        cfg = self.cfg
        rng = np.random.default_rng(cfg.seed + 500)
        retrain = replace(cfg.retrain, steps=max(1, cfg.cloud.train_steps), eval_every=max(1, cfg.cloud.train_steps),
                          seg_restarts=0)  # a short proxy: one training each, as RetrainConfig.proxy
        out = {}
        for i in range(cfg.cloud.n_archs):
            n = int(rng.integers(1, cfg.cloud.max_paths + 1))
            g = sample_random_genotype("rtdnas", rng, n_layers=cfg.supernet.layers, n_scales=cfg.supernet.scales,
                                       n_paths=n, n_nodes=cfg.supernet.nodes)
            key, name = f"cloud_{i:02d}", f"random #{i} (N_l={n})"
            train = (partial(self.train_network, key, name, g, retrain) if cfg.cloud.train_steps > 0
                     else partial(self._untrained, key, name, g))
            out[key] = _staged(stages, self.row_stage(key, train))
        return out

    def _untrained(self, key: str, name: str, g: MultiscaleGenotype) -> dict[str, Any]:
        path = self.out / "rows" / key / "result.json"
        if path.is_file():
            return read_json(path)
        row = space.row(key, name, len(g.paths))
        net = build_row_network(space.rows_view(self.cfg, (row,)), row, genotype=g)
        nan = float("nan")
        res = {"key": key, "name": name, "kind": "random", "genotype": json.loads(g.to_json()),
               "dice": {"per_class": {}, "mean": nan, "std": {}, "note": "untrained (latency-only cloud)"},
               "params": int(sum(p.numel() for p in net.parameters())), "train_losses": [], "train_seconds": 0.0,
               "genotype_paths": [list(p.kinds) for p in g.paths], "untrained": True}
        if distributed.is_main():
            write_json(path, res)
        return res

    def pick_full_cloud(self, cloud: dict[str, Any]) -> list[str]:
        """Keys of the ``cloud.full_train`` cloud networks meeting the budget with the highest measured latency."""
        if self.cfg.cloud.full_train <= 0:
            return []
        self.measure(cloud)
        doc = read_json(self.out / "latency.json")
        ok = [k for k in cloud if k in doc and meets(self.cfg, doc[k])]
        picks = sorted(ok, key=lambda k: -doc[k]["p50_ms"])[:self.cfg.cloud.full_train]
        self.say(f"cloud: {len(ok)} of {len(cloud)} random networks meet the budget; retraining {picks} fully")
        return picks

    def train_full_cloud(self, cloud: dict[str, Any], picks: list[str],
                         stages: StageRunner | None = None) -> dict[str, Any]:
        """Retrain the picked cloud networks with the searched rows' schedule (keys ``<cloud key>_full``)."""
        out = {}
        for key in picks:
            g = MultiscaleGenotype.from_dict(cloud[key]["genotype"])
            train = partial(self.train_network, f"{key}_full", f"{cloud[key]['name']}, full training", g)
            out[f"{key}_full"] = {**_staged(stages, self.row_stage(f"{key}_full", train)), "full_training": True}
        return out

    # ------------------------------------------------------------------------------- latency
    def measure_stage(self, name: str, rows: dict[str, Any]) -> Stage:
        """Time ``rows`` into ``latency.json``.

        The file is shared and grows (searched rows, then the cloud, then its full retrainings), so the
        stage is done when the file holds every network of ``rows``, not when it exists; it is a cache
        (``clear_stale=False``: a rerun must not drop the other stages' timings). ``measure`` times only
        the missing networks and attaches every row's latency, so it is also the loader.
        """
        path = self.out / "latency.json"
        measure = partial(self.measure, rows)
        return Stage(name, run=measure, load=measure, outputs=(path,), clear_stale=False,
                     done=lambda: path.is_file() and not _untimed(rows, read_json(path)))

    def measure(self, rows: dict[str, Any], group: int = 10) -> None:
        """Every trained row exported and timed with onnxruntime, round-robin in groups of ``group``."""
        path = self.out / "latency.json"
        doc = read_json(path) if path.is_file() else {}
        cfg = self.cfg
        shape = (1, 1, cfg.data.clip_length, cfg.data.height, cfg.data.width)
        todo = _untimed(rows, doc)
        if todo:
            self.say(f"latency: exporting and timing {len(todo)} networks at {'x'.join(map(str, shape[2:]))}")
        for start in range(0, len(todo), group):
            models = {}
            for key in todo[start:start + group]:
                g = MultiscaleGenotype.from_dict({**rows[key]["genotype"]})
                row = space.row(key, key, len(g.paths))
                net = build_row_network(space.rows_view(cfg, (row,)), row, genotype=g)
                weights = self.out / "rows" / key / "weights.pt"
                if weights.is_file() or not rows[key].get("untrained"):
                    net.load_state_dict(torch.load(weights, map_location="cpu"))
                models[key] = export_onnx_bytes(net.eval(), torch.zeros(shape))
            stats = measure_interleaved(models, warmup=cfg.measure.warmup, repeats=cfg.measure.repeats, seed=cfg.seed)
            doc.update({k: s.to_dict() for k, s in stats.items()})
            write_json(path, doc)
        for key, r in rows.items():
            src = r.get("same_network_as", key)
            r["latency"] = doc.get(src)

    def results(self, rows: dict[str, Any], cloud: dict[str, Any]) -> dict[str, Any]:
        table = LatencyTable.load(self.out / "latency_table.json")
        from search.core.estimators import predict_latency

        for _key, r in {**rows, **cloud}.items():
            g = MultiscaleGenotype.from_dict(r["genotype"])
            r["lut_ms"] = predict_latency(space.build_derived(self.cfg, g), space.latency_target_shape(self.cfg), table)
            r["meets"] = bool(r.get("latency")) and meets(self.cfg, r["latency"])
        return {"rows": rows, "cloud": cloud}

    # ------------------------------------------------------------------------------ baselines
    def baselines(self) -> dict[str, Any]:
        """msnas-hw's rows (U-nets, MS-NAS, msnas-hw) from its run folder, as it measured them."""
        if self.msnas_dir is None or not (Path(self.msnas_dir) / "rows").is_dir():
            return {}
        out = {}
        for p in sorted((Path(self.msnas_dir) / "rows").glob("*/result.json")):
            d = read_json(p)
            if not scored_on_test(d):  # msnas-hw's pick candidates (rows/pick_c*)
                continue
            lat = (d.get("latency") or {}).get("trained")
            out[d["key"]] = {"name": d["name"], "dice": d["dice"], "latency": lat, "params": d.get("params")}
        return out


def derived_paths(cfg: RtdnasConfig, final: dict[str, Any]) -> list[int]:
    """N_l of the GA networks derived and retrained: Table 1's, the sweep's, and the picked candidate's (a drawn gene
    pool may fit L_ub with fewer paths than ``cfg.pick_paths``; ``PickConfig.paths``)."""
    picked = (final.get("pick") or {}).get("picked_n_paths")
    return sorted({*cfg.table1_paths, *cfg.sweep_paths, *([picked] if picked else [])})


def _staged(stages: StageRunner | None, stage: Stage) -> Any:
    """``stage`` through ``stages`` (skipped when done, recorded), or simply run without a runner."""
    return stages.run(stage) if stages is not None else stage.run()


def _untimed(rows: dict[str, Any], doc: dict[str, Any]) -> list[str]:
    """Keys of ``rows`` that ``latency.json`` (``doc``) lacks (a row sharing another's network is not timed)."""
    return [k for k, r in rows.items() if k not in doc and "same_network_as" not in r]
