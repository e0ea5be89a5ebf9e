"""Overlay composition: a label mask blended onto the frame, filled or as contours.

Composition is part of the timed path (the ``overlay`` stage), so it is vectorised: one lookup
table per style maps labels to colours, and the blend touches only labelled pixels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

import cv2
import numpy as np

# Class -> RGB. Echo myocardium is 1; ACDC cine is 1 RV, 2 MYO, 3 LV; CAMUS 1 LV, 2 MYO, 3 LA.
DEFAULT_COLORS: Mapping[int, tuple[int, int, int]] = MappingProxyType({
    1: (230, 60, 60),
    2: (60, 200, 90),
    3: (70, 130, 240),
    4: (240, 200, 60),
})

MODES = ("fill", "contour")


@dataclass(frozen=True)
class OverlayStyle:
    """How masks are drawn.

    Attributes:
        opacity: Blend weight of the class colour in [0, 1] (``fill``); contours are drawn opaque
            when ``opacity > 0``.
        mode: ``"fill"`` (translucent regions) or ``"contour"`` (1-pixel outlines).
        colors: Class value -> RGB; classes not listed are not drawn.
    """

    opacity: float = 0.45
    mode: str = "fill"
    colors: Mapping[int, tuple[int, int, int]] = field(default_factory=lambda: dict(DEFAULT_COLORS))

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"overlay mode must be one of {MODES}, got {self.mode!r}")
        if not 0.0 <= float(self.opacity) <= 1.0:
            raise ValueError(f"overlay opacity must be in [0, 1], got {self.opacity}")

    def lut(self) -> np.ndarray:
        """``(256, 3)`` uint8 colour table (row = label value)."""
        table = np.zeros((256, 3), dtype=np.uint8)
        for label, rgb in self.colors.items():
            table[int(label)] = rgb
        return table


def to_rgb(image: np.ndarray) -> np.ndarray:
    """Any frame as ``(H, W, 3)`` uint8 RGB for display (grey float frames are min-max scaled)."""
    if image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8:
        return image
    img = image
    if img.ndim == 3:
        img = img[..., 0]
    if img.dtype != np.uint8:
        img = img.astype(np.float32)
        finite = np.isfinite(img)
        if not finite.all():
            img = np.where(finite, img, 0.0)
        lo, hi = float(img.min()), float(img.max())
        scale = 255.0 / (hi - lo) if hi > lo else 0.0
        img = cv2.convertScaleAbs(img, alpha=scale, beta=-lo * scale)
    return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)


def compose(image: np.ndarray, mask: np.ndarray, style: OverlayStyle) -> np.ndarray:
    """Blend a label mask onto a frame.

    Only the bounding box of the labelled pixels is touched; colours come from a ``cv2.LUT`` and
    the blend is one ``cv2.addWeighted`` (about 1 ms at 512x384 on a loaded 2-core CPU).

    Args:
        image: ``(H, W, 3)`` uint8 RGB or ``(H, W)`` grey (uint8 or float).
        mask: ``(H, W)`` integer label map, same H and W as ``image``.
        style: Colours, opacity and mode.

    Returns:
        ``(H, W, 3)`` uint8 RGB (a new array; ``image`` is not modified).
    """
    rgb = to_rgb(image)
    if mask.shape != rgb.shape[:2]:
        raise ValueError(f"mask shape {mask.shape} does not match image shape {rgb.shape[:2]}")
    out = rgb.copy()
    if style.opacity <= 0.0:
        return out
    labels = mask if mask.dtype == np.uint8 else mask.astype(np.uint8)
    drawn = (labels > 0).view(np.uint8)
    x, y, w, h = cv2.boundingRect(drawn)
    if w == 0 or h == 0:
        return out
    if style.mode == "contour":  # a 1-pixel margin so edges at the box border are found
        x0, y0, x1, y1 = max(0, x - 1), max(0, y - 1), min(labels.shape[1], x + w + 1), min(labels.shape[0], y + h + 1)
    else:
        x0, y0, x1, y1 = x, y, x + w, y + h
    roi_labels = labels[y0:y1, x0:x1]
    colour = cv2.LUT(cv2.merge([roi_labels, roi_labels, roi_labels]), _lut(style))
    roi_out = out[y0:y1, x0:x1]
    if style.mode == "contour":
        where = (_label_edges(roi_labels) & (roi_labels > 0)).view(np.uint8)
        cv2.copyTo(colour, where, roi_out)
    else:
        blended = cv2.addWeighted(rgb[y0:y1, x0:x1], 1.0 - style.opacity, colour, style.opacity, 0.0)
        cv2.copyTo(blended, drawn[y0:y1, x0:x1], roi_out)
    return out


def _lut(style: OverlayStyle) -> np.ndarray:
    """``(256, 1, 3)`` uint8 colour table for ``cv2.LUT``, cached per colour set."""
    key = tuple(sorted((int(k), tuple(int(c) for c in v)) for k, v in style.colors.items()))
    table = _LUTS.get(key)
    if table is None:
        table = style.lut().reshape(256, 1, 3)
        if len(_LUTS) > 64:
            _LUTS.clear()
        _LUTS[key] = table
    return table


_LUTS: dict[tuple, np.ndarray] = {}


def _label_edges(labels: np.ndarray) -> np.ndarray:
    """Pixels whose 3x3 neighbourhood holds another label (inner boundary of each region)."""
    kernel = np.ones((3, 3), np.uint8)
    hi = cv2.dilate(labels, kernel)
    lo = cv2.erode(labels, kernel)
    return hi != lo
