"""Tiny labelled echo cases for segqc-hw tests, without rendering phantoms."""

from __future__ import annotations

import numpy as np


def synthetic_echo_cases(n: int, seed: int, size: int = 16, frames: int = 2):
    """``n`` cases whose myocardium is a bright ring, quality bins cycling poor / medium / good."""
    from app.data.case import ECHO_MYO_LABELS, Case

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    cases = []
    for i in range(n):
        r = np.hypot(yy - size / 2 + rng.integers(-2, 3), xx - size / 2)
        labels = ((r > size / 5) & (r < size / 3)).astype(np.uint8)
        img = np.clip(labels[None, ..., None] * 150 + rng.normal(60, 40, (frames, size, size, 3)), 0, 255)
        cases.append(Case(case_id=f"syn{i}", modality="echo", frames=img.astype(np.uint8),
                          labels=np.repeat(labels[None], frames, 0), label_map=dict(ECHO_MYO_LABELS),
                          spacing_mm=(1.0, 1.0), frame_rate=30.0, labelled_frames=tuple(range(frames)),
                          quality=float(i) / max(1, n - 1), quality_bin=("poor", "medium", "good")[i % 3]))
    return cases


def synthetic_protocol_parts() -> dict:
    """The segqc-hw protocol's four parts (S1, S2 train / validation, test) as small synthetic case lists."""
    return {"s1": synthetic_echo_cases(2, 1), "s2_train": synthetic_echo_cases(2, 2),
            "s2_val": synthetic_echo_cases(1, 3), "test": synthetic_echo_cases(2, 4)}
