"""search.core.stats.bootstrap_mean_ci, and its three callers giving exactly the numbers they gave before it.

The reports that carry these intervals are committed, so "before" is each caller's former resampling
formula, written out here as it was, compared with ``==`` (not approx) on fixed inputs.
"""

from __future__ import annotations

import numpy as np
import pytest

from search.core.stats import bootstrap_mean_ci
from tests.bench.bench_module import load_bench

SIZES = (1, 2, 3, 7, 20, 33)


def _values(n: int, seed: int = 123) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.3, 0.95, n)


@pytest.mark.parametrize("n", SIZES)
def test_matches_a_direct_numpy_computation(n):
    v = _values(n)
    idx = np.random.default_rng(7).integers(0, n, size=(500, n))
    expected = tuple(float(x) for x in np.percentile(v[idx].mean(axis=1), [2.5, 97.5]))
    assert bootstrap_mean_ci(v, n_boot=500, rng=np.random.default_rng(7)) == expected


@pytest.mark.parametrize("n", SIZES)
def test_weighted_matches_a_direct_numpy_computation(n):
    v, w = _values(n), np.random.default_rng(5).integers(1, 30, n).astype(float)
    idx = np.random.default_rng(7).integers(0, n, size=(500, n))
    means = (v[idx] * w[idx]).sum(axis=1) / w[idx].sum(axis=1)
    expected = tuple(float(x) for x in np.percentile(means, [2.5, 97.5]))
    assert bootstrap_mean_ci(v, w, n_boot=500, rng=np.random.default_rng(7)) == expected


def test_unit_weights_equal_no_weights_and_real_weights_move_the_interval():
    v = _values(20)
    plain = bootstrap_mean_ci(v, n_boot=1000, rng=np.random.default_rng(3))
    assert bootstrap_mean_ci(v, np.ones(20), n_boot=1000, rng=np.random.default_rng(3)) == plain
    # all the weight on the largest values: the weighted interval sits higher
    w = np.where(v > np.median(v), 100.0, 1.0)
    lo, hi = bootstrap_mean_ci(v, w, n_boot=1000, rng=np.random.default_rng(3))
    assert lo > plain[0] and hi > plain[1]
    assert lo <= hi and isinstance(lo, float) and isinstance(hi, float)


def test_seeded_and_contains_the_mean():
    v = _values(25)
    a = bootstrap_mean_ci(v, n_boot=2000, rng=np.random.default_rng(0))
    assert a == bootstrap_mean_ci(v, n_boot=2000, rng=np.random.default_rng(0))
    assert a != bootstrap_mean_ci(v, n_boot=2000, rng=np.random.default_rng(1))
    assert a[0] < v.mean() < a[1]


def test_rejects_empty_and_mismatched_input():
    with pytest.raises(ValueError):
        bootstrap_mean_ci([], n_boot=10, rng=np.random.default_rng(0))
    with pytest.raises(ValueError):
        bootstrap_mean_ci([0.1, 0.2], [1.0], n_boot=10, rng=np.random.default_rng(0))


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("seed", (0, 1, 42))
def test_choice_draws_the_same_as_integer_indices(n, seed):
    """What lets cine-QC's former ``rng.choice`` become the helper's ``rng.integers`` indices unchanged."""
    a = _values(n)
    chosen = np.random.default_rng(seed).choice(a, size=(300, n), replace=True)
    assert np.array_equal(chosen, a[np.random.default_rng(seed).integers(0, n, size=(300, n))])


# -- the three callers, before and after --------------------------------------------------------------
def _old_seg_dice_ci(s, n_boot: int = 2000, seed: int = 0) -> dict:
    per_patient = np.array([float(np.mean(s.dice[s.case == i])) for i in np.unique(s.case)])
    rng = np.random.default_rng(seed)
    boots = rng.choice(per_patient, size=(n_boot, per_patient.size), replace=True).mean(axis=1)
    lo, hi = np.percentile(boots, [2.5, 97.5])
    return {"mean": round(float(per_patient.mean()), 4), "ci95": [round(float(lo), 4), round(float(hi), 4)],
            "patients": int(per_patient.size), "frames": len(s)}


