"""Short-axis bSSFP cine MR phantom, 2D+t per slice, labelled in the ACDC convention.

Bright blood, dark myocardium, an LV ring with papillary muscles inside the cavity (labelled LV as
ACDC does), an RV crescent attached at the septum that shrinks and vanishes toward the apex, and
the chest around the heart: subcutaneous and epicardial fat, muscle, liver, lungs, descending
aorta. The acquisition adds a coil bias field, k-space blur with Gibbs ringing, respiratory
ghosting, off-resonance banding, slice misregistration between breath-holds, flow voids and
Rician noise, each scaled by the case's quality. Everything is vectorised over
``(T, Z, H, W)``.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

import numpy as np

from app.data.case import ACDC_LABELS, Case
from app.data.phantom.cycle import contraction
from app.data.phantom.quality import case_rng, draw_quality, quality_bin
from app.data.phantom.ultrasound import smooth_field

log = logging.getLogger(__name__)

_ANATOMY, _ACQ, _NOISE = 11, 12, 13

# Relative bSSFP signal (blood = 1) per tissue.
BLOOD, MYO, FAT, MUSCLE, LIVER, LUNG, AORTA = 1.0, 0.2, 0.85, 0.3, 0.34, 0.04, 0.95


@dataclass(frozen=True)
class CineAnatomy:
    """One patient's short-axis geometry at end-diastole (mm)."""

    kind: str                 # "normal", "dcm", "hcm", "minf" or "arv" (ACDC's NOR/DCM/HCM/MINF/RV)
    r_endo_base: float
    wall: float
    fractional_shortening: float
    thickening: float
    lv_length: float          # base to epicardial apex
    shape_coeffs: tuple[float, ...]   # Fourier amplitudes of the endocardium (k = 2..8: shape, trabeculae)
    shape_phases: tuple[float, ...]
    rv_width: float           # RV crescent depth at the base
    rv_height: float          # RV extent along the septum
    rv_ef: float
    papillary_radius: float
    centre: tuple[float, float]       # LV centre in the image (mm from the image centre, x, y)
    axis_drift: tuple[float, float]   # in-plane LV centre shift per slice (long axis tilt)
    rotation: float           # orientation of the RV side (rad, 0 = RV on the left)


def draw_cine_anatomy(rng: np.random.Generator) -> CineAnatomy:
    """Draw one patient: normal, dilated (DCM), hypertrophic (HCM) or infarcted (thin, akinetic)."""
    kind = rng.choice(["normal", "dcm", "hcm", "minf", "arv"], p=[0.4, 0.15, 0.15, 0.15, 0.15])
    r = rng.uniform(20.0, 27.0)
    wall, fs, thick = rng.uniform(7.0, 10.0), rng.uniform(0.28, 0.4), rng.uniform(0.35, 0.6)
    rv_w, rv_ef = rng.uniform(14.0, 22.0), rng.uniform(0.4, 0.6)
    if kind == "dcm":
        r, wall, fs, thick = r * rng.uniform(1.25, 1.5), wall * 0.8, rng.uniform(0.06, 0.15), thick * 0.4
    elif kind == "hcm":
        r, wall, fs = r * rng.uniform(0.75, 0.9), wall * rng.uniform(1.4, 1.9), rng.uniform(0.35, 0.5)
    elif kind == "minf":
        fs, thick = rng.uniform(0.1, 0.2), thick * 0.5
    elif kind == "arv":
        rv_w, rv_ef = rv_w * rng.uniform(1.4, 1.8), rng.uniform(0.15, 0.3)
    return CineAnatomy(
        kind=str(kind), r_endo_base=r, wall=wall, fractional_shortening=fs, thickening=thick,
        lv_length=rng.uniform(75.0, 95.0) * (1.1 if kind == "dcm" else 1.0),
        shape_coeffs=tuple(np.concatenate([rng.uniform(0.0, 0.06, 3), rng.uniform(0.0, 0.025, 4)])),
        shape_phases=tuple(rng.uniform(0, 2 * np.pi, 7)),
        rv_width=rv_w, rv_height=rng.uniform(1.05, 1.35), rv_ef=rv_ef,
        papillary_radius=rng.uniform(2.5, 4.0),
        centre=(rng.uniform(-12.0, 12.0), rng.uniform(-12.0, 10.0)),
        axis_drift=(rng.uniform(-1.5, 1.5), rng.uniform(-1.5, 1.5)),
        rotation=rng.uniform(-0.35, 0.35),
    )


