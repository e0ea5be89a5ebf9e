"""The FBNet-style supernet of the U-net skeleton space (``search.core.derived.unet_skeleton``).

The space (:class:`SkeletonChoices`): per level (full resolution first) a width from a few candidates and
one block token from a shared list (``c2``: two dense 3x3 conv-BN-ReLU, ``s1``: one depthwise-separable,
...); the input stride (1, or 2 for a half-resolution U) is fixed, not searched. The supernet wires
exactly as :class:`~search.core.derived.unet_skeleton.SkeletonUNet` (optional stride-2 dense entry conv,
max-pool down, ``ConvTranspose2d(2, stride 2)`` up, concatenated skip, decoder block on twice the level's
width, 1x1 head, logits upsampled x2 bilinearly after a stride-2 entry) and relaxes the choices:

- **Block** (FBNet, DARTS): every encoder and decoder block is a mixture of one candidate module per
  token, ``y = sum_b w_b * block_b(x)``; each candidate is built at its level's *largest* width, its
  input at the largest width of what feeds it. With a single-path weighting (GDAS,
  ``ArchWeighting.gdas``) only the sampled candidate runs, ``y = h_b* * block_b*(x)``, as
  ``search.core.mixed.MixedOp`` does: its value is the candidate's output, the logits get a gradient
  through the straight-through weight ``h_b*``.
- **Width** (FBNetV2 channel masking): level k's width weights ``w`` (over its candidate widths
  ``W_k,i``) make the mask ``m_k[c] = sum_i w_i * 1[c < W_k,i]``, shape ``(1, Wmax_k, 1, 1)``. Every
  feature map a derived network holds at level k's width is multiplied by it: each conv output of the
  level's encoder and decoder blocks (not only the block outputs, so a block's inner convs are as narrow
  as the derived network's), the up-conv output feeding the level's decoder, and the stride-2 entry conv
  (it feeds level 0). The depthwise half of a separable conv runs on its *input's* channels, so its
  output is masked with the input's mask (the concatenated skip + up input of a decoder: ``[m_k, m_k]``).
  With one-hot width weights the supernet is therefore exactly a derived network whose weights are
  slices of the supernet's (:meth:`SkeletonSupernet.subnet`), BatchNorm shifts included.

Architecture parameters live under ``skeleton_arch`` (an ``nn.ParameterDict``), one logit vector per
decision, and are the softmax groups ``search.core.convergence`` reports: ``skeleton_arch.enc<k>``
(level k's encoder block, ``(len(blocks),)``), ``skeleton_arch.dec<k>`` (its decoder block; none for the
bottom level, which has no decoder), ``skeleton_arch.width<k>`` (``(len(widths[k]),)``). A group with a
single candidate still has its (one-entry) parameter; ``softmax_groups`` leaves it out.

Latency (FBNet additive, per whole block): table keys are :class:`~search.core.keys.OpKey` s with op
names of this module (``skel_<token>`` for a block, ``skel_entry``, ``skel_pool``, ``skel_up``,
``skel_head``, ``skel_resize``), each the derived network's module at that place, batch 1
(:func:`build_block_for_key` builds it for the profiler). The concatenation of a skip is not charged.
:meth:`SkeletonSupernet.expected_latency` is the expectation of the derived network's table sum when
every decision is drawn independently from its weights: a block's input and output widths come from
the feeding level's and its own level's width distributions, ``sum_ij p_in(i) p_out(j) sum_b p_b(b)
ms(b, W_i, W_j)``; where both are the same level's width (a decoder block: ``2W -> W``; level 0's encoder
after the entry: ``W -> W``) it is one draw, ``sum_i p(i) sum_b p_b(b) ms(b, ., W_i)``. It is exact for
this product distribution and equals :func:`derived_latency` of the decoded network for one-hot weights.
"""

from __future__ import annotations

import itertools
import random
import re
from dataclasses import dataclass
from functools import partial
from typing import Callable, Mapping, Sequence, Union

