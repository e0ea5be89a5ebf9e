"""U-net in 2D (one frame) or 3D (a 2D+t clip) with configurable depth and initial filters.

The papers' tables name U-nets by depth D (resolution levels, so D - 1 poolings) and initial filters
IF (channels at the first level, doubled at each level): U-net(8) of the segqc-hw paper (Zeng et
al. 2021, arXiv:2109.06909) is (D5, IF8); the msnas-hw paper (Zeng et al., ICCAD 2020,
arXiv:2008.07071) lists U-net 2D (D5, IF64), 2D (D3, IF16), 3D (D4, IF32), 3D (D3, IF16).

Blocks are two conv-BN-ReLU; downsampling is 2x max pooling, upsampling a stride-2 transposed
conv, and the decoder concatenates the skip of the same level (Ronneberger et al., Cicek et al.).
In 3D the time axis is pooled only while it stays even (20 -> 10 -> 5 -> 5), so a 20-frame clip
goes through any depth and the output has the input's shape.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class UNetConfig:
    """What a U-net is.

    Attributes:
        dims: 2 (input ``(N, C, H, W)``) or 3 (input ``(N, C, T, H, W)``).
        in_channels: Image channels (3 for RGB echo, 1 for cine MR).
        n_classes: Output classes, background included.
        depth: Resolution levels D (D - 1 poolings); H and W must be divisible by 2^(D-1).
        initial_filters: Channels IF at the first level; level k has IF * 2^k.
        clip_length: 3D only: frames T per clip, used to decide which levels pool time.
    """

    dims: int = 2
    in_channels: int = 3
    n_classes: int = 2
    depth: int = 5
    initial_filters: int = 8
    clip_length: int = 1

    def __post_init__(self) -> None:
        if self.dims not in (2, 3):
            raise ValueError(f"dims must be 2 or 3, got {self.dims}")
        if self.depth < 1:
            raise ValueError(f"depth must be >= 1, got {self.depth}")


def _layers(dims: int):
    if dims == 2:
        return nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d, nn.ConvTranspose2d
    return nn.Conv3d, nn.BatchNorm3d, nn.MaxPool3d, nn.ConvTranspose3d


class ConvBlock(nn.Sequential):
    """Two 3x3(x3) conv-BN-ReLU layers."""

    def __init__(self, dims: int, c_in: int, c_out: int):
        conv, bn, _, _ = _layers(dims)
        super().__init__(
            conv(c_in, c_out, 3, padding=1, bias=False), bn(c_out), nn.ReLU(inplace=True),
            conv(c_out, c_out, 3, padding=1, bias=False), bn(c_out), nn.ReLU(inplace=True),
        )


def pooling_factors(cfg: UNetConfig) -> list[tuple[int, ...]]:
    """Pooling kernel of each of the D - 1 downsamplings: (2, 2) in 2D; (2 or 1, 2, 2) in 3D."""
    factors: list[tuple[int, ...]] = []
    t = cfg.clip_length
    for _ in range(cfg.depth - 1):
        if cfg.dims == 2:
            factors.append((2, 2))
        else:
            ft = 2 if t % 2 == 0 else 1
            t //= ft
            factors.append((ft, 2, 2))
    return factors


class UNet(nn.Module):
    """U-net returning class logits.

    Input ``(N, in_channels, H, W)`` (2D) or ``(N, in_channels, T, H, W)`` (3D); output the same
    spatial shape with ``n_classes`` channels (logits, no softmax).
    """

    def __init__(self, cfg: UNetConfig):
        super().__init__()
        self.cfg = cfg
        _, _, pool, up = _layers(cfg.dims)
        conv = nn.Conv2d if cfg.dims == 2 else nn.Conv3d
        widths = [cfg.initial_filters * 2**k for k in range(cfg.depth)]
        factors = pooling_factors(cfg)
        self.encoders = nn.ModuleList()
        self.pools = nn.ModuleList()
        c_prev = cfg.in_channels
        for k, w in enumerate(widths):
            self.encoders.append(ConvBlock(cfg.dims, c_prev, w))
            c_prev = w
            if k < cfg.depth - 1:
                self.pools.append(pool(factors[k], stride=factors[k]))
        self.ups = nn.ModuleList()
        self.decoders = nn.ModuleList()
        for k in reversed(range(cfg.depth - 1)):
            self.ups.append(up(widths[k + 1], widths[k], factors[k], stride=factors[k]))
            self.decoders.append(ConvBlock(cfg.dims, 2 * widths[k], widths[k]))
        self.head = conv(widths[0], cfg.n_classes, 1)

    def latency_keys(self, size) -> list | None:
        """2D: the latency-table keys of the U-net skeleton this network is, layer for layer (two conv-BN-ReLU per
        block, widths IF * 2^k, max pool down, 2x2 transposed conv up: ``IFc2-2IFc2-...``,
        ``search.core.supernets.unet_skeleton.skeleton_keys``), so ``latency-check`` can predict the per-frame
        baseline from the skeleton space's table. 3D: None (no table of this network's ops)."""
        if self.cfg.dims != 2:
            return None
        from search.core.derived.unet_skeleton import Level, UNetSkeleton
        from search.core.supernets.unet_skeleton import skeleton_keys

        skeleton = UNetSkeleton(tuple(Level(self.cfg.initial_filters * 2**k, "c", 2) for k in range(self.cfg.depth)))
        return skeleton_keys(skeleton, size, self.cfg.in_channels, self.cfg.n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for k, enc in enumerate(self.encoders):
            x = enc(x)
            if k < len(self.pools):
                skips.append(x)
                x = self.pools[k](x)
        for up, dec in zip(self.ups, self.decoders):
            x = up(x)
            x = dec(torch.cat([skips.pop(), x], dim=1))
        return self.head(x)


class FrameWiseUNet(nn.Module):
    """A 2D U-net (any 2D network) applied to every frame of a clip: ``(N, C, T, H, W) -> (N, K, T, H, W)``.

    Used to train/evaluate per-frame cine baselines on the same clips as the 3D ones; the exported
    model is the bare 2D U-net (``clip_length`` 1).
    """

    def __init__(self, unet2d: nn.Module):
        super().__init__()
        cfg = getattr(unet2d, "cfg", None)
        if cfg is not None and getattr(cfg, "dims", 2) != 2:
            raise ValueError("FrameWiseUNet wraps a 2D U-net")
        self.unet = unet2d

    def forward(self, clip: torch.Tensor, *args) -> torch.Tensor:
        """``args`` go to the 2D network after the frames (a supernet's weighting)."""
        n, c, t, h, w = clip.shape
        frames = clip.permute(0, 2, 1, 3, 4).reshape(n * t, c, h, w)
        logits = self.unet(frames, *args)
        return logits.reshape(n, t, -1, h, w).permute(0, 2, 1, 3, 4)
