"""The msnas-hw search space in the latency tools' table (``search.latency.spaces``).

The layer x scale supernet (``edge_op`` relaxation) at the trained widths and the training clip
``(1, T, H, W)`` of ``search.methods.msnas_hw.config``; a discrete network is the fused multi-path
network of 1-4 paths (``search.methods.multiscale_space``, shared with rtdnas).
"""

from __future__ import annotations

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


def register() -> None:
    """Put the msnas space in the latency tools' table."""
    from search.methods.multiscale_space import register_multiscale_space

    register_multiscale_space(NAME, multiscale_config, stream=1, card_methods=("msnas-hw",))