import torch
from torch import nn
from torch.nn import functional as F

from search.core.derived.unet_skeleton import OPS, Level, SkeletonUNet, UNetSkeleton, _conv, block
from search.core.keys import LatencyLookup, OpKey
from search.core.mixed import SOFTMAX, ArchWeighting, sampled_index
from search.core.supernets.base import Supernet, check_divisible, make_generator

DEFAULT_BLOCKS = ("c2", "c1", "s2", "s1")
"""U-net's own block (two dense convs), one dense conv, and their depthwise-separable versions."""

BLOCK_OP_PREFIX = "skel_"
"""A block's table op name is this prefix and its token (``skel_c2``)."""
ENTRY_OP, POOL_OP, UP_OP, HEAD_OP, RESIZE_OP = "skel_entry", "skel_pool", "skel_up", "skel_head", "skel_resize"
"""Table op names of the fixed-structure places: the stride-2 entry conv-BN-ReLU, a 2x2 max pool, a 2x2
stride-2 transposed conv (key shape: its *input*, the level below), the 1x1 head, the x2 bilinear resize
of the logits (stride-2 entry only)."""

_BLOCK_TOKEN = re.compile(r"^([a-z])(\d+)$")
_DEPTHWISE_LAYERS = 3
"""A separable conv (``unet_skeleton._conv("s", ...)``) is depthwise, BN, ReLU, then pointwise, BN, ReLU."""

Table = Union[Mapping[str, float], LatencyLookup]


def parse_block(token: str) -> tuple[str, int]:
    """``"s2"`` -> ``("s", 2)``: the op letter (a key of ``unet_skeleton.OPS``) and the convs per block."""
    match = _BLOCK_TOKEN.match(token)
    if match is None or match[1] not in OPS or int(match[2]) < 1:
        raise ValueError(f"block token {token!r} is not <op><convs> with op one of {sorted(OPS)} "
                         "and convs >= 1 (e.g. 'c2', 's1')")
    return match[1], int(match[2])


def block_token(level: Level) -> str:
    """A level's block token, its spec token without the width (``Level(16, "s", 2)`` -> ``"s2"``)."""
    return f"{level.op}{level.convs}"


@dataclass(frozen=True)
class SkeletonChoices:
    """The searched space.

    Attributes:
        widths: Candidate widths per level, full resolution first, each tuple strictly ascending
            (lists are accepted and stored as tuples).
        blocks: Candidate block tokens (op letter + convs, e.g. ``"c2"``), shared by every block.
        input_stride: 1, or 2 for the half-resolution U (fixed, not searched).
        in_channels: Image channels.
        n_classes: Segmentation classes incl. background.
    """

    widths: tuple[tuple[int, ...], ...]
    blocks: tuple[str, ...] = DEFAULT_BLOCKS
    input_stride: int = 1
    in_channels: int = 3
    n_classes: int = 2

    def __post_init__(self) -> None:
        object.__setattr__(self, "widths", tuple(tuple(int(w) for w in level) for level in self.widths))
        object.__setattr__(self, "blocks", tuple(self.blocks))
        if not self.widths:
            raise ValueError("skeleton choices need at least one level of widths")
        for k, level in enumerate(self.widths):
            if not level:
                raise ValueError(f"level {k} has no candidate width")
            if level[0] < 1 or any(a >= b for a, b in zip(level, level[1:])):
                raise ValueError(f"level {k}'s candidate widths must be >= 1 and strictly ascending, got {level}")
        if not self.blocks:
            raise ValueError("skeleton choices need at least one block token")
        if len(set(self.blocks)) != len(self.blocks):
            raise ValueError(f"block tokens must be distinct, got {self.blocks}")
        for token in self.blocks:
            parse_block(token)
        if self.input_stride not in (1, 2):
            raise ValueError(f"input stride must be 1 or 2, got {self.input_stride}")
        if self.in_channels < 1 or self.n_classes < 1:
            raise ValueError(f"in_channels and n_classes must be >= 1, got {self.in_channels}, {self.n_classes}")

    @property
    def depth(self) -> int:
        return len(self.widths)

    @property
    def max_widths(self) -> tuple[int, ...]:
        """The width each level's supernet modules are built at."""
        return tuple(level[-1] for level in self.widths)

    @property
    def divisor(self) -> int:
        """What the input's height and width must be divisible by."""
        return self.input_stride * 2 ** (self.depth - 1)

    def contains(self, skeleton: UNetSkeleton) -> bool:
        """Whether ``skeleton`` is a network of this space."""
        return (len(skeleton.levels) == self.depth and skeleton.input_stride == self.input_stride
                and not skeleton.refine and not skeleton.shuffle
                and all(lv.width in ws and block_token(lv) in self.blocks
                        for lv, ws in zip(skeleton.levels, self.widths)))

    def sample(self, rng: random.Random) -> UNetSkeleton:
        """A uniformly random network of the space (each level's width and block drawn independently)."""
        levels = []
        for ws in self.widths:
            op, convs = parse_block(rng.choice(self.blocks))
            levels.append(Level(rng.choice(ws), op, convs))
        return UNetSkeleton(tuple(levels), self.input_stride)


