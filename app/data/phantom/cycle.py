"""Cardiac timing: contraction over the cycle, ED/ES frames, respiration and probe jitter."""

from __future__ import annotations

import numpy as np

SYSTOLE_FRACTION = 0.36  # share of the R-R interval from ED to ES at ~70 bpm


def contraction(phase: np.ndarray) -> np.ndarray:
    """Contraction state over the cardiac cycle: 0 at end-diastole, 1 at end-systole.

    Systolic ejection (smooth rise), rapid early filling (fast fall to ~0.25), diastasis (slow fall)
    and the atrial kick (last drop to 0 just before the next ED).

    Args:
        phase: Cycle phase, any shape; only ``phase % 1`` matters (0 = ED, R wave).

    Returns:
        Array of the same shape, values in [0, 1].
    """
    p = np.mod(phase, 1.0)
    s = SYSTOLE_FRACTION
    out = np.empty_like(p, dtype=np.float64)
    sys = p < s
    out[sys] = 0.5 * (1.0 - np.cos(np.pi * p[sys] / s))
    early = (p >= s) & (p < s + 0.2)
    x = (p[early] - s) / 0.2
    out[early] = 1.0 - 0.75 * (0.5 * (1.0 - np.cos(np.pi * x)))
    diastasis = (p >= s + 0.2) & (p < 0.86)
    x = (p[diastasis] - (s + 0.2)) / (0.86 - (s + 0.2))
    out[diastasis] = 0.25 - 0.08 * x
    kick = p >= 0.86
    x = (p[kick] - 0.86) / 0.14
    out[kick] = 0.17 * (1.0 - 0.5 * (1.0 - np.cos(np.pi * x)))
    return out


def frame_phases(n_frames: int, frame_rate: float, heart_rate_bpm: float, phase0: float) -> np.ndarray:
    """Cardiac phase (in cycles, unwrapped) of each frame. Shape ``(n_frames,)``."""
    t = np.arange(n_frames) / frame_rate
    return phase0 + t * heart_rate_bpm / 60.0


def ed_es_frames(phases: np.ndarray) -> tuple[int, int]:
    """Frame indices of end-diastole and end-systole of the first complete-enough beat.

    ED is the frame closest to a cycle start (largest volume); ES is the most contracted frame of
    the systole that follows it. When the sequence starts in systole, ED is taken from the next beat
    if it fits, otherwise the first frame's beat.
    """
    c = contraction(phases)
    beat = np.floor(phases).astype(int)
    # Distance in phase to the nearest R wave, per frame.
    dist = np.minimum(np.mod(phases, 1.0), 1.0 - np.mod(phases, 1.0))
    candidates = []
    for b in np.unique(np.concatenate([beat, beat + 1])):
        near = np.flatnonzero(np.abs(phases - b) < 0.5)
        if near.size:
            candidates.append(near[np.argmin(dist[near])])
    for ed in candidates:
        after = np.flatnonzero((phases > phases[ed]) & (phases < phases[ed] + 0.6))
        if after.size >= 2:
            es = after[np.argmax(c[after])]
            return int(ed), int(es)
    ed = int(np.argmin(c))
    es = int(np.argmax(c))
    return ed, es


def smooth_jitter(rng: np.random.Generator, n_frames: int, amplitude: float, correlation: int = 4) -> np.ndarray:
    """Band-limited random wander: a random walk smoothed over ``correlation`` frames.

    Returns:
        ``(n_frames,)`` float64 with standard deviation about ``amplitude``.
    """
    if n_frames == 0 or amplitude == 0.0:
        return np.zeros(n_frames)
    raw = rng.standard_normal(n_frames + 4 * correlation)
    kernel = np.hanning(2 * correlation + 1)
    kernel /= kernel.sum()
    out = np.convolve(raw, kernel, mode="same")[2 * correlation : 2 * correlation + n_frames]
    std = out.std() if n_frames > 1 else 1.0
    return amplitude * out / (std if std > 1e-9 else 1.0)