@dataclass(frozen=True)
class CineAcquisition:
    """How one cine case was acquired; each degradation grows as quality falls."""

    quality: float
    heart_rate: float
    spacing_mm: float
    slice_thickness_mm: float
    first_slice_fraction: float   # where the basal slice sits along the LV (0 = base)
    last_slice_fraction: float
    signal_scale: float           # MR intensity of blood (arbitrary scanner units)
    noise: float                  # Rician sigma relative to blood
    bias: float                   # coil sensitivity fall-off strength
    blur_px: float                # k-space window (Gaussian sigma in pixels)
    ghost: float                  # respiratory ghost amplitude
    banding: float                # off-resonance band depth
    misregistration_mm: float     # slice-to-slice breath-hold offsets
    blood_myo_contrast: float     # 1 = textbook bSSFP contrast, lower = washed out
    flow_voids: float


def draw_cine_acquisition(rng: np.random.Generator, quality: float) -> CineAcquisition:
    bad = 1.0 - quality
    return CineAcquisition(
        quality=quality,
        heart_rate=float(rng.uniform(55.0, 95.0)),
        spacing_mm=float(rng.uniform(1.45, 1.85)),
        slice_thickness_mm=float(rng.uniform(6.0, 10.0)),
        first_slice_fraction=float(rng.uniform(0.0, 0.08)),
        last_slice_fraction=float(rng.uniform(0.8, 0.97)),
        signal_scale=float(rng.uniform(150.0, 900.0)),
        noise=float(0.015 + 0.13 * bad**1.4 * rng.uniform(0.4, 1.0)),
        bias=float(rng.uniform(0.1, 0.3) + 0.5 * bad * rng.uniform(0.0, 1.0)),
        blur_px=float(rng.uniform(0.4, 0.8) + 1.2 * bad * rng.uniform(0.0, 1.0)),
        ghost=float(0.3 * bad**1.5 * rng.uniform(0.0, 1.0)),
        banding=float(0.8 * bad * rng.uniform(0.0, 1.0) if rng.uniform() < 0.3 + 0.5 * bad else 0.0),
        misregistration_mm=float(0.5 + 4.0 * bad * rng.uniform(0.0, 1.0)),
        blood_myo_contrast=float(1.0 - 0.45 * bad**1.3 * rng.uniform(0.3, 1.0)),
        flow_voids=float(0.6 * bad * rng.uniform(0.0, 1.0)),
    )


def _soft_inside(signed_mm: np.ndarray, edge_mm: float) -> np.ndarray:
    """Partial-volume occupancy from a signed distance (negative inside): 1 inside, 0 outside."""
    return np.clip(0.5 - signed_mm / edge_mm, 0.0, 1.0).astype(np.float32)


def _paint(image: np.ndarray, occupancy: np.ndarray, value: float | np.ndarray) -> None:
    image *= 1.0 - occupancy
    image += occupancy * value


