"""segqc-hw search-step benchmark (issue 16): DARTS mixture against GDAS single-path sampling, in one process.

Builds the segqc-hw seg + QC supernets of a preset (``default``: 96x96, batch 8) once per sampler, from
the same seed, and times the three steps of one joint-search iteration
(``search.methods.segqc_hw.joint_search``), with the same functions the search calls:

* ``weight``: S1 batch, seg + QC weights (``CE + soft Dice + lambda1 MSE``), forward + backward + Adam;
* ``arch``: S2 batch, the alphas of both supernets (the same loss + ``lambda2`` x the Gumbel-softmax
  expected latency), weights frozen (first order), forward + backward + Adam;
* ``qc``: S2 batch, the QC weights with the seg net frozen (eval mode, no gradient).

``darts`` runs every candidate of every edge (the softmax mixture); ``gdas`` one candidate per edge,
drawn by a hard straight-through Gumbel-softmax sample in every forward pass (``SearchConfig.sampler``).
The arms (sampler x step) run in seeded, shuffled, interleaved rounds (``--steps`` timed steps per arm
per round, after one untimed warm-up round) so background load hits both samplers alike. Per arm:
steps/s (total steps over total time), and the median, min and max seconds per step; per sampler the
seconds of one search iteration (weight + arch + qc) and iterations/s; the ``gdas / darts`` ratios of
steps/s. The latency table is synthetic (each op a fixed pseudo-random 0.1-1.1 ms): the cost of the
latency term does not depend on the table's values. Batches are random tensors made once (data loading
and augmentation are not timed).

Usage (the figures in issue 16's report; takes a few minutes on 2 cores)::

    python bench/search_step_bench.py --threads 2 --rounds 5 --steps 3 --out docs/bench/search_step_bench.json

Quick check: ``--rounds 2 --steps 1 --resolution 32 --batch 2``. Prints a Markdown table; writes the
JSON (machine via ``platform``, ``uptime`` and load averages before and after, every arm, the ratios)
to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import zlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

SAMPLERS = ("darts", "gdas")
STEPS = ("weight", "arch", "qc")


class SyntheticTable:
    """Every latency key costs a deterministic 0.1 .. 1.1 ms (hash of its canonical form)."""

    def get(self, key) -> float:
        return 0.1 + (zlib.crc32(key.canonical().encode()) % 1000) / 1000.0


def machine() -> dict:
    """Where the figures come from: platform, CPU, cores, library versions."""
    try:
        from app.engine.benchmark import cpu_name

        cpu = cpu_name()
    except ImportError:  # the bench runs without the app too
        cpu = platform.processor() or platform.machine()
    return {"platform": platform.platform(), "machine": platform.machine(), "processor": platform.processor(),
            "cpu": cpu, "cpu_count": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__}


class Arm:
    """One sampler's supernets, optimisers and batches, able to run any of the three steps."""

    def __init__(self, sampler: str, cfg, seed: int, batches):
        from search.core.mixed import ArchWeighting
        from search.methods.segqc_hw.latency_model import FrameworkLatency
        from search.methods.segqc_hw.search import build_supernets, qc_config, seg_config

        self.sampler, self.cfg = sampler, cfg.search
        self.seg, self.qc = build_supernets(cfg, seed)
        r = cfg.data.resolution
        self.latency = FrameworkLatency(SyntheticTable(), r, seg_config(cfg), qc_config(cfg)).bind(self.seg.net,
                                                                                                 self.qc.net)
        s = self.cfg
        self.opt_seg = torch.optim.Adam(self.seg.weight_parameters(), lr=s.weight_lr, weight_decay=s.weight_decay)
        self.opt_qc = torch.optim.Adam(self.qc.weight_parameters(), lr=s.weight_lr, weight_decay=s.weight_decay)
        self.opt_arch = torch.optim.Adam(self.seg.arch_parameters() + self.qc.arch_parameters(), lr=s.arch_lr,
                                         betas=tuple(s.arch_betas), weight_decay=s.arch_weight_decay)
        self.weights = self.seg.weight_parameters() + self.qc.weight_parameters()
        self.gumbel = torch.Generator().manual_seed(seed * 7919 + 1)
        if sampler == "gdas":  # tau does not change the cost of a step; the middle of the GDAS schedule
            w = ArchWeighting.gdas(torch.Generator().manual_seed(seed * 7919 + 2), float(np.mean(s.gdas_tau)))
            self.seg.weighting = self.qc.weighting = w
        self.batches = batches

    def step(self, kind: str, i: int) -> None:
        from search.methods.segqc_hw.framework import framework_loss, run_framework
        from search.train import precision
        from search.train.bilevel import frozen

        s = self.cfg
        (x1, y1), (x2, y2) = self.batches[i % len(self.batches)]
        if kind == "weight":
            self.seg.train(), self.qc.train()
            with precision.autocast():  # as search.methods.segqc_hw.joint_search (fp32 unless set)
                out = run_framework(self.seg, self.qc, x1, y1)
                terms = framework_loss(out, y1, lambda1=s.lambda1, lambda2=s.lambda2, seg_dice_weight=s.seg_dice_weight)
            self.opt_seg.zero_grad(set_to_none=True), self.opt_qc.zero_grad(set_to_none=True)
            terms.total.backward()
            self.opt_seg.step(), self.opt_qc.step()
        elif kind == "arch":
            self.seg.train(), self.qc.train()
            with frozen(self.weights):
                lat = self.latency(s.gumbel_tau, self.gumbel)
                with precision.autocast():
                    out = run_framework(self.seg, self.qc, x2, y2)
                    terms = framework_loss(out, y2, lambda1=s.lambda1, lambda2=s.lambda2, latency_ms=lat,
                                           seg_dice_weight=s.seg_dice_weight)
                self.opt_arch.zero_grad(set_to_none=True)
                terms.total.backward()
            self.opt_arch.step()
        elif kind == "qc":
            self.seg.eval(), self.qc.train()
            with precision.autocast():
                out = run_framework(self.seg, self.qc, x2, y2, seg_frozen=True)
                terms = framework_loss(out, y2, lambda1=s.lambda1, lambda2=s.lambda2, with_ce=False)
            self.opt_qc.zero_grad(set_to_none=True)
            terms.total.backward()
            self.opt_qc.step()
        else:
            raise ValueError(f"unknown step {kind!r}")


