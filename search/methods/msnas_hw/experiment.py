"""One ``msnas-hw`` run end to end: data, lookup table, searches, Table 2 rows, latency, report, ship.

Every stage writes its result under the run folder before the next starts and is skipped when its
result is already there, so an interrupted run resumes where it stopped (training stages resume
from their own checkpoints mid-way):

    <out>/config.json             the configuration
    <out>/split.json              patient ids of the test / weight / architecture sets
    <out>/latency_table.json      LUT entries the searches need (profiled here, resumable)
    <out>/searches/<key>/         checkpoint.pt, result.json (genotypes, arch weights, history)
    <out>/pick.json               with ``--cell-candidates K``: ours n=1's candidates, their short-training Dice, the pick
    <out>/rows/<key>/             train.pt (checkpoint), result.json (Dice, params, FLOPs)
    <out>/latency.json            every row timed with onnxruntime, interleaved, one process
    <out>/report/                 table2.md, report.md, figures (copied to ``docs_dir``)
    <out>/stages.json             which stages ran or were skipped, why, and how long they took
    <out>/rows.md, rows.json      ``run_rows`` (``--rows``) only: the chosen rows' Dice, schedule, learning curves

``run_rows`` runs only the stages some rows need (their searches, their retraining): the same stages,
so a full run in the same folder later resumes from them.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
from dataclasses import asdict, replace
from functools import partial
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader

from search import distributed
from search.core.convergence import Convergence, shipping_warning
from search.core.decode import beta_probabilities, draw_distinct, sample_multiscale_cells, sample_paths
from search.core.genotypes import MultiscaleGenotype
from search.export.flops import count_flops
from search.latency.lut import LatencyTable
from search.latency.measure import measure_interleaved
from search.latency.onnx_bytes import export_onnx_bytes
from search.latency.profiler import ProfileSettings
from search.methods.msnas_hw import report, space
from search.methods.msnas_hw.config import PickConfig, RowSpec, SearchRun
from search.train.cine_config import stage_config
from search.methods.msnas_hw.drawing import draw_genotype
from search.methods.msnas_hw.networks import build_row_network, per_frame_network
from search.methods.msnas_hw.rows_summary import write_rows_summary
from search.methods.msnas_hw.search import convergence_report, search_convergence
from search.train.bilevel import ArchitectureSearch, StepRecord
from search.train.cine_rows import CANDIDATE_SCORES, CineRows, candidate_scores, ranked_candidates, read_json, write_json
from search.train.clips import clip_dataset
from search.train.loop import seed_everything
from search.train.stages import Stage, StageRunner, Stopwatch, latency_table_stage

log = logging.getLogger(__name__)

#: The pick's latency bound: ``pick_latency_ratio`` x MS-NAS n=4's table latency, or the argmax's own when the
#: search's argmax is slower than that (the pick is then never slower than what the search gave).
BOUND_RULE = "max(ratio x MS-NAS n=4, argmax)"


class MsnasHwExperiment(CineRows):
    """The whole Table 2 experiment of the msnas-hw paper on phantom cine MR.

    Patients, split, row retraining and evaluation come from ``search.train.cine_rows.CineRows``
    (shared with rtdnas); this class adds the latency table, the searches, the measurements, the
    report and shipping.

    Args:
        cfg: The run configuration (a preset).
        out: Run folder (created; reused to resume).
        docs_dir: Where the report and figures are copied (None: only under ``out``).
        models_dir: Where the shipped model goes (None: not shipped).
        progress: Called with one-line status messages (the CLI prints them).
    """

    # ---------------------------------------------------------------------------------- stages
    def run(self) -> dict[str, Any]:
        """Run every stage that has not finished yet; return the row results.

        The stages go through ``search.train.stages.StageRunner``: ``<out>/stages.json`` records
        whether each ran or was skipped, and why.
        """
        stages, table = self._start(need_table=True)
        genotypes = self._run_searches(stages, table, self.cfg.searches)
        genotypes = self._run_pick(stages, table, genotypes, self.cfg.rows)
        results = self._train_rows(stages, genotypes, self.cfg.rows)
        if not distributed.is_main():  # latency, report and shipping: rank 0 alone
            return results
        # measure() and variants() skip their timing when their file is there and (measure) merge the
        # latencies into the row results every time, so they also serve as their stage's loader.
        measure = partial(self.measure, results, genotypes)
        stages.run(Stage("latency", run=measure, load=measure, outputs=(self.out / "latency.json",)))
        variants = partial(self.variants, genotypes)
        stages.run(Stage("variants", run=variants, load=variants, outputs=(self.out / "variants.json",)))
        results = {row.key: read_json(self._row_dir(row) / "result.json") for row in self.cfg.rows}
        stages.run(Stage("report", run=partial(self.write_report, results, genotypes)))
        if self.models_dir is not None:
            stages.run(Stage("ship", run=partial(self.ship, results, genotypes)))
        return results

    def run_rows(self, keys: Sequence[str]) -> dict[str, Any]:
        """Only what the rows ``keys`` need: data, their searches (and then the latency table), their
        retraining and evaluation; then ``<out>/rows.md`` and ``rows.json`` (per-class Dice, schedule,
        learning curve). No Table 2 latency, report or shipping: those need every row. The stages are
        those of :meth:`run`, so a later full run in the same folder resumes from them.

        Raises:
            ValueError: an unknown row key (the message names the table's keys).
        """
        rows = self.cfg.rows_named(keys)
        needed = {r.search for r in rows if r.kind == "msnas"}
        if any(r.picked for r in rows):  # the pick's latency bound is a share of MS-NAS n=4's
            needed.add(self._msnas_reference().search)
        runs = tuple(s for s in self.cfg.searches if s.key in needed)
        self.say(f"rows {', '.join(r.key for r in rows)}: {self.cfg.retrain.steps} retrain steps each, "
                 f"searches: {', '.join(s.key for s in runs) or 'none'} (no Table 2 latency, report or shipping)")
        stages, table = self._start(need_table=bool(runs))
        genotypes = self._run_searches(stages, table, runs)
        genotypes = self._run_pick(stages, table, genotypes, rows)
        results = self._train_rows(stages, genotypes, rows)
        if distributed.is_main():
            pick = self.out / "pick.json"
            path = write_rows_summary(self.out, self.cfg, rows, results, test_patients=self.split.test,
                                      pick=read_json(pick) if any(r.picked for r in rows) and pick.is_file() else None)
            self.say(f"rows: {path}")
        return results

    def _start(self, *, need_table: bool) -> tuple[StageRunner, LatencyTable | None]:
        """The stage runner over the run folder, after the config check, the data, the split and (if
        ``need_table``) the latency table."""
        self.out.mkdir(parents=True, exist_ok=True)
        stages = StageRunner(self.out, stage_config(self.cfg.to_dict()), progress=self.say)
        with distributed.main_first():  # under torchrun: rank 0 writes config, data, split and LUT; the others read
            self._check_config()
            torch.set_num_threads(self.cfg.threads)
            table = stages.run(self.latency_table_stage()) if need_table else None
            self.split  # noqa: B018  (the phantom cache and the patient split, written here)
        return stages, table

    def _run_searches(self, stages: StageRunner, table: LatencyTable | None,
                      runs: Sequence[SearchRun]) -> dict[str, dict[int, MultiscaleGenotype]]:
        """Search key -> n -> decoded genotype, each search a resumable stage."""
        genotypes: dict[str, dict[int, MultiscaleGenotype]] = {}
        for run in runs:
            search = partial(self.search, run, table)
            genotypes[run.key] = stages.run(Stage(f"search:{run.key}", run=search, load=search,
                                                  outputs=(self.out / "searches" / run.key / "result.json",)))
        return genotypes

    def _train_rows(self, stages: StageRunner, genotypes: dict[str, dict[int, MultiscaleGenotype]],
                    rows: Sequence[RowSpec]) -> dict[str, Any]:
        """Row key -> result, each row's retraining and evaluation a resumable stage."""
        results = {}
        for row in rows:
            genotype = row_genotype(row, genotypes)
            # a picked row trains with the seed of the row it picks for: if the pick is the argmax, it is that row
            seed_row = next((r for r in self.cfg.rows if r.key == "ours_n1"), None) if row.picked else None
            train = partial(self._train_or_copy, row, genotype, seed_row=seed_row)
            results[row.key] = stages.run(Stage(f"row:{row.key}", run=train, load=train,
                                                outputs=(self._row_dir(row) / "result.json",)))
            if row.picked and results[row.key]["genotype"] != json.loads(genotype.to_json()):
                raise ValueError(f"{self._row_dir(row)}: trained for another pick than pick.json's; delete it to "
                                 "retrain the picked network")
        return results

    def _train_or_copy(self, row: RowSpec, genotype: MultiscaleGenotype | None, *,
                       seed_row: RowSpec | None) -> dict[str, Any]:
        """``train_row``, except for a picked row whose pick is the network ``seed_row`` already trained with the
        same seed: that row's weights and result are copied (``same_as``), as retraining gives them again."""
        folder, source = self._row_dir(row), self._row_dir(seed_row) if seed_row is not None else None
        if (source is None or (folder / "result.json").is_file() or not (source / "result.json").is_file()
                or not (source / "weights.pt").is_file()):
            return self.train_row(row, genotype, seed_row=seed_row)
        done = read_json(source / "result.json")
        if genotype is None or done["genotype"] != json.loads(genotype.to_json()) or "patients" in done:
            return self.train_row(row, genotype, seed_row=seed_row)
        self.say(f"row {row.key}: the pick is {seed_row.key}'s network, trained with the same seed: its weights "
                 "and result copied")
        result = {**done, "key": row.key, "name": row.name, "same_as": seed_row.key}
        if distributed.is_main():
            folder.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source / "weights.pt", folder / "weights.pt")
            write_json(folder / "result.json", result)
        return result

    # ---------------------------------------------------------------------------------- the pick
    def _msnas_reference(self) -> RowSpec:
        """MS-NAS n=4: the row without the latency term whose latency bounds the pick's candidates."""
        try:
            return next(r for r in self.cfg.rows if r.kind == "msnas" and not r.latency_aware)
        except StopIteration:
            raise ValueError("the pick bounds its candidates by MS-NAS n=4's latency; this table has no MS-NAS row") \
                from None

    def _run_pick(self, stages: StageRunner, table: LatencyTable | None,
                  genotypes: dict[str, dict[int, MultiscaleGenotype]],
                  rows: Sequence[RowSpec]) -> dict[str, dict[int, MultiscaleGenotype]]:
        """``genotypes`` with the picked genotype of each picked row in ``rows`` (under ``pick_key``)."""
        out = dict(genotypes)
        for row in rows:
            if row.picked:
                run = partial(self.pick, row, genotypes, table)
                out[pick_key(row)] = stages.run(Stage("pick", run=run, load=run, outputs=(self.out / "pick.json",)))
        return out

    def pick(self, row: RowSpec, genotypes: dict[str, dict[int, MultiscaleGenotype]],
             table: LatencyTable) -> dict[int, MultiscaleGenotype]:
        """``{1: genotype}`` of the best of ours n=1's candidates on patients its short training did not see.

        Candidate 0 is ours n=1 (the search's argmax cells on its top path). ``pick.candidates - 1`` distinct cell
        sets are drawn from the search's distribution (``search.core.decode.sample_multiscale_cells``: edge, then op); each goes on the top
        path, or on a path drawn from the path distribution (``sample_paths``; ``PickConfig.paths`` ``"sampled"``),
        or both (``"both"``: the drawn-path ones after, 2K - 1 candidates). Every candidate whose lookup-table
        latency is at most the bound (``BOUND_RULE``: ``cfg.pick_latency_ratio`` x MS-NAS n=4's, or the argmax's own
        when that is higher, so the argmax is always a candidate) is trained ``pick.train_steps`` steps
        (rows ``pick_c<i>``, resumable) on the weight patients and scored by mean Dice on the architecture
        patients (or on all training patients and the validation patients when the split has them); the test
        patients are never used. The best score wins (ties: the lower index). Writes ``pick.json`` (read back
        when it is there, after checking it was made from this search under this bound).

        Raises:
            ValueError: ``pick.json`` or the search checkpoint belongs to another search.
        """
        path = self.out / "pick.json"
        argmax = genotypes[row.search][row.n_paths]
        if path.is_file():
            doc = read_json(path)
            if doc["candidates"][0]["genotype"] != json.loads(argmax.to_json()):
                raise ValueError(f"{path}: made from another search than this run's {row.search}; delete it, "
                                 f"rows/pick_c* and rows/{row.key} to pick again")
            bound = self._pick_bound(argmax, genotypes, table)[2]
            if doc.get("bound_rule") != BOUND_RULE or not np.isclose(doc["bound_ms"], bound):
                raise ValueError(f"{path}: picked under another latency bound ({doc['bound_ms']:.1f} ms, "
                                 f"rule {doc.get('bound_rule', 'ratio x MS-NAS n=4')!r}) than this run's "
                                 f"({bound:.1f} ms, {BOUND_RULE!r}); delete it and rows/{row.key} to pick again "
                                 "(rows/pick_c* are kept: the same candidates are read back)")
        else:
            doc = self._pick(row, argmax, genotypes, table)
            if distributed.is_main():
                write_json(path, doc)
        picked = doc["candidates"][doc["picked"]]
        self.say(f"pick: {row.key} is candidate {doc['picked']} ({picked['source']}): {doc['why']}")
        return {row.n_paths: MultiscaleGenotype.from_json(json.dumps(picked["genotype"]))}

    def _pick(self, row: RowSpec, argmax: MultiscaleGenotype, genotypes: dict[str, dict[int, MultiscaleGenotype]],
              table: LatencyTable) -> dict[str, Any]:
        cfg, pick = self.cfg, self.cfg.pick
        checkpoint = self.out / "searches" / row.search / "checkpoint.pt"
        supernet = space.load_searched_supernet(cfg, checkpoint)
        if space.decode(supernet, row.n_paths) != argmax:
            raise ValueError(f"{checkpoint}: this supernet does not derive search {row.search}'s ours n=1; "
                             "delete the search folder to search again")
        ref_ms, argmax_ms, bound = self._pick_bound(argmax, genotypes, table)
        rng, path_rng = np.random.default_rng(cfg.seed + 700), np.random.default_rng(cfg.seed + 800)
        drawn = draw_distinct(lambda: sample_multiscale_cells(supernet, rng), pick.candidates,
                              have=[dict(argmax.cells)])  # a converged search may have fewer to give
        plan = pick.plan(drawn)
        beta = beta_probabilities(supernet)
        train_ids, eval_ids, words = self.split.pick_patients()
        out, seen = [], {}
        for i, (source, c, draw_path) in enumerate(plan):
            paths = tuple(sample_paths(beta, 1, path_rng)) if draw_path else argmax.paths
            g = replace(argmax, cells=dict(c), paths=paths)
            lut_ms = space.decoded_latency(cfg, g, table)
            entry = {"index": i, "source": source, "path": "drawn" if draw_path else "top",
                     "genotype": json.loads(g.to_json()), "lut_ms": lut_ms, "within_bound": bool(lut_ms <= bound)}
            twin = seen.setdefault(same_network_key(g), i)
            if twin != i:  # the same network as an earlier candidate (a skip is the identity): not trained again
                entry["same_network_as"] = twin
                entry.update({k: v for k, v in out[twin].items() if k in CANDIDATE_SCORES})
                self.say(f"pick: candidate {i} ({source} cells, {entry['path']} path) is candidate {twin}'s network")
            elif entry["within_bound"]:
                entry.update(candidate_scores(self._train_candidate(row, i, g, train_ids, eval_ids)))
                self.say(f"pick: candidate {i} ({source} cells, {entry['path']} path) LUT {lut_ms:.1f} ms, {words} "
                         f"Dice {entry['val_dice']:.3f}")
            else:
                self.say(f"pick: candidate {i} ({source} cells, {entry['path']} path) LUT {lut_ms:.1f} ms > bound "
                         f"{bound:.1f} ms: not trained")
            out.append(entry)
        best = ranked_candidates(out)[0]["index"]  # the argmax is always within the bound, so always scored
        why = "the highest mean Dice on the validation side among the candidates within the bound"
        ratio = f"{cfg.pick_latency_ratio:g} x MS-NAS n=4's"
        limit = ratio if bound > argmax_ms else f"the argmax's own (above {ratio} {cfg.pick_latency_ratio * ref_ms:.1f} ms)"
        return {"search": row.search, "train_steps": pick.train_steps, "paths": pick.paths,
                "bound_ms": bound, "bound_rule": BOUND_RULE, "msnas_n4_lut_ms": ref_ms, "argmax_lut_ms": argmax_ms,
                "latency_ratio": cfg.pick_latency_ratio,
                "rule": (f"the highest mean Dice on the {len(eval_ids)} {words} patients after {pick.train_steps} "
                         f"steps on {len(train_ids)} other training patients, among the candidates whose "
                         f"lookup-table latency is at most {limit} ({bound:.1f} ms)"),
                "why": why, "candidates": out, "picked": best}

    def _pick_bound(self, argmax: MultiscaleGenotype, genotypes: dict[str, dict[int, MultiscaleGenotype]],
                    table: LatencyTable) -> tuple[float, float, float]:
        """MS-NAS n=4's and the argmax's lookup-table latency, and the pick's bound (``BOUND_RULE``)."""
        ref = self._msnas_reference()
        ref_ms = space.decoded_latency(self.cfg, genotypes[ref.search][ref.n_paths], table)
        argmax_ms = space.decoded_latency(self.cfg, argmax, table)
        return ref_ms, argmax_ms, max(self.cfg.pick_latency_ratio * ref_ms, argmax_ms)

    def _train_candidate(self, row: RowSpec, i: int, g: MultiscaleGenotype, train_ids: Sequence[str],
                         eval_ids: Sequence[str]) -> dict[str, Any]:
        """Candidate ``i`` trained ``pick.train_steps`` steps as row ``pick_c<i>`` (read back when it is there)."""
        cand = RowSpec(f"pick candidate {i}", f"pick_c{i}", "msnas", n_paths=len(g.paths), latency_aware=True,
                       search=row.search)
        full = self.cfg
        self.cfg = replace(full, rows=(cand,), retrain=full.retrain.proxy(full.pick.train_steps),
                           pick=PickConfig())
        try:
            res = self.train_row(cand, g, train_ids=train_ids, eval_ids=eval_ids)
        finally:
            self.cfg = full
        if res["genotype"] != json.loads(g.to_json()):
            raise ValueError(f"{self._row_dir(cand)}: trained for another candidate network; delete rows/pick_c*, "
                             f"pick.json and rows/{row.key} to pick again")
        return res

    # ---------------------------------------------------------------------------- latency table
    def latency_table_stage(self) -> Stage:
        """Profile every op the searches can choose at the latency target size (resumable)."""
        settings = ProfileSettings(warmup=self.cfg.measure.warmup, repeats=max(5, self.cfg.measure.repeats),
                                   seed=self.cfg.seed)
        return latency_table_stage(self.out / "latency_table.json", lambda: space.required_keys(self.cfg), settings,
                                   progress=self.say)

    def latency_table(self) -> LatencyTable:
        """The run's lookup table, profiled first where it lacks keys."""
        return self.latency_table_stage().run()

    # ---------------------------------------------------------------------------------- searches
    def search(self, run: SearchRun, table: LatencyTable) -> dict[int, MultiscaleGenotype]:
        """One search; returns the decoded genotype for every n a row asks of it."""
        folder = self.out / "searches" / run.key
        result_path = folder / "result.json"
        wanted = sorted({r.n_paths for r in self.cfg.rows if r.kind == "msnas" and r.search == run.key} | {run.n_paths})
        if result_path.is_file():
            doc = read_json(result_path)
            return {int(n): MultiscaleGenotype.from_json(g) for n, g in doc["genotypes"].items()}
        cfg = self.cfg
        seed_everything(cfg.seed + 11)
        supernet = space.build_supernet(cfg, cfg.trained_channels, seed=cfg.seed + 101)
        latency = space.latency_term(cfg, supernet, table, run.n_paths) if run.latency_aware else None
        proxy = cfg.search.proxy_clip
        weight_ds = clip_dataset(self.subset(self.split.weight), cfg.data, train=True, seed=cfg.seed + 1, clip=proxy)
        arch_ds = clip_dataset(self.subset(self.split.arch), cfg.data, train=True, seed=cfg.seed + 2, clip=proxy)
        loaders = [
            DataLoader(ds, batch_size=cfg.search.batch_size, shuffle=True, drop_last=len(ds) > cfg.search.batch_size,
                       generator=torch.Generator().manual_seed(cfg.seed + 3 + i))
            for i, ds in enumerate((weight_ds, arch_ds))
        ]
        searcher = ArchitectureSearch(supernet, latency, loaders[0], loaders[1], cfg.search,
                                      generator=torch.Generator().manual_seed(cfg.seed + 7),
                                      checkpoint=folder / "checkpoint.pt",
                                      checkpoint_every=max(1, (cfg.search.warmup_steps + cfg.search.search_steps) // 20))
        watch = Stopwatch()
        every = max(1, searcher.total_steps // 10)

        def on_step(rec: StepRecord) -> None:
            if rec.step % every == 0 or rec.step == searcher.total_steps:
                lat = "" if math.isnan(rec.latency_ms) else f", E[LAT] {rec.latency_ms:.1f} ms"
                self.say(f"search {run.key}: step {rec.step}/{searcher.total_steps} ({rec.phase}) "
                         f"CE {rec.weight_ce:.3f}{lat} [{watch.elapsed():.0f} s]")

        history = searcher.run(on_step=on_step)
        genotypes = {n: space.decode(supernet, n) for n in wanted}
        convergence = search_convergence(searcher.trace, genotypes, partial(space.decode, supernet))
        doc = {
            "search": asdict(run),
            "genotypes": {str(n): g.to_json() for n, g in genotypes.items()},
            "arch": space.arch_summary(supernet),
            "expected_latency_ms": {str(n): space.expected_latency(cfg, supernet, table, n) for n in wanted},
            "history": [r.__dict__ for r in history],
            "seconds": watch.elapsed(),
            "convergence": convergence,
            "arch_trace": searcher.trace.to_json(),
        }
        if distributed.is_main():  # every rank decoded the same genotypes; rank 0 writes them
            write_json(result_path, doc)
        for n, g in genotypes.items():
            self.say(f"search {run.key}: decoded n={n}: " + " | ".join(" ".join(p.kinds) for p in g.paths))
            self.say(f"search {run.key}, n={n}: " + Convergence.from_json(convergence[str(n)]).summary())
        return genotypes

    # ---------------------------------------------------------------------------------- latency
    def measure(self, results: dict[str, Any], genotypes: dict[str, dict[int, MultiscaleGenotype]]) -> None:
        """Time every row with onnxruntime in this one process (interleaved), at both sizes."""
        path = self.out / "latency.json"
        if path.is_file():
            doc = read_json(path)
        else:
            doc = {}
        cfg = self.cfg
        sizes = [("trained", False, (cfg.data.clip_length, cfg.data.height, cfg.data.width))]
        if cfg.measure.measure_paper_size:
            sizes.append(("paper_size", True, tuple(cfg.measure.paper_shape)))
        for which, paper_size, shape in sizes:
            if which in doc:
                continue
            self.say(f"latency: exporting and timing {len(cfg.rows)} rows at {'x'.join(map(str, shape))} "
                     f"({'paper widths' if paper_size else 'trained widths'})")
            models, per_frame, flops = {}, {}, {}
            for row in cfg.rows:
                net = build_row_network(cfg, row, paper_size=paper_size, genotype=row_genotype(row, genotypes))
                if not paper_size:
                    net.load_state_dict(torch.load(self._row_dir(row) / "weights.pt", map_location="cpu"))
                net.eval()
                clip = torch.zeros((1, 1, *shape))
                models[row.key] = export_onnx_bytes(net, clip)
                frame_net = per_frame_network(net)
                if frame_net is not None:
                    per_frame[row.key + "@frame"] = export_onnx_bytes(frame_net, torch.zeros((1, 1, *shape[1:])))
                flops[row.key] = count_flops(net, [clip]) if paper_size or not cfg.measure.measure_paper_size else None
            load_before = os.getloadavg()[0]
            stats = measure_interleaved({**models, **per_frame}, warmup=cfg.measure.warmup,
                                        repeats=cfg.measure.repeats, seed=cfg.seed)
            # The machine is shared: the 1-minute load average says how contended the timings were.
            doc[which + "_load"] = {"loadavg_1min_before": load_before, "loadavg_1min_after": os.getloadavg()[0],
                                    "cpu_count": os.cpu_count()}
            doc[which] = {
                k: {**s.to_dict(), "shape": list(shape) if "@frame" not in k else [1, *shape[1:]]} for k, s in stats.items()
            }
            doc[which + "_flops"] = flops
            write_json(path, doc)
        for row in cfg.rows:
            res = read_json(self._row_dir(row) / "result.json")
            res["latency"] = {w: doc[w][row.key] for w, _, _ in sizes}
            res["latency_per_frame"] = {w: doc[w].get(row.key + "@frame") for w, _, _ in sizes}
            res["flops_paper_size"] = doc.get("paper_size_flops", doc.get("trained_flops", {})).get(row.key)
            write_json(self._row_dir(row) / "result.json", res)

    def variants(self, genotypes: dict[str, dict[int, MultiscaleGenotype]]) -> dict[str, Any]:
        """Latency of ours n=1 / n=2 at other widths and clip sizes, and of U-net 3D (D2, IF8)."""
        from search.methods.msnas_hw.variants import measure_variants

        path = self.out / "variants.json"
        if path.is_file():
            return read_json(path)
        chosen = {r.key: row_genotype(r, genotypes) for r in self.cfg.rows if r.kind == "msnas" and r.latency_aware}
        self.say(f"latency: timing {len(chosen)} searched nets and U-net 3D (D2, IF8) at other widths and clip sizes")
        doc = measure_variants(self.cfg, chosen)
        write_json(path, doc)
        return doc

    # ----------------------------------------------------------------------------------- report
    def write_report(self, results: dict[str, Any], genotypes: dict[str, dict[int, MultiscaleGenotype]]) -> Path:
        """Table 2, targets, frontier plot and drawings under ``out/report`` (and ``docs_dir``)."""
        from search.methods.msnas_hw import report_text

        folder = self.out / "report"
        figures = {}
        for run_key, by_n in genotypes.items():
            for n, g in by_n.items():
                name = f"genotype_{run_key}_n{n}.png"
                title = (f"search {run_key}, fused n = {n}" if run_key in {r.key for r in self.cfg.searches}
                         else f"ours n = {n} picked (--cell-candidates), {run_key}")
                draw_genotype(g, folder / name, title=title)
                figures[(run_key, n)] = name
        report.plot_frontier(self.cfg, results, folder / "frontier.png")
        searches = {r.key: read_json(self.out / "searches" / r.key / "result.json") for r in self.cfg.searches}
        variants_path = self.out / "variants.json"
        variants = read_json(variants_path) if variants_path.is_file() else None
        lut = self._lut_predictions(genotypes)
        latency_doc = read_json(self.out / "latency.json") if (self.out / "latency.json").is_file() else {}
        text = report_text.render_report(self.cfg, results, genotypes, searches, figures, variants, lut)
        text += convergence_report(searches, folder)
        text += report_text.pick_section(read_json(self.out / "pick.json") if (self.out / "pick.json").is_file() else None)
        text += report_text.measurement_conditions(latency_doc)
        (folder / "report.md").write_text(text)
        (folder / "table2.md").write_text(report.table2_markdown(self.cfg, results) + "\n")
        write_json(folder / "results.json", report_text.results_summary(self.cfg, results, searches, variants, lut,
                                                                         latency_doc))
        if self.docs_dir is not None:
            self.docs_dir.mkdir(parents=True, exist_ok=True)
            for f in folder.iterdir():
                # The report is the folder's README there (GitHub renders it); report.md stays in the run folder.
                shutil.copy2(f, self.docs_dir / ("README.md" if f.name == "report.md" else f.name))
        self.say(f"report: {folder / 'report.md'}")
        return folder / "report.md"

    def _lut_predictions(self, genotypes: dict[str, dict[int, MultiscaleGenotype]]) -> dict[str, float]:
        """The table's plain-sum prediction (ms) of every searched row's trained network at its clip."""
        from search.latency.lut import MissingLatencyKey

        table = LatencyTable.load(self.out / "latency_table.json")
        out = {}
        for row in self.cfg.rows:
            if row.kind != "msnas":
                continue
            try:
                out[row.key] = space.decoded_latency(self.cfg, row_genotype(row, genotypes), table)
            except MissingLatencyKey as exc:
                log.warning("no LUT prediction for %s: %s", row.key, exc)
        return out

    # ------------------------------------------------------------------------------------- ship
    def ship(self, results: dict[str, Any], genotypes: dict[str, dict[int, MultiscaleGenotype]]) -> Path | None:
        """Export the best row meeting the real-time budget (else the fastest useful one) into models/."""
        from search.methods.msnas_hw.shipping import choose_row, export_row

        choice = choose_row(self.cfg, results)
        if choice is None:
            self.say("ship: no row to ship")
            return None
        row, reason = choice
        genotype = row_genotype(row, genotypes)
        net = build_row_network(self.cfg, row, genotype=genotype)
        net.load_state_dict(torch.load(self._row_dir(row) / "weights.pt", map_location="cpu"))
        test_cases = self.subset(self.split.test)
        convergence = None
        if row.kind == "msnas":  # issue 16: never shipped silently when its search did not converge
            search_doc = read_json(self.out / "searches" / row.search / "result.json")
            convergence = (search_doc.get("convergence") or {}).get(str(row.n_paths))
            warning = shipping_warning(convergence, f"msnas-hw row {row.key}")
            if warning:
                self.say(warning)
        card = export_row(self.cfg, row, net, genotype, results[row.key], reason, test_cases, self.split,
                          self.models_dir, convergence=convergence)
        self.say(f"ship: {card.onnx_path} ({reason})")
        return card.onnx_path


def same_network_key(g: MultiscaleGenotype) -> str:
    """Equal for genotypes that build the same network: one path's cells in order (a ``skip`` step is the identity,
    so where along the path the skips fall does not matter); a fused multi-path genotype is only equal to itself."""
    if len(g.paths) != 1:
        return g.to_json()
    cells = json.dumps({k: c.to_dict() for k, c in sorted(g.cells.items())})
    return cells + "|" + " ".join(k for k in g.paths[0].kinds if k != "skip")


def pick_key(row: RowSpec) -> str:
    """Where a picked row's genotype sits among the genotypes (search key -> n -> genotype)."""
    return f"{row.search}_pick"


def row_genotype(row: RowSpec, genotypes: dict[str, dict[int, MultiscaleGenotype]]) -> MultiscaleGenotype | None:
    """The genotype a row trains: its search's decode at its n, the pick's for a picked row, None for a U-net."""
    if row.kind != "msnas":
        return None
    return genotypes[pick_key(row) if row.picked else row.search][row.n_paths]
