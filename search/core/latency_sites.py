"""Where a network spends time: the latency-table keys of every op it runs, found by tracing once.

A forward pass (batch 1, eval mode, no grad) with hooks on every :class:`~search.core.ops.CandidateOp`
and :class:`~search.core.mixed.MixedOp` records the input spatial shape each one sees. A MixedOp
reports the *deployed* keys of all its candidates (full channels even under partial channels,
see :meth:`MixedOp.deployed_keys`); candidates inside a MixedOp are not reported on their own.
``zero`` ops are skipped: they cost 0 ms by definition (``ops.FREE_OPS``).

Used by the profiler (which keys to measure) and by the estimators (which LUT entry each edge of each
cell instance needs).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch
from torch import nn

from search.core.cells import Cell
from search.core.mixed import MixedOp
from search.core.ops import FREE_OPS, CandidateOp
from search.core.keys import OpKey


@dataclass
class CellSite:
    """Latency keys of one cell instance.

    Attributes:
        name: Module path of the cell in the network.
        cell_type: Its type (key of the supernet's ``cell_arch``).
        fixed_keys: Keys of its non-searched ops (preprocessing, concat 1x1 fuse).
        input_keys: Input index -> the keys of that input's preprocessing (a subset of ``fixed_keys``).
        edge_keys: Per edge (in ``CellSpec.edges`` order), the deployed key of every candidate, or
            ``None`` for a ``zero`` candidate. Edges that were not run are ``None`` as a whole.
    """

    name: str
    cell_type: str
    fixed_keys: list[OpKey] = field(default_factory=list)
    input_keys: dict[int, list[OpKey]] = field(default_factory=dict)
    edge_keys: list[list[OpKey | None] | None] = field(default_factory=list)


@dataclass
class NetworkSites:
    """Latency keys of a whole network: per cell, plus the ops outside every cell.

    Attributes:
        cells: Cell module path -> its site (supernets; derived networks have no ``Cell``).
        outside: Module path -> keys (one per distinct input shape) of every op outside the cells,
            in execution order of first call. Each module is a separate entry, so summing
            :attr:`outside_keys` counts an op that appears twice in a network twice.
    """

    cells: dict[str, CellSite]
    outside: dict[str, list[OpKey]]

    @property
    def outside_keys(self) -> list[OpKey]:
        return [k for keys in self.outside.values() for k in keys]

    def outside_under(self, prefix: str) -> list[OpKey]:
        """Keys of the outside ops whose module path is ``prefix`` or starts with ``prefix + "."``."""
        return [k for name, keys in self.outside.items() if name == prefix or name.startswith(prefix + ".") for k in keys]

    def all_keys(self) -> set[OpKey]:
        keys = set(self.outside_keys)
        for cell in self.cells.values():
            keys.update(cell.fixed_keys)
            for edge in cell.edge_keys:
                keys.update(k for k in (edge or []) if k is not None)
        return keys


def _spatial(args: tuple) -> tuple[int, ...]:
    x = args[0]
    if isinstance(x, (list, tuple)):
        x = x[0]
    return tuple(int(s) for s in x.shape[2:])


def trace_sites(model: nn.Module, input_shape: Sequence[int], call=None) -> NetworkSites:
    """Run ``model`` once on zeros of shape ``(1, *input_shape)`` and record every op's key.

    Args:
        model: A supernet or derived network built from CandidateOps / MixedOps / Cells.
        input_shape: ``(C, H, W)`` or ``(C, T, H, W)`` without the batch axis.
        call: Optional ``call(model, x)`` when the forward needs more than ``model(x)``.

    Returns:
        The sites; a CandidateOp run twice at different shapes contributes both keys.
    """
    shapes: dict[str, list[tuple[int, ...]]] = {}
    handles = []
    by_name: dict[str, nn.Module] = {}
    for name, module in model.named_modules():
        if isinstance(module, MixedOp) or (isinstance(module, CandidateOp) and not getattr(module, "in_mixed_op", False)):
            by_name[name] = module

            def hook(mod, args, _name=name):
                shape = _spatial(args)
                if shape not in shapes.setdefault(_name, []):
                    shapes[_name].append(shape)

            handles.append(module.register_forward_pre_hook(hook))
    was_training = model.training
    model.eval()
    try:
        param = next(model.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
        x = torch.zeros((1, *input_shape), device=device)
        with torch.no_grad():
            (call or (lambda m, t: m(t)))(model, x)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)

    cells = {name: m for name, m in model.named_modules() if isinstance(m, Cell)}
    sites = {name: CellSite(name, m.cell_type, edge_keys=[None] * len(m.edges)) for name, m in cells.items()}
    outside: dict[str, list[OpKey]] = {}
    for name in shapes:  # execution order of first call
        module = by_name[name]
        owner = max((c for c in cells if name.startswith(c + ".")), key=len, default=None)
        if isinstance(module, MixedOp):
            keys = [
                None if k.op in FREE_OPS else k for shape in shapes[name][:1] for k in module.deployed_keys(shape)
            ]
            if owner is None:
                outside[name] = [k for k in keys if k is not None]
                continue
            edge_index = list(cells[owner].edges).index(module)
            sites[owner].edge_keys[edge_index] = keys
            continue
        keys = [module.latency_key(s) for s in shapes[name] if module.op_name not in FREE_OPS]
        if owner is not None:
            sites[owner].fixed_keys.extend(keys)
            parts = name[len(owner) + 1:].split(".")
            if parts[0] == "preprocess" and len(parts) > 1:
                sites[owner].input_keys.setdefault(int(parts[1]), []).extend(keys)
        elif keys:
            outside[name] = keys
    return NetworkSites(cells=sites, outside=outside)


def collect_latency_keys(model: nn.Module, input_shape: Sequence[int], call=None) -> set[OpKey]:
    """Every latency-table key ``model`` needs when fed ``(1, *input_shape)``.

    Run it on each supernet (and, for the latency check, on derived networks) to get the set of keys
    the profiler must measure. ``input_shape`` is ``(C, H, W)`` or ``(C, T, H, W)`` (no batch axis).
    """
    return trace_sites(model, input_shape, call).all_keys()
