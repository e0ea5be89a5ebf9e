"""Canonical keys of the latency lookup table, and what an estimator needs from a table.

One key per (op, dimensionality, C_in, C_out, input spatial shape, stride), written as a string in the
Once-for-All style so the JSON table is readable and diffable, e.g.
``sep_conv|2d|cin16|cout16|in64x64|s1``.

A *per-frame* key (``stream=True``, issue 17) is the same signature with ``|stream`` appended, e.g.
``sep_conv|3d|cin16|cout16|in1x64x48|s1|stream``: the op's streaming step on one new frame plus its
carried state (``search.export.stream_latency``), measured into its own table
(``python -m search profile --per-frame``). The suffix keeps clip and per-frame entries apart: a
per-frame key never reads a clip entry, nor the other way round.

The key lives in ``search.core`` (the ops know their own key) so that the core never imports
``search.latency``; ``search.latency.keys`` re-exports it.
"""


from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Protocol


#: What ``OpKey.canonical`` appends to a per-frame (streaming step) key.
STREAM_SUFFIX = "|stream"


@dataclass(frozen=True, order=True)
class OpKey:
    """Signature of one candidate operator instance.

    Attributes:
        op: Primitive name (``"conv"``, ``"down_sep_conv"``, ``"up_conv"``, ``"max_pool"``, ...).
        dims: 2 or 3.
        c_in: Input channels.
        c_out: Output channels.
        shape: Input spatial shape, ``(H, W)`` for 2D or ``(T, H, W)`` for 3D (batch 1).
        stride: 1, or 2 for down ops; up ops (x2 upsampling) are marked by their name, stride 1.
        stream: Per-frame key: the op's streaming step (causal op, one new frame ``shape = (1, H, W)``
            plus its state), not the op on a whole clip.
    """

    op: str
    dims: int
    c_in: int
    c_out: int
    shape: tuple[int, ...]
    stride: int = 1
    stream: bool = False

    def canonical(self) -> str:
        dims = "x".join(str(int(s)) for s in self.shape)
        text = f"{self.op}|{self.dims}d|cin{self.c_in}|cout{self.c_out}|in{dims}|s{self.stride}"
        return text + STREAM_SUFFIX if self.stream else text

    @classmethod
    def parse(cls, text: str) -> "OpKey":
        stream = text.endswith(STREAM_SUFFIX)
        try:
            op, dims, cin, cout, shape, stride = text.removesuffix(STREAM_SUFFIX).split("|")
            return cls(
                op=op,
                dims=int(dims.rstrip("d")),
                c_in=int(cin.removeprefix("cin")),
                c_out=int(cout.removeprefix("cout")),
                shape=tuple(int(s) for s in shape.removeprefix("in").split("x")),
                stride=int(stride.removeprefix("s")),
                stream=stream,
            )
        except ValueError:
            raise ValueError(f"not a latency-table key: {text!r}") from None

    def per_frame(self) -> "OpKey":
        """The per-frame (streaming step) key of this op on one new frame: ``shape`` (1, H, W), ``stream``.

        Raises:
            ValueError: a 2D key (no time to stream).
        """
        if self.dims != 3:
            raise ValueError(f"{self.canonical()}: only 3D (clip) ops have a per-frame streaming step")
        return replace(self, shape=(1, *self.shape[1:]), stream=True)

    def __str__(self) -> str:
        return self.canonical()


class LatencyLookup(Protocol):
    """Anything that gives the milliseconds of a key (``search.latency.lut.LatencyTable`` does).

    ``get`` raises a ``KeyError`` naming the key (and the table file) when the key is missing.
    """

    def get(self, key: OpKey) -> float: ...
