"""Cost of a new cine frame: the clip model on the full T-frame window vs the streaming model per frame.

The app's clip models recompute the whole sliding window (T = 20 frames) for every new frame and keep
the newest; a streaming model (``search.export.streaming``) takes only the new frame plus its state.
This bench builds, from a cine card's genotype, the *causal* clip network and its streaming form with
random weights (weights do not change the cost), exports both through the project's export path, and
times them with onnxruntime (the app's session settings, no spinning) at 1 and 2 intra-op threads,
all four interleaved round-robin in one process, in seeded shuffled rounds, so background load hits
them alike. The streaming model carries its state from call to call, as in the app. The shipped clip
ONNX of the card (symmetric, trained) is timed beside them as a reference. Issue 17's target is a
ratio (streaming per frame / clip per window) <= 0.15::

    python bench/streaming_bench.py                     # models/cine-rtdnas-ga-n7.json, 200 rounds
    python bench/streaming_bench.py --card models/X.json --rounds 500 --out streaming_bench.json

Requires the search extra (torch, for building and exporting the networks).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CARD = ROOT / "models" / "cine-rtdnas-ga-n7.json"
TARGET_RATIO = 0.15


def build_models(card_path: Path, seed: int = 0) -> dict:
    """``{"clip": bytes, "stream": bytes, "streaming": card field, "shape": (T, H, W)}``, random weights, causal."""
    import torch

    from search.build import build_from_card
    from search.export.onnx_export import onnx_bytes
    from search.export.streaming import StreamingNetwork, card_field, streaming_onnx

    raw = json.loads(Path(card_path).read_text())
    arch = raw.get("architecture") or {}
    if arch.get("kind") != "multiscale":
        raise SystemExit(f"{card_path}: a multiscale cine card is needed (got {arch.get('kind')!r})")
    raw = {**raw, "architecture": {**arch, "args": {**arch["args"], "causal": True}, "interface": "probs"}}
    clip_net = build_from_card(raw, seed=seed)  # ClipProbabilities(causal FusedMultiscaleNet), eval
    _, _, t, h, w = raw["input"]["shape"]
    frame_shape = (1, 1, 1, h, w)
    stream = StreamingNetwork(clip_net).eval()
    clip_bytes = onnx_bytes(clip_net, [torch.zeros(1, 1, t, h, w)], ["clip"], ["probs"], "clip")
    stream_bytes = streaming_onnx(stream, frame_shape, "stream")
    return {"clip": clip_bytes, "stream": stream_bytes, "streaming": card_field(stream.state_specs(frame_shape)),
            "shape": (t, h, w), "card_id": raw["id"]}


def _stats(samples: list[float]) -> dict:
    a = np.asarray(samples)
    return {"p50_ms": round(float(np.percentile(a, 50)), 3), "p95_ms": round(float(np.percentile(a, 95)), 3),
            "mean_ms": round(float(a.mean()), 3), "n": int(a.size)}


def run(card_path: Path = DEFAULT_CARD, *, threads: tuple[int, ...] = (1, 2), rounds: int = 200, warmup: int = 10,
        seed: int = 0, shipped: bool = True) -> dict:
    """Time clip vs streaming at each thread count, interleaved; returns figures and ratios."""
    from app.cards import parse_streaming
    from app.engine.benchmark import load_average
    from app.engine.runtime import create_session
    from app.engine.streaming import StreamRunner
    from search.latency.measure import gc_paused

    built = build_models(card_path, seed=seed)
    t, h, w = built["shape"]
    rng = np.random.default_rng(seed)
    clip = rng.standard_normal((1, 1, t, h, w)).astype(np.float32)
    frames = [clip[:, :, i:i + 1] for i in range(t)]
    spec = parse_streaming(built["streaming"], "bench")
    shipped_path = Path(card_path).with_suffix(".onnx")
    jobs = {}  # name -> callable running one inference
    for n in threads:
        clip_sess = create_session(built["clip"], intra_op_threads=n, allow_spinning=False)
        jobs[f"clip@{n}"] = (lambda s=clip_sess: s.run(None, {"clip": clip}))
        stream_sess = create_session(built["stream"], intra_op_threads=n, allow_spinning=False)
        names = [o.name for o in stream_sess.get_outputs()]
        runner = StreamRunner(lambda feeds, s=stream_sess, o=names: dict(zip(o, s.run(o, feeds))), spec)
        counter = iter(range(1 << 62))
        jobs[f"stream@{n}"] = (lambda r=runner, c=counter: r.step(frames[next(c) % t]))
        if shipped and shipped_path.is_file():
            ship_sess = create_session(shipped_path, intra_op_threads=n, allow_spinning=False)
            jobs[f"shipped-clip@{n}"] = (lambda s=ship_sess: s.run(None, {"clip": clip}))
    for job in jobs.values():
        for _ in range(warmup):
            job()
    samples: dict[str, list[float]] = {k: [] for k in jobs}
    order = list(jobs)
    before, started = load_average(), time.time()
    with gc_paused():
        for _ in range(rounds):
            rng.shuffle(order)
            for name in order:
                t0 = time.perf_counter_ns()
                jobs[name]()
                samples[name].append((time.perf_counter_ns() - t0) / 1e6)
    result = {
        "card": str(card_path), "genotype_of": built["card_id"], "weights": "random (cost does not depend on them)",
        "clip_shape": [t, h, w], "states": len(spec.states),
        "state_floats": int(sum(int(np.prod(s.shape)) for s in spec.states)),
        "rounds": rounds, "seed": seed, "load_before": before, "load_after": load_average(),
        "seconds": round(time.time() - started, 1), "cpu_count": os.cpu_count(),
        "models": {k: _stats(v) for k, v in samples.items()}, "ratios": {},
    }
    for n in threads:
        c, s = result["models"][f"clip@{n}"], result["models"][f"stream@{n}"]
        result["ratios"][str(n)] = {"p50": round(s["p50_ms"] / c["p50_ms"], 4), "mean": round(s["mean_ms"] / c["mean_ms"], 4),
                                    "meets_target": s["p50_ms"] / c["p50_ms"] <= TARGET_RATIO}
    return result


def markdown(result: dict) -> str:
    t, h, w = result["clip_shape"]
    lines = [f"Streaming vs clip, genotype of `{result['genotype_of']}` ({result['weights']}), clip {t}x{h}x{w}, "
             f"{result['states']} state tensors ({result['state_floats']} floats); {result['rounds']} interleaved rounds, "
             f"load {result['load_before']} -> {result['load_after']}, {result['cpu_count']} CPUs", "",
             "| model | threads | p50 ms | p95 ms | mean ms |", "|---|---|---|---|---|"]
    for name, s in result["models"].items():
        model, n = name.split("@")
        lines.append(f"| {model} | {n} | {s['p50_ms']:.3f} | {s['p95_ms']:.3f} | {s['mean_ms']:.3f} |")
    lines.append("")
    for n, r in result["ratios"].items():
        lines.append(f"{n} thread(s): streaming per frame / clip per window = {r['p50']:.3f}x (p50), "
                     f"{r['mean']:.3f}x (mean); target <= {TARGET_RATIO}x: {'met' if r['meets_target'] else 'NOT met'}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--card", type=Path, default=DEFAULT_CARD, help="cine multiscale card whose genotype is built")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-shipped", action="store_true", help="do not time the card's own clip ONNX beside them")
    parser.add_argument("--out", type=Path, help="also write the figures as JSON")
    args = parser.parse_args(argv)
    result = run(args.card, threads=tuple(args.threads), rounds=args.rounds, warmup=args.warmup, seed=args.seed,
                 shipped=not args.no_shipped)
    print(markdown(result))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
