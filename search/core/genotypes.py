"""Genotypes: the discrete architectures the searches derive, as frozen dataclasses of plain types.

A genotype is the single source of truth a derived network is rebuilt from (and what a model card
stores). Every genotype has a lossless JSON round trip: ``G.from_json(g.to_json()) == g``.

Node numbering inside a cell: the cell inputs are ``0 .. n_inputs - 1`` and the intermediate nodes
``n_inputs .. n_inputs + n_nodes - 1``. An edge ``(src, dst, op)`` feeds node ``dst`` with ``op(src)``;
a node is the sum of its kept edges; the cell output is the sum (NAS-Unet, QC) or the concatenation
followed by a 1x1 conv (MS-NAS, RT-DNAS) of the intermediate nodes.

In the RT-DNAS input-op-pair relaxation each kept edge *is* an (input, op) pair of its node, so one
:class:`CellGenotype` type serves both relaxations; :class:`MultiscaleGenotype.relaxation` records
which search produced it.

Multi-scale network paths: a path starts at layer 0, scale 0 (the stem output) and takes one step per
layer. Step kinds: ``"ct"`` (contracting cell, scale + 1), ``"ep"`` (expanding cell, scale - 1),
``"ns"`` (non-scaling cell, same scale), ``"skip"`` (identity, same scale).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, ClassVar

from search.core.op_names import OP_NAMES

CELL_OUTPUTS = ("sum", "concat")
STEP_KINDS = ("ep", "ns", "ct", "skip")
STEP_DELTA = {"ep": -1, "ns": 0, "ct": 1, "skip": 0}
MULTISCALE_CELL_TYPES = ("ep", "ns", "ct")


class GenotypeError(ValueError):
    """A genotype (or its JSON) is malformed; the message says what is wrong."""


@dataclass(frozen=True)
class CellEdge:
    """One kept edge of a cell: node ``dst`` receives ``op(node src)``."""

    src: int
    dst: int
    op: str


@dataclass(frozen=True)
class CellGenotype:
    """A discrete cell.

    Attributes:
        n_inputs: Cell inputs (2 for a NAS-Unet Down cell, 3 for an Up cell: prev-prev, prev, skip;
            1 for QC and multi-scale cells).
        n_nodes: Intermediate nodes M (3 in every paper).
        edges: Kept edges, sorted by (dst, src, op).
        output: ``"sum"`` or ``"concat"`` of the intermediate nodes.
    """

    n_inputs: int
    n_nodes: int
    edges: tuple[CellEdge, ...]
    output: str = "sum"

    def __post_init__(self) -> None:
        object.__setattr__(self, "edges", tuple(sorted(self.edges, key=lambda e: (e.dst, e.src, e.op))))
        if self.output not in CELL_OUTPUTS:
            raise GenotypeError(f"cell output must be one of {CELL_OUTPUTS}, got {self.output!r}")
        n_total = self.n_inputs + self.n_nodes
        for e in self.edges:
            if e.op not in OP_NAMES or e.op == "zero":
                raise GenotypeError(f"edge {e}: op {e.op!r} is not a deployable op")
            if not (0 <= e.src < e.dst < n_total and e.dst >= self.n_inputs):
                raise GenotypeError(f"edge {e}: needs 0 <= src < dst, dst an intermediate node (< {n_total})")
        fed = {e.dst for e in self.edges}
        for node in range(self.n_inputs, n_total):
            if node not in fed:
                raise GenotypeError(f"intermediate node {node} has no incoming edge")

    def incoming(self, node: int) -> tuple[CellEdge, ...]:
        """Kept edges entering ``node``."""
        return tuple(e for e in self.edges if e.dst == node)

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_inputs": self.n_inputs,
            "n_nodes": self.n_nodes,
            "output": self.output,
            "edges": [[e.src, e.dst, e.op] for e in self.edges],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "CellGenotype":
        try:
            edges = tuple(CellEdge(int(s), int(t), str(op)) for s, t, op in d["edges"])
            return cls(int(d["n_inputs"]), int(d["n_nodes"]), edges, str(d.get("output", "sum")))
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, GenotypeError):
                raise
            raise GenotypeError(f"not a cell genotype: {exc!r}") from None


@dataclass(frozen=True)
class PathGenotype:
    """One input-to-output path through the layer x scale grid.

    Attributes:
        kinds: One step kind per layer (length L), see the module docstring.
    """

    kinds: tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "kinds", tuple(self.kinds))
        scale = 0
        for layer, kind in enumerate(self.kinds):
            if kind not in STEP_KINDS:
                raise GenotypeError(f"path step {layer}: unknown kind {kind!r}; expected one of {STEP_KINDS}")
            scale += STEP_DELTA[kind]
            if scale < 0:
                raise GenotypeError(f"path step {layer}: {kind!r} leaves the grid (scale {scale})")

    @property
    def scales(self) -> tuple[int, ...]:
        """Scale at each layer 0..L (length L + 1, starting at 0)."""
        out = [0]
        for kind in self.kinds:
            out.append(out[-1] + STEP_DELTA[kind])
        return tuple(out)


@dataclass(frozen=True)
class _JsonMixin:
    KIND: ClassVar[str] = ""

    def to_json(self) -> str:
        """Lossless JSON text (keys sorted, ``kind`` tag included)."""
        return json.dumps({"kind": self.KIND, **self.to_dict()}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str):
        try:
            d = json.loads(text)
        except json.JSONDecodeError as exc:
            raise GenotypeError(f"genotype is not valid JSON ({exc.msg})") from None
        if not isinstance(d, dict) or d.get("kind") != cls.KIND:
            raise GenotypeError(f"expected a {cls.KIND!r} genotype, got kind {d.get('kind') if isinstance(d, dict) else d!r}")
        return cls.from_dict(d)


@dataclass(frozen=True)
class NasUnetGenotype(_JsonMixin):
    """segqc-hw segmentation net: one Down cell and one Up cell structure, shared by all cells."""

    KIND: ClassVar[str] = "nasunet"
    down: CellGenotype
    up: CellGenotype

    def to_dict(self) -> dict[str, Any]:
        return {"down": self.down.to_dict(), "up": self.up.to_dict()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "NasUnetGenotype":
        return cls(CellGenotype.from_dict(d["down"]), CellGenotype.from_dict(d["up"]))


@dataclass(frozen=True)
class QcGenotype(_JsonMixin):
    """segqc-hw QC net: one Contracting and one Non-scaling cell structure."""

    KIND: ClassVar[str] = "qc"
    contracting: CellGenotype
    nonscaling: CellGenotype

    def to_dict(self) -> dict[str, Any]:
        return {"contracting": self.contracting.to_dict(), "nonscaling": self.nonscaling.to_dict()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "QcGenotype":
        return cls(CellGenotype.from_dict(d["contracting"]), CellGenotype.from_dict(d["nonscaling"]))


@dataclass(frozen=True)
class MultiscaleGenotype(_JsonMixin):
    """msnas-hw / rtdnas: the Ep / Ns / Ct cell structures and the selected network paths.

    Attributes:
        cells: ``{"ep": ..., "ns": ..., "ct": ...}`` (each 1 input, M nodes, concat output).
        paths: Selected paths (each of length ``n_layers``), in selection order.
        n_layers: L.
        n_scales: Number of scales (4 in the papers).
        relaxation: ``"edge_op"`` (MS-NAS) or ``"input_op_pair"`` (RT-DNAS): which cell search made it.
    """

    KIND: ClassVar[str] = "multiscale"
    cells: dict[str, CellGenotype]
    paths: tuple[PathGenotype, ...]
    n_layers: int
    n_scales: int = 4
    relaxation: str = "edge_op"

    def __post_init__(self) -> None:
        object.__setattr__(self, "paths", tuple(self.paths))
        if set(self.cells) != set(MULTISCALE_CELL_TYPES):
            raise GenotypeError(f"cells must be exactly {MULTISCALE_CELL_TYPES}, got {sorted(self.cells)}")
        if not self.paths:
            raise GenotypeError("a multi-scale genotype needs at least one path")
        if len(set(self.paths)) != len(self.paths):
            raise GenotypeError("duplicate paths")
        for i, p in enumerate(self.paths):
            if len(p.kinds) != self.n_layers:
                raise GenotypeError(f"path {i} has {len(p.kinds)} steps, expected n_layers={self.n_layers}")
            if max(p.scales) >= self.n_scales:
                raise GenotypeError(f"path {i} reaches scale {max(p.scales)} >= n_scales={self.n_scales}")

    def __hash__(self) -> int:  # dict field: hash the canonical JSON instead
        return hash(self.to_json())

    def to_dict(self) -> dict[str, Any]:
        return {
            "cells": {k: self.cells[k].to_dict() for k in MULTISCALE_CELL_TYPES},
            "paths": [list(p.kinds) for p in self.paths],
            "n_layers": self.n_layers,
            "n_scales": self.n_scales,
            "relaxation": self.relaxation,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "MultiscaleGenotype":
        try:
            return cls(
                cells={k: CellGenotype.from_dict(v) for k, v in d["cells"].items()},
                paths=tuple(PathGenotype(tuple(p)) for p in d["paths"]),
                n_layers=int(d["n_layers"]),
                n_scales=int(d.get("n_scales", 4)),
                relaxation=str(d.get("relaxation", "edge_op")),
            )
        except (KeyError, TypeError) as exc:
            raise GenotypeError(f"not a multi-scale genotype: missing or bad {exc}") from None


@dataclass(frozen=True)
class SegQcGenotype(_JsonMixin):
    """segqc-hw: the joint framework (segmentation + QC)."""

    KIND: ClassVar[str] = "segqc"
    seg: NasUnetGenotype
    qc: QcGenotype

    def to_dict(self) -> dict[str, Any]:
        return {"seg": self.seg.to_dict(), "qc": self.qc.to_dict()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SegQcGenotype":
        return cls(NasUnetGenotype.from_dict(d["seg"]), QcGenotype.from_dict(d["qc"]))


@dataclass(frozen=True)
class SkeletonQcGenotype(_JsonMixin):
    """segqc-hw in the U-net skeleton space (``SpaceConfig.seg_space == "skeleton"``): the segmentation net is a
    :class:`~search.core.derived.unet_skeleton.UNetSkeleton` (stored as its spec string), the QC net the paper's."""

    KIND: ClassVar[str] = "skeletonqc"
    seg: Any  # search.core.derived.unet_skeleton.UNetSkeleton (imported on use: that module needs torch)
    qc: QcGenotype

    def to_dict(self) -> dict[str, Any]:
        return {"skeleton": self.seg.spec, "qc": self.qc.to_dict()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SkeletonQcGenotype":
        from search.core.derived.unet_skeleton import UNetSkeleton

        try:
            seg = UNetSkeleton.parse(d["skeleton"])
        except (ValueError, TypeError, AttributeError) as exc:
            raise GenotypeError(f"skeleton genotype: {exc}") from None
        return cls(seg, QcGenotype.from_dict(d["qc"]))


GENOTYPE_KINDS: dict[str, type] = {
    c.KIND: c for c in (NasUnetGenotype, QcGenotype, MultiscaleGenotype, SegQcGenotype, SkeletonQcGenotype)
}


def genotype_from_json(text: str):
    """Parse any genotype by its ``kind`` tag."""
    try:
        kind = json.loads(text).get("kind")
    except (json.JSONDecodeError, AttributeError):
        raise GenotypeError("genotype is not a JSON object") from None
    if kind not in GENOTYPE_KINDS:
        raise GenotypeError(f"unknown genotype kind {kind!r}; known: {sorted(GENOTYPE_KINDS)}")
    return GENOTYPE_KINDS[kind].from_json(text)