def _background(shape: tuple[int, int], spacing: float, rng: np.random.Generator, heart_xy: tuple[float, float]) -> np.ndarray:
    """Static chest around the heart, ``(H, W)`` float32 relative signal (blood = 1)."""
    h, w = shape
    y, x = (np.mgrid[0:h, 0:w].astype(np.float32) - np.array([h / 2, w / 2], np.float32)[:, None, None]) * spacing
    edge = spacing
    img = np.zeros(shape, np.float32)
    # Body outline (often larger than the field of view), subcutaneous fat, muscle.
    ax, ay = rng.uniform(150.0, 190.0), rng.uniform(105.0, 130.0)
    cy = rng.uniform(20.0, 45.0)
    body = np.sqrt((x / ax) ** 2 + ((y - cy) / ay) ** 2)
    _paint(img, _soft_inside((body - 1.0) * ay, edge), FAT)
    _paint(img, _soft_inside((body - 1.0) * ay + rng.uniform(8.0, 16.0), edge), MUSCLE)
    # Lungs either side of the heart, liver low on the left of the image.
    hx, hy = heart_xy
    for side in (-1.0, 1.0):
        lx = hx + side * rng.uniform(55.0, 75.0)
        d = np.sqrt(((x - lx) / rng.uniform(35.0, 50.0)) ** 2 + ((y - hy - rng.uniform(-10, 15)) / rng.uniform(50.0, 70.0)) ** 2)
        _paint(img, _soft_inside((d - 1.0) * 40.0, edge), LUNG)
    d = np.sqrt(((x - hx + rng.uniform(20.0, 50.0)) / 60.0) ** 2 + ((y - hy - rng.uniform(55.0, 75.0)) / 35.0) ** 2)
    _paint(img, _soft_inside((d - 1.0) * 35.0, edge), LIVER)
    # Descending aorta behind the heart, fat around the heart.
    ao = np.hypot(x - hx - rng.uniform(-5.0, 25.0), y - hy - rng.uniform(40.0, 55.0))
    _paint(img, _soft_inside(ao - rng.uniform(9.0, 13.0), edge), AORTA)
    texture = 1.0 + 0.06 * smooth_field(rng, shape, (12, 10))
    return img * texture


