"""The networks of a cine row table, built from a row spec: U-nets in 2D and 3D and the searched fused nets.

Shared by msnas-hw (Table 2) and rtdnas (Tables 1-2). Every network here takes a clip
``(N, 1, T, H, W)`` and returns class logits ``(N, K, T, H, W)`` (masks for every frame), so training,
evaluation and the per-clip latency use one harness. A 2D U-net runs on the frames of the clip as a
batch (``FrameWiseUNet``): one inference on a clip segments all its frames, as in the paper (FPS =
1000 / LT there); its per-frame latency at deployment (newest frame only) is measured separately on
the bare 2D U-net.

Two sizes per row: ``paper_size`` (the paper's widths: IF as named, supernet C at scale 0) and the
trained size (every width divided by ``CineRowsConfig.width_divisor``).

The stable entry point for "a searched genotype plus its builder arguments -> the PyTorch network"
is :func:`build_derived` (used by ``search.build`` to rebuild a shipped card).
"""

from __future__ import annotations

from torch import nn

from search.baselines.unet import FrameWiseUNet, UNet, UNetConfig
from search.core.derived.multiscale import FusedMultiscaleNet
from search.core.genotypes import MultiscaleGenotype
from search.core.supernets.multiscale import MultiscaleConfig
from search.train.cine_config import CineRowsConfig, RowSpec, SupernetConfig

N_CLASSES = 4  # background, RV, MYO, LV (ACDC)


def multiscale_config(sn: SupernetConfig, channels: int, *, causal: bool = False) -> MultiscaleConfig:
    """The core's grid configuration for ``channels`` at scale 0 (``edge_op`` relaxation, 3D, 1 -> 4)."""
    return MultiscaleConfig(in_channels=1, num_classes=N_CLASSES, base_channels=channels, n_layers=sn.layers,
                            n_scales=sn.scales, n_nodes=sn.nodes, dims=3, relaxation="edge_op", pc_k=sn.pc_k,
                            causal=causal)


def build_derived(genotype: MultiscaleGenotype, channels: int, sn: SupernetConfig, *, seed: int = 0,
                  causal: bool = False) -> nn.Module:
    """The fused n-path network of a genotype: ``(N, 1, T, H, W) -> (N, 4, T, H, W)`` logits.

    Args:
        genotype: The searched cells and paths.
        channels: Channels at scale 0 (doubled per scale).
        sn: The grid (layers, scales, nodes, partial-channel k).
        seed: Seeds the initialisation.
        causal: Causal time (frame t sees frames <= t): the network can be shipped streaming
            (``search.export.streaming``).
    """
    return FusedMultiscaleNet(genotype, multiscale_config(sn, channels, causal=causal), seed=seed)


def row_filters(cfg: CineRowsConfig, row: RowSpec, *, paper_size: bool) -> int:
    """U-net initial filters, or supernet/derived channels at scale 0, of a row at a size."""
    if row.kind == "msnas":
        return cfg.supernet.channels if paper_size else cfg.trained_channels
    return row.initial_filters if paper_size else cfg.trained_filters(row)


def row_widths(cfg: CineRowsConfig, row: RowSpec) -> dict[str, int]:
    """The trained and paper widths of a row (IF for U-nets, C at scale 0 for searched nets)."""
    return {"trained": row_filters(cfg, row, paper_size=False), "paper": row_filters(cfg, row, paper_size=True)}


def unet_config(cfg: CineRowsConfig, row: RowSpec, *, paper_size: bool) -> UNetConfig:
    """The U-net configuration of a U-net row."""
    t = cfg.measure.paper_shape[0] if paper_size else cfg.data.clip_length
    return UNetConfig(dims=2 if row.kind == "unet2d" else 3, in_channels=1, n_classes=N_CLASSES,
                      depth=row.depth, initial_filters=row_filters(cfg, row, paper_size=paper_size), clip_length=t)


def build_row_network(cfg: CineRowsConfig, row: RowSpec, *, paper_size: bool = False,
                      genotype: MultiscaleGenotype | None = None, causal: bool = False) -> nn.Module:
    """A freshly initialised network of a row: ``(N, 1, T, H, W) -> (N, 4, T, H, W)`` logits.

    Args:
        cfg: The run configuration.
        row: The row.
        paper_size: The paper's widths instead of the trained (divided) widths.
        genotype: Searched architecture, required for ``msnas`` rows.
        causal: ``msnas`` rows only: causal time, for a streaming model.
    """
    if causal and row.kind != "msnas":
        raise ValueError(f"row {row.name!r}: only the searched (msnas) rows have a causal form")
    if row.kind == "unet2d":
        return FrameWiseUNet(UNet(unet_config(cfg, row, paper_size=paper_size)))
    if row.kind == "unet3d":
        return UNet(unet_config(cfg, row, paper_size=paper_size))
    if genotype is None:
        raise ValueError(f"row {row.name!r} needs its searched genotype")
    return build_derived(genotype, row_filters(cfg, row, paper_size=paper_size), cfg.supernet, causal=causal)


def per_frame_network(net: nn.Module) -> nn.Module | None:
    """The bare 2D U-net inside a frame-wise row (what a per-frame deployment runs), else None."""
    return net.unet if isinstance(net, FrameWiseUNet) else None
