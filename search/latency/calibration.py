"""From summed op latencies to network latency: the calibration, and the figures that judge it.

A plain sum of per-op entries misses what only a whole network has: the runtime's per-node
scheduling and memory-planning costs, tensors that no longer sit in cache between ops, the glue
the table has no key for (concat, channel shuffle, residual adds, interpolation). The calibration
is affine in two quantities the search can compute from the architecture weights:

    predicted_ms = scale * sum_of_entries_ms + per_op_ms * n_ops + offset_ms

``n_ops`` is the number of table ops in the network (``zero`` ops excluded). Because it is affine,
an estimator may apply it to an *expected* sum and an *expected* op count, and it stays
differentiable: it works on floats and on torch tensors alike.

The coefficients are fitted by ``python -m search latency-check`` on one half of the sampled
networks (relative least squares: each network's error is weighted by 1 / its measured latency, so
MdAPE is what is minimised in spirit), judged on the other half, and stored in the table's
``meta['calibration']``: one entry per search space (stems and heads differ) and a ``"global"`` one.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Mapping, Sequence

import numpy as np

GLOBAL = "global"


@dataclass(frozen=True)
class NetworkCalibration:
    """``predicted_ms = scale * sum_ms + per_op_ms * n_ops + offset_ms``.

    The identity calibration (``scale=1``, zeros elsewhere) is the plain additive model.
    """

    scale: float = 1.0
    per_op_ms: float = 0.0
    offset_ms: float = 0.0

    def predict(self, sum_ms, n_ops):
        """Network latency in ms; ``sum_ms`` and ``n_ops`` may be floats, arrays or torch tensors."""
        return self.scale * sum_ms + self.per_op_ms * n_ops + self.offset_ms

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    @classmethod
    def from_dict(cls, doc: Mapping[str, object]) -> "NetworkCalibration":
        return cls(scale=float(doc["scale"]), per_op_ms=float(doc["per_op_ms"]), offset_ms=float(doc["offset_ms"]))


def fit_calibration(sum_ms: Sequence[float], n_ops: Sequence[float], measured_ms: Sequence[float], *,
                    with_per_op: bool = True) -> NetworkCalibration:
    """Fit the calibration by least squares on relative errors.

    Args:
        sum_ms: (N,) summed table entries per network.
        n_ops: (N,) table ops per network.
        measured_ms: (N,) measured end-to-end latency per network.
        with_per_op: Fit the per-op term (else only scale and offset).

    Returns:
        The fitted ``NetworkCalibration``.

    Raises:
        ValueError: fewer networks than coefficients, or non-positive measurements.
    """
    s = np.asarray(sum_ms, dtype=np.float64)
    n = np.asarray(n_ops, dtype=np.float64)
    y = np.asarray(measured_ms, dtype=np.float64)
    if not (s.shape == n.shape == y.shape) or s.ndim != 1:
        raise ValueError(f"need three (N,) arrays, got shapes {s.shape}, {n.shape}, {y.shape}")
    columns = [s, n, np.ones_like(s)] if with_per_op else [s, np.ones_like(s)]
    if s.size < len(columns):
        raise ValueError(f"need at least {len(columns)} networks to fit, got {s.size}")
    if np.any(y <= 0):
        raise ValueError("measured latencies must be positive")
    design = np.stack(columns, axis=1) / y[:, None]
    coef, *_ = np.linalg.lstsq(design, np.ones_like(y), rcond=None)
    if with_per_op:
        return NetworkCalibration(scale=float(coef[0]), per_op_ms=float(coef[1]), offset_ms=float(coef[2]))
    return NetworkCalibration(scale=float(coef[0]), per_op_ms=0.0, offset_ms=float(coef[1]))


def calibrations_from_meta(meta: Mapping[str, object]) -> dict[str, NetworkCalibration]:
    """space -> calibration, from a table's ``meta['calibration']`` (empty when none is stored)."""
    doc = meta.get("calibration") or {}
    return {space: NetworkCalibration.from_dict(c) for space, c in dict(doc).get("by_space", {}).items()}


def calibration_for(meta: Mapping[str, object], space: str | None = None) -> NetworkCalibration:
    """The calibration for ``space`` (or the global one; identity when the table has none)."""
    table = calibrations_from_meta(meta)
    if space is not None and space in table:
        return table[space]
    return table.get(GLOBAL, NetworkCalibration())


# ---- figures that judge a predictor ------------------------------------------------------------


def absolute_percentage_errors(predicted_ms: Sequence[float], measured_ms: Sequence[float]) -> np.ndarray:
    """(N,) ``|predicted - measured| / measured * 100``."""
    p = np.asarray(predicted_ms, dtype=np.float64)
    m = np.asarray(measured_ms, dtype=np.float64)
    if p.shape != m.shape or p.ndim != 1 or p.size == 0:
        raise ValueError(f"need two non-empty (N,) arrays of equal length, got {p.shape} and {m.shape}")
    if np.any(m <= 0):
        raise ValueError("measured latencies must be positive")
    return np.abs(p - m) / m * 100.0


def median_ape(predicted_ms: Sequence[float], measured_ms: Sequence[float]) -> float:
    """Median absolute percentage error (MdAPE), in percent."""
    return float(np.median(absolute_percentage_errors(predicted_ms, measured_ms)))


def within(predicted_ms: Sequence[float], measured_ms: Sequence[float], percent: float = 10.0) -> float:
    """Fraction of predictions within +-``percent`` % of the measurement (nn-Meter's accuracy)."""
    return float(np.mean(absolute_percentage_errors(predicted_ms, measured_ms) <= percent))


def kendall_tau(predicted_ms: Sequence[float], measured_ms: Sequence[float]) -> float:
    """Kendall's tau-b between predicted and measured latency (rank agreement; NaN if undefined)."""
    from scipy.stats import kendalltau

    p = np.asarray(predicted_ms, dtype=np.float64)
    m = np.asarray(measured_ms, dtype=np.float64)
    if p.size < 2 or np.ptp(p) == 0 or np.ptp(m) == 0:
        return math.nan
    return float(kendalltau(p, m).statistic)


def rmspe(predicted_ms: Sequence[float], measured_ms: Sequence[float]) -> float:
    """Root mean squared percentage error, in percent (weighs the worst networks more than MdAPE)."""
    return float(np.sqrt(np.mean(absolute_percentage_errors(predicted_ms, measured_ms) ** 2)))


def figures(predicted_ms: Sequence[float], measured_ms: Sequence[float]) -> dict[str, float]:
    """``{"n", "mdape_pct", "rmspe_pct", "within_10pct", "kendall_tau", "mean_signed_pct"}`` for one predictor."""
    p = np.asarray(predicted_ms, dtype=np.float64)
    m = np.asarray(measured_ms, dtype=np.float64)
    return {
        "n": int(p.size),
        "mdape_pct": median_ape(p, m),
        "rmspe_pct": rmspe(p, m),
        "within_10pct": within(p, m, 10.0),
        "kendall_tau": kendall_tau(p, m),
        "mean_signed_pct": float(np.mean((p - m) / m * 100.0)),
    }


def split_indices(n: int, *, seed: int, fit_fraction: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Seeded split of ``range(n)`` into (fit, held_out) index arrays, both non-empty for n >= 2."""
    if n < 2:
        raise ValueError(f"need at least 2 networks to split, got {n}")
    order = np.random.default_rng(seed).permutation(n)
    n_fit = min(n - 1, max(1, int(round(n * fit_fraction))))
    return np.sort(order[:n_fit]), np.sort(order[n_fit:])
