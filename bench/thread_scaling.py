"""Torch threads for training: 1 against N, interleaved in one process, on the networks the chain trains.

``python -m search`` runs most stages with one torch thread (the searches' presets: chosen on a 2-core
machine shared with other jobs, where two OpenMP threads spin-wait on each other). On a machine doing
nothing else, a chain run could give every stage the cores (``python -m search --threads N``). This
bench says what that buys, per kind of training step the chain runs:

- ``segqc-search``: one joint-search iteration of segqc-hw's seg + QC supernets (weight, arch and QC
  steps, the preset's sampler, input and batch: ``bench/search_step_bench.Arm``, synthetic latency table);
- ``<model id>``: one training step (forward, loss, backward, Adam) of a shipped network at its card's
  input and the batch its stage trains with (``--models``, default: the rtdnas clip net at 64x48 (the
  msnas-hw / rtdnas retrains), the rtdnas streaming net at 64x48 (a clip of 20 frames, causal: the
  rtdnas-stream retrain; docs/bench/thread_scaling.md timed the retired 128x112 one), the contrast-echo
  searched seg net (segqc-hw's retrains) and
  the cine QC net of the cine default (the cine-qc stages)); networks rebuilt from the cards as
  ``python -m search finetune`` rebuilds them (``search.finetune.target.load_target``), inputs random.

Every (workload, threads) arm runs ``--steps`` timed steps per round after one untimed warm-up round;
the arms' order is shuffled per round (seeded), ``torch.set_num_threads`` is set before each arm. Per
workload: median seconds per step at each thread count and the speed-up ``median(1) / median(N)``.

    python bench/thread_scaling.py --threads 2 --rounds 5 --steps 3 --out docs/bench/thread_scaling.json

Writes the JSON (with ``uptime`` and the load averages before and after) and the markdown beside it.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

DEFAULT_MODELS = ("cine-rtdnas-ga-n7", "cine-rtdnas-ga-n7-stream", "echo-segqc-hw-seg", "cine-skeleton-hw-qc")
BATCH = {"cine": 2, "echo": 8, "qc": 64}  # the stages' batches: rtdnas / msnas-hw retrains, segqc-hw retrain, cine-qc


@functools.cache
def _search_step_bench():
    spec = importlib.util.spec_from_file_location("search_step_bench", ROOT / "bench" / "search_step_bench.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def segqc_search_step(preset_name: str, seed: int) -> Callable[[int], None]:
    """One segqc-hw joint-search iteration (weight + arch + QC steps) of the preset's supernets."""
    from search.methods.segqc_hw.config import preset

    ssb = _search_step_bench()
    cfg = preset(preset_name)
    batches = ssb._batches(2, cfg.search.batch_size, cfg.data.resolution, cfg.task.num_classes, seed)
    arm = ssb.Arm(cfg.search.sampler, cfg, seed, batches)

    def step(i: int) -> None:
        for kind in ssb.STEPS:
            arm.step(kind, i)

    return step


def training_step(model_id: str, models_dir: Path, seed: int, batch: int | None = None) -> tuple[Callable[[int], None], str]:
    """One training step of ``model_id`` rebuilt from its card; the step and a description of its input."""
    g = torch.Generator().manual_seed(seed)
    raw = json.loads((Path(models_dir) / f"{model_id}.json").read_text())
    if raw["role"] == "qc":  # a cine QC net (finetune does not rebuild QC models): its class, its card's inputs
        from search.methods.cine_qc.network import CineQcNet

        if raw.get("method") != "cine-qc":
            raise ValueError(f"{model_id}: only cine QC models (method cine-qc) are rebuilt here")
        b = batch or BATCH["qc"]
        feeds = {i["name"]: torch.rand(b, *[int(s) for s in i["shape"][1:]], generator=g) for i in raw["inputs"]}
        net = CineQcNet(n_classes=int(feeds["probs"].shape[1]), **{k: v for k, v in (raw.get("architecture") or {})
                                                                   .get("args", {}).items() if k == "width"}).train()
        target_out = torch.rand(b, generator=g)

        def loss_of() -> torch.Tensor:
            out = net(*feeds.values())
            return torch.nn.functional.l1_loss(out.reshape(-1), target_out)
        shape = ", ".join(f"{k} {tuple(v.shape)}" for k, v in feeds.items())
    else:
        from search.finetune.target import load_target

        target = load_target(model_id, models_dir)
        net = target.trainable.train()
        b = batch or BATCH[target.modality]
        shape_in = list(target.input_shape)
        if target.modality == "cine" and len(shape_in) == 5:  # a clip (or streaming) net trains on clips
            shape_in[2] = target.train_clip_length
        elif target.per_frame:  # a per-frame cine net trains frame-wise on clips
            shape_in = [1, 1, target.train_clip_length, *shape_in[-2:]]
        x = torch.randn(b, *shape_in[1:], generator=g)
        n_classes = len(target.classes)

        def loss_of() -> torch.Tensor:
            out = net(x)
            out = out[0] if isinstance(out, (tuple, list)) else out
            y = torch.randint(0, n_classes, (out.shape[0], *out.shape[2:]), generator=g)
            return torch.nn.functional.cross_entropy(out, y)
        shape = str(tuple(x.shape))
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)

    from search.train import precision

    def step(i: int) -> None:
        opt.zero_grad(set_to_none=True)
        with precision.autocast():  # the process's training precision, as search.train.loop.fit (fp32 unless set)
            loss = loss_of()
        loss.backward()
        opt.step()

    return step, shape