def render_cine_case(seed: int, case_index: int, *, n_frames: int = 20, n_slices: int = 8,
                     shape: tuple[int, int] = (128, 112), quality: float | None = None) -> Case:
    """Render one phantom cine MR patient.

    Args:
        seed: Dataset seed.
        case_index: Patient number; ``(seed, case_index)`` fixes everything.
        n_frames: Frames T over one cardiac cycle (frame 0 = end-diastole).
        n_slices: Short-axis slices Z, base (0) to apex.
        shape: ``(H, W)`` of each slice.
        quality: Acquisition quality in [0, 1]; None draws it from the seed.

    Returns:
        ``Case`` with frames ``(T, Z, H, W)`` float32 MR intensities and labels ``(T, Z, H, W)``
        uint8 (0 bg, 1 RV, 2 MYO, 3 LV), every frame labelled.
    """
    if n_frames < 1 or n_slices < 1 or min(shape) < 32:
        raise ValueError(f"need n_frames, n_slices >= 1 and shape >= 32, got {n_frames}, {n_slices}, {shape}")
    rng_anat, rng_acq, rng_noise = (case_rng(seed, case_index, s) for s in (_ANATOMY, _ACQ, _NOISE))
    q = draw_quality(rng_acq) if quality is None else float(quality)
    acq = draw_cine_acquisition(rng_acq, q)
    anat = draw_cine_anatomy(rng_anat)
    h, w = shape
    sp = acq.spacing_mm
    T, Z = n_frames, n_slices

    phases = np.arange(T) / T
    c = contraction(phases).astype(np.float32)[:, None, None, None]          # (T,1,1,1)
    frac = np.linspace(acq.first_slice_fraction, acq.last_slice_fraction, Z).astype(np.float32)[None, :, None, None]
    # Ellipsoidal LV: endocardial radius falls to 0 a wall's thickness before the epicardial apex.
    apex_taper = np.sqrt(np.clip(1.0 - frac**2.2, 0.0, 1.0))
    r_endo = anat.r_endo_base * apex_taper * (1.0 - anat.fractional_shortening * c) * (1.0 - 0.08 * frac)
    wall = anat.wall * (1.0 + anat.thickening * c) * (1.0 - 0.25 * frac)
    r_epi = np.maximum(r_endo, 0.0) + wall * np.where(frac > 0.9, np.clip((1.0 - frac) / 0.1, 0.3, 1.0), 1.0)

    misreg = rng_acq.normal(0.0, acq.misregistration_mm, (Z, 2)).astype(np.float32)
    zi = np.arange(Z, dtype=np.float32)
    cx = anat.centre[0] + anat.axis_drift[0] * zi + misreg[:, 0]
    cy = anat.centre[1] + anat.axis_drift[1] * zi + misreg[:, 1]
    resp = (1.5 * (1.0 - q) * np.sin(2 * np.pi * phases * rng_acq.uniform(0.2, 0.5) + rng_acq.uniform(0, 6.3))).astype(np.float32)
    cy_t = cy[None, :, None, None] + resp[:, None, None, None]
    cx_t = cx[None, :, None, None] + np.zeros((T, 1, 1, 1), np.float32)

    yy, xx = (np.mgrid[0:h, 0:w].astype(np.float32) - np.array([h / 2, w / 2], np.float32)[:, None, None]) * sp
    dx, dy = xx[None, None] - cx_t, yy[None, None] - cy_t                          # (T,Z,H,W)
    rho = np.hypot(dx, dy)
    theta = np.arctan2(dy, dx) - anat.rotation
    wobble = np.zeros_like(theta)
    for k, (a, ph) in enumerate(zip(anat.shape_coeffs, anat.shape_phases), start=2):
        wobble += a * np.cos(k * theta + ph)
    endo = r_endo * (1.0 + wobble)
    epi = r_epi * (1.0 + 0.5 * wobble)
    edge = 0.8 * sp

    # RV: an ellipse on the septal side whose overlap with the LV is removed -> a crescent.
    rv_scale = np.clip(1.0 - (frac / 0.85) ** 3, 0.0, 1.0) * (1.0 - anat.rv_ef * 0.6 * c)   # vanishes apically
    rv_a = anat.rv_width * rv_scale + 1e-3                                         # depth away from the septum
    rv_b = r_epi * anat.rv_height * np.sqrt(np.clip(rv_scale, 0, 1)) + 1e-3
    ux = np.cos(anat.rotation) * dx + np.sin(anat.rotation) * dy                  # + toward the LV lateral wall
    uy = -np.sin(anat.rotation) * dx + np.cos(anat.rotation) * dy
    rv_cx = -0.35 * r_epi - 0.5 * rv_a
    rv_ell = np.sqrt(((ux - rv_cx) / (0.65 * r_epi + 0.5 * rv_a)) ** 2 + (uy / rv_b) ** 2)
    rv_outer = (rv_ell - 1.0) * rv_b * 0.5                                       # approx. signed distance (mm)
    rv_outer = np.where(rv_scale > 0.05, rv_outer, np.float32(1e3))               # no RV below its apex
    rv_blood = np.maximum(rv_outer, -(rho - epi))                                 # inside RV ellipse and outside epi
    rv_wall = rv_outer - 3.0                                                      # 3 mm free wall

    # Papillary muscles: two dark discs inside the cavity (anterolateral and posteromedial).
    pap = np.full_like(rho, np.inf)
    for ang in (np.deg2rad(rng_anat.uniform(35, 60)), np.deg2rad(rng_anat.uniform(120, 150))):
        px = cx_t + 0.62 * r_endo * np.cos(ang + anat.rotation)
        py = cy_t + 0.62 * r_endo * np.sin(ang + anat.rotation)
        radius = anat.papillary_radius * (1.0 + 0.5 * c) * (frac < 0.8)
        pap = np.minimum(pap, np.hypot(xx - px, yy - py) - radius)

    labels = np.zeros((T, Z, h, w), np.uint8)
    labels[(rv_blood < 0) & (rv_scale > 0.05)] = 1
    # Basal slices cut through the LV outflow tract: the ring opens anteroseptally into the cavity.
    lvot_angle = np.deg2rad(rng_anat.uniform(-150.0, -110.0))
    in_lvot = (np.abs(np.angle(np.exp(1j * (theta - lvot_angle)))) < 0.45) & (frac < 0.04)
    cavity = (rho < endo) | (in_lvot & (rho < epi))
    labels[(rho < epi) & (epi - r_endo > 0)] = 2
    labels[cavity] = 3

    img = np.broadcast_to(_background(shape, sp, rng_anat, (anat.centre[0], anat.centre[1])), (T, Z, h, w)).copy()
    myo_signal = BLOOD * (1.0 - acq.blood_myo_contrast) + MYO * acq.blood_myo_contrast
    heart_env = np.minimum(rho - epi - rng_anat.uniform(2.0, 6.0), rv_wall - 2.0)
    fat = _soft_inside(heart_env, 3.0 * edge) * 0.8
    _paint(img, fat, FAT)                                                          # epicardial fat
    _paint(img, _soft_inside(rv_wall, edge) * (rv_scale > 0.05), MYO * 1.2)      # RV free wall
    _paint(img, _soft_inside(rv_blood, edge) * (rv_scale > 0.05), BLOOD * 0.95)
    _paint(img, _soft_inside(rho - epi, edge), myo_signal)
    blood = BLOOD * (1.0 - acq.flow_voids * np.clip(smooth_field(rng_noise, (h, w), (6, 5)), 0, None) * c)
    _paint(img, np.maximum(_soft_inside(rho - endo, edge), in_lvot * _soft_inside(rho - epi, edge)), blood)
    _paint(img, _soft_inside(pap, edge) * (rho < endo), myo_signal * 1.1)
    # bSSFP "India ink": fat and water cancel in voxels holding both -> a dark line at fat borders.
    img *= 1.0 - 2.4 * fat * (0.8 - fat) * (rho > epi)

    img = _acquire(img, acq, rng_noise)
    es = int(np.argmax(contraction(phases)))
    frame_rate = T / (60.0 / acq.heart_rate)
    meta = {"anatomy": asdict(anat), "acquisition": asdict(acq), "seed": int(seed), "case_index": int(case_index),
            "slice_thickness_mm": acq.slice_thickness_mm}
    return Case(
        case_id=f"phantom-cine-s{seed}-{case_index:04d}", modality="cine", frames=img, labels=labels,
        label_map=dict(ACDC_LABELS), spacing_mm=(sp, sp), frame_rate=float(frame_rate),
        labelled_frames=tuple(range(T)), ed=0, es=es, quality=q, quality_bin=quality_bin(q),
        source="phantom-cine", meta=meta,
    ).validate()


