"""The msnas-hw search space in the latency tools' table (``search.latency.spaces``).

The layer x scale supernet (``edge_op`` relaxation) at the trained widths and the training clip
``(1, T, H, W)`` of ``search.methods.msnas_hw.config``; a discrete network is the fused multi-path
network of 1-4 paths.
"""

from __future__ import annotations

from search.latency.spaces import register_space

NAME = "msnas"


def multiscale_config(preset: str):
    """``(MultiscaleConfig, (C, T, H, W))`` of the supernet msnas-hw searches under ``preset``."""
    from search.core.supernets.multiscale import MultiscaleConfig
    from search.methods.msnas_hw.config import preset as msnas_preset

    cfg = msnas_preset(preset)
    sn, data = cfg.supernet, cfg.data
    shape = (1, data.clip_length, data.height, data.width)
    ms = MultiscaleConfig(base_channels=cfg.trained_channels, n_layers=sn.layers, n_scales=sn.scales,
                          n_nodes=sn.nodes, relaxation="edge_op", pc_k=sn.pc_k)
    return ms, shape


def supernets(preset: str):
    """The one supernet of ``preset``, with its input shape."""
    from search.core.supernets.multiscale import MultiscaleSupernet

    ms, shape = multiscale_config(preset)
    return [(lambda: MultiscaleSupernet(ms), shape)]


def random_genotype(preset: str, rng, skip_prob: float | None = None):
    """A random ``MultiscaleGenotype`` (1-4 paths) on the preset's grid."""
    from search.core.sampling import sample_random_genotype

    ms, _ = multiscale_config(preset)
    return sample_random_genotype(NAME, rng, n_layers=ms.n_layers, n_scales=ms.n_scales, n_nodes=ms.n_nodes,
                                 skip_prob=skip_prob)


def build_network(preset: str, genotype, seed: int = 0):
    """The fused multi-path network of ``genotype`` and its input shape."""
    from search.core.derived.multiscale import FusedMultiscaleNet

    ms, shape = multiscale_config(preset)
    return FusedMultiscaleNet(genotype, ms, seed=seed), shape


def register() -> None:
    """Put the msnas space in the latency tools' table."""
    register_space(NAME, supernets=supernets, random_genotype=random_genotype, build_network=build_network, stream=1,
                   card_methods=("msnas-hw",))