# ------------------------------------------------------------------------------- latency keys
def block_key(token: str, c_in: int, c_out: int, shape: tuple[int, int]) -> OpKey:
    """A whole encoder / decoder block (``unet_skeleton.block``) on a ``c_in`` x ``shape`` input."""
    return OpKey(BLOCK_OP_PREFIX + token, 2, c_in, c_out, shape, 1)


def entry_key(c_in: int, c_out: int, shape: tuple[int, int]) -> OpKey:
    return OpKey(ENTRY_OP, 2, c_in, c_out, shape, 2)


def pool_key(c: int, shape: tuple[int, int]) -> OpKey:
    return OpKey(POOL_OP, 2, c, c, shape, 2)


def up_key(c_in: int, c_out: int, shape: tuple[int, int]) -> OpKey:
    return OpKey(UP_OP, 2, c_in, c_out, shape, 1)


def head_key(c_in: int, n_classes: int, shape: tuple[int, int]) -> OpKey:
    return OpKey(HEAD_OP, 2, c_in, n_classes, shape, 1)


def resize_key(n_classes: int, shape: tuple[int, int]) -> OpKey:
    return OpKey(RESIZE_OP, 2, n_classes, n_classes, shape, 1)


def level_shapes(size: int | Sequence[int], input_stride: int, depth: int) -> list[tuple[int, int]]:
    """``(H, W)`` of every level's feature maps for a square ``size`` or an ``(H, W)`` input."""
    h, w = (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[1]))
    div = input_stride * 2 ** (depth - 1)
    if h % div or w % div:
        raise ValueError(f"input {h}x{w}: H and W must be divisible by {div} (stride {input_stride}, {depth} levels)")
    return [(h // (input_stride * 2**k), w // (input_stride * 2**k)) for k in range(depth)]


def skeleton_keys(skeleton: UNetSkeleton, size: int | Sequence[int], in_channels: int = 3,
                  n_classes: int = 2) -> list[OpKey]:
    """The table keys of one derived network, once per module it runs (in execution order)."""
    if skeleton.refine or skeleton.shuffle:
        raise ValueError(f"U-net skeleton {skeleton.spec!r}: the latency table has no keys for a full-resolution "
                         f"refinement (+r) or a sub-pixel head (+ps); time such a network directly "
                         f"(bench/size_table.py --time-at)")
    levels = skeleton.levels
    shapes = level_shapes(size, skeleton.input_stride, len(levels))
    keys, c_prev = [], in_channels
    if skeleton.input_stride == 2:
        keys.append(entry_key(in_channels, levels[0].width, (shapes[0][0] * 2, shapes[0][1] * 2)))
        c_prev = levels[0].width
    for k, level in enumerate(levels):
        keys.append(block_key(block_token(level), c_prev, level.width, shapes[k]))
        c_prev = level.width
        if k < len(levels) - 1:
            keys.append(pool_key(level.width, shapes[k]))
    for k in reversed(range(len(levels) - 1)):
        keys.append(up_key(levels[k + 1].width, levels[k].width, shapes[k + 1]))
        keys.append(block_key(block_token(levels[k]), 2 * levels[k].width, levels[k].width, shapes[k]))
    keys.append(head_key(levels[0].width, n_classes, shapes[0]))
    if skeleton.input_stride == 2:
        keys.append(resize_key(n_classes, shapes[0]))
    return keys


def table_ms(table: Table, key: OpKey) -> float:
    """Milliseconds of ``key`` in a ``{canonical key: ms}`` mapping or a :class:`LatencyLookup`."""
    if isinstance(table, Mapping):
        try:
            return float(table[key.canonical()])
        except KeyError:
            raise KeyError(f"latency table has no entry {key.canonical()!r}") from None
    return float(table.get(key))


def derived_latency(skeleton: UNetSkeleton, table: Table, size: int | Sequence[int], in_channels: int = 3,
                    n_classes: int = 2) -> float:
    """The table's prediction (ms) for one derived network: the sum over :func:`skeleton_keys`."""
    return float(sum(table_ms(table, k) for k in skeleton_keys(skeleton, size, in_channels, n_classes)))


class _Resize(nn.Module):
    """The derived network's x2 bilinear upsampling of the logits."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)


def build_block_for_key(key: OpKey) -> nn.Module:
    """A fresh module (default init) of what ``key`` times in a derived network, for the profiler.

    Feed it ``(1, key.c_in, *key.shape)``; a block is exactly ``unet_skeleton.block`` (a decoder block
    takes its concatenated ``2W`` input as one tensor), the entry is ``SkeletonUNet``'s entry conv.
    """
    if key.dims != 2 or key.stream:
        raise ValueError(f"{key.canonical()}: skeleton keys are 2D clip keys")
    if key.op == ENTRY_OP:
        return nn.Sequential(*_conv("c", key.c_in, key.c_out, stride=2))
    if key.op == POOL_OP:
        return nn.MaxPool2d(2)
    if key.op == UP_OP:
        return nn.ConvTranspose2d(key.c_in, key.c_out, 2, stride=2)
    if key.op == HEAD_OP:
        return nn.Conv2d(key.c_in, key.c_out, 1)
    if key.op == RESIZE_OP:
        return _Resize()
    if key.op.startswith(BLOCK_OP_PREFIX):
        op, convs = parse_block(key.op.removeprefix(BLOCK_OP_PREFIX))
        return block(Level(key.c_out, op, convs), key.c_in)
    raise ValueError(f"{key.canonical()}: not a U-net skeleton key")


# ---------------------------------------------------------------------------------- supernet
class MaskedBlock(nn.Module):
    """One block candidate at the largest widths: ``convs`` convs of ``op``, every output channel-masked.

    ``x (N, c_in, H, W)``, ``in_mask`` ``(1, c_in, 1, 1)`` or None (all channels live), ``out_mask``
    ``(1, c_out, 1, 1)`` -> ``(N, c_out, H, W)``. Layers are ``unet_skeleton._conv``'s, one
    ``nn.Sequential`` per conv, so a derived block's weights are their slices.
    """

    def __init__(self, op: str, convs: int, c_in: int, c_out: int):
        super().__init__()
        self.op = op
        self.units = nn.ModuleList(nn.Sequential(*_conv(op, c_in if i == 0 else c_out, c_out)) for i in range(convs))

    def forward(self, x: torch.Tensor, in_mask: torch.Tensor | None, out_mask: torch.Tensor) -> torch.Tensor:
        for i, unit in enumerate(self.units):
            mask = in_mask if i == 0 else out_mask
            for j, layer in enumerate(unit):
                x = layer(x)
                if self.op == "s" and j == _DEPTHWISE_LAYERS - 1 and mask is not None:
                    x = x * mask  # the depthwise half keeps its input's channels
            x = x * out_mask
        return x


class SkeletonMixedBlock(nn.Module):
    """A searchable block: one :class:`MaskedBlock` per token, summed with external weights.

    ``x (N, c_in, H, W)``, ``weights (len(tokens),)``, masks as :class:`MaskedBlock` -> ``(N, c_out, H, W)``.
    With ``single_path`` the weights must be one-hot in value (a hard sample) and only the chosen
    candidate runs, its output times its (straight-through) weight.
    """

    def __init__(self, tokens: Sequence[str], c_in: int, c_out: int):
        super().__init__()
        self.tokens = tuple(tokens)
        self.candidates = nn.ModuleList(MaskedBlock(*parse_block(t), c_in, c_out) for t in self.tokens)

    def forward(self, x: torch.Tensor, weights: torch.Tensor, in_mask: torch.Tensor | None, out_mask: torch.Tensor,
                single_path: bool = False) -> torch.Tensor:
        if weights.shape != (len(self.candidates),):
            raise ValueError(f"mixed block with {len(self.candidates)} candidates got weights {tuple(weights.shape)}")
        if single_path:
            k = sampled_index(weights)
            return weights[k] * self.candidates[k](x, in_mask, out_mask)
        return sum(w * cand(x, in_mask, out_mask) for w, cand in zip(weights, self.candidates))

    def candidate(self, token: str) -> MaskedBlock:
        return self.candidates[self.tokens.index(token)]


@dataclass(frozen=True)
class _Term:
    """One charged place of the U: ``key(*values)`` at each choice of its ``groups`` (arch groups, in order)."""

    groups: tuple[str, ...]
    key: Callable[..., OpKey]


class SkeletonSupernet(Supernet):
    """The U-net skeleton supernet (see the module docstring).

    Args:
        choices: The searched space.
        seed: Seeds the weight initialisation (torch's default, as ``SkeletonUNet``) and the arch logits
            (``1e-3 * N(0, 1)`` from ``make_generator(seed)``, as the other supernets).
        device: Where the parameters live.

    Forward: ``x (N, in_channels, H, W)``, H and W divisible by ``choices.divisor`` ->
    ``logits (N, n_classes, H, W)``.
    """

    ARCH_PREFIXES = ("skeleton_arch.",)

    def __init__(self, choices: SkeletonChoices, seed: int = 0, device: str | torch.device = "cpu"):
        super().__init__()
        self.choices = ch = choices
        wmax = ch.max_widths
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            gen = make_generator(seed)
            arch = {}
            for k in range(ch.depth):
                arch[f"enc{k}"] = nn.Parameter(1e-3 * torch.randn(len(ch.blocks), generator=gen))
                if k < ch.depth - 1:
                    arch[f"dec{k}"] = nn.Parameter(1e-3 * torch.randn(len(ch.blocks), generator=gen))
                arch[f"width{k}"] = nn.Parameter(1e-3 * torch.randn(len(ch.widths[k]), generator=gen))
            self.skeleton_arch = nn.ParameterDict(list(arch.items()))  # a plain dict would be sorted
            self.entry = None
            c_prev = ch.in_channels
            if ch.input_stride == 2:
                self.entry = nn.Sequential(*_conv("c", ch.in_channels, wmax[0], stride=2))
                c_prev = wmax[0]
            self.encoders = nn.ModuleList()
            for k in range(ch.depth):
                self.encoders.append(SkeletonMixedBlock(ch.blocks, c_prev, wmax[k]))
                c_prev = wmax[k]
            self.pool = nn.MaxPool2d(2)
            self.ups = nn.ModuleList()
            self.decoders = nn.ModuleList()
            for k in reversed(range(ch.depth - 1)):
                self.ups.append(nn.ConvTranspose2d(wmax[k + 1], wmax[k], 2, stride=2))
                self.decoders.append(SkeletonMixedBlock(ch.blocks, 2 * wmax[k], wmax[k]))
            self.head = nn.Conv2d(wmax[0], ch.n_classes, 1)
        for k, ws in enumerate(ch.widths):  # row i: 1[c < W_k,i]
            self.register_buffer(f"width_rows{k}", (torch.arange(wmax[k])[None, :] < torch.tensor(ws)[:, None]).float(),
                                 persistent=False)
        self.to(device)

    # ------------------------------------------------------------------------------ weights
    def arch_weights(self, weighting: ArchWeighting = SOFTMAX) -> dict[str, torch.Tensor]:
        """Every group's weights (``weighting`` of its logits; one draw per group per call), by group name."""
        return {name: weighting(p) for name, p in self.skeleton_arch.items()}

    def extreme_width_weights(self, which: str, weighting: ArchWeighting = SOFTMAX) -> dict[str, torch.Tensor]:
        """:meth:`arch_weights` with every width group fixed to its largest (``"max"``) or smallest (``"min"``)
        candidate, a constant one-hot (no gradient reaches the width logits); the blocks as ``weighting``
        draws them. The two extreme networks of the sandwich rule (slimmable networks, BigNAS)."""
        if which not in ("max", "min"):
            raise ValueError(f"extreme width must be 'max' or 'min', got {which!r}")
        w = self.arch_weights(weighting)
        for k, ws in enumerate(self.choices.widths):
            onehot = torch.zeros(len(ws), device=self.head.weight.device)
            onehot[-1 if which == "max" else 0] = 1.0
            w[f"width{k}"] = onehot
        return w

    def width_mask(self, k: int, weights: torch.Tensor) -> torch.Tensor:
        """Level k's channel mask ``sum_i w_i 1[c < W_k,i]`` from its width weights ``(n_k,)``: ``(1, Wmax_k, 1, 1)``."""
        return (weights @ getattr(self, f"width_rows{k}")).view(1, -1, 1, 1)

    def forward(self, x: torch.Tensor, weighting: ArchWeighting = SOFTMAX,
                weights: Mapping[str, torch.Tensor] | None = None) -> torch.Tensor:
        """``weighting`` turns the logits into weights once per group (``weights``, from :meth:`arch_weights`,
        overrides that draw, e.g. to share it with :meth:`expected_latency`); a single-path weighting
        (``ArchWeighting.gdas``) runs one sampled candidate per block."""
        ch = self.choices
        check_divisible(tuple(x.shape[2:]), ch.depth - 1 + (ch.input_stride == 2), "SkeletonSupernet input")
        w = self.arch_weights(weighting) if weights is None else weights
        masks = [self.width_mask(k, w[f"width{k}"]) for k in range(ch.depth)]
        in_mask = None
        if self.entry is not None:
            x = self.entry(x) * masks[0]
            in_mask = masks[0]
        skips = []
        for k, enc in enumerate(self.encoders):
            x = enc(x, w[f"enc{k}"], in_mask, masks[k], weighting.single_path)
            in_mask = masks[k]
            if k < ch.depth - 1:
                skips.append(x)
                x = self.pool(x)
        for up, dec, k in zip(self.ups, self.decoders, reversed(range(ch.depth - 1))):
            x = torch.cat([skips.pop(), up(x) * masks[k]], dim=1)
            x = dec(x, w[f"dec{k}"], torch.cat([masks[k], masks[k]], dim=1), masks[k], weighting.single_path)
        logits = self.head(x)
        if self.entry is not None:
            logits = F.interpolate(logits, scale_factor=2.0, mode="bilinear", align_corners=False)
        return logits

    # ------------------------------------------------------------------------------- decode
    def decode(self) -> UNetSkeleton:
        """The derived skeleton: each level's most probable width, and its most probable block token.

        The derived network has one op / convs per level for both its encoder and decoder blocks, so a
        level's block is the argmax of ``softmax(enc_k) + softmax(dec_k)`` (the bottom level: ``enc``
        alone). Ties go to the earlier candidate. Run before any architecture step this is the initial
        argmax (``ArchTrace.initial_argmax(net.decode)``).
        """
        ch, arch, levels = self.choices, self.skeleton_arch, []
        with torch.no_grad():
            for k in range(ch.depth):
                p = torch.softmax(arch[f"enc{k}"], 0)
                if f"dec{k}" in arch:
                    p = p + torch.softmax(arch[f"dec{k}"], 0)
                op, convs = parse_block(ch.blocks[int(p.argmax())])
                levels.append(Level(ch.widths[k][int(arch[f"width{k}"].argmax())], op, convs))
        return UNetSkeleton(tuple(levels), ch.input_stride)

    def subnet(self, skeleton: UNetSkeleton | None = None) -> SkeletonUNet:
        """The derived network of ``skeleton`` (default :meth:`decode`) with the supernet's weights.

        Every weight, BatchNorm affine and running statistic is the slice of the chosen candidate at the
        chosen widths (a decoder's input channels: the first W of the skip half and of the up half), so the
        result computes what the supernet computes under one-hot weights selecting ``skeleton``: a
        one-shot evaluation of a candidate, or a warm start for retraining. Its mode follows the supernet's.
        """
        ch = self.choices
        skeleton = self.decode() if skeleton is None else skeleton
        if not ch.contains(skeleton):
            raise ValueError(f"skeleton {skeleton.spec!r} is not a network of this supernet's space {ch}")
        levels, wmax = skeleton.levels, ch.max_widths
        with torch.random.fork_rng(devices=[]):
            net = SkeletonUNet(skeleton, ch.in_channels, ch.n_classes).to(self.head.weight.device)
        first = partial(torch.arange, device=self.head.weight.device)
        with torch.no_grad():
            c_in = first(ch.in_channels)
            if self.entry is not None:
                _copy_conv_unit(self.entry, net.entry, "c", c_in, first(levels[0].width))
                c_in = first(levels[0].width)
            for k, level in enumerate(levels):
                cand = self.encoders[k].candidate(block_token(level))
                _copy_block(cand, net.encoders[k], level.op, c_in, first(level.width))
                c_in = first(level.width)
            for j, k in enumerate(reversed(range(len(levels) - 1))):
                w_k, w_below = levels[k].width, levels[k + 1].width
                net.ups[j].weight.copy_(self.ups[j].weight[:w_below, :w_k])
                net.ups[j].bias.copy_(self.ups[j].bias[:w_k])
                halves = torch.cat([first(w_k), wmax[k] + first(w_k)])
                cand = self.decoders[j].candidate(block_token(levels[k]))
                _copy_block(cand, net.decoders[j], levels[k].op, halves, first(w_k))
            net.head.weight.copy_(self.head.weight[:, : levels[0].width])
            net.head.bias.copy_(self.head.bias)
        return net.train(self.training)

    # ------------------------------------------------------------------------------ latency
    def _terms(self, size: int | Sequence[int]) -> list[_Term]:
        """Every charged place of the U with the groups its key depends on (see the module docstring)."""
        ch = self.choices
        sh = level_shapes(size, ch.input_stride, ch.depth)
        c_img, n_cls, deep = ch.in_channels, ch.n_classes, ch.depth - 1
        terms = []
        if ch.input_stride == 2:
            full = (sh[0][0] * 2, sh[0][1] * 2)
            terms.append(_Term(("width0",), lambda w: entry_key(c_img, w, full)))
            terms.append(_Term(("enc0", "width0"), lambda t, w: block_key(t, w, w, sh[0])))  # one draw in and out
        else:
            terms.append(_Term(("enc0", "width0"), lambda t, w: block_key(t, c_img, w, sh[0])))
        for k in range(1, ch.depth):
            terms.append(_Term((f"enc{k}", f"width{k - 1}", f"width{k}"),
                               lambda t, w_in, w, s=sh[k]: block_key(t, w_in, w, s)))
        for k in range(deep):
            terms.append(_Term((f"width{k}",), lambda w, s=sh[k]: pool_key(w, s)))
            terms.append(_Term((f"width{k + 1}", f"width{k}"), lambda w_in, w, s=sh[k + 1]: up_key(w_in, w, s)))
            terms.append(_Term((f"dec{k}", f"width{k}"), lambda t, w, s=sh[k]: block_key(t, 2 * w, w, s)))
        terms.append(_Term(("width0",), lambda w: head_key(w, n_cls, sh[0])))
        if ch.input_stride == 2:
            terms.append(_Term((), lambda: resize_key(n_cls, sh[0])))
        return terms

    def _values(self, group: str) -> tuple:
        """A group's candidates: block tokens, or widths."""
        if group.startswith("width"):
            return self.choices.widths[int(group.removeprefix("width"))]
        return self.choices.blocks

    def latency_keys(self, size: int | Sequence[int]) -> list[OpKey]:
        """Every distinct key a derived network of the space can hold at input ``size`` (square, or ``(H, W)``), sorted."""
        keys = set()
        for term in self._terms(size):
            for combo in itertools.product(*(self._values(g) for g in term.groups)):
                keys.add(term.key(*combo))
        return sorted(keys)

    def expected_latency(self, table: Table, size: int | Sequence[int], weighting: ArchWeighting = SOFTMAX,
                         weights: Mapping[str, torch.Tensor] | None = None) -> torch.Tensor:
        """Expected table latency (ms) of the derived network, differentiable w.r.t. the arch logits.

        Every place's table ``(n_g1, n_g2, ...)`` over the choices of the groups its key depends on is
        contracted with those groups' weights (``weighting`` of the logits, or ``weights`` from
        :meth:`arch_weights`); the places are summed. Scalar tensor. The table is read on every call.
        """
        w = self.arch_weights(weighting) if weights is None else weights
        device = self.head.weight.device
        total = torch.zeros((), device=device)
        for term in self._terms(size):
            values = [self._values(g) for g in term.groups]
            ms = [table_ms(table, term.key(*combo)) for combo in itertools.product(*values)]
            lut = torch.tensor(ms, dtype=torch.float32, device=device).reshape(tuple(len(v) for v in values))
            for g in term.groups:  # contract the leading axis with its group's weights
                lut = torch.tensordot(w[g], lut, dims=([0], [0]))
            total = total + lut
        return total


# ---------------------------------------------------------------------------- weight slicing
def _copy_bn(src: nn.BatchNorm2d, dst: nn.BatchNorm2d, idx: torch.Tensor) -> None:
    dst.weight.copy_(src.weight[idx])
    dst.bias.copy_(src.bias[idx])
    dst.running_mean.copy_(src.running_mean[idx])
    dst.running_var.copy_(src.running_var[idx])
    dst.num_batches_tracked.copy_(src.num_batches_tracked)


def _copy_conv_unit(src: Sequence[nn.Module], dst: Sequence[nn.Module], op: str, in_idx: torch.Tensor,
                    out_idx: torch.Tensor) -> None:
    """One ``_conv`` unit's weights: ``dst`` (derived) from the ``in_idx`` / ``out_idx`` slices of ``src``."""
    if op == "c":
        dst[0].weight.copy_(src[0].weight[out_idx][:, in_idx])
        _copy_bn(src[1], dst[1], out_idx)
        return
    dst[0].weight.copy_(src[0].weight[in_idx])
    _copy_bn(src[1], dst[1], in_idx)
    dst[3].weight.copy_(src[3].weight[out_idx][:, in_idx])
    _copy_bn(src[4], dst[4], out_idx)


def _copy_block(src: MaskedBlock, dst: nn.Sequential, op: str, in_idx: torch.Tensor, out_idx: torch.Tensor) -> None:
    """A derived block (``unet_skeleton.block``, its convs' layers in one flat Sequential) from a candidate."""
    layers, n = list(dst), len(src.units[0])
    for i, unit in enumerate(src.units):
        _copy_conv_unit(unit, layers[i * n:(i + 1) * n], op, in_idx if i == 0 else out_idx, out_idx)