def build_workloads(*, preset_name: str, seed: int, with_search: bool, models: tuple[str, ...], models_dir: Path,
                    batch: int | None = None) -> dict[str, tuple[Callable[[int], None], str]]:
    """``{name: (step, input description)}``: the segqc-hw search iteration (``with_search``) and one training step
    of each shipped model (also ``bench/precision_bench.py``'s workloads)."""
    workloads: dict[str, tuple[Callable[[int], None], str]] = {}
    if with_search:
        workloads["segqc-search"] = (segqc_search_step(preset_name, seed), f"segqc-hw {preset_name} supernets")
    for model_id in models:
        workloads[model_id] = training_step(model_id, models_dir, seed, batch)
    return workloads


def time_interleaved(workloads: dict[str, tuple[Callable[[int], None], str]], settings: tuple, apply: Callable,
                     *, rounds: int, steps: int, seed: int, log=print) -> dict[tuple[str, object], list[float]]:
    """Seconds per step of every (workload, setting) arm: ``apply(setting)`` before each arm, ``steps`` timed steps
    per arm per round after one untimed warm-up round, the arms' order shuffled per round (seeded)."""
    arms = [(w, s) for w in workloads for s in settings]
    times: dict[tuple[str, object], list[float]] = {a: [] for a in arms}
    rng = np.random.default_rng(seed)
    i = 0
    for rnd in range(rounds + 1):  # round 0: untimed warm-up
        for k in rng.permutation(len(arms)):
            name, setting = arms[k]
            apply(setting)
            for _ in range(steps if rnd else 1):
                t0 = time.perf_counter()
                workloads[name][0](i)
                dt = time.perf_counter() - t0
                i += 1
                if rnd:
                    times[(name, setting)].append(dt)
        if rnd:
            log(f"round {rnd}/{rounds}: " + ", ".join(f"{n}@{s} {np.median(times[(n, s)]):.3f} s" for n, s in arms))
    return times


def write_outputs(result: dict, text: str, out: Path | None) -> None:
    """Print the markdown; with ``out``, write the JSON there and the markdown beside it (.md)."""
    print(text)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1) + "\n")
        out.with_suffix(".md").write_text(text)


def run(*, threads: int = 2, rounds: int = 5, steps: int = 3, models: tuple[str, ...] = DEFAULT_MODELS,
        models_dir: Path = ROOT / "models", preset_name: str = "default", seed: int = 0, with_search: bool = True,
        batch: int | None = None, log=print) -> dict:
    """Time every workload at 1 and ``threads`` torch threads, interleaved; the JSON report."""
    from app.engine.benchmark import load_average, uptime_text

    torch.manual_seed(seed)
    before = {"uptime": uptime_text(), "load_avg": load_average()}
    workloads = build_workloads(preset_name=preset_name, seed=seed, with_search=with_search, models=models,
                                models_dir=models_dir, batch=batch)
    counts = sorted({1, threads})
    times = time_interleaved(workloads, tuple(counts), torch.set_num_threads, rounds=rounds, steps=steps, seed=seed,
                             log=log)
    after = {"uptime": uptime_text(), "load_avg": load_average()}
    rows = []
    for name, (_, shape) in workloads.items():
        med = {t: float(np.median(times[(name, t)])) for t in counts}
        rows.append({"workload": name, "input": shape, "median_s": {str(t): med[t] for t in counts},
                     "min_s": {str(t): float(min(times[(name, t)])) for t in counts},
                     "speedup": med[1] / med[threads] if threads != 1 else 1.0})
    return {"bench": "torch threads for training, 1 vs N, interleaved (python -m search --threads)",
            "threads": threads, "rounds": rounds, "steps_per_arm_per_round": steps, "seed": seed,
            "machine": _search_step_bench().machine(), "before": before, "after": after, "rows": rows}


def markdown(result: dict) -> str:
    t = result["threads"]
    lines = [f"Torch threads 1 vs {t}, {result['rounds']} rounds x {result['steps_per_arm_per_round']} steps per arm, "
             f"interleaved; {result['machine']['cpu']}, {result['machine']['cpu_count']} cores; load before "
             f"{result['before']['load_avg']}, after {result['after']['load_avg']}", "",
             f"| workload | input | s/step, 1 thread | s/step, {t} threads | speed-up |", "|---|---|---:|---:|---:|"]
    for r in result["rows"]:
        lines.append(f"| {r['workload']} | {r['input']} | {r['median_s']['1']:.3f} | {r['median_s'][str(t)]:.3f} | "
                     f"{r['speedup']:.2f}x |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2, help="the thread count set against 1 (default 2)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=3, help="timed steps per arm per round (default 3)")
    ap.add_argument("--models", nargs="*", default=list(DEFAULT_MODELS), help="shipped model ids to train a step of")
    ap.add_argument("--models-dir", type=Path, default=ROOT / "models")
    ap.add_argument("--preset", default="default", choices=("smoke", "default", "paper"),
                    help="segqc-hw preset of the search workload (default: default)")
    ap.add_argument("--no-search", action="store_true", help="leave out the segqc-hw search workload")
    ap.add_argument("--batch", type=int, default=None, help="one batch for every model (default: each stage's)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="write the JSON here (and the .md beside it)")
    args = ap.parse_args(argv)
    result = run(threads=args.threads, rounds=args.rounds, steps=args.steps, models=tuple(args.models),
                 models_dir=args.models_dir, preset_name=args.preset, seed=args.seed, with_search=not args.no_search,
                 batch=args.batch)
    write_outputs(result, markdown(result), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
