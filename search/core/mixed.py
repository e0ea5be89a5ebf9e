"""Mixed operations: a weighted sum of candidate ops on one edge, with optional partial channels.

``y = sum_k w_k * op_k(x)``. The weights come from the architecture logits through
:class:`ArchWeighting` (softmax, or seeded Gumbel-softmax). With partial channel connections
(PC-DARTS, k > 1) only the first ``C / k`` channels go through the ops, the rest bypass them; the two
parts are concatenated and channel-shuffled with ``k`` groups.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Sequence

import torch
from torch import nn

from search.core.ops import CandidateOp, build_op
from search.core.keys import OpKey

WEIGHTING_MODES = ("softmax", "gumbel")


@dataclass
class ArchWeighting:
    """How architecture logits become op / edge weights.

    Attributes:
        mode: ``"softmax"`` (weight steps, DARTS) or ``"gumbel"`` (Gumbel-softmax samples ``GS(alpha)``).
        tau: Gumbel-softmax temperature.
        hard: Straight-through one-hot samples (forward one-hot, backward soft).
        generator: Seeded CPU generator for the Gumbel noise (required for ``"gumbel"``).
    """

    mode: str = "softmax"
    tau: float = 1.0
    hard: bool = False
    generator: torch.Generator | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.mode not in WEIGHTING_MODES:
            raise ValueError(f"weighting mode must be one of {WEIGHTING_MODES}, got {self.mode!r}")
        if self.mode == "gumbel" and self.generator is None:
            raise ValueError("Gumbel-softmax weighting needs an explicit torch.Generator (seeded)")

    @classmethod
    def gumbel(cls, seed: int, tau: float = 1.0, hard: bool = False) -> "ArchWeighting":
        """Gumbel-softmax weighting with its own generator seeded by ``seed``."""
        return cls("gumbel", tau, hard, torch.Generator().manual_seed(seed))

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        """Weights over the last axis of ``logits`` (any shape ``(..., K)``); rows sum to 1."""
        if self.mode == "softmax":
            return torch.softmax(logits, dim=-1)
        u = torch.rand(logits.shape, generator=self.generator).clamp_(1e-10, 1.0 - 1e-7).to(logits.device)
        y = torch.softmax((logits - torch.log(-torch.log(u))) / self.tau, dim=-1)
        if not self.hard:
            return y
        one_hot = torch.zeros_like(y).scatter_(-1, y.argmax(dim=-1, keepdim=True), 1.0)
        return one_hot - y.detach() + y

    def with_mode(self, mode: str) -> "ArchWeighting":
        return dataclasses.replace(self, mode=mode)


SOFTMAX = ArchWeighting()
"""The default deterministic weighting."""


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """ShuffleNet channel shuffle. ``(N, C, *S) -> (N, C, *S)``, C divisible by ``groups``."""
    n, c = x.shape[:2]
    spatial = x.shape[2:]
    return x.view(n, groups, c // groups, *spatial).transpose(1, 2).reshape(n, c, *spatial)


class MixedOp(nn.Module):
    """One searchable edge: every candidate op, summed with external weights.

    Args:
        op_names: Candidate op names (an op set).
        dims: 2 or 3.
        c_in, c_out: Channels of the edge (as deployed).
        pc_k: Partial-channel factor k (1 = all channels through the ops). With k > 1 the edge
            must be shape-preserving (``c_in == c_out``, no down / up ops) and ``C % k == 0``.

    Shapes: ``x (N, c_in, *S)``, ``weights (K,)`` -> ``(N, c_out, *S')``.
    """

    def __init__(self, op_names: Sequence[str], dims: int, c_in: int, c_out: int, pc_k: int = 1):
        super().__init__()
        self.op_names = tuple(op_names)
        self.dims, self.c_in, self.c_out, self.pc_k = dims, c_in, c_out, pc_k
        if pc_k > 1:
            scaling = [n for n in self.op_names if n.startswith(("down_", "up_"))]
            if c_in != c_out or scaling or c_in % pc_k:
                raise ValueError(
                    f"partial channels (k={pc_k}) need a shape-preserving edge with C divisible by k; "
                    f"got {c_in}->{c_out}, scaling ops {scaling}"
                )
        self.ops = nn.ModuleList(build_op(n, dims, c_in // pc_k, c_out // pc_k) for n in self.op_names)
        for op in self.ops:
            op.in_mixed_op = True  # tells latency_sites to use this MixedOp's deployed keys instead

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        if weights.shape != (len(self.ops),):
            raise ValueError(f"MixedOp with {len(self.ops)} ops got weights of shape {tuple(weights.shape)}")
        if self.pc_k == 1:
            return sum(w * op(x) for w, op in zip(weights, self.ops))
        part = self.c_in // self.pc_k
        head, rest = x[:, :part], x[:, part:]
        mixed = sum(w * op(head) for w, op in zip(weights, self.ops))
        return channel_shuffle(torch.cat([mixed, rest], dim=1), self.pc_k)

    def deployed_keys(self, input_spatial_shape: Sequence[int]) -> list[OpKey]:
        """Latency keys of the candidates at full channels (as a derived network deploys them).

        With partial channels the instances hold ``C / k`` channels, but the derived network runs the
        chosen op on all C channels, so the estimators and the profiler use these keys.
        """
        keys = []
        for op in self.ops:
            key = op.latency_key(input_spatial_shape)
            keys.append(dataclasses.replace(key, c_in=self.c_in, c_out=self.c_out))
        return keys

    def candidate(self, name: str) -> CandidateOp:
        return self.ops[self.op_names.index(name)]
