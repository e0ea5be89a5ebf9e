"""Inference latency of every shipped model, timed together in one process.

The latency on a model card is measured when the model is exported, often on a machine busy with
other jobs, so cards exported at different times do not compare. This bench times every model in
``models/`` (or ``--models-dir``) round-robin in seeded shuffled rounds, at each thread count
asked for, so that background load hits them alike, and reports each model's p50/p95 beside its
card's figure and the ratio to its modality's handcrafted baseline measured in the same rounds
(each at its own input size, which the table shows: a ratio across sizes is a ratio of what the
app runs, not of architectures at equal input)::

    python bench/model_latency.py                       # 1 and 2 intra-op threads, 60 rounds
    python bench/model_latency.py --threads 2 --rounds 200 --out model_latency.json

Requires the search extra (it reuses ``search.latency.measure``); model inference only (the
app's end-to-end figures come from ``python -m app replay`` and ``bench/pipeline_bench.py``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def baseline_of(card, cards) -> str | None:
    """Id of the handcrafted baseline seg model of ``card``'s modality (fp32, best Dice), if any."""
    candidates = [c for c in cards if c.modality == card.modality and c.role == card.role
                  and c.method.startswith("baseline") and not (c.raw.get("quantization"))]
    if not candidates:
        return None
    return max(candidates, key=lambda c: ((c.metrics.get("dice") or {}).get("mean") or 0.0, c.id)).id


def run(models_dir: Path, threads: list[int], rounds: int, seed: int) -> dict:
    from app.cards import discover
    from app.engine.benchmark import load_average
    from search.latency.measure import measure_interleaved

    cards = [c.verify() for c in discover(models_dir)]
    if not cards:
        raise SystemExit(f"{models_dir}: no model cards")
    paths = {c.id: str(c.onnx_path) for c in cards}
    result: dict = {"models_dir": str(models_dir), "rounds": rounds, "seed": seed, "by_threads": {}}
    for n in threads:
        before = load_average()
        stats = measure_interleaved(paths, repeats=rounds, intra_op_threads=n, seed=seed)
        rows = {}
        for card in cards:
            s = stats[card.id]
            base = baseline_of(card, cards)
            card_lat = card.metrics.get("latency_ms") or {}
            rows[card.id] = {
                "modality": card.modality, "role": card.role, "method": card.method,
                "input_shape": list(card.input_shape),
                "p50_ms": s.p50_ms, "p95_ms": s.p95_ms, "card_p50_ms": card_lat.get("p50"),
                "baseline": base,
                "ratio_to_baseline": (s.p50_ms / stats[base].p50_ms) if base else None,
            }
        result["by_threads"][str(n)] = {"load_average_before": before, "load_average_after": load_average(),
                                        "models": rows}
    from app.engine.replay import machine_description

    result["machine"] = machine_description()
    return result


def markdown(result: dict) -> str:
    lines = []
    for n, block in result["by_threads"].items():
        lines += [f"intra-op threads {n} (load average before {block['load_average_before']}, "
                  f"after {block['load_average_after']}), {result['rounds']} interleaved rounds:", "",
                  "| model | modality | role | input | p50 ms | p95 ms | card p50 ms | x baseline (p50) |",
                  "|---|---|---|---|---|---|---|---|"]
        for mid, r in block["models"].items():
            ratio = "-" if r["ratio_to_baseline"] is None else f"{r['ratio_to_baseline']:.2f} ({r['baseline']})"
            card = "-" if r["card_p50_ms"] is None else f"{r['card_p50_ms']:.1f}"
            shape = "x".join(str(d) for d in r["input_shape"][2:])
            lines.append(f"| {mid} | {r['modality']} | {r['role']} | {shape} | {r['p50_ms']:.2f} | {r['p95_ms']:.2f} "
                         f"| {card} | {ratio} |")
        lines.append("")
    lines.append(f"machine: {result['machine']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models-dir", type=Path, default=None, help="default: the shipped models/")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--rounds", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, help="write the figures as JSON")
    args = ap.parse_args(argv)
    from app.cards import default_models_dir

    result = run(args.models_dir or default_models_dir(), args.threads, args.rounds, args.seed)
    print(markdown(result))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