def _samples(n_patients: int, frames: int = 5):
    from search.methods.cine_qc.data import Samples

    n = n_patients * frames
    dice = np.random.default_rng(n_patients).uniform(0.4, 0.95, n).astype(np.float32)
    return Samples(image=np.zeros((n, 1, 2, 2)), probs=np.zeros((n, 2, 2, 2)), uncertainty=np.zeros((n, 1, 2, 2)),
                   dice=dice, case=np.repeat(np.arange(n_patients), frames),
                   quality_bin=np.array(["good"] * n), case_ids=[f"p{i}" for i in range(n_patients)])


@pytest.mark.parametrize("n_patients", (1, 2, 9, 24))
@pytest.mark.parametrize(("n_boot", "seed"), ((2000, 0), (500, 3)))
def test_seg_dice_ci_unchanged(n_patients, n_boot, seed):
    from search.methods.cine_qc.run import seg_dice_ci

    s = _samples(n_patients)
    assert seg_dice_ci(s, n_boot=n_boot, seed=seed) == _old_seg_dice_ci(s, n_boot=n_boot, seed=seed)


def _test_frames(n_patients: int, seed: int, extra: str) -> tuple[dict, dict]:
    """A test result's frames (plus a None, a NaN and an unpaired patient, all to be skipped) and the
    per-patient mean Dice they should give."""
    rng = np.random.default_rng(seed)
    dice = {f"p{i}": [float(x) for x in rng.uniform(0.5, 0.9, 4)] for i in range(n_patients)}
    frames = [{"patient": k, "true": x} for k, xs in dice.items() for x in xs]
    frames += [{"patient": "p0", "true": None}, {"patient": "p1", "true": float("nan")}, {"patient": extra, "true": 0.1}]
    return {"frames": frames}, {k: sum(xs) / len(xs) for k, xs in dice.items()}


@pytest.mark.parametrize("n_patients", (1, 2, 9, 24))
@pytest.mark.parametrize(("n_boot", "seed"), ((2000, 0), (500, 3)))
def test_patient_difference_unchanged(n_patients, n_boot, seed):
    from search.methods.segqc_hw.report import patient_difference

    (a, mean_a), (b, mean_b) = _test_frames(n_patients, 1, "only-a"), _test_frames(n_patients, 2, "only-b")
    new = patient_difference(a, b, n_boot=n_boot, seed=seed)
    if n_patients < 2:
        assert new is None
        return
    d = np.array([mean_a[k] - mean_b[k] for k in sorted(mean_a, key=str)])
    # the former formula
    rng = np.random.default_rng(seed)
    boots = d[rng.integers(0, d.size, size=(n_boot, d.size))].mean(axis=1)
    lo, hi = np.percentile(boots, [2.5, 97.5])
    assert new == {"patients": n_patients, "mean": float(d.mean()), "ci95": [float(lo), float(hi)], "n_boot": n_boot}


@pytest.fixture(scope="module")
def fresh_draws():
    return load_bench("fresh_draws")


@pytest.mark.parametrize("n", (1, 2, 9, 24))
@pytest.mark.parametrize(("n_boot", "seed"), ((2000, 0), (500, 3)))
@pytest.mark.parametrize("weighted", (False, True))
def test_fresh_draws_bootstrap_ci_unchanged(fresh_draws, n, n_boot, seed, weighted):
    v = _values(n, seed=n)
    w = np.random.default_rng(n).integers(1, 40, n).astype(float) if weighted else np.ones(n)
    # a NaN value and (weighted) a zero weight, both dropped before resampling
    values = [*v, float("nan"), 0.42]
    weights = [*w, 3.0, 0.0] if weighted else None
    new = fresh_draws.bootstrap_ci(values, weights, n_boot=n_boot, seed=seed)
    if not weighted:
        v, w = np.append(v, 0.42), np.append(w, 1.0)
    # the former formula on what survives the filtering
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0xF5E5]))
    idx = rng.integers(0, v.size, size=(n_boot, v.size))
    means = (v[idx] * w[idx]).sum(axis=1) / w[idx].sum(axis=1)
    assert new == [round(float(np.percentile(means, 2.5)), 4), round(float(np.percentile(means, 97.5)), 4)]
    assert fresh_draws.bootstrap_ci([float("nan")], n_boot=n_boot, seed=seed) is None