def _batches(n: int, batch: int, resolution: int, n_classes: int, seed: int):
    g = torch.Generator().manual_seed(seed)

    def one():
        x = torch.randn(batch, 3, resolution, resolution, generator=g)
        y = torch.randint(0, n_classes, (batch, resolution, resolution), generator=g)
        return x, y

    return [(one(), one()) for _ in range(n)]


def run(*, threads: int = 2, rounds: int = 5, steps: int = 3, preset_name: str = "default", task: str = "contrast",
        resolution: int | None = None, batch: int | None = None, seed: int = 0, log=print) -> dict:
    """Time both samplers' steps, interleaved; returns the JSON report (see the module docstring)."""
    from app.engine.benchmark import load_average, uptime_text
    from search.methods.segqc_hw.config import preset

    torch.set_num_threads(threads)
    cfg = preset(preset_name, task=task)
    cfg = replace(cfg, data=replace(cfg.data, resolution=resolution or cfg.data.resolution),
                  search=replace(cfg.search, batch_size=batch or cfg.search.batch_size))
    r, b = cfg.data.resolution, cfg.search.batch_size
    before = {"uptime": uptime_text(), "load_avg": load_average()}
    batches = _batches(2, b, r, cfg.task.num_classes, seed)
    arms = {name: Arm(name, replace(cfg, search=replace(cfg.search, sampler=name)), seed, batches) for name in SAMPLERS}
    times: dict[str, dict[str, list[float]]] = {name: {k: [] for k in STEPS} for name in SAMPLERS}
    order_rng = np.random.default_rng(seed)
    counter = 0
    for rnd in range(rounds + 1):  # round 0: untimed warm-up
        order = [(name, kind) for name in SAMPLERS for kind in STEPS]
        order = [order[i] for i in order_rng.permutation(len(order))]
        for name, kind in order:
            for _ in range(steps if rnd else 1):
                t0 = time.perf_counter()
                arms[name].step(kind, counter)
                dt = time.perf_counter() - t0
                counter += 1
                if rnd:
                    times[name][kind].append(dt)
        if rnd:
            log(f"round {rnd}/{rounds}: " + ", ".join(
                f"{n} {k} {np.median(times[n][k]):.3f} s" for n in SAMPLERS for k in STEPS))
    after = {"uptime": uptime_text(), "load_avg": load_average()}
    per: dict[str, dict] = {}
    for name in SAMPLERS:
        arm = {}
        for kind in STEPS:
            t = times[name][kind]
            # steps/s from the median step: one step descheduled for seconds by another process on a
            # shared 2-core machine must not decide the comparison; the mean rate is kept beside it
            arm[kind] = {"steps": len(t), "steps_per_s": 1.0 / float(np.median(t)), "steps_per_s_mean": len(t) / sum(t),
                         "median_s": float(np.median(t)), "min_s": float(min(t)), "max_s": float(max(t))}
        iteration = sum(arm[k]["median_s"] for k in STEPS)
        arm["iteration"] = {"median_s": iteration, "iterations_per_s": 1.0 / iteration}
        per[name] = arm
    ratio = {k: per["gdas"][k]["steps_per_s"] / per["darts"][k]["steps_per_s"] for k in STEPS}
    ratio["iteration"] = per["gdas"]["iteration"]["iterations_per_s"] / per["darts"]["iteration"]["iterations_per_s"]
    return {
        "bench": "segqc-hw search steps, DARTS mixture vs GDAS single path (issue 16)",
        "preset": preset_name, "task": task, "resolution": r, "batch": b, "seed": seed,
        "torch_threads": torch.get_num_threads(), "torch_interop_threads": torch.get_num_interop_threads(),
        "rounds": rounds, "steps_per_arm_per_round": steps,
        "gdas_tau": list(cfg.search.gdas_tau), "latency_table": "synthetic (fixed pseudo-random ms per op)",
        "machine": machine(), "before": before, "after": after,
        "samplers": per, "ratio_gdas_over_darts": ratio,
    }


