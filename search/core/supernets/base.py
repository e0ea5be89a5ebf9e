"""What every supernet shares: arch / weight parameter split, and resolution-aligning preprocessing."""

from __future__ import annotations

import torch
from torch import nn

from search.core.ops import build_op


class Supernet(nn.Module):
    """Base of the search networks.

    Architecture parameters are exactly the ``nn.Parameter``s under ``cell_arch`` (one
    :class:`~search.core.cells.CellArch` per cell type) and ``beta`` (network-level edge logits, the
    multi-scale net only); everything else is a weight.
    """

    ARCH_PREFIXES = ("cell_arch.", "beta")

    def named_arch_parameters(self) -> list[tuple[str, nn.Parameter]]:
        return [(n, p) for n, p in self.named_parameters() if n.startswith(self.ARCH_PREFIXES)]

    def arch_parameters(self) -> list[nn.Parameter]:
        """Architecture logits (alpha, gamma, beta), for the architecture optimiser."""
        return [p for _, p in self.named_arch_parameters()]

    def weight_parameters(self) -> list[nn.Parameter]:
        """Operator weights (convs, BN, heads), for the weight optimiser."""
        arch = {id(p) for p in self.arch_parameters()}
        return [p for p in self.parameters() if id(p) not in arch]


def align(dims: int, c_src: int, scale_src: int, c_dst: int, scale_dst: int) -> nn.Module:
    """Fixed preprocessing bringing a feature map to another channel count and (adjacent) scale.

    Scale s means resolution / 2^s. Same scale: ``conv1x1`` (or nothing if channels match too); one
    finer (``scale_src == scale_dst - 1``): ``conv1x1`` with stride 2; one coarser: ``conv1x1`` then x2
    ``upsample`` (the conv runs on the small map). ``(N, c_src, *S_src) -> (N, c_dst, *S_dst)``.
    """
    if scale_src == scale_dst:
        return nn.Identity() if c_src == c_dst else build_op("conv1x1", dims, c_src, c_dst)
    if scale_src == scale_dst - 1:
        return build_op("conv1x1", dims, c_src, c_dst, stride=2)
    if scale_src == scale_dst + 1:
        return nn.Sequential(build_op("conv1x1", dims, c_src, c_dst), build_op("upsample", dims, c_dst, c_dst))
    raise ValueError(f"cannot align scale {scale_src} to scale {scale_dst} (only adjacent scales)")


def check_divisible(spatial: tuple[int, ...], levels: int, what: str) -> None:
    """H and W must be divisible by 2^levels for the skips / fusions to line up."""
    if torch.jit.is_tracing():  # shapes are fixed by the example input during ONNX export
        return
    h, w = spatial[-2:]
    if h % 2**levels or w % 2**levels:
        raise ValueError(f"{what}: H and W must be divisible by 2^{levels} = {2**levels}, got {h}x{w}")


def make_generator(seed: int) -> torch.Generator:
    """A CPU generator seeded with ``seed`` (arch-logit initialisation)."""
    return torch.Generator().manual_seed(int(seed))
