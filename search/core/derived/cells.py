"""A discrete cell built from a :class:`~search.core.genotypes.CellGenotype` (no mixed ops)."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from search.core.genotypes import CellGenotype
from search.core.ops import build_op


class DerivedCell(nn.Module):
    """Node ``dst`` = sum of ``op(node src)`` over its kept edges; output = sum, or concat + ``conv1x1``.

    Args:
        genotype: The cell.
        dims: 2 or 3.
        c_inputs: Channels of each (preprocessed) input.
        c: Channels of the nodes and of the output.
        preprocess: One module per input (or None for identities), as in the supernet's cell.

    Shapes: ``inputs[i] (N, C_i, *S_i)`` -> ``(N, c, *S_out)``. Inputs no kept edge reads are ignored.
    """

    def __init__(
        self, genotype: CellGenotype, dims: int, c_inputs: Sequence[int], c: int, preprocess: Sequence[nn.Module] | None = None
    ):
        super().__init__()
        if len(c_inputs) != genotype.n_inputs:
            raise ValueError(f"cell genotype has {genotype.n_inputs} inputs, got channels {c_inputs}")
        self.genotype = genotype
        used = {e.src for e in genotype.edges if e.src < genotype.n_inputs}
        pre = list(preprocess) if preprocess is not None else [nn.Identity() for _ in c_inputs]
        # preprocessing of an input no edge reads is dropped: the deployed graph must not run it
        self.preprocess = nn.ModuleList(p if i in used else nn.Identity() for i, p in enumerate(pre))
        self.ops = nn.ModuleList(
            build_op(e.op, dims, c_inputs[e.src] if e.src < genotype.n_inputs else c, c) for e in genotype.edges
        )
        n = genotype.n_nodes
        self.fuse = build_op("conv1x1", dims, n * c, c) if genotype.output == "concat" else None

    def forward(self, inputs: Sequence[torch.Tensor]) -> torch.Tensor:
        g = self.genotype
        states: dict[int, torch.Tensor] = {
            i: pre(x) for i, (pre, x) in enumerate(zip(self.preprocess, inputs)) if any(e.src == i for e in g.edges)
        }
        for node in range(g.n_inputs, g.n_inputs + g.n_nodes):
            terms = [op(states[e.src]) for op, e in zip(self.ops, g.edges) if e.dst == node]
            states[node] = sum(terms[1:], terms[0])
        nodes = [states[i] for i in range(g.n_inputs, g.n_inputs + g.n_nodes)]
        if self.fuse is None:
            return sum(nodes[1:], nodes[0])
        return self.fuse(torch.cat(nodes, dim=1))
