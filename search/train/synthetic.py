"""Tiny synthetic cases (random blobs on noisy backgrounds, exact labels) for fast tests.

Not a phantom: no anatomy, no physics. They let the training harness, the export path and the
methods' tests run in a second without the phantom renderers.
"""

from __future__ import annotations

import cv2
import numpy as np

from app.data.case import ACDC_LABELS, ECHO_MYO_LABELS, Case


def _ring(shape: tuple[int, int], centre: tuple[float, float], r_in: float, r_out: float) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    d = np.hypot(yy - centre[0], xx - centre[1])
    return (d >= r_in) & (d < r_out)


def synthetic_echo_case(seed: int, index: int, *, n_frames: int = 4, size: int = 64) -> Case:
    """An echo-like case: a bright beating ring ("myocardium", label 1) on speckle-like noise.

    Returns frames ``(T, size, size, 3)`` uint8 and labels ``(T, size, size)`` uint8, all labelled.
    """
    rng = np.random.default_rng([seed, index])
    cy, cx = rng.uniform(0.4, 0.6, 2) * size
    r0 = rng.uniform(0.15, 0.25) * size
    noise_level = rng.uniform(10, 60)
    frames = np.empty((n_frames, size, size, 3), np.uint8)
    labels = np.empty((n_frames, size, size), np.uint8)
    for t in range(n_frames):
        r = r0 * (1.0 + 0.1 * np.sin(2 * np.pi * t / max(1, n_frames)))
        ring = _ring((size, size), (cy, cx), r, r + 0.08 * size)
        img = rng.normal(40, noise_level, (size, size)) + 140 * ring
        img = cv2.GaussianBlur(img.astype(np.float32), (3, 3), 0)
        frames[t] = np.clip(img, 0, 255).astype(np.uint8)[..., None]
        labels[t] = ring
    return Case(case_id=f"synthetic-echo-{seed}-{index:03d}", modality="echo", frames=frames, labels=labels,
                label_map=ECHO_MYO_LABELS, spacing_mm=(0.5, 0.5), frame_rate=30.0,
                labelled_frames=tuple(range(n_frames)), quality=float(1.0 - noise_level / 80.0),
                source="synthetic-echo").validate()


def synthetic_cine_case(seed: int, index: int, *, n_frames: int = 6, n_slices: int = 2,
                        size: tuple[int, int] = (32, 32), labelled_frames: tuple[int, ...] | None = None) -> Case:
    """A cine-like case: LV disc (3), myocardial ring (2) and an RV blob (1), beating, on noise.

    Returns frames ``(T, Z, H, W)`` float32 and labels ``(T, Z, H, W)`` uint8.
    """
    rng = np.random.default_rng([seed, index, 1])
    h, w = size
    frames = np.empty((n_frames, n_slices, h, w), np.float32)
    labels = np.zeros((n_frames, n_slices, h, w), np.uint8)
    cy, cx = rng.uniform(0.45, 0.55) * h, rng.uniform(0.45, 0.55) * w
    for z in range(n_slices):
        scale = 1.0 - 0.15 * z
        for t in range(n_frames):
            r = (0.15 + 0.03 * np.cos(2 * np.pi * t / max(1, n_frames))) * min(h, w) * scale
            lab = np.zeros((h, w), np.uint8)
            lab[_ring((h, w), (cy, cx + 1.9 * r), 0, 0.9 * r)] = 1
            lab[_ring((h, w), (cy, cx), r, 1.5 * r)] = 2
            lab[_ring((h, w), (cy, cx), 0, r)] = 3
            img = np.choose(lab, [50.0, 180.0, 80.0, 220.0]) + rng.normal(0, 15, (h, w))
            frames[t, z] = img.astype(np.float32)
            labels[t, z] = lab
    return Case(case_id=f"synthetic-cine-{seed}-{index:03d}", modality="cine", frames=frames, labels=labels,
                label_map=ACDC_LABELS, spacing_mm=(1.5, 1.5), frame_rate=25.0,
                labelled_frames=tuple(range(n_frames)) if labelled_frames is None else labelled_frames,
                source="synthetic-cine").validate()
