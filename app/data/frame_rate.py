"""Plausible frame rates: header values outside 1-200 fps are replaced by a default, with one warning.

A recording paced by an absurd header value either hangs the replay (``FrameTime`` 1e6 ms is one
frame every 17 minutes) or races through it. Echo and cine MR are acquired at roughly 10-100 fps,
so anything outside ``MIN_FPS``..``MAX_FPS`` is a broken or missing header field, not a real rate.
"""

from __future__ import annotations

import logging
import math

log = logging.getLogger(__name__)

MIN_FPS = 1.0  # FrameTime 1000 ms
MAX_FPS = 200.0  # FrameTime 5 ms
ECHO_DEFAULT_FPS = 30.0
CINE_DEFAULT_FPS = 25.0


def is_plausible(fps: object) -> bool:
    """True for a finite number of frames per second within ``MIN_FPS``..``MAX_FPS``."""
    try:
        value = float(fps)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    return math.isfinite(value) and MIN_FPS <= value <= MAX_FPS


def default_fps(modality: str | None) -> float:
    """The rate used when a recording has no plausible one: 25 fps for cine MR, 30 fps otherwise."""
    return CINE_DEFAULT_FPS if modality == "cine" else ECHO_DEFAULT_FPS


def checked_fps(where: object, fps: object, found: str, default: float) -> float:
    """``fps`` when plausible; otherwise ``default`` and one warning naming the file and both values.

    Args:
        where: The file (or spec) the value came from.
        fps: The frame rate derived from the header (any type; NaN, 0, None and junk are implausible).
        found: How the value appeared in the file, e.g. ``"FrameTime 1000000 ms"``.
        default: The rate to use instead.
    """
    if is_plausible(fps):
        return float(fps)  # type: ignore[arg-type]
    log.warning("%s: %s is not plausible (outside %g-%g fps); playing at %g fps",
                where, found, MIN_FPS, MAX_FPS, default)
    return float(default)


def describe(value: object, unit: str = "fps") -> str:
    """``value`` as it reads in a warning (``0``, ``nan``, ``1e+06``...) followed by ``unit``."""
    try:
        return f"{float(value):g} {unit}"  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return f"{value!r}"
