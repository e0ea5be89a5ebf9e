"""Names of the candidate operators and their sets: plain data, no torch.

The op modules live in ``search.core.ops`` (which re-exports everything here and checks at import that it
builds exactly :data:`OP_NAMES`). Genotypes, decoders and configs need only the names, so they import this
module and stay free of torch: ``python -m search --help`` and the method configs load in a fraction of a
second.
"""

from __future__ import annotations

SEGQC_DOWN: tuple[str, ...] = ("down_conv", "down_dil_conv", "down_sep_conv", "down_max_pool", "down_avg_pool")
"""segqc-hw: ops on the edges leaving the inputs of a Down / Contracting cell."""
SEGQC_UP: tuple[str, ...] = ("up_conv", "up_dil_conv", "up_sep_conv")
"""segqc-hw: ops on the edges leaving the (lower-resolution) inputs of an Up cell."""
SEGQC_NORMAL: tuple[str, ...] = ("conv", "dil_conv", "sep_conv", "identity", "zero")
"""segqc-hw: ops between intermediate nodes (and on Non-scaling cell input edges)."""
SEGQC_DOWN_OR_ZERO: tuple[str, ...] = SEGQC_DOWN + ("zero",)
"""segqc-hw with droppable cell inputs (``NasUnetConfig.droppable_inputs``): a Down-cell input edge may be dropped."""
SEGQC_UP_OR_ZERO: tuple[str, ...] = SEGQC_UP + ("zero",)
"""segqc-hw with droppable cell inputs: an Up-cell input edge from a lower-resolution input may be dropped."""
MSNAS_OPS: tuple[str, ...] = ("conv", "dil_conv", "sep_conv", "max_pool", "identity", "zero")
"""msnas-hw / rtdnas Table 1."""

OP_SETS: dict[str, tuple[str, ...]] = {
    "segqc_down": SEGQC_DOWN,
    "segqc_up": SEGQC_UP,
    "segqc_normal": SEGQC_NORMAL,
    "segqc_down_or_zero": SEGQC_DOWN_OR_ZERO,
    "segqc_up_or_zero": SEGQC_UP_OR_ZERO,
    "msnas": MSNAS_OPS,
}
"""Named op sets; genotypes and cell specs refer to op sets by these names."""

FREE_OPS = frozenset({"zero"})
"""Ops that cost nothing by definition (never deployed); estimators do not look them up."""

PARAMETER_FREE_OPS = frozenset({"identity", "max_pool", "avg_pool", "down_max_pool", "down_avg_pool", "zero"})
"""Searched ops without weights: a cell made only of these cannot learn anything (DARTS' collapse, P-DARTS)."""

FIXED_OPS: tuple[str, ...] = (
    "stem", "conv1x1", "proj1x1", "upsample", "pool2x", "classifier", "seg_head", "qc_head"
)
"""Non-searched ops the supernets and derived networks are built from."""

OP_NAMES: tuple[str, ...] = (
    "conv", "dil_conv", "sep_conv", "max_pool", "avg_pool", "identity", "zero",
    "down_conv", "down_dil_conv", "down_sep_conv", "down_max_pool", "down_avg_pool",
    "up_conv", "up_dil_conv", "up_sep_conv",
    *FIXED_OPS,
)
"""Every op name the table can build (searched primitives and fixed ops), in ``search.core.ops``' order."""
