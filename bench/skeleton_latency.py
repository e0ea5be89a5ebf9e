"""Latency of U-net skeletons before training: which widths and strides fit a budget at the deployment input.

Latency does not depend on the weights, so whether a network of the U-net skeleton space
(``search.core.derived.unet_skeleton`` specs, e.g. ``/2:16c2-32c2-64c2-128c2``) can fit a latency budget
is known before it is trained. This bench exports each spec as the segmentation model ships (probs +
uncertainty) at ``--size``, beside segqc-hw's U-net(16) and U-net(8) baselines, and times them all
round-robin in one process (onnxruntime, ``--threads`` intra-op threads, seeded shuffled rounds), so
that the ratios to U-net(16) hold under background load. Pair it with ``bench/size_table.py``, which
trains and scores the specs worth training::

    python bench/skeleton_latency.py /2:16c2-32c2-64c2-128c2 /2:16c2-32c2-32c2-64c2 --size 256 \\
        --out docs/bench/skeleton_latency_256.json

Writes ``--out`` (JSON) and the Markdown table beside it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as ``python bench/skeleton_latency.py``
    sys.path.insert(0, str(ROOT))

from bench.report import machine_words, write_report  # noqa: E402

REFERENCE = "U-net(16)"


def measure(specs: list[str], *, size: int, n_classes: int, threads: int, warmup: int, repeats: int,
            seed: int) -> dict:
    """Every spec and both baselines exported at ``size`` and timed interleaved; the JSON document."""
    import onnxruntime as ort
    import torch

    from app.engine.benchmark import load_average
    from search.core.derived.unet_skeleton import SkeletonUNet, UNetSkeleton
    from search.export.flops import count_flops
    from search.latency.measure import measure_interleaved
    from search.latency.onnx_bytes import export_onnx_bytes
    from search.methods.segqc_hw.search import build_baseline
    from search.train.seg_outputs import SegmentationWithUncertainty

    torch.manual_seed(seed)
    image = torch.rand(1, 3, size, size)
    nets = {REFERENCE: build_baseline(16, seed, n_classes)[0], "U-net(8)": build_baseline(8, seed, n_classes)[0]}
    for spec in specs:
        skeleton = UNetSkeleton.parse(spec)
        if size % skeleton.divisor:
            raise SystemExit(f"{spec!r} needs an input size divisible by {skeleton.divisor}; --size {size} is not")
        nets[skeleton.spec] = SkeletonUNet(skeleton, n_classes=n_classes)
    shipped = {name: SegmentationWithUncertainty(net).eval() for name, net in nets.items()}
    models = {name: export_onnx_bytes(m, image) for name, m in shipped.items()}
    before = load_average()
    stats = measure_interleaved(models, {name: {"input0": image.numpy()} for name in models}, warmup=warmup,
                                repeats=repeats, intra_op_threads=threads, seed=seed)
    ref = stats[REFERENCE].p50_ms
    rows = {name: {"p50_ms": s.p50_ms, "p95_ms": s.p95_ms, "ratio_to_unet16": s.p50_ms / ref,
                   "macs": count_flops(shipped[name], [image]) // 2} for name, s in stats.items()}
    return {"size": size, "n_classes": n_classes, "threads": threads, "warmup": warmup, "repeats": repeats,
            "seed": seed, "rows": rows, "machine": machine_words(), "onnxruntime": ort.__version__,
            "torch": torch.__version__, "loadavg_before": before, "loadavg_after": load_average()}


def markdown(doc: dict) -> str:
    lines = [f"# U-net skeletons at {doc['size']}x{doc['size']}, untrained: seg latency against U-net(16)", "",
             f"Each network exported as the segmentation model ships (probs + uncertainty, {doc['n_classes']} classes) "
             f"and timed round-robin in one process with the others (onnxruntime {doc['onnxruntime']}, "
             f"{doc['threads']} intra-op threads, batch 1, {doc['repeats']} rounds after {doc['warmup']} untimed "
             f"runs, median). Weights are untrained: latency does not depend on them. Machine: {doc['machine']}; "
             f"load average {doc['loadavg_before']} before, {doc['loadavg_after']} after. Compare within this "
             "table only.", "",
             "| network | p50 ms | p95 ms | x U-net(16) | MMACs |", "|---|---|---|---|---|"]
    for name, r in sorted(doc["rows"].items(), key=lambda kv: kv[1]["p50_ms"]):
        lines.append(f"| {name} | {r['p50_ms']:.2f} | {r['p95_ms']:.2f} | {r['ratio_to_unet16']:.2f} | "
                     f"{r['macs'] / 1e6:.0f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("specs", nargs="+", metavar="SPEC", help="U-net skeleton specs (search.core.derived.unet_skeleton)")
    ap.add_argument("--size", type=int, default=256, help="square input size (default 256, Table II's deployment input)")
    ap.add_argument("--classes", type=int, default=2, help="classes incl. background (default 2: contrast echo)")
    ap.add_argument("--threads", type=int, default=2, help="onnxruntime intra-op threads (default 2, the app's)")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0, help="weights and round order")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "bench" / "skeleton_latency.json")
    args = ap.parse_args(argv)
    from search.core.derived.unet_skeleton import UNetSkeleton

    for spec in args.specs:  # refused before anything is exported
        try:
            UNetSkeleton.parse(spec)
        except ValueError as exc:
            ap.error(f"{spec!r}: {exc}")
    doc = measure(args.specs, size=args.size, n_classes=args.classes, threads=args.threads, warmup=args.warmup,
                  repeats=args.repeats, seed=args.seed)
    write_report(args.out, doc, markdown(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
