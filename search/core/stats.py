"""Small statistics shared by the reports (numpy only).

:func:`bootstrap_mean_ci`: the percentile-bootstrap 95% interval of a (weighted) mean over patients that
the cine-QC report, the segqc-hw report and ``bench/fresh_draws.py`` quote. Each caller seeds its own
generator and rounds as it always has; the draws here are the ones those reports were written with.
"""

from __future__ import annotations

import numpy as np


def bootstrap_mean_ci(values, weights=None, *, n_boot: int, rng: np.random.Generator) -> tuple[float, float]:
    """Percentile 95% interval (2.5th, 97.5th) of the mean of ``values`` over ``n_boot`` resamples.

    Each resample draws ``n = len(values)`` indices with replacement, all at once as
    ``rng.integers(0, n, size=(n_boot, n))`` (the same draws as ``rng.choice(values, size=(n_boot, n))``),
    and takes their plain mean, or with ``weights`` (one per value, > 0) their weighted mean. No
    filtering: NaN values or zero weights are the caller's to drop first.
    """
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1 or v.size == 0:
        raise ValueError(f"bootstrap_mean_ci needs a non-empty 1-d array of values, got shape {v.shape}")
    idx = rng.integers(0, v.size, size=(n_boot, v.size))
    if weights is None:
        means = v[idx].mean(axis=1)
    else:
        w = np.asarray(weights, dtype=np.float64)
        if w.shape != v.shape:
            raise ValueError(f"weights shape {w.shape} differs from values shape {v.shape}")
        means = (v[idx] * w[idx]).sum(axis=1) / w[idx].sum(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(lo), float(hi)
