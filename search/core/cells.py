"""Searchable cells: a DAG of M intermediate nodes over mixed-op edges, under three relaxations.

Node numbering: cell inputs ``0 .. n_inputs - 1``, intermediate nodes ``n_inputs .. n_inputs + M - 1``.
Node ``j`` receives an edge from every earlier node ``i < j`` (inputs included). Edges are ordered by
(dst, src); edge ``e`` of a :class:`CellSpec` is ``spec.edges[e]``.

Relaxations (how the architecture logits become per-edge op weights ``w_e`` of shape ``(K_e,)``):

- ``"op"`` (DARTS / NAS-Unet, segqc-hw): ``w_e = softmax(alpha_e)``; a node is the plain sum of its edges.
- ``"edge_op"`` (MS-NAS, eq. 1): ``w_e = softmax_{edges into dst}(gamma)_e * softmax(alpha_e)``.
- ``"input_op_pair"`` (RT-DNAS, eq. 1): one joint softmax over all (input, op) pairs of a node:
  ``w_e = softmax(concat_{e into dst} alpha_e)[slice of e]``.

The architecture parameters of one cell *type* live in a :class:`CellArch` (shared by all cells of
that type in a supernet); the weights (conv kernels) live in each :class:`Cell` instance.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

from search.core.mixed import SOFTMAX, ArchWeighting, MixedOp
from search.core.ops import OP_SETS, build_op

RELAXATIONS = ("op", "edge_op", "input_op_pair")


@dataclass(frozen=True)
class CellSpec:
    """Topology and op sets of one cell type.

    Attributes:
        n_inputs: Cell inputs.
        input_op_sets: Op-set name (key of ``ops.OP_SETS``) for the edges leaving each input.
        inner_op_set: Op-set name for edges between intermediate nodes.
        n_nodes: M.
        output: ``"sum"`` or ``"concat"`` (concat is followed by a 1x1 conv back to C).
    """

    n_inputs: int
    input_op_sets: tuple[str, ...]
    inner_op_set: str
    n_nodes: int = 3
    output: str = "sum"

    def __post_init__(self) -> None:
        if len(self.input_op_sets) != self.n_inputs:
            raise ValueError(f"need one op set per input ({self.n_inputs}), got {self.input_op_sets}")
        for name in (*self.input_op_sets, self.inner_op_set):
            if name not in OP_SETS:
                raise ValueError(f"unknown op set {name!r}; known: {sorted(OP_SETS)}")
        if self.output not in ("sum", "concat"):
            raise ValueError(f"cell output must be 'sum' or 'concat', got {self.output!r}")

    @property
    def edges(self) -> tuple[tuple[int, int, str], ...]:
        """``(src, dst, op_set_name)`` for every edge, ordered by (dst, src)."""
        out = []
        for dst in range(self.n_inputs, self.n_inputs + self.n_nodes):
            for src in range(dst):
                out.append((src, dst, self.input_op_sets[src] if src < self.n_inputs else self.inner_op_set))
        return tuple(out)

    def edge_ops(self, e: int) -> tuple[str, ...]:
        return OP_SETS[self.edges[e][2]]

    def incoming(self, dst: int) -> list[int]:
        """Indices of the edges entering node ``dst``."""
        return [e for e, (_, d, _) in enumerate(self.edges) if d == dst]


class CellArch(nn.Module):
    """Architecture parameters of one cell type.

    Parameters (``nn.Parameter``):
        ``alpha_<op_set>``: ``(E_set, K_set)`` op logits of the edges using that op set, rows in edge order.
        ``gamma``: ``(E,)`` edge logits (``"edge_op"`` relaxation only).

    Args:
        spec: The cell type.
        relaxation: One of :data:`RELAXATIONS`.
        generator: Seeds the initial logits (``1e-3 * N(0, 1)``, as DARTS).
    """

    def __init__(self, spec: CellSpec, relaxation: str, generator: torch.Generator):
        super().__init__()
        if relaxation not in RELAXATIONS:
            raise ValueError(f"relaxation must be one of {RELAXATIONS}, got {relaxation!r}")
        self.spec, self.relaxation = spec, relaxation
        self._rows: list[tuple[str, int]] = []  # edge -> (op set, row)
        counts: dict[str, int] = {}
        for _, _, op_set in spec.edges:
            self._rows.append((op_set, counts.get(op_set, 0)))
            counts[op_set] = counts.get(op_set, 0) + 1
        for op_set, n in counts.items():
            init = 1e-3 * torch.randn((n, len(OP_SETS[op_set])), generator=generator)
            self.register_parameter(f"alpha_{op_set}", nn.Parameter(init))
        if relaxation == "edge_op":
            self.gamma = nn.Parameter(1e-3 * torch.randn((len(spec.edges),), generator=generator))

    def alpha(self, e: int) -> torch.Tensor:
        """Op logits of edge ``e``, ``(K_e,)``."""
        op_set, row = self._rows[e]
        return getattr(self, f"alpha_{op_set}")[row]

    def edge_weights(self, weighting: ArchWeighting = SOFTMAX, exclude: frozenset[str] = frozenset()) -> list[torch.Tensor]:
        """Per-edge op weights ``w_e (K_e,)`` under this relaxation (see the module docstring).

        ``exclude``: candidates never drawn (their logits taken as -inf: weight 0), e.g. ``zero`` in a GDAS draw,
        where drawing it would zero the node's output and the draw's gradient with it (GDAS leaves ``none`` out).
        """
        spec = self.spec
        n_edges = len(spec.edges)
        if exclude:
            masks = {e: torch.tensor([n in exclude for n in spec.edge_ops(e)]) for e in range(n_edges)}

            def logits_of(e: int) -> torch.Tensor:
                a = self.alpha(e)
                return a.masked_fill(masks[e].to(a.device), float("-inf")) if bool(masks[e].any()) else a
        else:
            logits_of = self.alpha
        if self.relaxation == "op":
            return [weighting(logits_of(e)) for e in range(n_edges)]
        out: list[torch.Tensor | None] = [None] * n_edges
        for dst in range(spec.n_inputs, spec.n_inputs + spec.n_nodes):
            into = spec.incoming(dst)
            if self.relaxation == "edge_op":
                g = weighting(self.gamma[into])
                for i, e in enumerate(into):
                    out[e] = g[i] * weighting(logits_of(e))
            else:  # input_op_pair: one joint softmax per node
                logits = [logits_of(e) for e in into]
                joint = weighting(torch.cat(logits))
                for e, part in zip(into, torch.split(joint, [len(x) for x in logits])):
                    out[e] = part
        return out  # type: ignore[return-value]


class Cell(nn.Module):
    """One cell instance: optional per-input preprocessing, mixed-op edges, sum / concat output.

    Args:
        spec: Cell type.
        dims: 2 or 3.
        c_inputs: Channels of each (preprocessed) input.
        c: Channels of the intermediate nodes and of the output.
        preprocess: One module per input (``nn.Sequential`` of CandidateOps, or ``nn.Identity``) applied
            before the edges; it belongs to the cell (its latency is the cell's preprocessing cost).
        pc_k: Partial-channel factor for shape-preserving edges (1 = off).
        cell_type: Name of the cell type (key of the supernet's ``cell_arch``), for the estimators.

    Shapes: ``inputs[i] (N, C_i, *S_i)`` -> ``(N, c, *S_out)``; inputs reach the nodes' resolution
    through the scaling ops of their edges (down / up sets) or are already there.
    """

    def __init__(
        self,
        spec: CellSpec,
        dims: int,
        c_inputs: Sequence[int],
        c: int,
        preprocess: Sequence[nn.Module] | None = None,
        pc_k: int = 1,
        cell_type: str = "",
    ):
        super().__init__()
        self.spec, self.dims, self.c, self.cell_type = spec, dims, c, cell_type
        if len(c_inputs) != spec.n_inputs:
            raise ValueError(f"cell needs {spec.n_inputs} input channel counts, got {c_inputs}")
        pre = list(preprocess) if preprocess is not None else [nn.Identity() for _ in c_inputs]
        self.preprocess = nn.ModuleList(pre)
        edges = []
        for src, _, op_set in spec.edges:
            c_src = c_inputs[src] if src < spec.n_inputs else c
            names = OP_SETS[op_set]
            k = pc_k if (c_src == c and not any(n.startswith(("down_", "up_")) for n in names)) else 1
            edges.append(MixedOp(names, dims, c_src, c, pc_k=k))
        self.edges = nn.ModuleList(edges)
        self.fuse = build_op("conv1x1", dims, spec.n_nodes * c, c) if spec.output == "concat" else None

    def forward(self, inputs: Sequence[torch.Tensor], weights: Sequence[torch.Tensor],
                single_path: bool = False) -> torch.Tensor:
        """``single_path``: the weights are hard samples and each edge runs only its chosen op (GDAS); an edge
        whose sample is all zeros (the joint draw of ``input_op_pair`` / ``edge_op`` chose another edge into its
        node) does not run at all, so under those relaxations a node costs the one pair it drew (under ``op``
        every incoming edge runs its drawn op)."""
        spec = self.spec
        states = [pre(x) for pre, x in zip(self.preprocess, inputs)]
        if single_path:  # which edges drew something, read once per cell (one device sync, not one per edge)
            nonzero = torch.stack([w.detach().ne(0).any() for w in weights]).tolist()
        for dst in range(spec.n_inputs, spec.n_inputs + spec.n_nodes):
            into = spec.incoming(dst)
            if single_path:
                drawn = [e for e in into if nonzero[e]]
                into = drawn or into[:1]  # nothing drawn (cannot happen for a joint draw): one zero-weighted edge
            states.append(sum(self.edges[e](states[spec.edges[e][0]], weights[e], single_path) for e in into))
        nodes = states[spec.n_inputs:]
        if self.fuse is None:
            return sum(nodes)
        return self.fuse(torch.cat(nodes, dim=1))
