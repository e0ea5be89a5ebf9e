"""The segqc-hw search space in the latency tools' table (``search.latency.spaces``).

Two supernets at the search resolution (``data.resolution``): the segmentation U (``NasUnetSupernet``)
and the QC net (``QcSupernet``). A discrete network is seg + QC in one graph (``DerivedSegQc``: the
deployed data flow).
"""

from __future__ import annotations

from typing import Any

from search.latency.spaces import register_space

NAME = "segqc"


def _parts(preset: str) -> list[tuple[Any, tuple[int, ...], Any]]:
    from search.core.supernets.nasunet import NasUnetConfig, NasUnetSupernet
    from search.core.supernets.qcnet import QcNetConfig, QcSupernet
    from search.methods.segqc_hw.config import preset as segqc_preset

    cfg = segqc_preset(preset)
    r, sp = cfg.data.resolution, cfg.space
    seg_cfg = NasUnetConfig(init_filters=sp.seg_init_filters, depth=sp.seg_depth, n_nodes=sp.nodes)
    qc_cfg = QcNetConfig(init_filters=sp.qc_init_filters, n_stages=sp.qc_stages, n_nodes=sp.nodes,
                         num_classes=seg_cfg.num_classes)
    return [
        (lambda: NasUnetSupernet(seg_cfg), (seg_cfg.in_channels, r, r), seg_cfg),
        (lambda: QcSupernet(qc_cfg), (qc_cfg.in_channels, r, r), qc_cfg),
    ]


def supernets(preset: str):
    """The seg U and the QC net of ``preset``, with their input shapes."""
    return [(build, shape) for build, shape, _ in _parts(preset)]


def random_genotype(preset: str, rng, skip_prob: float | None = None):
    """A random ``SegQcGenotype`` with the preset's node count (``skip_prob``: no paths here; each cell edge's op
    is weight-free with that probability, a cheap network like those the hardware-aware search ships)."""
    from search.core.sampling import sample_random_genotype

    return sample_random_genotype(NAME, rng, n_nodes=_parts(preset)[0][2].n_nodes, skip_prob=skip_prob)


def build_network(preset: str, genotype, seed: int = 0):
    """Seg + QC in one graph, and the seg input shape."""
    from search.core.derived.nasunet import DerivedNasUnet
    from search.core.derived.qcnet import DerivedQcNet, DerivedSegQc

    (_, seg_shape, seg_cfg), (_, _, qc_cfg) = _parts(preset)
    module = DerivedSegQc(DerivedNasUnet(genotype.seg, seg_cfg, seed=seed), DerivedQcNet(genotype.qc, qc_cfg, seed=seed))
    return module, seg_shape


def register() -> None:
    """Put the segqc space in the latency tools' table."""
    register_space(NAME, supernets=supernets, random_genotype=random_genotype, build_network=build_network, stream=0,
                   card_methods=("segqc-hw",))
