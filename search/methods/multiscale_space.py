"""A layer x scale (multi-path) search space in the latency tools' table, shared by msnas-hw and rtdnas.

Both methods search the same kind of supernet (``search.core.supernets.multiscale``) and deploy the fused network
of its decoded paths (``search.core.derived.multiscale.FusedMultiscaleNet``); they differ only in how a preset maps
to the supernet's ``MultiscaleConfig`` and training clip. Each method's ``latency_space`` gives that mapping to
:func:`register_multiscale_space`.
"""

from __future__ import annotations

from typing import Any, Callable

from search.latency.spaces import SearchSpace, register_space

#: ``preset -> (MultiscaleConfig, input shape (C, T, H, W))``.
ConfigOf = Callable[[str], tuple[Any, tuple[int, ...]]]


def register_multiscale_space(name: str, config_of: ConfigOf, *, stream: int,
                              card_methods: tuple[str, ...]) -> SearchSpace:
    """Register the space ``name``: its one supernet, random genotypes on its grid, the fused network of a genotype."""

    def supernets(preset: str):
        from search.core.supernets.multiscale import MultiscaleSupernet

        ms, shape = config_of(preset)
        return [(lambda: MultiscaleSupernet(ms), shape)]

    def random_genotype(preset: str, rng, skip_prob: float | None = None):
        from search.core.sampling import sample_random_genotype

        ms, _ = config_of(preset)
        return sample_random_genotype(name, rng, n_layers=ms.n_layers, n_scales=ms.n_scales, n_nodes=ms.n_nodes,
                                      skip_prob=skip_prob)

    def build_network(preset: str, genotype, seed: int = 0):
        from search.core.derived.multiscale import FusedMultiscaleNet

        ms, shape = config_of(preset)
        return FusedMultiscaleNet(genotype, ms, seed=seed), shape

    return register_space(name, supernets=supernets, random_genotype=random_genotype, build_network=build_network,
                          stream=stream, card_methods=card_methods)
