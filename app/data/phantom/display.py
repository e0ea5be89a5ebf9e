"""What a scanner's screen adds around the image: a colour map, an ECG trace, a depth scale."""

from __future__ import annotations

import cv2
import numpy as np

COLOUR_MAPS = ("grey", "bronze", "gold", "blue")


def colour_lut(name: str) -> np.ndarray:
    """``(256, 3)`` uint8 RGB lookup table for a scanner display map."""
    v = np.linspace(0.0, 1.0, 256)
    if name == "grey":
        rgb = np.stack([v, v, v], axis=1)
    elif name == "bronze":
        rgb = np.stack([v**0.85, v**1.05 * 0.92, v**1.45 * 0.72], axis=1)
    elif name == "gold":
        rgb = np.stack([v**0.8, v**0.95 * 0.88, v**1.8 * 0.55], axis=1)
    elif name == "blue":
        rgb = np.stack([v**1.2 * 0.9, v**1.05 * 0.95, v**0.85], axis=1)
    else:
        raise ValueError(f"unknown colour map {name!r}; known: {COLOUR_MAPS}")
    return np.clip(np.round(rgb * 255.0), 0, 255).astype(np.uint8)


def ecg_waveform(phase: np.ndarray) -> np.ndarray:
    """Synthetic lead-II ECG (arbitrary units, QRS peak ~1) at cycle phases (0 = R wave)."""
    p = np.mod(phase + 0.5, 1.0) - 0.5  # R at 0, in [-0.5, 0.5)

    def bump(centre: float, width: float, height: float) -> np.ndarray:
        return height * np.exp(-0.5 * ((p - centre) / width) ** 2)

    return (bump(-0.16, 0.025, 0.12) + bump(-0.025, 0.008, -0.12) + bump(0.0, 0.01, 1.0)
            + bump(0.025, 0.009, -0.25) + bump(0.3, 0.045, 0.25))


def draw_overlays(rgb: np.ndarray, time_s: float, heart_rate_bpm: float, phase0: float,
                  depth_mm: float, spacing_mm: float, apex_row: float, label_text: str) -> None:
    """Draw, in place on ``(H, W, 3)`` uint8 RGB, a sweeping ECG trace, depth dots and a label."""
    h, w = rgb.shape[:2]
    # ECG: the last 2 s, sweeping left to right across the bottom strip.
    n = w // 2
    t = time_s - 2.0 + np.linspace(0.0, 2.0, n)
    y = ecg_waveform(phase0 + t * heart_rate_bpm / 60.0)
    base = h - 0.06 * h
    pts = np.stack([np.linspace(0.08 * w, 0.92 * w, n), base - y * 0.05 * h], axis=1)
    cv2.polylines(rgb, [np.round(pts * 4).astype(np.int32)], False, (40, 200, 70), 1, cv2.LINE_AA, shift=2)
    # Depth scale: a dot every centimetre on the right edge.
    for cm in range(1, int(depth_mm // 10) + 1):
        row = int(round(apex_row + cm * 10.0 / spacing_mm))
        if 0 <= row < h:
            cv2.circle(rgb, (int(0.96 * w), row), 1, (150, 150, 150), -1)
    scale = 0.25 * w / 256.0
    cv2.putText(rgb, label_text, (int(0.02 * w), int(0.05 * h)), cv2.FONT_HERSHEY_SIMPLEX, scale,
                (200, 200, 200), 1, cv2.LINE_AA)
    cv2.putText(rgb, f"{depth_mm / 10:.0f}", (int(0.93 * w), int(0.88 * h)), cv2.FONT_HERSHEY_SIMPLEX,
                scale, (200, 200, 200), 1, cv2.LINE_AA)
