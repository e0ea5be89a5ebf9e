"""The cine skeleton search's space in the latency tools' table (``search.latency.spaces``).

One supernet: the U-net skeleton space of the preset (``config.choices_of``: per level a width and a block)
on one cine frame at the preset's baselines grid (128x112 for default). A discrete network is the per-frame
2D U-net as the app runs it: the ``SkeletonUNet`` with its softmax and uncertainty in the graph
(``SegmentationWithUncertainty``, the card's ``probs_uncertainty`` interface), so the fitted calibration
carries their cost, which the table has no entry for. Its table keys are whole blocks (``skel_*``), listed by
the network itself (``SkeletonUNet.latency_keys``). The per-frame U-net 2D baseline (card method
``baseline-unet2d``) is one network of the space, layer for layer (``UNet.latency_keys``), so its card is checked
here too: a handcrafted network predicted from the same table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from search.latency.spaces import register_space

NAME = "skeleton"


@dataclass(frozen=True)
class SkeletonGenotype:
    """A random network of the space, by its spec string (``16c2-16c2-48c2``)."""

    spec: str

    def to_dict(self) -> dict[str, str]:
        return {"kind": "unet_skeleton", "spec": self.spec}


def _space(preset: str):
    from search.baselines.presets import get_preset as baseline_preset
    from search.methods.cine_skeleton.config import choices_of
    from search.methods.cine_skeleton.config import preset as skeleton_preset

    cfg = skeleton_preset(preset)
    return choices_of(cfg), tuple(baseline_preset(cfg.baselines).cine_input)


def supernets(preset: str):
    """The skeleton supernet of ``preset`` on one cine frame."""
    from search.core.supernets.unet_skeleton import SkeletonSupernet

    space, (h, w) = _space(preset)
    return [(lambda: SkeletonSupernet(space), (space.in_channels, h, w))]


def random_genotype(preset: str, rng, skip_prob: float | None = None) -> SkeletonGenotype:
    """Each level's width and block drawn uniformly from ``rng`` (numpy); with ``skip_prob`` (a sparse draw) each
    level takes its narrowest width and the first block token with that probability instead: a cheap network
    like those the hardware-aware search ships."""
    from search.core.derived.unet_skeleton import Level, UNetSkeleton
    from search.core.supernets.unet_skeleton import parse_block

    space, _ = _space(preset)
    levels = []
    for widths in space.widths:
        cheap = skip_prob is not None and rng.random() < skip_prob
        width = widths[0] if cheap else widths[int(rng.integers(len(widths)))]
        token = space.blocks[0] if cheap else space.blocks[int(rng.integers(len(space.blocks)))]
        op, convs = parse_block(token)
        levels.append(Level(int(width), op, convs))
    return SkeletonGenotype(UNetSkeleton(tuple(levels), space.input_stride).spec)


def build_network(preset: str, genotype: Any, seed: int = 0):
    """The per-frame network with its softmax and uncertainty (as deployed), and its input shape."""
    import torch

    from search.core.derived.unet_skeleton import SkeletonUNet, UNetSkeleton
    from search.train.seg_outputs import SegmentationWithUncertainty

    space, (h, w) = _space(preset)
    spec = genotype.spec if isinstance(genotype, SkeletonGenotype) else str(genotype["spec"])
    torch.manual_seed(seed)
    net = SkeletonUNet(UNetSkeleton.parse(spec), space.in_channels, space.n_classes)
    return SegmentationWithUncertainty(net).eval(), (space.in_channels, h, w)


def register() -> None:
    """Put the skeleton space in the latency tools' table."""
    register_space(NAME, supernets=supernets, random_genotype=random_genotype, build_network=build_network, stream=3,
                   card_methods=("cine-skeleton", "baseline-unet2d"))
