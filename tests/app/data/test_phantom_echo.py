"""Echo phantom: shapes, determinism, labels, quality and physics that a reader can check."""

from __future__ import annotations

import numpy as np
import pytest

from app.data.case import CAMUS_LABELS, ECHO_MYO_LABELS
from app.data.phantom.cycle import contraction, ed_es_frames, frame_phases
from app.data.phantom.echo import render_echo_case
from app.data.phantom.quality import quality_bin


def test_contrast_case_shapes_and_labels() -> None:
    case = render_echo_case(3, 1, n_frames=6, size=96)
    assert case.frames.shape == (6, 96, 96, 3) and case.frames.dtype == np.uint8
    assert case.labels.shape == (6, 96, 96) and case.labels.dtype == np.uint8
    assert dict(case.label_map) == dict(ECHO_MYO_LABELS)
    assert set(np.unique(case.labels)) <= {0, 1}
    assert case.labelled_frames == tuple(range(6))
    assert 25.0 <= case.frame_rate <= 50.0
    assert 120.0 < case.spacing_mm[0] * 96 < 300.0 and case.spacing_mm[0] == case.spacing_mm[1]  # field of view in mm
    assert 0 <= case.ed < 6 and 0 <= case.es < 6
    assert case.quality_bin == quality_bin(case.quality)
    # The myocardium is visible in (almost) every frame of a well-placed heart.
    assert (case.labels.reshape(6, -1).sum(axis=1) > 0).all()


def test_same_seed_same_pixels_other_case_differs() -> None:
    a = render_echo_case(7, 2, n_frames=3, size=64)
    b = render_echo_case(7, 2, n_frames=3, size=64)
    c = render_echo_case(7, 3, n_frames=3, size=64)
    assert np.array_equal(a.frames, b.frames) and np.array_equal(a.labels, b.labels)
    assert not np.array_equal(a.labels, c.labels)


def test_labels_stay_inside_the_sector() -> None:
    case = render_echo_case(0, 4, n_frames=2, size=96)
    dark = case.frames[0].max(axis=-1) == 0
    # Labelled pixels are imaged pixels: essentially never on the black outside of the sector.
    assert (dark & (case.labels[0] > 0)).mean() < 0.002


def test_bmode_variant_has_camus_labels() -> None:
    case = render_echo_case(1, 0, n_frames=4, size=96, variant="bmode", quality=0.9)
    assert dict(case.label_map) == dict(CAMUS_LABELS)
    assert {1, 2, 3} <= set(np.unique(case.labels).tolist())


def test_quality_override_and_bins() -> None:
    case = render_echo_case(0, 0, n_frames=2, size=64, quality=0.1)
    assert case.quality == pytest.approx(0.1) and case.quality_bin == "poor"
    with pytest.raises(ValueError):
        render_echo_case(0, 0, variant="doppler")


def _cavity_myo_cnr(case) -> float:
    grey = case.frames.mean(axis=-1)
    lv, myo = grey[case.labels == 1], grey[case.labels == 2]
    return abs(lv.mean() - myo.mean()) / np.sqrt(0.5 * (lv.var() + myo.var()))


def test_poor_quality_lowers_contrast_to_noise() -> None:
    good = [_cavity_myo_cnr(render_echo_case(s, 0, n_frames=3, size=96, variant="bmode", quality=1.0)) for s in range(3)]
    poor = [_cavity_myo_cnr(render_echo_case(s, 0, n_frames=3, size=96, variant="bmode", quality=0.0)) for s in range(3)]
    assert np.mean(good) > 1.5 * np.mean(poor)


def test_systole_shrinks_the_cavity() -> None:
    case = render_echo_case(2, 5, n_frames=30, size=96, variant="bmode", quality=1.0)
    lv_area = (case.labels == 1).reshape(case.n_frames, -1).sum(axis=1)
    assert lv_area[case.ed] > lv_area[case.es] * 1.1


def test_cycle_ed_es_from_phases() -> None:
    phases = frame_phases(40, 40.0, 60.0, 0.5)
    ed, es = ed_es_frames(phases)
    assert contraction(phases[ed : ed + 1])[0] < 0.05 and contraction(phases[es : es + 1])[0] > 0.9
    assert es > ed
