"""Statistics of the table check and the calibration fit, on synthetic numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from search.latency.calibration import (
    NetworkCalibration,
    calibration_for,
    fit_calibration,
    kendall_tau,
    median_ape,
    split_indices,
    within,
)
from search.latency.check import CheckSettings, NetworkRecord, evaluate
from search.latency.lut import LatencyTable


def test_mdape_and_within() -> None:
    measured = [10.0, 20.0, 40.0, 50.0]
    predicted = [11.0, 18.0, 40.0, 80.0]  # +10 %, -10 %, 0 %, +60 %
    assert median_ape(predicted, measured) == pytest.approx(10.0)
    assert within(predicted, measured, 10.0) == pytest.approx(0.75)
    assert within(predicted, measured, 5.0) == pytest.approx(0.25)
    with pytest.raises(ValueError, match="positive"):
        median_ape([1.0], [0.0])
    with pytest.raises(ValueError, match="equal length"):
        median_ape([1.0, 2.0], [1.0])


def test_kendall_tau_orders() -> None:
    x = np.arange(10.0)
    assert kendall_tau(x, 2 * x + 1) == pytest.approx(1.0)
    assert kendall_tau(x, -x) == pytest.approx(-1.0)
    swapped = x.copy()
    swapped[[0, 1]] = swapped[[1, 0]]  # one discordant pair of 45
    assert kendall_tau(swapped, x) == pytest.approx(1 - 2 * 1 / 45)
    assert math.isnan(kendall_tau([1.0, 1.0], [1.0, 2.0]))


def test_fit_recovers_an_affine_law() -> None:
    rng = np.random.default_rng(0)
    sums = rng.uniform(5, 50, 40)
    n_ops = rng.integers(10, 60, 40).astype(float)
    measured = 0.7 * sums + 0.02 * n_ops + 1.5
    cal = fit_calibration(sums, n_ops, measured)
    assert cal.scale == pytest.approx(0.7) and cal.per_op_ms == pytest.approx(0.02) and cal.offset_ms == pytest.approx(1.5)
    assert median_ape(cal.predict(sums, n_ops), measured) < 1e-8
    without = fit_calibration(sums, n_ops, 0.5 * sums + 2.0, with_per_op=False)
    assert without.per_op_ms == 0.0 and without.scale == pytest.approx(0.5)
    with pytest.raises(ValueError, match="at least 3"):
        fit_calibration([1.0, 2.0], [1.0, 2.0], [1.0, 2.0])


def test_calibration_is_differentiable_and_round_trips() -> None:
    cal = NetworkCalibration(scale=0.8, per_op_ms=0.01, offset_ms=2.0)
    s = torch.tensor(10.0, requires_grad=True)
    cal.predict(s, torch.tensor(5.0)).backward()
    assert s.grad.item() == pytest.approx(0.8)
    assert NetworkCalibration.from_dict(cal.to_dict()) == cal
    meta = {"calibration": {"by_space": {"segqc": cal.to_dict(), "global": NetworkCalibration(scale=2).to_dict()}}}
    assert calibration_for(meta, "segqc") == cal
    assert calibration_for(meta, "msnas").scale == 2
    assert calibration_for({}, "segqc") == NetworkCalibration()
    table = LatencyTable(meta=meta)
    assert table.predict_network_ms(10.0, 5, space="segqc") == pytest.approx(0.8 * 10 + 0.01 * 5 + 2.0)


def test_split_is_seeded_disjoint_and_complete() -> None:
    fit, held = split_indices(11, seed=3)
    assert len(fit) + len(held) == 11 and not set(fit) & set(held)
    again = split_indices(11, seed=3)
    np.testing.assert_array_equal(fit, again[0])
    with pytest.raises(ValueError):
        split_indices(1, seed=0)


def _records(space: str, n: int, law, seed: int) -> list[NetworkRecord]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        s, k = float(rng.uniform(2, 40)), int(rng.integers(5, 50))
        measured = law(s, k) * float(rng.normal(1.0, 0.02))
        out.append(NetworkRecord(space=space, index=i, n_ops=k, sum_ms=s, measured_p50_ms=measured,
                                 measured_p95_ms=measured * 1.1, onnx_nodes=3 * k))
    return out


def test_evaluate_separates_fit_and_held_out() -> None:
    records = _records("a", 40, lambda s, k: 0.6 * s + 0.05 * k + 1.0, 1) + _records("b", 40, lambda s, k: 1.2 * s + 3.0, 2)
    result = evaluate(records, CheckSettings(seed=0))
    assert set(result.spaces) == {"a", "b", "global"}
    for space in ("a", "b"):
        figs = result.spaces[space]
        assert figs["calibrated_fit"]["n"] + figs["calibrated_held_out"]["n"] == 40
        assert figs["calibrated_held_out"]["mdape_pct"] < 5.0  # 2 % noise
        assert figs["calibrated_held_out"]["kendall_tau"] > 0.8
        assert figs["meets_targets"]
    assert result.spaces["a"]["raw"]["mdape_pct"] > 10.0  # the plain sum misses law "a"
    assert result.calibrations["a"].scale == pytest.approx(0.6, rel=0.1)
    assert {r.split for r in records} == {"fit", "held_out"}
    assert result.passed()


def test_evaluate_fails_when_latency_is_unpredictable() -> None:
    rng = np.random.default_rng(5)
    records = _records("a", 30, lambda s, k: float(rng.uniform(1, 50)), 3)
    result = evaluate(records, CheckSettings(seed=0))
    assert not result.spaces["a"]["meets_targets"] and not result.passed()


def test_store_calibration_keeps_other_spaces() -> None:
    from search.latency.check import store_calibration

    table = LatencyTable(meta={"calibration": {"by_space": {"msnas": NetworkCalibration(scale=3.0).to_dict()}}})
    result = evaluate(_records("segqc", 20, lambda s, k: 2 * s + 1, 4), CheckSettings(seed=0))
    store_calibration(table, result, CheckSettings(), {"description": "test"})
    assert table.calibration("msnas").scale == 3.0
    assert table.calibration("segqc").scale == pytest.approx(2.0, rel=0.1)
    assert "segqc" in table.meta["calibration"]["held_out"]
