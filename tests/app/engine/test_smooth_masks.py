"""Masks drawn from probabilities enlarged bilinearly to the frame, not from blocky model-size labels."""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest

from app.engine.models import default_models
from app.engine.pipeline import Pipeline
from app.engine.stages import mask_at
from app.engine.types import Frame

pytestmark = pytest.mark.timeout(60)

SIZE, LOW = 256, 32            # frame and model resolution: blocks of 8 x 8 pixels under nearest
CENTRE, RADIUS = (121.3, 130.6), 70.4


def _disc(size: int = SIZE, centre=CENTRE, radius: float = RADIUS) -> np.ndarray:
    """The analytic disc sampled at pixel centres, ``(size, size)`` bool."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    return (x - centre[0]) ** 2 + (y - centre[1]) ** 2 <= radius ** 2


def _low_res_probs(low: int = LOW) -> np.ndarray:
    """``(1, 2, low, low)`` probabilities of the disc as a model at low resolution would see it."""
    fg = cv2.resize(_disc().astype(np.float32), (low, low), interpolation=cv2.INTER_AREA)
    return np.stack([1.0 - fg, fg])[None].astype(np.float32)


def _nearest(probs: np.ndarray, height: int, width: int) -> np.ndarray:
    """Yesterday's mask: argmax at model resolution, enlarged by nearest neighbour."""
    labels = probs[0].argmax(axis=0).astype(np.uint8)
    return cv2.resize(labels, (width, height), interpolation=cv2.INTER_NEAREST)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def _edge_error_px(mask: np.ndarray) -> float:
    """Largest distance (pixels) of the mask's boundary pixels from the analytic circle."""
    edge = (mask > 0) & (cv2.erode(mask.astype(np.uint8), np.ones((3, 3), np.uint8)) == 0)
    y, x = np.nonzero(edge)
    return float(np.abs(np.hypot(x - CENTRE[0], y - CENTRE[1]) - RADIUS).max())


def _left_edges(mask: np.ndarray) -> np.ndarray:
    """Column of the first foreground pixel of every row that has one."""
    rows = mask.any(axis=1)
    return mask[rows].argmax(axis=1)


def test_bilinear_disc_is_closer_to_the_analytic_disc_than_nearest():
    probs = _low_res_probs()
    smooth, blocky = mask_at(probs, SIZE, SIZE), _nearest(probs, SIZE, SIZE)
    truth = _disc()
    assert smooth.shape == (SIZE, SIZE) and smooth.dtype == np.uint8 and set(np.unique(smooth)) == {0, 1}
    assert _iou(smooth > 0, truth) > _iou(blocky > 0, truth)
    assert _iou(smooth > 0, truth) > 0.98
    assert _edge_error_px(smooth) < 2.5 < 4.0 < _edge_error_px(blocky)


def test_no_staircase_of_the_model_pixel_size():
    block = SIZE // LOW
    probs = _low_res_probs()
    blocky_edges = _left_edges(_nearest(probs, SIZE, SIZE) > 0)
    smooth_edges = _left_edges(mask_at(probs, SIZE, SIZE) > 0)
    assert len(set(blocky_edges % block)) == 1  # every edge on the block grid: a staircase
    assert len(set(smooth_edges % block)) == block  # edges fall anywhere: a curve
    # along the curve, neighbouring rows step by a few pixels at most away from the disc's poles
    middle = smooth_edges[len(smooth_edges) // 4: 3 * len(smooth_edges) // 4]
    assert np.abs(np.diff(middle.astype(int))).max() <= 3


def test_many_classes_match_argmax_of_the_enlarged_stack():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(1, 4, 12, 10)).astype(np.float32)
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    stack = cv2.resize(np.ascontiguousarray(probs[0].transpose(1, 2, 0)), (70, 60), interpolation=cv2.INTER_LINEAR)
    assert np.array_equal(mask_at(probs, 60, 70), stack.argmax(axis=2).astype(np.uint8))
    assert np.array_equal(mask_at(probs, 12, 10), probs[0].argmax(axis=0))  # same size: plain argmax
    assert set(np.unique(mask_at(probs, 60, 70))) == {0, 1, 2, 3}


def test_logits_give_the_smooth_mask_too():
    probs = _low_res_probs()
    logits = np.log(np.clip(probs, 1e-4, 1.0))
    from_logits = mask_at(logits, SIZE, SIZE)
    assert (from_logits == mask_at(probs, SIZE, SIZE)).mean() > 0.99
    assert _edge_error_px(from_logits) < 3.0


def test_label_only_outputs_fall_back_to_nearest():
    labels = _low_res_probs()[0].argmax(axis=0).astype(np.int64)
    expected = _nearest(_low_res_probs(), SIZE, SIZE)
    assert np.array_equal(mask_at(labels, SIZE, SIZE), expected)
    assert np.array_equal(mask_at(labels[None], SIZE, SIZE), expected)


def test_bad_score_shape_is_clear():
    with pytest.raises(ValueError, match=r"\(1, C, h, w\)"):
        mask_at(np.zeros((2, 8, 8), np.float32), 16, 16)


def _frame(index: int, image: np.ndarray, **meta) -> Frame:
    return Frame(index=index, image=image, t_arrival=time.perf_counter_ns(), meta=meta)


def _results(card, frames):
    out = []
    with Pipeline(card, on_result=out.append) as pipe:
        for frame in frames:
            pipe.submit(frame)
            assert pipe.drain(timeout=10)
    assert len(out) == len(frames) and all(r.error is None for r in out)
    return out


def test_pipeline_draws_echo_masks_smooth_at_the_frame_size(models_dir):
    seg, _ = default_models("echo", models_dir)  # a 32 x 32 model
    truth = _disc()
    image = np.where(truth[..., None], 230, 20).astype(np.uint8).repeat(3, axis=2)
    (result,) = _results(seg, [_frame(0, image)])
    assert result.mask.shape == (SIZE, SIZE) and result.overlay.shape == (SIZE, SIZE, 3)
    assert result.probabilities.shape == (2, 32, 32)  # kept at model resolution
    blocky = _nearest(result.probabilities[None], SIZE, SIZE)
    assert _iou(result.mask > 0, truth) > _iou(blocky > 0, truth)
    assert _edge_error_px(result.mask) < 3.0 < 4.0 < _edge_error_px(blocky)


def test_pipeline_draws_cine_masks_at_the_frame_size(models_dir):
    seg, _ = default_models("cine", models_dir)  # a 4-frame clip model at 32 x 28
    height, width = 128, 112
    y, x = np.mgrid[0:height, 0:width]
    disc = (x - 55.3) ** 2 + (y - 60.8) ** 2 <= 30.2 ** 2
    image = np.where(disc, 1.0, 0.0).astype(np.float32)
    results = _results(seg, [_frame(k, image, slice=0) for k in range(4)])
    newest = results[-1]
    assert newest.mask.shape == (height, width)
    assert newest.probabilities.shape == (4, 32, 28)
    assert np.array_equal(newest.mask, mask_at(newest.probabilities[None], height, width))
    assert len(set(_left_edges(newest.mask > 0) % 4)) > 1  # not on the model's 4-pixel grid
