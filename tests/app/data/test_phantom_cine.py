"""Cine MR phantom: ACDC labels, anatomy from base to apex, motion over the cycle."""

from __future__ import annotations

import numpy as np

from app.data.case import ACDC_LABELS
from app.data.phantom.cine import render_cine_case


def test_cine_case_shapes_and_labels() -> None:
    case = render_cine_case(0, 1, n_frames=8, n_slices=5, shape=(64, 56))
    assert case.frames.shape == (8, 5, 64, 56) and case.frames.dtype == np.float32
    assert case.labels.shape == (8, 5, 64, 56) and case.labels.dtype == np.uint8
    assert dict(case.label_map) == dict(ACDC_LABELS)
    assert set(np.unique(case.labels)) == {0, 1, 2, 3}
    assert case.ed == 0 and 0 < case.es < 8 and case.labelled_frames == tuple(range(8))
    assert case.frames.min() >= 0.0 and case.frames.max() > 50.0  # MR magnitude units, not normalised


def test_deterministic_per_seed_and_case() -> None:
    a = render_cine_case(5, 2, n_frames=3, n_slices=2, shape=(48, 40))
    b = render_cine_case(5, 2, n_frames=3, n_slices=2, shape=(48, 40))
    assert np.array_equal(a.frames, b.frames) and np.array_equal(a.labels, b.labels)


def test_rv_shrinks_toward_the_apex_and_lv_contracts() -> None:
    case = render_cine_case(1, 3, n_frames=20, n_slices=8, quality=0.9)
    rv = (case.labels[0] == 1).reshape(8, -1).sum(axis=1)
    assert rv[0] > 0 and rv[-1] < 0.25 * rv[0]
    lv = (case.labels[:, 2] == 3).reshape(20, -1).sum(axis=1)
    assert lv[case.ed] > 1.15 * lv[case.es]


def test_bright_blood_dark_myocardium_and_papillary_muscles_inside_lv() -> None:
    case = render_cine_case(2, 0, n_frames=2, n_slices=4, quality=1.0)
    img, lab = case.frames[0, 1], case.labels[0, 1]
    lv, myo = img[lab == 3], img[lab == 2]
    assert np.median(lv) > 2.0 * np.median(myo)
    # Papillary muscles: some LV-labelled pixels as dark as myocardium.
    assert (lv < np.median(myo) * 1.3).sum() >= 4


def test_quality_raises_noise() -> None:
    def background_noise(q: float) -> float:
        case = render_cine_case(4, 0, n_frames=2, n_slices=2, quality=q)
        return float(np.std(case.frames[0, 0, :6, :6])) / float(np.median(case.frames[0, 0][case.labels[0, 0] == 3]))

    assert background_noise(0.0) > 2.0 * background_noise(1.0)
