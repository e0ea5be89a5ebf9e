"""Candidate operators of the three search spaces, in 2D and 3D, each carrying its latency-table key.

Every module that costs time in a supernet or a derived network is a :class:`CandidateOp`: the searched
primitives (``conv``, ``dil_conv``, ``sep_conv``, pools, ``identity``, ``zero`` and their ``down_`` /
``up_`` versions) and the fixed ops around them (``stem``, ``conv1x1`` preprocessing, ``proj1x1``
residual projection, ``upsample``, ``pool2x``, ``classifier``, ``seg_head``, ``qc_head``). Each knows its signature in the
lookup table through :meth:`CandidateOp.latency_key`, and :func:`op_from_key` rebuilds an op from a key,
so the profiler can measure exactly what the search and the derived networks contain.

Conventions (chosen once, used everywhere):

- A conv op is conv -> BatchNorm -> ReLU (also for transposed convs). ``proj1x1`` (ResNet residual
  projection) is conv -> BN without ReLU, as in ResNet. ``seg_head`` is a bare 1x1 conv.
- Tensors are ``(N, C, H, W)`` in 2D and ``(N, C, T, H, W)`` in 3D, where T is time (a cine clip).
- In 3D, scaling (``down_*`` stride 2, ``up_*`` x2, ``upsample``, ``pool2x``) acts on H and W only and
  never on T: a clip of T frames must give T masks and T = 20 is not divisible by 2^3. Kernels are
  3x3x3 (time is convolved, not scaled). ``OpKey.stride == 2`` therefore means stride (1, 2, 2) in 3D.
- Down ops (stride 2) give ``ceil(H / 2)``; up ops give exactly ``2 H``.
- ``zero`` returns zeros of the output shape; estimators charge it 0 ms without a table lookup
  (:data:`FREE_OPS`), and decoders never select it.
- Causal time (3D only, :func:`make_causal`, off by default): an op whose kernel spans time (``conv``,
  ``dil_conv``, ``sep_conv``, the 3x3x3 pools, ``stem``, and their ``down_`` versions) pads time on the
  past side only, so output frame t depends on input frames <= t: ``time_context`` = (k_t - 1) x
  dilation past frames of zeros (convs), of -inf (max pool), or of frames that do not count (avg pool,
  ``count_include_pad=False`` kept exact by a validity channel, see :class:`PoolOp`). Every other op
  is per frame already (1x1 convs, ``upsample`` and ``pool2x`` never touch T, BatchNorm in eval).
  The transposed ``up_*`` convs are not made causal (``set_causal`` raises): no causal space uses them.
  A causal op can also run *streaming* (``search.export.streaming``): with ``stream_state`` set to
  its last ``time_context`` input frames it prepends them instead of the padding, and leaves the new
  state (its last ``time_context`` input frames, now including the new ones) in ``new_state``.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from search.core.keys import OpKey
from search.core.op_names import (  # noqa: F401  (re-exported: the names and sets belong with the ops)
    FIXED_OPS,
    FREE_OPS,
    MSNAS_OPS,
    OP_NAMES,
    OP_SETS,
    PARAMETER_FREE_OPS,
    SEGQC_DOWN,
    SEGQC_DOWN_OR_ZERO,
    SEGQC_NORMAL,
    SEGQC_UP,
    SEGQC_UP_OR_ZERO,
)


def _conv_cls(dims: int, transposed: bool = False) -> type[nn.Module]:
    if dims == 2:
        return nn.ConvTranspose2d if transposed else nn.Conv2d
    if dims == 3:
        return nn.ConvTranspose3d if transposed else nn.Conv3d
    raise ValueError(f"dims must be 2 or 3, got {dims}")


def _bn(dims: int, c: int) -> nn.Module:
    return nn.BatchNorm2d(c) if dims == 2 else nn.BatchNorm3d(c)


def _spatial(dims: int, value: int, time_value: int) -> int | tuple[int, ...]:
    """A per-axis argument: ``value`` on every axis in 2D, ``(time_value, value, value)`` in 3D."""
    return value if dims == 2 else (time_value, value, value)


def scale_factor(dims: int) -> tuple[float, ...]:
    """x2 upsampling factors: ``(2, 2)`` in 2D, ``(1, 2, 2)`` in 3D (time is never scaled)."""
    return (2.0, 2.0) if dims == 2 else (1.0, 2.0, 2.0)


class CandidateOp(nn.Module):
    """Base of every op that costs time; knows its latency-table signature.

    Attributes:
        op_name: Name in the op table (e.g. ``"down_sep_conv"``).
        dims: 2 or 3.
        c_in: Input channels.
        c_out: Output channels.
        stride: 2 for down ops and ``pool2x`` (spatial H, W only in 3D), 1 otherwise (up ops too).
    """

    time_pad_value: float = 0.0
    """What the past is padded with in causal mode (zeros; -inf for max pools)."""

    def __init__(self, op_name: str, dims: int, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        if dims not in (2, 3):
            raise ValueError(f"{op_name}: dims must be 2 or 3, got {dims}")
        self.op_name, self.dims, self.c_in, self.c_out, self.stride = op_name, dims, c_in, c_out, stride
        self.causal = False
        self.stream_state: torch.Tensor | None = None  # streaming: the op's last time_context input frames
        self.new_state: torch.Tensor | None = None  # streaming: what stream_state becomes after this call

    @property
    def time_extent(self) -> int:
        """Frames the op's kernel spans in time, dilation included (1: per frame)."""
        return 1

    @property
    def time_context(self) -> int:
        """Past input frames one causal output frame needs besides its own (0: the op is per frame)."""
        return self.time_extent - 1 if self.dims == 3 else 0

    @property
    def state_channels(self) -> int:
        """Channels of the op's streaming state (its input channels; avg pools add a validity channel)."""
        return self.c_in

    def set_causal(self, causal: bool = True) -> None:
        """Switch causal time on or off (a no-op for ops that are per frame)."""
        if self.time_context == 0:
            return
        self.causal = bool(causal)
        self._set_time_padding(0 if causal else self.time_context // 2)

    def _set_time_padding(self, pad: int) -> None:
        """Set the time padding of the op's temporal layer (kernel-spanning ops override this)."""
        raise NotImplementedError(f"{self.op_name}: no causal mode")

    def _past(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` with its past prepended along T: the streaming state, else ``time_context`` padded frames."""
        n = self.time_context
        if self.stream_state is not None:
            if self.new_state is not None:
                raise RuntimeError(f"{self.op_name}: a streaming op ran twice in one step (its state would be lost)")
            x = torch.cat([self.stream_state, x], dim=2)
            self.new_state = x[:, :, -n:]
            return x
        return F.pad(x, (0, 0, 0, 0, n, 0), value=self.time_pad_value)

    def latency_key(self, input_spatial_shape: Sequence[int]) -> OpKey:
        """Table key of this op fed a batch-1 input of spatial shape ``(H, W)`` or ``(T, H, W)``."""
        shape = tuple(int(s) for s in input_spatial_shape)
        if len(shape) != self.dims:
            raise ValueError(f"{self.op_name}: a {self.dims}D op needs a {self.dims}-axis shape, got {shape}")
        return OpKey(self.op_name, self.dims, self.c_in, self.c_out, shape, self.stride)

    def extra_repr(self) -> str:
        return f"{self.op_name}, {self.dims}d, {self.c_in}->{self.c_out}, stride={self.stride}"


class ConvUnit(CandidateOp):
    """conv(k, dilation, stride) -> BN -> ReLU. ``(N, c_in, *S) -> (N, c_out, *S')``."""

    def __init__(self, op_name, dims, c_in, c_out, stride=1, kernel=3, dilation=1, relu=True):
        super().__init__(op_name, dims, c_in, c_out, stride)
        pad = dilation * (kernel - 1) // 2
        conv = _conv_cls(dims)(
            c_in, c_out, kernel, stride=_spatial(dims, stride, 1), padding=pad, dilation=dilation, bias=False
        )
        layers = [conv, _bn(dims, c_out)] + ([nn.ReLU(inplace=False)] if relu else [])
        self.body = nn.Sequential(*layers)
        self.kernel, self.dilation = kernel, dilation

    @property
    def time_extent(self) -> int:
        return self.dilation * (self.kernel - 1) + 1

    def _set_time_padding(self, pad: int) -> None:
        conv = self.body[0]
        conv.padding = (pad, *conv.padding[1:])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self._past(x) if self.causal else x)


class SepConv(CandidateOp):
    """Depthwise 3x3 conv (stride) -> pointwise 1x1 conv -> BN -> ReLU."""

    def __init__(self, op_name, dims, c_in, c_out, stride=1):
        super().__init__(op_name, dims, c_in, c_out, stride)
        conv = _conv_cls(dims)
        self.body = nn.Sequential(
            conv(c_in, c_in, 3, stride=_spatial(dims, stride, 1), padding=1, groups=c_in, bias=False),
            conv(c_in, c_out, 1, bias=False),
            _bn(dims, c_out),
            nn.ReLU(inplace=False),
        )

    @property
    def time_extent(self) -> int:
        return 3

    def _set_time_padding(self, pad: int) -> None:
        conv = self.body[0]
        conv.padding = (pad, *conv.padding[1:])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self._past(x) if self.causal else x)


class UpConvUnit(CandidateOp):
    """x2 (H, W) upsampling by a stride-2 transposed 3x3 conv -> BN -> ReLU; output exactly 2x.

    ``separable=True``: depthwise transposed conv, then pointwise 1x1 conv. ``dilation=2``: dilated kernel.
    """

    def __init__(self, op_name, dims, c_in, c_out, dilation=1, separable=False):
        super().__init__(op_name, dims, c_in, c_out, stride=1)
        # out = (in - 1) * s - 2 p + d (k - 1) + op + 1 == 2 in  with k=3, s=2: p = d, op = 1.
        tconv = _conv_cls(dims, transposed=True)
        groups, mid = (c_in, c_in) if separable else (1, c_out)
        layers: list[nn.Module] = [
            tconv(
                c_in, mid, 3, stride=_spatial(dims, 2, 1), padding=dilation,
                output_padding=_spatial(dims, 1, 0), dilation=dilation, groups=groups, bias=False,
            )
        ]
        if separable:
            layers.append(_conv_cls(dims)(c_in, c_out, 1, bias=False))
        layers += [_bn(dims, c_out), nn.ReLU(inplace=False)]
        self.body = nn.Sequential(*layers)

    @property
    def time_extent(self) -> int:
        return 3

    def set_causal(self, causal: bool = True) -> None:
        if causal and self.dims == 3:
            raise ValueError(f"{self.op_name}: the transposed up convs have no causal (streaming) mode")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class PoolOp(CandidateOp):
    """3x3 max / average pool (padding 1, stride 1 or 2), then a 1x1 conv-BN-ReLU when C changes.

    Causal (3D): the max pool pads the past with -inf (what its own padding is). The average pool
    (``count_include_pad=False``: a padded position does not count) carries a validity channel, 1 on
    every real frame and 0 on padded (or initial-state) frames: the pool sums the frames and the
    validity over the window (zero spatial padding, ``count_include_pad=True`` times the window size)
    and divides one by the other, so a padded past frame counts as nothing, as in the symmetric pool.
    Its streaming state is the input frames with that channel (``c_in + 1`` channels, zeros at start).
    """

    def __init__(self, op_name, dims, c_in, c_out, stride=1, kind="max"):
        super().__init__(op_name, dims, c_in, c_out, stride)
        self.kind = kind
        self.time_pad_value = float("-inf") if kind == "max" else 0.0
        k, s = _spatial(dims, 3, 3), _spatial(dims, stride, 1)
        if kind == "max":
            self.pool = (nn.MaxPool2d if dims == 2 else nn.MaxPool3d)(k, stride=s, padding=1)
        else:
            self.pool = (nn.AvgPool2d if dims == 2 else nn.AvgPool3d)(k, stride=s, padding=1, count_include_pad=False)
        self.project = None
        if c_in != c_out:  # plain modules: the pool op is timed as one unit
            self.project = nn.Sequential(
                _conv_cls(dims)(c_in, c_out, 1, bias=False), _bn(dims, c_out), nn.ReLU(inplace=False)
            )

    @property
    def time_extent(self) -> int:
        return 3

    @property
    def state_channels(self) -> int:
        return self.c_in + (1 if self.kind == "avg" else 0)

    def _set_time_padding(self, pad: int) -> None:
        self.pool.padding = (pad, 1, 1)

    def _causal_pool(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "max":
            return self.pool(self._past(x))
        xv = self._past(torch.cat([x, torch.ones_like(x[:, :1])], dim=1))
        sums = F.avg_pool3d(xv, self.pool.kernel_size, stride=self.pool.stride, padding=(0, 1, 1),
                            count_include_pad=True)
        return sums[:, :-1] / sums[:, -1:]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self._causal_pool(x) if self.causal else self.pool(x)
        return self.project(y) if self.project is not None else y


class IdentityOp(CandidateOp):
    """Skip connection; only defined for c_in == c_out at stride 1."""

    def __init__(self, op_name, dims, c_in, c_out):
        if c_in != c_out:
            raise ValueError(f"identity needs c_in == c_out, got {c_in} -> {c_out}")
        super().__init__(op_name, dims, c_in, c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class ZeroOp(CandidateOp):
    """No connection: zeros of the output shape ``(N, c_out, *S')`` (S' halved in H, W at stride 2, doubled in
    H, W when ``upsampling``: the zero candidate beside ``up_*`` ops, see :func:`edge_op`)."""

    def __init__(self, op_name, dims, c_in, c_out, stride=1):
        super().__init__(op_name, dims, c_in, c_out, stride)
        self.upsampling = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 2:
            x = x[..., ::2, ::2]
        elif self.upsampling:
            x = x[:, :1].repeat_interleave(2, dim=-1).repeat_interleave(2, dim=-2)
        if self.c_out == self.c_in:
            return x.mul(0.0)
        # stay in the autograd graph (a mixed op's sum must have a grad_fn even if all else is zero)
        return x[:, :1].mul(0.0).expand(-1, self.c_out, *([-1] * (x.dim() - 2)))


class Upsample(CandidateOp):
    """Fixed x2 (H, W) bilinear (2D) / trilinear (3D, T kept) upsampling; channels unchanged."""

    def __init__(self, op_name, dims, c_in, c_out):
        if c_in != c_out:
            raise ValueError(f"upsample keeps channels, got {c_in} -> {c_out}")
        super().__init__(op_name, dims, c_in, c_out)
        self.mode = "bilinear" if dims == 2 else "trilinear"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=scale_factor(self.dims), mode=self.mode, align_corners=False)


class Pool2x(CandidateOp):
    """Fixed 2x2 max pool, stride 2 on (H, W) (1x2x2 in 3D); channels unchanged."""

    def __init__(self, op_name, dims, c_in, c_out):
        if c_in != c_out:
            raise ValueError(f"pool2x keeps channels, got {c_in} -> {c_out}")
        super().__init__(op_name, dims, c_in, c_out, stride=2)
        k = _spatial(dims, 2, 1)
        self.pool = (nn.MaxPool2d if dims == 2 else nn.MaxPool3d)(k, stride=k, ceil_mode=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(x)


class Classifier(CandidateOp):
    """Bare 1x1 conv (with bias) to class logits. ``(N, c_in, *S) -> (N, c_out, *S)``."""

    def __init__(self, op_name, dims, c_in, c_out):
        super().__init__(op_name, dims, c_in, c_out)
        self.classify = _conv_cls(dims)(c_in, c_out, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(x)


class SegHead(CandidateOp):
    """1x1 conv to class logits, plus the per-pixel softmax entropy (uncertainty) in-graph.

    ``(N, c_in, *S) -> (logits (N, c_out, *S), entropy (N, 1, *S))``; entropy in nats, in
    ``[0, log c_out]``.
    """

    def __init__(self, op_name, dims, c_in, c_out):
        super().__init__(op_name, dims, c_in, c_out)
        self.classify = _conv_cls(dims)(c_in, c_out, 1, bias=True)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.classify(x)
        return logits, softmax_entropy(logits)


def softmax_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Per-pixel entropy of the channel softmax. ``(N, K, *S) -> (N, 1, *S)``."""
    log_p = torch.log_softmax(logits, dim=1)
    return -(log_p.exp() * log_p).sum(dim=1, keepdim=True)


class QcHead(CandidateOp):
    """Global average pool -> linear -> sigmoid: predicted Dice. ``(N, c_in, *S) -> (N,)`` in [0, 1]."""

    def __init__(self, op_name, dims, c_in, c_out=1):
        if c_out != 1:
            raise ValueError(f"qc_head predicts one Dice value, got c_out={c_out}")
        super().__init__(op_name, dims, c_in, 1)
        self.linear = nn.Linear(c_in, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = x.mean(dim=tuple(range(2, x.dim())))
        return torch.sigmoid(self.linear(pooled)).squeeze(1)


OpFactory = Callable[[int, int, int, int], CandidateOp]
"""``factory(dims, c_in, c_out, stride) -> CandidateOp``."""


def _f(cls, **kw):
    return lambda name, dims, c_in, c_out, stride: cls(name, dims, c_in, c_out, **kw)


def _fs(cls, **kw):
    return lambda name, dims, c_in, c_out, stride: cls(name, dims, c_in, c_out, stride=stride, **kw)


_OPS: dict[str, tuple[Callable[..., CandidateOp], tuple[int, ...]]] = {
    # name: (factory(name, dims, c_in, c_out, stride), allowed strides; the first is the default)
    "conv": (_f(ConvUnit), (1,)),
    "dil_conv": (_f(ConvUnit, dilation=2), (1,)),
    "sep_conv": (_f(SepConv), (1,)),
    "max_pool": (_f(PoolOp, kind="max"), (1,)),
    "avg_pool": (_f(PoolOp, kind="avg"), (1,)),
    "identity": (_f(IdentityOp), (1,)),
    "zero": (_fs(ZeroOp), (1, 2)),
    "down_conv": (_f(ConvUnit, stride=2), (2,)),
    "down_dil_conv": (_f(ConvUnit, stride=2, dilation=2), (2,)),
    "down_sep_conv": (_f(SepConv, stride=2), (2,)),
    "down_max_pool": (_f(PoolOp, stride=2, kind="max"), (2,)),
    "down_avg_pool": (_f(PoolOp, stride=2, kind="avg"), (2,)),
    "up_conv": (_f(UpConvUnit), (1,)),
    "up_dil_conv": (_f(UpConvUnit, dilation=2), (1,)),
    "up_sep_conv": (_f(UpConvUnit, separable=True), (1,)),
    # fixed ops
    "stem": (_f(ConvUnit), (1,)),
    "conv1x1": (_fs(ConvUnit, kernel=1), (1, 2)),
    "proj1x1": (_fs(ConvUnit, kernel=1, relu=False), (2, 1)),
    "upsample": (_f(Upsample), (1,)),
    "pool2x": (_f(Pool2x), (2,)),
    "classifier": (_f(Classifier), (1,)),
    "seg_head": (_f(SegHead), (1,)),
    "qc_head": (_f(QcHead), (1,)),
}

if tuple(_OPS) != OP_NAMES:  # the torch-free names (search.core.op_names) must be exactly the ops built here
    raise ImportError(f"search.core.op_names.OP_NAMES {OP_NAMES} differs from the ops built in search.core.ops "
                      f"{tuple(_OPS)}")


def edge_op(name: str, op_set: Sequence[str], dims: int, c_in: int, c_out: int) -> CandidateOp:
    """Candidate ``name`` of an edge whose candidates are ``op_set``: ``build_op``, except that ``zero`` takes the
    scaling of the set's other ops (stride 2 beside ``down_*`` ops, x2 beside ``up_*`` ops) so that every
    candidate of the edge gives the same output shape."""
    if name != "zero":
        return build_op(name, dims, c_in, c_out)
    others = [n for n in op_set if n != "zero"]
    down = bool(others) and all(n.startswith("down_") for n in others)
    op = build_op("zero", dims, c_in, c_out, stride=2 if down else 1)
    op.upsampling = bool(others) and all(n.startswith("up_") for n in others)
    return op


def build_op(name: str, dims: int, c_in: int, c_out: int, stride: int | None = None) -> CandidateOp:
    """Build one op from the table.

    Args:
        name: An entry of :data:`OP_NAMES`.
        dims: 2 or 3.
        c_in, c_out: Channels.
        stride: Only for ops that allow two strides (``conv1x1``, ``proj1x1``, ``zero``); the name
            implies it otherwise (``down_*`` = 2).

    Raises:
        ValueError: unknown name, or a stride the op does not have.
    """
    try:
        factory, strides = _OPS[name]
    except KeyError:
        raise ValueError(f"unknown op {name!r}; known: {', '.join(OP_NAMES)}") from None
    stride = strides[0] if stride is None else int(stride)
    if stride not in strides:
        raise ValueError(f"op {name!r} has stride {strides}, not {stride}")
    op = factory(name, dims, c_in, c_out, stride)
    if op.stride != stride:  # ops whose stride is fixed by the name
        raise ValueError(f"op {name!r} has stride {op.stride}, not {stride}")
    return op


def make_causal(module: nn.Module, causal: bool = True) -> nn.Module:
    """Switch every op in ``module`` to causal time (or back); returns ``module``.

    Raises:
        ValueError: an op with no causal mode (the transposed ``up_*`` convs) in a 3D network.
    """
    for m in module.modules():
        if isinstance(m, CandidateOp):
            m.set_causal(causal)
    return module


def op_from_key(key: OpKey) -> CandidateOp:
    """Rebuild the op a latency key describes (for the profiler); weights are freshly initialised."""
    return build_op(key.op, key.dims, key.c_in, key.c_out, stride=key.stride)


def example_input(key: OpKey, generator: torch.Generator | None = None) -> torch.Tensor:
    """A batch-1 random input for the op of ``key``: ``(1, c_in, *key.shape)``, float32."""
    return torch.randn((1, key.c_in, *key.shape), generator=generator)


def output_spatial_shape(name: str, shape: Sequence[int], stride: int = 1) -> tuple[int, ...]:
    """Spatial shape op ``name`` produces from ``shape`` (``(H, W)`` or ``(T, H, W)``), without running it.

    Stride 2 (down ops, ``pool2x``, strided ``conv1x1`` / ``proj1x1`` / ``zero``) halves H and W
    (rounding up); up ops and ``upsample`` double them; T is never scaled.
    """
    shape = tuple(int(s) for s in shape)
    lead, (h, w) = shape[:-2], shape[-2:]
    if stride == 2 or name.startswith("down_") or name == "pool2x":
        return (*lead, (h + 1) // 2, (w + 1) // 2)
    if name.startswith("up_") or name == "upsample":
        return (*lead, 2 * h, 2 * w)
    return shape