def markdown(result: dict) -> str:
    lines = [f"segqc-hw `{result['preset']}` ({result['task']}), {result['resolution']}x{result['resolution']}, "
             f"batch {result['batch']}, {result['torch_threads']} torch thread(s), {result['rounds']} rounds x "
             f"{result['steps_per_arm_per_round']} steps per arm; load before {result['before']['load_avg']}, "
             f"after {result['after']['load_avg']}",
             "",
             "| step | DARTS steps/s (median step) | GDAS steps/s (median step) | GDAS / DARTS |",
             "|---|---:|---:|---:|"]
    per, ratio = result["samplers"], result["ratio_gdas_over_darts"]
    for kind in STEPS:
        lines.append(f"| {kind} | {per['darts'][kind]['steps_per_s']:.3f} | {per['gdas'][kind]['steps_per_s']:.3f} | "
                     f"{ratio[kind]:.2f}x |")
    lines.append(f"| iteration (weight + arch + qc, medians) | {per['darts']['iteration']['iterations_per_s']:.3f} | "
                 f"{per['gdas']['iteration']['iterations_per_s']:.3f} | {ratio['iteration']:.2f}x |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    ap.add_argument("--rounds", type=int, default=5, help="timed interleaved rounds (default 5)")
    ap.add_argument("--steps", type=int, default=3, help="timed steps per arm per round (default 3)")
    ap.add_argument("--preset", default="default", choices=("smoke", "default", "paper"),
                    help="segqc-hw preset whose space, input size and batch are timed (default: default)")
    ap.add_argument("--task", default="contrast", choices=("contrast", "bmode"), help="echo task (default contrast)")
    ap.add_argument("--resolution", type=int, default=None, help="override the preset's input side")
    ap.add_argument("--batch", type=int, default=None, help="override the preset's batch size")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="write the JSON here")
    args = ap.parse_args(argv)
    result = run(threads=args.threads, rounds=args.rounds, steps=args.steps, preset_name=args.preset, task=args.task,
                 resolution=args.resolution, batch=args.batch, seed=args.seed)
    print(markdown(result))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
