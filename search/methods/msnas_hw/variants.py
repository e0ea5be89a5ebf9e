"""Latency of deployment variants: what the real-time budget costs in width and input size.

The searched n=1 / n=2 networks and a small 3D U-net are timed (latency only, untrained weights:
weights do not change the cost) at several widths and at both the trained clip and the paper's
clip, all in one process with onnxruntime. Together with FLOPs this shows where the 50 ms / 22 FPS
budget is lost on this CPU: the FLOPs themselves, or how efficiently the runtime executes small
3D operators (achieved GFLOP/s).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from app.realtime import REALTIME
from search.baselines.unet import UNet, UNetConfig
from search.core.genotypes import MultiscaleGenotype
from search.export.flops import count_flops
from search.latency.measure import measure_interleaved
from search.latency.onnx_bytes import export_onnx_bytes
from search.methods.msnas_hw.config import MsnasHwConfig
from search.train.row_networks import N_CLASSES, build_derived


@dataclass(frozen=True)
class Variant:
    """One timed network: a name, how to build it, and its input clip ``(T, H, W)``."""

    name: str
    family: str
    width: int
    shape: tuple[int, int, int]


def variant_list(cfg: MsnasHwConfig, genotypes: dict[str, MultiscaleGenotype]) -> list[Variant]:
    """Searched nets at C/2, C, 2C (C = trained width) and U-net 3D (D2, IF8), at both clip sizes."""
    shapes = [(cfg.data.clip_length, cfg.data.height, cfg.data.width)]
    if cfg.measure.measure_paper_size:
        shapes.append(tuple(cfg.measure.paper_shape))
    c = cfg.trained_channels
    widths = sorted({max(cfg.supernet.pc_k, c // 2), c, cfg.supernet.channels})
    out = []
    for shape in shapes:
        tag = "x".join(map(str, shape))
        for key in genotypes:
            out += [Variant(f"{key} C{w} @{tag}", key, w, shape) for w in widths]
        out.append(Variant(f"U-net 3D (D2, IF8) @{tag}", "unet3d_d2", 8, shape))
    return out


def build_variant(cfg: MsnasHwConfig, v: Variant, genotypes: dict[str, MultiscaleGenotype]) -> nn.Module:
    if v.family == "unet3d_d2":
        return UNet(UNetConfig(dims=3, in_channels=1, n_classes=N_CLASSES, depth=2, initial_filters=v.width,
                               clip_length=v.shape[0]))
    return build_derived(genotypes[v.family], v.width, cfg.supernet)


def measure_variants(cfg: MsnasHwConfig, genotypes: dict[str, MultiscaleGenotype]) -> dict[str, dict[str, Any]]:
    """name -> latency stats, shape, width, FLOPs (one interleaved group per clip size)."""
    variants = variant_list(cfg, genotypes)
    out: dict[str, dict[str, Any]] = {}
    for shape in sorted({v.shape for v in variants}):
        group = [v for v in variants if v.shape == shape]
        models, flops = {}, {}
        for v in group:
            net = build_variant(cfg, v, genotypes).eval()
            clip = torch.zeros((1, 1, *shape))
            models[v.name] = export_onnx_bytes(net, clip)
            flops[v.name] = count_flops(net, [clip])
        stats = measure_interleaved(models, warmup=cfg.measure.warmup, repeats=cfg.measure.repeats, seed=cfg.seed)
        for v in group:
            out[v.name] = {**stats[v.name].to_dict(), "shape": list(shape), "width": v.width, "family": v.family,
                           "flops": flops[v.name]}
    return out


def variants_markdown(cfg: MsnasHwConfig, variants: dict[str, dict[str, Any]]) -> str:
    """Table of the variants with GFLOPs, latency, FPS, achieved GFLOP/s and the budget verdict."""
    lines = ["| Network | clip | width (C / IF) | GFLOPs | latency ms (p50) | p95 | FPS | achieved GFLOP/s | real time |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, v in sorted(variants.items(), key=lambda kv: (kv[1]["shape"], kv[1]["family"], kv[1]["width"])):
        ok = REALTIME.meets(v.get("p95_ms"), v.get("fps"))
        gflops = v["flops"] / 1e9
        lines.append(f"| {name.split(' @')[0]} | {'x'.join(map(str, v['shape']))} | {v['width']} | {gflops:.2f} | "
                     f"{v['p50_ms']:.1f} | {v.get('p95_ms', float('nan')):.1f} | {v['fps']:.1f} | {gflops / (v['p50_ms'] / 1e3):.1f} | {'yes' if ok else 'no'} |")
    return "\n".join(lines)
