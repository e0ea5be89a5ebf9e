"""Acquisition quality: one number in [0, 1] per case, binned into good / medium / poor.

The number is continuous so that the QC network sees a continuum of difficulty; the bins exist for
reporting (Dice spread per bin) and for stratified splits.
"""

from __future__ import annotations

import numpy as np

QUALITY_BINS: tuple[tuple[str, float, float], ...] = (
    ("poor", 0.0, 1.0 / 3.0),
    ("medium", 1.0 / 3.0, 2.0 / 3.0),
    ("good", 2.0 / 3.0, 1.0),
)


def quality_bin(quality: float) -> str:
    """Name of the bin holding ``quality`` (``"poor"``, ``"medium"`` or ``"good"``)."""
    if not 0.0 <= quality <= 1.0:
        raise ValueError(f"quality must lie in [0, 1], got {quality}")
    for name, lo, hi in QUALITY_BINS:
        if lo <= quality < hi:
            return name
    return QUALITY_BINS[-1][0]


def draw_quality(rng: np.random.Generator) -> float:
    """Draw a case's quality: uniform on [0, 1], so each bin holds about a third of the cases."""
    return float(rng.uniform(0.0, 1.0))


def case_rng(seed: int, case_index: int, stream: int) -> np.random.Generator:
    """Independent generator for one case and one purpose (anatomy, noise, ...).

    Separate streams keep a case's anatomy unchanged when, for example, only ``n_frames`` changes.
    """
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(case_index), int(stream)]))
