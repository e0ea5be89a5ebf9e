"""A U-net whose every level is a choice: width, conv op and convs per block (issue 16's skeleton space).

The NAS-Unet cell space holds no network that beats the handcrafted U-net(8) on either echo task
(``docs/bench/size_table_*_unet_space*``), so the next space is U-net's own skeleton, FBNet-style: the
wiring stays U-net's (max-pool down, stride-2 transposed conv up, concatenated skip, one block per level
on each side) and each level chooses

- its width (channels; U-net(IF) is IF * 2^k at level k),
- its op: ``c`` a dense 3x3 conv-BN-ReLU, ``s`` a depthwise-separable one (3x3 depthwise-BN-ReLU, then
  1x1 pointwise-BN-ReLU, as in MobileNet),
- its convs per block (U-net has 2).

An optional stride-2 input conv (``/2:`` before the levels) runs the whole U at half resolution and
upsamples the logits bilinearly, as real-time segmentation nets (ENet, Fast-SCNN) do to buy speed at
the input size the app feeds. A half-resolution U may end in a full-resolution refinement (``+rN`` after
the levels): a dense 3x3 conv of the input to N channels, concatenated with the U's last decoder features
upsampled x2, one dense 3x3 conv to N channels and the 1x1 head at full resolution (Fast-SCNN's
detail branch, reduced to one conv each side), so edges are drawn from full-resolution pixels. Or it may end
in a sub-pixel head (``+ps`` after the levels): the 1x1 head predicts 4 logits per class at half resolution,
one for each pixel of the 2x2 block it covers, rearranged to full resolution by a pixel shuffle (ESPCN, Shi et
al. 2016), so the boundary is learned at full resolution rather than interpolated; it costs one wider 1x1 conv.

A skeleton is written as a spec string, one token per level from full resolution down, e.g. U-net(8)
is ``8c2-16c2-32c2-64c2-128c2`` and ``/2:16c2-32c2-64s2-128s2`` is the half-resolution variant with
separable deep levels; ``/2:16c2-32c2-64c2-128c2+r8`` adds an 8-channel full-resolution refinement and
``/2:16c2-32c2-64c2-128c2+ps`` a sub-pixel head.
:func:`unet_spec` writes the plain U-net of a width and depth.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F

OPS = {"c": "conv3x3", "s": "sep3x3"}
_TOKEN = re.compile(r"^(\d+)([a-z])(\d+)$")


@dataclass(frozen=True)
class Level:
    """One resolution level: ``width`` channels, ``op`` (a key of :data:`OPS`), ``convs`` per block."""

    width: int
    op: str = "c"
    convs: int = 2

    def __post_init__(self) -> None:
        if self.width < 1:
            raise ValueError(f"level width must be >= 1, got {self.width}")
        if self.op not in OPS:
            raise ValueError(f"level op must be one of {sorted(OPS)} ({OPS}), got {self.op!r}")
        if self.convs < 1:
            raise ValueError(f"convs per block must be >= 1, got {self.convs}")

    @property
    def token(self) -> str:
        return f"{self.width}{self.op}{self.convs}"


@dataclass(frozen=True)
class UNetSkeleton:
    """A U-net's levels (full resolution first), its input stride (1, or 2 for a half-resolution U), the
    channels of its full-resolution refinement (0: none; only behind stride 2) and whether a half-resolution
    U ends in a sub-pixel head (``shuffle``; only behind stride 2, not with a refinement)."""

    levels: tuple[Level, ...]
    input_stride: int = 1
    refine: int = 0
    shuffle: bool = False

    def __post_init__(self) -> None:
        if not self.levels:
            raise ValueError("a U-net skeleton needs at least one level")
        if self.input_stride not in (1, 2):
            raise ValueError(f"input stride must be 1 or 2, got {self.input_stride}")
        if self.refine < 0:
            raise ValueError(f"refinement channels must be >= 0, got {self.refine}")
        if self.refine and self.input_stride == 1:
            raise ValueError("a full-resolution refinement (+rN) only follows a half-resolution U ('/2:')")
        if self.shuffle and self.input_stride == 1:
            raise ValueError("a sub-pixel head (+ps) only follows a half-resolution U ('/2:')")
        if self.shuffle and self.refine:
            raise ValueError("a half-resolution U ends in a refinement (+rN) or a sub-pixel head (+ps), not both")

    @property
    def spec(self) -> str:
        body = "-".join(level.token for level in self.levels)
        if self.refine:
            body += f"+r{self.refine}"
        if self.shuffle:
            body += "+ps"
        return body if self.input_stride == 1 else f"/{self.input_stride}:{body}"

    @property
    def divisor(self) -> int:
        """What the input's height and width must be divisible by."""
        return self.input_stride * 2 ** (len(self.levels) - 1)

    @classmethod
    def parse(cls, spec: str) -> UNetSkeleton:
        """``[/2:]W op N-W op N-...[+rR | +ps]`` (e.g. ``/2:16c2-32c2-64s1+r8``); a ``ValueError`` that quotes
        the spec."""
        text, stride, refine, shuffle = spec.strip(), 1, 0, False
        if text.startswith("/"):
            head, sep, text = text[1:].partition(":")
            if not sep or not head.isdigit():
                raise ValueError(f"U-net skeleton {spec!r}: an input stride is written '/2:' before the levels")
            stride = int(head)
        text, *tails = text.split("+")
        for tail in tails:
            if tail == "ps":
                shuffle = True
            elif tail.startswith("r") and tail[1:].isdigit():
                refine = int(tail[1:])
            else:
                raise ValueError(f"U-net skeleton {spec!r}: after the levels come a refinement '+r<channels>' "
                                 f"(e.g. +r8) or a sub-pixel head '+ps', got {'+' + tail!r}")
        levels = []
        for token in text.split("-"):
            match = _TOKEN.match(token)
            if match is None:
                raise ValueError(f"U-net skeleton {spec!r}: level {token!r} is not <width><op><convs> "
                                 f"(op one of {sorted(OPS)}, e.g. 16c2)")
            try:
                levels.append(Level(int(match[1]), match[2], int(match[3])))
            except ValueError as exc:
                raise ValueError(f"U-net skeleton {spec!r}: level {token!r}: {exc}") from None
        try:
            return cls(tuple(levels), stride, refine, shuffle)
        except ValueError as exc:
            raise ValueError(f"U-net skeleton {spec!r}: {exc}") from None


