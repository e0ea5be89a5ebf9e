"""Ultrasound image formation on a polar (depth x beam) grid, then scan conversion to the display.

The chain per frame, all vectorised over the whole grid:

1. echogenicity (mean backscattered intensity) per polar sample, from the tissue map;
2. two-way attenuation: tissue (exponential in depth) plus contrast microbubbles (cumulative along
   each beam, so a bright LV shadows the base and the atrium);
3. complex Gaussian scatterers weighted by sqrt(echogenicity) (partly persistent between frames
   for tissue, fresh for moving blood/bubbles);
4. a separable axial x lateral Gaussian point-spread function (``cv2.sepFilter2D``): the magnitude
   of the filtered complex field is the envelope (Rayleigh speckle of realistic grain size);
5. electronic noise, time-gain compensation, log compression to a dynamic range in dB;
6. scan conversion to the Cartesian display with ``cv2.remap`` (black outside the sector).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass
class SectorGeometry:
    """A phased-array sector imaged onto a square display.

    Attributes:
        size: Display width and height in pixels.
        depth_mm: Imaging depth (distance from the virtual apex to the sector's far arc).
        half_angle: Half the sector opening in radians.
        near_mm: Radius of the sector's near arc (the probe face).
        n_depth: Axial samples of the polar grid.
        n_beams: Beams (lateral samples) of the polar grid.
    """

    size: int
    depth_mm: float
    half_angle: float
    near_mm: float = 4.0
    n_depth: int = 288
    n_beams: int = 144

    def __post_init__(self) -> None:
        s = self.size
        width_mm = 2.0 * self.depth_mm * np.sin(self.half_angle)
        # Square pixels; the sector fills the width or the height, whichever is tighter.
        self.spacing_mm = float(max(self.depth_mm / (0.93 * s), width_mm / (0.98 * s)))
        self.apex_px = (float(0.035 * s - self.near_mm / self.spacing_mm), (s - 1) / 2.0)  # (row, col)
        self.radii_mm = np.linspace(self.near_mm, self.depth_mm, self.n_depth).astype(np.float32)
        self.angles = np.linspace(-self.half_angle, self.half_angle, self.n_beams).astype(np.float32)
        self.dr_mm = float(self.radii_mm[1] - self.radii_mm[0])

        # Display pixel -> polar sample (for scan conversion).
        rows, cols = np.mgrid[0:s, 0:s].astype(np.float32)
        x = (cols - self.apex_px[1]) * self.spacing_mm
        z = (rows - self.apex_px[0]) * self.spacing_mm
        r = np.hypot(x, z)
        th = np.arctan2(x, z)
        self.map_depth = ((r - self.near_mm) / self.dr_mm).astype(np.float32)
        self.map_beam = ((th + self.half_angle) / (2 * self.half_angle) * (self.n_beams - 1)).astype(np.float32)
        self.sector_mask = (
            (r >= self.near_mm) & (r <= self.depth_mm) & (np.abs(th) <= self.half_angle) & (z > 0)
        )
        outside = ~self.sector_mask
        self.map_depth[outside] = -10.0
        self.map_beam[outside] = -10.0

        # Polar sample -> display pixel (to sample the anatomy drawn on the display grid).
        rr, tt = np.meshgrid(self.radii_mm, self.angles, indexing="ij")
        self.polar_x_mm = (rr * np.sin(tt)).astype(np.float32)
        self.polar_z_mm = (rr * np.cos(tt)).astype(np.float32)
        self.polar_col = (self.polar_x_mm / self.spacing_mm + self.apex_px[1]).astype(np.float32)
        self.polar_row = (self.polar_z_mm / self.spacing_mm + self.apex_px[0]).astype(np.float32)
        self.polar_r_mm = rr.astype(np.float32)

    def mm_to_px(self, xz: np.ndarray) -> np.ndarray:
        """``(N, 2)`` points ``(x, z)`` in mm -> ``(N, 2)`` display ``(col, row)`` in pixels."""
        col = xz[:, 0] / self.spacing_mm + self.apex_px[1]
        row = xz[:, 1] / self.spacing_mm + self.apex_px[0]
        return np.stack([col, row], axis=1)

    def to_polar(self, display_map: np.ndarray, nearest: bool = True) -> np.ndarray:
        """Sample a ``(size, size)`` display-grid map at every polar sample -> ``(n_depth, n_beams)``."""
        interp = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
        return cv2.remap(display_map, self.polar_col, self.polar_row, interp, borderMode=cv2.BORDER_CONSTANT, borderValue=0)

    def scan_convert(self, polar: np.ndarray) -> np.ndarray:
        """Polar image ``(n_depth, n_beams)`` float32 -> display ``(size, size)`` float32, 0 outside."""
        return cv2.remap(polar, self.map_beam, self.map_depth, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def gaussian_kernel(sigma: float) -> np.ndarray:
    """1D Gaussian normalised to unit energy (sum of squares 1), so speckle power is preserved."""
    radius = max(1, int(np.ceil(3.0 * sigma)))
    x = np.arange(-radius, radius + 1, dtype=np.float32)
    k = np.exp(-0.5 * (x / sigma) ** 2)
    return (k / np.sqrt(np.sum(k**2))).astype(np.float32)


def complex_normal(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Circular complex Gaussian field as ``(*shape, 2)`` float32 (real, imaginary), E|z|^2 = 1."""
    return rng.standard_normal((*shape, 2), dtype=np.float32) * np.float32(np.sqrt(0.5))


def envelope(scatter: np.ndarray, axial: np.ndarray, lateral: np.ndarray) -> np.ndarray:
    """Convolve a ``(n_depth, n_beams, 2)`` complex field with the PSF and take its magnitude.

    Returns:
        ``(n_depth, n_beams)`` float32 envelope (Rayleigh distributed in fully developed speckle).
    """
    iq = cv2.sepFilter2D(scatter, cv2.CV_32F, lateral, axial, borderType=cv2.BORDER_REFLECT)
    return cv2.magnitude(iq[..., 0], iq[..., 1])


def log_compress(env: np.ndarray, dynamic_range_db: float, gain_db: float) -> np.ndarray:
    """Envelope -> display brightness in [0, 1]: ``(20 log10 env + gain + DR) / DR``, clipped."""
    db = 20.0 * np.log10(env + 1e-6) + gain_db
    return np.clip((db + dynamic_range_db) / dynamic_range_db, 0.0, 1.0).astype(np.float32)


def smooth_field(rng: np.random.Generator, shape: tuple[int, int], cells: tuple[int, int]) -> np.ndarray:
    """Low-frequency random field with zero mean and unit std, bicubic from a ``cells`` grid."""
    coarse = rng.standard_normal(cells).astype(np.float32)
    field = cv2.resize(coarse, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)
    std = float(field.std())
    return (field - field.mean()) / (std if std > 1e-6 else 1.0)
