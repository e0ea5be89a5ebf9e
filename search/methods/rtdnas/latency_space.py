"""The rtdnas search space in the latency tools' table (``search.latency.spaces``).

The layer x scale supernet with ``input_op_pair`` cells, 10 layers (``search.methods.rtdnas.config``),
at the trained widths and the training clip; a discrete network is the fused network of 1-8 paths.
"""

from __future__ import annotations

from search.latency.spaces import register_space

NAME = "rtdnas"


def multiscale_config(preset: str):
    """``(MultiscaleConfig, (C, T, H, W))`` of the supernet rtdnas searches under ``preset``."""
    from search.core.supernets.multiscale import MultiscaleConfig
    from search.methods.rtdnas.config import preset as rtdnas_preset

    rt = rtdnas_preset(preset)
    sn = rt.supernet
    ms = MultiscaleConfig(base_channels=getattr(rt, "trained_channels", sn.channels), n_layers=sn.layers,
                          n_scales=sn.scales, n_nodes=sn.nodes, relaxation="input_op_pair", pc_k=sn.pc_k)
    return ms, (1, rt.data.clip_length, rt.data.height, rt.data.width)


def supernets(preset: str):
    """The one supernet of ``preset``, with its input shape."""
    from search.core.supernets.multiscale import MultiscaleSupernet

    ms, shape = multiscale_config(preset)
    return [(lambda: MultiscaleSupernet(ms), shape)]


def random_genotype(preset: str, rng, skip_prob: float | None = None):
    """A random ``MultiscaleGenotype`` (1-8 paths) on the preset's grid."""
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
    """Put the rtdnas space in the latency tools' table."""
    register_space(NAME, supernets=supernets, random_genotype=random_genotype, build_network=build_network, stream=2,
                   card_methods=("rtdnas",))
