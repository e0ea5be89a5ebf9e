"""Random affine augmentation (translation, rotation, scale) applied identically to an image or
clip and its labels: linear interpolation for images, nearest for labels."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class AffineAugmentation:
    """Ranges of the random affine transform (uniform in each range).

    Attributes:
        max_shift: Largest translation as a fraction of the image size.
        max_rotation_deg: Largest rotation in degrees (either direction).
        scale_range: (min, max) isotropic scale.
    """

    max_shift: float = 0.08
    max_rotation_deg: float = 12.0
    scale_range: tuple[float, float] = (0.9, 1.1)

    def sample(self, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
        """A 2x3 affine matrix about the image centre."""
        angle = rng.uniform(-self.max_rotation_deg, self.max_rotation_deg)
        scale = rng.uniform(*self.scale_range)
        matrix = cv2.getRotationMatrix2D((width / 2.0, height / 2.0), angle, scale)
        matrix[0, 2] += rng.uniform(-self.max_shift, self.max_shift) * width
        matrix[1, 2] += rng.uniform(-self.max_shift, self.max_shift) * height
        return matrix


def warp_planes(planes: np.ndarray, matrix: np.ndarray, *, labels: bool) -> np.ndarray:
    """Warp every 2D plane of ``(..., H, W)`` with the same affine matrix.

    Args:
        planes: ``(..., H, W)`` array; float images, or integer label maps when ``labels``.
        matrix: 2x3 affine matrix.
        labels: Nearest-neighbour interpolation (and outside = 0) instead of linear.
    """
    height, width = planes.shape[-2:]
    flat = planes.reshape(-1, height, width)
    interp = cv2.INTER_NEAREST if labels else cv2.INTER_LINEAR
    out = np.empty_like(flat)
    for i, plane in enumerate(flat):
        out[i] = cv2.warpAffine(plane, matrix, (width, height), flags=interp, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return out.reshape(planes.shape)
