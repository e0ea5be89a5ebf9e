"""Preprocessing per card, overlay composition, rolling statistics."""

from __future__ import annotations

import numpy as np
import pytest

from app.cards import ModelCardError
from app.engine.overlay import OverlayStyle, compose
from app.engine.preprocess import preprocess
from app.engine.stats import StatsRecorder
from app.engine.types import Frame, FrameResult


def _card(shape, norm):
    return {"id": "t", "input": {"name": "image", "shape": shape, "normalisation": norm}}


def test_scale_normalisation_resizes_and_orders_channels():
    frame = np.zeros((60, 80, 3), np.uint8)
    frame[..., 0] = 255
    x = preprocess(frame, _card([1, 3, 30, 40], {"kind": "scale", "scale": 1 / 255}))
    assert x.shape == (1, 3, 30, 40) and x.dtype == np.float32
    np.testing.assert_allclose(x[0, 0], 1.0, atol=1e-6)
    np.testing.assert_allclose(x[0, 1:], 0.0)
    offset = preprocess(frame, _card([1, 3, 30, 40], {"kind": "scale", "scale": 2 / 255, "offset": -1}))
    np.testing.assert_allclose(offset[0, 0], 1.0, atol=1e-5)
    np.testing.assert_allclose(offset[0, 1], -1.0)


def test_grey_to_rgb_and_rgb_to_grey():
    grey = np.full((10, 10), 100, np.uint8)
    assert np.all(preprocess(grey, _card([1, 3, 10, 10], {})) == 100)
    rgb = np.full((10, 10, 3), 100, np.uint8)
    x = preprocess(rgb, _card([1, 1, 10, 10], {}))
    assert x.shape == (1, 1, 10, 10) and np.allclose(x, 100, atol=0.5)


def test_zscore_per_frame_and_per_clip_and_degenerate_input():
    rng = np.random.default_rng(0)
    frame = rng.normal(300, 40, (32, 32)).astype(np.float32)
    x = preprocess(frame, _card([1, 1, 32, 32], {"kind": "zscore"}))
    assert abs(float(x.mean())) < 1e-4 and abs(float(x.std()) - 1) < 1e-3
    clip = np.stack([frame, frame * 2])
    y = preprocess(clip, _card([1, 1, 2, 16, 16], {"kind": "zscore"}))
    assert y.shape == (1, 1, 2, 16, 16) and abs(float(y.mean())) < 1e-4
    assert y[0, 0, 1].mean() > y[0, 0, 0].mean()  # one statistic for the whole clip, not per frame
    constant = preprocess(np.full((32, 32), 5.0, np.float32), _card([1, 1, 32, 32], {"kind": "zscore"}))
    assert np.all(constant == 0)
    nan = np.full((32, 32), np.nan, np.float32)
    nan[0, 0] = np.inf
    assert np.all(np.isfinite(preprocess(nan, _card([1, 1, 32, 32], {"kind": "zscore"}))))


def test_bad_inputs_and_cards():
    with pytest.raises(ValueError, match="frame"):
        preprocess(np.zeros((4, 4, 4, 4)), _card([1, 3, 8, 8], {}))
    with pytest.raises(ValueError, match="frames"):
        preprocess(np.zeros((3, 8, 8)), _card([1, 1, 2, 8, 8], {}))
    with pytest.raises(ModelCardError, match="normalisation kind"):
        preprocess(np.zeros((8, 8)), _card([1, 1, 8, 8], {"kind": "minmax"}))
    with pytest.raises(ModelCardError, match="neither"):
        preprocess(np.zeros((8, 8)), _card([1, 8, 8], {}))


def test_compose_fill_and_contour():
    image = np.full((20, 20, 3), 100, np.uint8)
    mask = np.zeros((20, 20), np.uint8)
    mask[5:15, 5:15] = 1
    filled = compose(image, mask, OverlayStyle(opacity=0.5, colors={1: (200, 0, 0)}))
    assert tuple(filled[10, 10]) == (150, 50, 50) and tuple(filled[0, 0]) == (100, 100, 100)
    outline = compose(image, mask, OverlayStyle(opacity=1.0, mode="contour", colors={1: (0, 255, 0)}))
    assert tuple(outline[5, 10]) == (0, 255, 0) and tuple(outline[10, 10]) == (100, 100, 100)
    assert image[10, 10, 0] == 100  # input untouched
    grey = compose(np.linspace(0, 1, 400, dtype=np.float32).reshape(20, 20), mask, OverlayStyle(opacity=0))
    assert grey.shape == (20, 20, 3) and grey.dtype == np.uint8 and grey.max() == 255
    with pytest.raises(ValueError):
        compose(image, mask[:10], OverlayStyle())
    with pytest.raises(ValueError):
        OverlayStyle(mode="sparkles")


def _result(k: int, latency_ms: float, error: str | None = None) -> FrameResult:
    t0 = k * 10_000_000
    stamps = {"arrival": t0, "preprocessed": t0 + 1_000_000, "segmented": t0 + 2_000_000, "qc": t0 + 3_000_000,
              "overlay": t0 + int(latency_ms * 1e6)}
    return FrameResult(frame=Frame(k, np.zeros((2, 2), np.uint8), t0), mask=None, timestamps=stamps, error=error)


def test_stats_window_percentiles_misses_and_fps():
    rec = StatsRecorder(deadline_ms=50, window=100)
    for k in range(300):
        rec.frame_in()
        rec.frame_done(_result(k, 60.0 if k % 10 == 0 else 10.0))
    rec.frame_in()
    rec.frame_dropped()
    rec.frame_done(_result(300, 5.0, error="boom"))
    s = rec.snapshot()
    assert (s.frames_in, s.processed, s.dropped, s.errors, s.deadline_misses) == (301, 301, 1, 1, 30)
    assert s.latency_ms["p50"] == pytest.approx(10.0) and s.latency_ms["max"] == pytest.approx(60.0)
    assert s.fps == pytest.approx(100.0, rel=0.02)  # one frame every 10 ms
    assert s.stages_ms["segment"] == pytest.approx(1.0)
    assert len(rec._latency) == 100  # bounded window
    assert set(s.to_dict()) >= {"frames_in", "latency_ms", "stages_ms", "fps"}
    rec.reset()
    assert rec.snapshot().processed == 0 and np.isnan(rec.snapshot().latency_ms["p50"])


def test_demo_source_spec_opens():
    from app.engine.sources import demo_source_spec, open_source

    spec = demo_source_spec()
    with open_source(spec) as source:
        assert source.info.modality in ("echo", "cine")
