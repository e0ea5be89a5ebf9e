"""A tiny causal cine network and its streaming model shipped through the real export path (torch).

Used by ``tests/app/engine/test_stream_pipeline.py`` and ``tests/search/export/test_stream_export.py``. The
genotype exercises every op with a time kernel the multiscale space can hold (stem, conv, dil_conv,
sep_conv, max_pool, avg_pool), all three cell kinds and a head with upsampling; BatchNorm statistics
are randomised so eval-mode BN is not the identity.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

TINY_GENOTYPE = {
    "cells": {
        "ep": {"n_inputs": 1, "n_nodes": 3, "output": "concat",
               "edges": [[0, 1, "dil_conv"], [1, 2, "conv"], [0, 3, "avg_pool"]]},
        "ns": {"n_inputs": 1, "n_nodes": 3, "output": "concat",
               "edges": [[0, 1, "sep_conv"], [1, 2, "max_pool"], [0, 3, "identity"]]},
        "ct": {"n_inputs": 1, "n_nodes": 3, "output": "concat",
               "edges": [[0, 1, "conv"], [0, 2, "max_pool"], [2, 3, "sep_conv"]]},
    },
    "paths": [["ns", "ct", "ep"], ["skip", "ns", "skip"], ["ct", "ns", "skip"]],
    "n_layers": 3, "n_scales": 2, "relaxation": "input_op_pair",
}
TINY_ARGS = {"in_channels": 1, "num_classes": 4, "base_channels": 4, "n_layers": 3, "n_scales": 2, "n_nodes": 3,
             "dims": 3}
SIZE = (16, 16)


def randomise_batchnorm(net: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    gen = torch.Generator().manual_seed(seed)
    for m in net.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            n = m.num_features
            m.running_mean.copy_(0.3 * torch.randn(n, generator=gen))
            m.running_var.copy_(0.5 + torch.rand(n, generator=gen))
            m.weight.data.copy_(0.5 + torch.rand(n, generator=gen))
            m.bias.data.copy_(0.2 * torch.randn(n, generator=gen))
    return net


def tiny_architecture(causal: bool = True):
    from search.export.architecture import Architecture, parse_args

    return Architecture(parse_args("multiscale", {**TINY_ARGS, "causal": causal}), TINY_GENOTYPE, "probs")


def tiny_clip_net(causal: bool = True, seed: int = 0) -> torch.nn.Module:
    """``ClipProbabilities`` around the tiny fused multiscale network, eval mode."""
    from search.build import build_architecture

    return randomise_batchnorm(build_architecture(tiny_architecture(causal), seed=seed), seed).eval()


def write_stream_model(folder: Path, *, model_id: str = "tiny-cine-stream", frames: int = 6,
                       seed: int = 0) -> tuple[Path, torch.nn.Module]:
    """Ship the tiny causal network as a streaming model into ``folder``; ``(card path, clip network)``."""
    from search.export.streaming import export_streaming_model

    net = tiny_clip_net(seed=seed)
    clip = np.random.default_rng(seed).standard_normal((1, 1, frames, *SIZE)).astype(np.float32)
    card = export_streaming_model(net, model_id=model_id, architecture=tiny_architecture(), classes={
        0: "background", 1: "RV", 2: "MYO", 3: "LV"}, data={"source": "test"}, clips=[clip], out_dir=folder,
        genotype=TINY_GENOTYPE, method="baseline-test", latency_repeats=3)
    return card.card_path, net
