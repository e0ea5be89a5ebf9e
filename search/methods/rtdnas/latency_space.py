"""The rtdnas search space in the latency tools' table (``search.latency.spaces``).

The layer x scale supernet with ``input_op_pair`` cells, 10 layers (``search.methods.rtdnas.config``),
at the trained widths and the training clip; a discrete network is the fused network of 1-8 paths
(``search.methods.multiscale_space``, shared with msnas-hw).
"""

from __future__ import annotations

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


def register() -> None:
    """Put the rtdnas space in the latency tools' table."""
    from search.methods.multiscale_space import register_multiscale_space

    register_multiscale_space(NAME, multiscale_config, stream=2, card_methods=("rtdnas",))
