"""Mixed operations: a weighted sum of candidate ops on one edge, with optional partial channels.

``y = sum_k w_k * op_k(x)``. The weights come from the architecture logits through
:class:`ArchWeighting` (softmax, or seeded Gumbel-softmax). With partial channel connections
(PC-DARTS, k > 1) only the first ``C / k`` channels go through the ops, the rest bypass them; the two
parts are concatenated and channel-shuffled with ``k`` groups.

Single path (GDAS, Dong & Yang 2019, issue 16): :meth:`ArchWeighting.gdas` draws a hard Gumbel-softmax
sample per edge, one-hot in value and straight-through in gradient (``h = onehot - y.detach() + y``,
``y = softmax((alpha + g) / tau)``). A MixedOp called with ``single_path=True`` runs *only* the sampled
candidate k*: ``y = h_k* * op_k*(x)``, whose value is ``op_k*(x)``; the logits still get a gradient
through ``h_k*`` (``dL/dalpha = <dL/dy, op_k*(x)> * dy_k*/dalpha``, every logit of the edge through the
softmax). The other candidates are neither run nor differentiated, so a search step costs about one
candidate per edge instead of all of them (forward and backward, weight and architecture steps alike).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Sequence

import torch
from torch import nn

from search.core.ops import PARAMETER_FREE_OPS, CandidateOp, edge_op
from search.core.keys import OpKey

WEIGHTING_MODES = ("softmax", "gumbel")
SAMPLERS = ("darts", "gdas")
"""How a search weighs the candidates of an edge in its forward passes: ``"darts"`` (every candidate, summed
with softmax weights) or ``"gdas"`` (one sampled candidate, straight-through; see the module docstring)."""


@dataclass
class ArchWeighting:
    """How architecture logits become op / edge weights.

    Attributes:
        mode: ``"softmax"`` (weight steps, DARTS) or ``"gumbel"`` (Gumbel-softmax samples ``GS(alpha)``).
        tau: Gumbel-softmax temperature.
        hard: Straight-through one-hot samples (forward one-hot, backward soft).
        generator: Seeded CPU generator for the Gumbel noise (required for ``"gumbel"``).
        single_path: The supernets run only the sampled candidate of each edge (GDAS); needs hard
            Gumbel samples. Without it a hard sample still runs every candidate (weights 0 but one).
    """

    mode: str = "softmax"
    tau: float = 1.0
    hard: bool = False
    generator: torch.Generator | None = field(default=None, repr=False)
    single_path: bool = False

    def __post_init__(self) -> None:
        if self.mode not in WEIGHTING_MODES:
            raise ValueError(f"weighting mode must be one of {WEIGHTING_MODES}, got {self.mode!r}")
        if self.mode == "gumbel" and self.generator is None:
            raise ValueError("Gumbel-softmax weighting needs an explicit torch.Generator (seeded)")
        if self.single_path and not (self.mode == "gumbel" and self.hard):
            raise ValueError("single-path weighting needs hard Gumbel-softmax samples (mode 'gumbel', hard=True)")
        if self.mode == "gumbel" and not self.tau > 0:
            raise ValueError(f"Gumbel-softmax temperature must be > 0, got {self.tau}")

    @classmethod
    def gumbel(cls, seed: int, tau: float = 1.0, hard: bool = False) -> "ArchWeighting":
        """Gumbel-softmax weighting with its own generator seeded by ``seed``."""
        return cls("gumbel", tau, hard, torch.Generator().manual_seed(seed))

    @classmethod
    def gdas(cls, generator: torch.Generator, tau: float) -> "ArchWeighting":
        """GDAS: hard straight-through Gumbel-softmax samples, one candidate run per edge.

        Every call of the weighting (one per supernet forward pass and cell type) draws a new sample
        from ``generator``. Which candidate wins, ``argmax(alpha + g)``, does not depend on ``tau``;
        ``tau`` shapes the straight-through gradient (annealed by :class:`TauSchedule`).
        """
        return cls("gumbel", tau, True, generator, single_path=True)

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


DROPPED_FREE_OPS = PARAMETER_FREE_OPS - {"zero"}
"""The weight-free candidates the op-level dropout acts on (``zero`` outputs zeros anyway)."""


def set_free_op_dropout(module: nn.Module, rate: float) -> None:
    """Every MixedOp under ``module`` drops its weight-free candidates' outputs at ``rate`` in training mode."""
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"dropout rate must be in [0, 1), got {rate}")
    for m in module.modules():
        if isinstance(m, MixedOp):
            m.free_op_dropout = float(rate)


