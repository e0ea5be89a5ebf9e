"""The toy segqc-hw seg + QC architectures that the shipped-network tests put on fake cards."""

from __future__ import annotations

import numpy as np

from search.export.architecture import Architecture, parse_args
from search.latency import core_adapter


def toy_segqc_pair(seed: int = 3) -> tuple[Architecture, Architecture]:
    """A random smoke-width segqc-hw genotype (seeded) as the seg and QC cards' typed architectures."""
    genotype = core_adapter.random_genotype("segqc", "smoke", np.random.default_rng(seed))
    seg = Architecture(parse_args("nasunet", {"in_channels": 3, "num_classes": 2, "init_filters": 4, "depth": 2,
                                              "n_nodes": 3, "dims": 2}), genotype.seg.to_dict(), "probs_uncertainty")
    qc = Architecture(parse_args("qcnet", {"image_channels": 3, "num_classes": 2, "init_filters": 8, "n_stages": 2,
                                           "n_nodes": 3, "dims": 2}), genotype.qc.to_dict(), "none")
    return seg, qc