def unet_spec(initial_filters: int, depth: int = 5) -> str:
    """The plain U-net(IF) of ``depth`` levels as a skeleton spec (``8c2-16c2-...``)."""
    return "-".join(f"{initial_filters * 2**k}c2" for k in range(depth))


def _conv(op: str, c_in: int, c_out: int, stride: int = 1) -> list[nn.Module]:
    if op == "c":
        return [nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(c_out),
                nn.ReLU(inplace=True)]
    return [nn.Conv2d(c_in, c_in, 3, stride=stride, padding=1, groups=c_in, bias=False), nn.BatchNorm2d(c_in),
            nn.ReLU(inplace=True),
            nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


def block(level: Level, c_in: int) -> nn.Sequential:
    """``level.convs`` convs of ``level.op``, ``c_in`` -> ``level.width`` channels."""
    layers: list[nn.Module] = []
    for i in range(level.convs):
        layers += _conv(level.op, c_in if i == 0 else level.width, level.width)
    return nn.Sequential(*layers)


class SkeletonUNet(nn.Module):
    """The U-net of a :class:`UNetSkeleton`, returning class logits at the input's size.

    Input ``(N, in_channels, H, W)`` with H and W divisible by ``skeleton.divisor``; output
    ``(N, n_classes, H, W)`` logits.
    """

    def __init__(self, skeleton: UNetSkeleton, in_channels: int = 3, n_classes: int = 2):
        super().__init__()
        self.skeleton = skeleton
        self.in_channels, self.n_classes = in_channels, n_classes
        levels = skeleton.levels
        self.entry = None
        c_prev = in_channels
        if skeleton.input_stride == 2:  # one dense stride-2 conv to level 0's width, then the U at half size
            self.entry = nn.Sequential(*_conv("c", in_channels, levels[0].width, stride=2))
            c_prev = levels[0].width
        self.encoders = nn.ModuleList()
        for level in levels:
            self.encoders.append(block(level, c_prev))
            c_prev = level.width
        self.pool = nn.MaxPool2d(2)
        self.ups = nn.ModuleList()
        self.decoders = nn.ModuleList()
        for k in reversed(range(len(levels) - 1)):
            self.ups.append(nn.ConvTranspose2d(levels[k + 1].width, levels[k].width, 2, stride=2))
            self.decoders.append(block(levels[k], 2 * levels[k].width))
        self.detail = self.fuse = None
        c_head = levels[0].width
        if skeleton.refine:  # full-resolution detail conv of the input, fused with the upsampled U features
            self.detail = nn.Sequential(*_conv("c", in_channels, skeleton.refine))
            self.fuse = nn.Sequential(*_conv("c", levels[0].width + skeleton.refine, skeleton.refine))
            c_head = skeleton.refine
        self.head = nn.Conv2d(c_head, n_classes * (4 if skeleton.shuffle else 1), 1)

    def latency_keys(self, size: Sequence[int]) -> list:
        """The latency-table keys this network runs on an ``(H, W)`` input, once per module
        (``search.core.supernets.unet_skeleton.skeleton_keys``; what ``latency-check`` sums for it)."""
        from search.core.supernets.unet_skeleton import skeleton_keys

        return skeleton_keys(self.skeleton, size, self.in_channels, self.n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        image = x
        if self.entry is not None:
            x = self.entry(x)
        skips = []
        for k, enc in enumerate(self.encoders):
            x = enc(x)
            if k < len(self.encoders) - 1:
                skips.append(x)
                x = self.pool(x)
        for up, dec in zip(self.ups, self.decoders):
            x = dec(torch.cat([skips.pop(), up(x)], dim=1))
        if self.fuse is not None:
            x = F.interpolate(x, size=image.shape[-2:], mode="bilinear", align_corners=False)
            return self.head(self.fuse(torch.cat([self.detail(image), x], dim=1)))
        logits = self.head(x)
        if self.skeleton.shuffle:
            return F.pixel_shuffle(logits, 2)
        if self.entry is not None:
            logits = F.interpolate(logits, scale_factor=2.0, mode="bilinear", align_corners=False)
        return logits