SOFTMAX = ArchWeighting()
"""The default deterministic weighting."""


@dataclass(frozen=True)
class TauSchedule:
    """GDAS temperature, annealed linearly from ``start`` to ``end`` over the architecture steps (GDAS: 10 -> 0.1).

    ``at(step, total)`` is ``start`` at step 0 and ``end`` at step ``total - 1`` (``start`` when there is
    at most one step).
    """

    start: float = 10.0
    end: float = 0.1

    def __post_init__(self) -> None:
        if not (self.start > 0 and self.end > 0):
            raise ValueError(f"temperatures must be > 0, got {self.start} -> {self.end}")

    def at(self, step: int, total: int) -> float:
        if total <= 1:
            return float(self.start)
        t = min(max(step / (total - 1), 0.0), 1.0)
        return float(self.start + (self.end - self.start) * t)


def sampled_index(weights: torch.Tensor) -> int:
    """The candidate a hard (one-hot valued) weight vector selects; raises on a mixture.

    Straight-through samples hold exact zeros off the choice (``0 - y + y == 0``) and ~1 on it. An
    all-zero vector (an edge the ``edge_op`` relaxation dropped) selects candidate 0, weighted 0.
    """
    hard = weights.detach()
    if int(torch.count_nonzero(hard)) > 1:
        raise ValueError(f"single-path MixedOp needs a one-hot weight vector (a hard sample), got {hard.tolist()}")
    return int(hard.abs().argmax())


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

    Forward with ``single_path=True`` (GDAS): ``weights`` must be one-hot in value (a hard sample);
    only the chosen candidate runs, its output times its (straight-through) weight.
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
        self.ops = nn.ModuleList(edge_op(n, self.op_names, dims, c_in // pc_k, c_out // pc_k) for n in self.op_names)
        for op in self.ops:
            op.in_mixed_op = True  # tells latency_sites to use this MixedOp's deployed keys instead
        self.free_op_dropout = 0.0  # set by a search (P-DARTS' op-level dropout, see ``_candidate``); not a buffer

    def _candidate(self, k: int, head: torch.Tensor) -> torch.Tensor:
        """Candidate ``k`` on ``head``; in training mode, a weight-free candidate's output goes through dropout at
        ``free_op_dropout``. P-DARTS (Chen et al. 2019) drops the skip connections' outputs, which fit a
        weight-sharing supernet before the convolutions have trained and win the architecture steps for that
        reason alone; we extend it to the pools, the other weight-free candidates (issue 16: the collapsed cine
        cells are identities *and* max pools)."""
        y = self.ops[k](head)
        if self.training and self.free_op_dropout > 0 and self.op_names[k] in DROPPED_FREE_OPS:
            y = nn.functional.dropout(y, self.free_op_dropout, training=True)
        return y

    def forward(self, x: torch.Tensor, weights: torch.Tensor, single_path: bool = False) -> torch.Tensor:
        if weights.shape != (len(self.ops),):
            raise ValueError(f"MixedOp with {len(self.ops)} ops got weights of shape {tuple(weights.shape)}")
        head = x if self.pc_k == 1 else x[:, : self.c_in // self.pc_k]
        if single_path:
            k = sampled_index(weights)
            mixed = weights[k] * self._candidate(k, head)
        else:
            mixed = sum(w * self._candidate(k, head) for k, w in enumerate(weights))
        if self.pc_k == 1:
            return mixed
        rest = x[:, self.c_in // self.pc_k:]
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
