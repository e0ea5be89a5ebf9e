"""Training precision: float32 against bfloat16 autocast, interleaved in one process, on what the chain trains.

``python -m search`` trains with ``--precision auto`` (``search.train.precision``): bfloat16 autocast where the
CPU computes bfloat16 natively (AMX / AVX512-BF16). This bench says what that buys per kind of training step,
with the workloads of ``bench/thread_scaling.py`` (the segqc-hw joint-search iteration, and one training step
of shipped networks rebuilt from their cards at their stages' batches) plus the cine baselines (U-net 3D and
the per-frame U-net 2D, clips of 20 frames at 128x112, batch 2: the ``baselines`` stage's longest trainings).

Every (workload, precision) arm runs ``--steps`` timed steps per round after one untimed warm-up round; the
arms' order is shuffled per round (seeded); the thread count is fixed (``--threads``). Per workload: median
seconds per step in each precision and the speed-up ``median(fp32) / median(bf16)``. On a CPU without native
bfloat16 PyTorch emulates it (slower than float32): the JSON says which CPU it was.

    python bench/precision_bench.py --threads 2 --rounds 4 --steps 2 --out docs/bench/precision.json
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

DEFAULT_MODELS = ("baseline-unet3d-d3-if16", "baseline-unet2d-d3-if16", "cine-rtdnas-ga-n7", "echo-segqc-hw-seg",
                  "cine-skeleton-hw-qc")
MODES = ("fp32", "bf16")


@functools.cache
def _thread_scaling():
    spec = importlib.util.spec_from_file_location("thread_scaling", ROOT / "bench" / "thread_scaling.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def run(*, threads: int = 2, rounds: int = 4, steps: int = 2, models: tuple[str, ...] = DEFAULT_MODELS,
        models_dir: Path = ROOT / "models", preset_name: str = "default", seed: int = 0, with_search: bool = True,
        log=print) -> dict:
    """Time every workload in fp32 and bf16 at ``threads`` torch threads, interleaved; the JSON report."""
    from app.engine.benchmark import load_average, uptime_text
    from search.train import precision

    ts = _thread_scaling()
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    before = {"uptime": uptime_text(), "load_avg": load_average()}
    workloads = ts.build_workloads(preset_name=preset_name, seed=seed, with_search=with_search, models=models,
                                   models_dir=models_dir)
    try:
        times = ts.time_interleaved(workloads, MODES, precision.use, rounds=rounds, steps=steps, seed=seed, log=log)
    finally:
        precision.use("fp32")
    after = {"uptime": uptime_text(), "load_avg": load_average()}
    rows = []
    for name, (_, shape) in workloads.items():
        med = {m: float(np.median(times[(name, m)])) for m in MODES}
        rows.append({"workload": name, "input": shape, "median_s": med,
                     "min_s": {m: float(min(times[(name, m)])) for m in MODES}, "speedup": med["fp32"] / med["bf16"]})
    return {"bench": "training precision, fp32 vs bf16 autocast, interleaved (python -m search --precision)",
            "threads": threads, "rounds": rounds, "steps_per_arm_per_round": steps, "seed": seed,
            "native_bf16": precision.native_bf16(), "machine": ts._search_step_bench().machine(),
            "before": before, "after": after, "rows": rows}


def markdown(result: dict) -> str:
    lines = [f"Training precision fp32 vs bf16 autocast, {result['threads']} torch threads, {result['rounds']} rounds x "
             f"{result['steps_per_arm_per_round']} steps per arm, interleaved; {result['machine']['cpu']}, "
             f"{result['machine']['cpu_count']} cores, native bfloat16: {'yes' if result['native_bf16'] else 'no'}; "
             f"load before {result['before']['load_avg']}, after {result['after']['load_avg']}", "",
             "| workload | input | s/step, fp32 | s/step, bf16 | speed-up |", "|---|---|---:|---:|---:|"]
    for r in result["rows"]:
        lines.append(f"| {r['workload']} | {r['input']} | {r['median_s']['fp32']:.3f} | {r['median_s']['bf16']:.3f} | "
                     f"{r['speedup']:.2f}x |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2, help="torch threads of every arm (default 2)")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--steps", type=int, default=2, help="timed steps per arm per round (default 2)")
    ap.add_argument("--models", nargs="*", default=list(DEFAULT_MODELS), help="shipped model ids to train a step of")
    ap.add_argument("--models-dir", type=Path, default=ROOT / "models")
    ap.add_argument("--preset", default="default", choices=("smoke", "default", "paper"),
                    help="segqc-hw preset of the search workload (default: default)")
    ap.add_argument("--no-search", action="store_true", help="leave out the segqc-hw search workload")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="write the JSON here (and the .md beside it)")
    args = ap.parse_args(argv)
    result = run(threads=args.threads, rounds=args.rounds, steps=args.steps, models=tuple(args.models),
                 models_dir=args.models_dir, preset_name=args.preset, seed=args.seed, with_search=not args.no_search)
    _thread_scaling().write_outputs(result, markdown(result), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