def _acquire(img: np.ndarray, acq: CineAcquisition, rng: np.random.Generator) -> np.ndarray:
    """Image formation on ``(T, Z, H, W)`` relative signal -> float32 MR intensities."""
    T, Z, h, w = img.shape
    # Off-resonance banding: dark stripes where the field drifts by a multiple of 1/TR.
    if acq.banding > 0:
        field = smooth_field(rng, (h, w), (3, 3)) * rng.uniform(1.0, 2.5)
        img *= (1.0 - acq.banding * np.exp(-0.5 * (np.mod(field, 1.0) - 0.5) ** 2 / 0.03**2))
    # k-space: Gaussian window (blur) with a hard truncation (Gibbs ringing at sharp edges).
    ky = np.fft.fftfreq(h)[:, None]
    kx = np.fft.fftfreq(w)[None, :]
    window = np.exp(-2.0 * (np.pi * acq.blur_px) ** 2 * (kx**2 + ky**2))
    window *= (np.abs(ky) < 0.42) & (np.abs(kx) < 0.42)
    k = np.fft.fft2(img, axes=(-2, -1)) * window
    # Respiratory ghosts: phase errors replicate the image along the phase-encoding direction (rows).
    if acq.ghost > 0:
        n_ghost = np.fft.fftfreq(h)[:, None] * h
        shift = rng.integers(h // 6, h // 3)
        k = k * (1.0 + acq.ghost * np.cos(2 * np.pi * n_ghost * shift / h) * rng.uniform(0.5, 1.0))
    img = np.real(np.fft.ifft2(k, axes=(-2, -1))).astype(np.float32)
    # Coil sensitivity: brighter near the anterior surface coil, smooth per slice.
    yy = np.linspace(-1.0, 1.0, h, dtype=np.float32)[:, None]
    bias = np.exp(acq.bias * (-yy * rng.uniform(0.6, 1.0) + 0.5 * smooth_field(rng, (h, w), (3, 3))))
    img *= bias / bias.mean()
    # Rician noise: magnitude of the complex signal plus complex Gaussian noise.
    sigma = np.float32(acq.noise)
    real = img + sigma * rng.standard_normal(img.shape, dtype=np.float32)
    imag = sigma * rng.standard_normal(img.shape, dtype=np.float32)
    return (np.sqrt(real**2 + imag**2) * np.float32(acq.signal_scale)).astype(np.float32)
