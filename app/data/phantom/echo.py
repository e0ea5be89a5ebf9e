"""Apical four-chamber echo phantom, 2D+t: contrast (LV opacification) or plain B-mode.

``render_echo_case(seed, case_index)`` draws one patient (anatomy, heart rate, acquisition
quality), moves the heart through several beats and forms every frame with the ultrasound chain of
``app.data.phantom.ultrasound``. Contrast cases carry microbubbles in the cavities and myocardial
perfusion that refills after a destruction flash as ``A (1 - exp(-beta t))``; labels are the LV
myocardium (``ECHO_MYO_LABELS``). B-mode cases are labelled as CAMUS (1 LV, 2 MYO, 3 LA).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

import cv2
import numpy as np

from app.data.case import CAMUS_LABELS, ECHO_MYO_LABELS, Case
from app.data.phantom.cycle import contraction, ed_es_frames, frame_phases, smooth_jitter
from app.data.phantom.display import COLOUR_MAPS, colour_lut, draw_overlays
from app.data.phantom.echo_anatomy import A4cAnatomy, A4cPolygons, a4c_polygons, draw_anatomy
from app.data.phantom.quality import case_rng, draw_quality, quality_bin
from app.data.phantom.ultrasound import (
    SectorGeometry, complex_normal, envelope, gaussian_kernel, log_compress, smooth_field,
)

log = logging.getLogger(__name__)

VARIANTS = ("contrast", "bmode")

# Tissue classes of the rendering map (not the labels).
BG, LV_MYO, LV_CAV, LA, RV, RA, WALL, PERI, VALVE, MYO_DEFECT = range(10)
N_TISSUE = 10
CAVITIES = (LV_CAV, LA, RV, RA)

# Streams of per-case randomness (see quality.case_rng).
_ANATOMY, _ACQ, _MOTION, _SPECKLE = 1, 2, 3, 4


@dataclass(frozen=True)
class EchoAcquisition:
    """Everything about how one case was acquired; degraded smoothly as quality falls."""

    quality: float
    frame_rate: float
    heart_rate: float
    phase0: float
    depth_mm: float
    half_angle: float
    dynamic_range_db: float
    gain_db: float
    grey_gamma: float           # display grey map (power law applied after log compression)
    tgc_error: float            # fraction of the true attenuation the TGC fails to compensate
    noise_db: float             # electronic noise power relative to a unit echo, dB
    cavity_level: float         # microbubble echo in the LV cavity (contrast)
    perfusion_plateau: float    # myocardial contrast echo when fully refilled (A)
    perfusion_rate: float       # refill rate beta (1/s)
    tissue_leak: float          # tissue echo that survives contrast-specific imaging
    pericardium: float          # pericardial echo (strong specular reflector, partly not suppressed)
    time_since_flash: float     # seconds from the last flash to the first frame
    flash_frame: int            # frame of a destruction flash inside the sequence, -1 if none
    bubble_attenuation: float   # Np per mm per unit bubble concentration
    apical_destruction: float   # fraction of near-field bubbles destroyed by the beam
    swirl: float                # strength of cavity swirling (heterogeneous opacification)
    clutter: float              # near-field haze and reverberation level
    n_shadows: int
    n_dropouts: int
    persistence: float          # frame averaging: motion blur
    jitter_mm: float
    jitter_deg: float
    respiration_mm: float
    partial_view: str           # "", "lateral", "septal" or "foreshortened"
    colour_map: str
    defect: bool                # a perfusion defect in one wall


def draw_acquisition(rng: np.random.Generator, quality: float, variant: str, n_frames: int) -> EchoAcquisition:
    """Acquisition settings of one case; ``bad = 1 - quality`` scales every degradation."""
    bad = 1.0 - quality
    partial = ""
    if rng.uniform() < 0.05 + 0.5 * bad**1.5:
        partial = str(rng.choice(["lateral", "septal", "foreshortened"], p=[0.45, 0.2, 0.35]))
    contrast = variant == "contrast"
    return EchoAcquisition(
        quality=quality,
        frame_rate=float(rng.uniform(25.0, 45.0) if contrast else rng.uniform(30.0, 50.0)),
        heart_rate=float(rng.uniform(55.0, 105.0)),
        phase0=float(rng.uniform(0.0, 1.0)),
        depth_mm=0.0,  # set from the anatomy
        half_angle=float(np.deg2rad(rng.uniform(36.0, 45.0))),
        dynamic_range_db=float(rng.uniform(28.0, 40.0) if contrast else rng.uniform(42.0, 55.0)),
        grey_gamma=float(rng.uniform(1.0, 1.6)),
        gain_db=float(rng.normal(0.0, 2.0) - bad * rng.uniform(0.0, 9.0) * rng.choice([-0.5, 1.0])),
        tgc_error=float(rng.uniform(-0.25, 0.25) * bad),
        noise_db=float(-52.0 + 34.0 * bad**1.3 + rng.normal(0.0, 2.0)),
        cavity_level=float(rng.uniform(0.7, 1.0) * (1.0 - 0.55 * bad * rng.uniform(0.3, 1.0))),
        perfusion_plateau=float(rng.uniform(0.008, 0.05) + 0.25 * bad**1.5 * rng.uniform(0.0, 1.0)),
        pericardium=float(rng.uniform(0.04, 0.3)),
        tissue_leak=float(10 ** (rng.uniform(-3.6, -2.8) + 1.2 * bad * rng.uniform(0.0, 1.0))),
        perfusion_rate=float(rng.uniform(0.4, 1.6)),
        time_since_flash=float(rng.uniform(0.3, 8.0)),
        flash_frame=int(rng.integers(3, max(4, n_frames - 6))) if contrast and n_frames > 10 and rng.uniform() < 0.25 else -1,
        bubble_attenuation=float(rng.uniform(0.004, 0.012) + 0.02 * bad * rng.uniform(0.0, 1.0)),
        apical_destruction=float(rng.uniform(0.0, 0.3) + 0.6 * bad * rng.uniform(0.0, 1.0)),
        swirl=float(0.15 + 0.9 * bad * rng.uniform(0.3, 1.0)),
        clutter=float(0.01 + 0.45 * bad**1.2 * rng.uniform(0.3, 1.0)),
        n_shadows=int(rng.poisson(0.2 + 1.8 * bad)),
        n_dropouts=int(rng.poisson(0.5 + 4.0 * bad)),
        persistence=float(rng.uniform(0.0, 0.2) + 0.45 * bad * rng.uniform(0.0, 1.0)),
        jitter_mm=float(0.2 + 1.8 * bad * rng.uniform(0.2, 1.0)),
        jitter_deg=float(0.3 + 2.0 * bad * rng.uniform(0.2, 1.0)),
        respiration_mm=float(rng.uniform(0.5, 3.0) + 3.0 * bad * rng.uniform(0.0, 1.0)),
        partial_view=partial,
        colour_map=str(rng.choice(COLOUR_MAPS, p=[0.4, 0.3, 0.15, 0.15])) if contrast else "grey",
        defect=bool(contrast and rng.uniform() < 0.3),
    )


def _apply_partial_view(anat: A4cAnatomy, mode: str, rng: np.random.Generator) -> A4cAnatomy:
    """Move the heart so that part of it leaves the sector (or the apex hides in the near field)."""
    from dataclasses import replace

    if mode == "lateral":
        return replace(anat, apex_offset=anat.apex_offset + rng.uniform(14.0, 28.0),
                       axis_angle=anat.axis_angle + np.deg2rad(rng.uniform(4.0, 12.0)))
    if mode == "septal":
        return replace(anat, apex_offset=anat.apex_offset - rng.uniform(14.0, 26.0),
                       axis_angle=anat.axis_angle - np.deg2rad(rng.uniform(4.0, 10.0)))
    if mode == "foreshortened":
        return replace(anat, apex_depth=rng.uniform(-6.0, 6.0))
    return anat


def _static_maps(geo: SectorGeometry, acq: EchoAcquisition, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Per-case polar maps fixed to the probe: acoustic window (shadows, dropout), clutter, TGC."""
    shape = (geo.n_depth, geo.n_beams)
    r = geo.polar_r_mm
    beam = np.linspace(-1.0, 1.0, geo.n_beams, dtype=np.float32)[None, :]
    window = np.ones(shape, np.float32)
    window *= 1.0 - 0.35 * np.abs(beam) ** 4  # weaker edge beams (element directivity)
    for _ in range(acq.n_shadows):  # rib shadows: an angular band from some depth down
        centre = rng.uniform(-0.95, 0.95)
        width = rng.uniform(0.06, 0.2)
        start = rng.uniform(0.0, 40.0)
        strength = rng.uniform(0.55, 0.95)
        band = np.exp(-0.5 * ((beam - centre) / width) ** 6)
        onset = 1.0 / (1.0 + np.exp(-(r - start) / 3.0))
        window *= 1.0 - strength * band * onset
    for _ in range(acq.n_dropouts):  # patchy loss of signal (poor acoustic window, lung)
        cb, cr = rng.uniform(-0.9, 0.9), rng.uniform(20.0, acq.depth_mm * 0.85)
        sb, sr = rng.uniform(0.08, 0.3), rng.uniform(8.0, 25.0)
        depth = rng.uniform(0.5, 0.95)
        window *= 1.0 - depth * np.exp(-0.5 * (((beam - cb) / sb) ** 2 + ((r - cr) / sr) ** 2))
    tex = smooth_field(rng, shape, (10, 8))
    haze = acq.clutter * np.exp(-r / rng.uniform(15.0, 35.0)) * np.exp(0.5 * tex)
    period = rng.uniform(8.0, 16.0)
    reverb = 0.7 * acq.clutter * np.cos(np.pi * r / period) ** 8 * (r < rng.uniform(40.0, 80.0))
    clutter = (haze + reverb * (0.6 + 0.4 * np.abs(tex))).astype(np.float32)
    alpha = rng.uniform(0.02, 0.035)  # tissue attenuation, Np/mm two-way amplitude (~2.5-4 MHz)
    tissue_att = np.exp(-alpha * r).astype(np.float32)
    tgc = np.exp(alpha * (1.0 - acq.tgc_error) * r).astype(np.float32)
    texture = np.exp(0.25 * smooth_field(rng, shape, (14, 12))).astype(np.float32)
    return {"window": window, "clutter": clutter, "tissue_att": tissue_att, "tgc": tgc, "texture": texture}


def _fill(canvas: np.ndarray, geo: SectorGeometry, poly_mm: np.ndarray, value: int) -> None:
    pts = np.round(geo.mm_to_px(poly_mm) * 16.0).astype(np.int32)
    cv2.fillPoly(canvas, [pts], int(value), lineType=cv2.LINE_8, shift=4)


def _line(canvas: np.ndarray, geo: SectorGeometry, line_mm: np.ndarray, value: int, thickness_mm: float) -> None:
    pts = np.round(geo.mm_to_px(line_mm) * 16.0).astype(np.int32)
    th = max(1, int(round(thickness_mm / geo.spacing_mm)))
    cv2.polylines(canvas, [pts], False, int(value), th, lineType=cv2.LINE_8, shift=4)


def tissue_map(geo: SectorGeometry, polys: A4cPolygons, defect_mm: tuple[float, float, float] | None) -> np.ndarray:
    """Rendering classes on the display grid, ``(size, size)`` uint8."""
    cls = np.zeros((geo.size, geo.size), np.uint8)
    for poly, value in ((polys.ra_cavity, RA), (polys.la_cavity, LA)):
        _fill(cls, geo, poly, value)
        _line(cls, geo, np.vstack([poly, poly[:1]]), WALL, 2.0)
    _fill(cls, geo, polys.rv_cavity, RV)
    _fill(cls, geo, polys.rv_free_wall, WALL)
    _line(cls, geo, polys.septum_ias, WALL, 3.0)
    _line(cls, geo, polys.pericardium, PERI, 2.0)
    _fill(cls, geo, polys.lv_myocardium, LV_MYO)
    _fill(cls, geo, polys.lv_cavity, LV_CAV)
    for leaflet in polys.mitral_leaflets:
        _line(cls, geo, leaflet, VALVE, 1.5)
    if defect_mm is not None:
        x, z, radius = defect_mm
        centre = geo.mm_to_px(np.array([[x, z]]))[0]
        disc = np.zeros_like(cls)
        cv2.circle(disc, (int(centre[0]), int(centre[1])), int(radius / geo.spacing_mm), 1, -1)
        cls[(disc == 1) & (cls == LV_MYO)] = MYO_DEFECT
    return cls


def label_map(geo: SectorGeometry, polys: A4cPolygons, variant: str) -> np.ndarray:
    """Exact ground truth on the display grid, ``(size, size)`` uint8, zero outside the sector."""
    lab = np.zeros((geo.size, geo.size), np.uint8)
    if variant == "contrast":
        _fill(lab, geo, polys.lv_myocardium, 1)
    else:
        _fill(lab, geo, polys.la_cavity, 3)
        _fill(lab, geo, polys.lv_cavity, 1)
        _fill(lab, geo, polys.lv_myocardium, 2)
    lab[~geo.sector_mask] = 0
    return lab


def _echogenicity(variant: str, acq: EchoAcquisition, t_flash: float, t: float, flashing: bool,
                  rv_level: float) -> tuple[np.ndarray, np.ndarray]:
    """Mean echo intensity and microbubble concentration per tissue class at time ``t``."""
    echo = np.zeros(N_TISSUE, np.float32)
    bubbles = np.zeros(N_TISSUE, np.float32)
    if variant == "bmode":
        echo[[BG, LV_MYO, LV_CAV, LA, RV, RA, WALL, PERI, VALVE, MYO_DEFECT]] = (
            0.012, 0.06, 0.0004, 0.0004, 0.0005, 0.0005, 0.08, 1.0, 0.25, 0.06)
        return echo, bubbles
    since = max(t - t_flash, 0.0)
    cav = acq.cavity_level * (1.0 - np.exp(-4.0 * since))
    perf = acq.perfusion_plateau * (1.0 - np.exp(-acq.perfusion_rate * since))
    perf_defect = acq.perfusion_plateau * 0.5 * (1.0 - np.exp(-0.25 * acq.perfusion_rate * since))
    # Low mechanical index: tissue is suppressed ~30 dB below the opacified cavity.
    echo[BG], echo[WALL], echo[PERI], echo[VALVE] = acq.tissue_leak, acq.tissue_leak * 3 + 0.3 * perf, acq.pericardium, 0.002
    echo[LV_MYO], echo[MYO_DEFECT] = acq.tissue_leak * 2 + perf, acq.tissue_leak * 2 + perf_defect
    echo[LV_CAV], echo[LA] = cav, 0.85 * cav
    echo[RV], echo[RA] = rv_level * cav, rv_level * cav
    bubbles[list(CAVITIES)] = echo[list(CAVITIES)]
    bubbles[LV_MYO] = bubbles[MYO_DEFECT] = 0.1 * perf
    if flashing:  # high mechanical index: bubbles burst bright, tissue shows as in B-mode
        echo[:] = (0.05, 0.3, 2.0, 1.5, 1.5, 1.5, 0.3, 1.0, 0.6, 0.3)
        bubbles[:] = 0.0
    return echo, bubbles


def render_echo_case(seed: int, case_index: int, *, n_frames: int = 30, size: int = 256,
                     variant: str = "contrast", quality: float | None = None) -> Case:
    """Render one phantom echo patient.

    Args:
        seed: Dataset seed.
        case_index: Patient number within the dataset; ``(seed, case_index)`` fixes everything.
        n_frames: Frames T.
        size: Display height and width in pixels (H = W = size).
        variant: ``"contrast"`` (myocardium label) or ``"bmode"`` (CAMUS labels).
        quality: Acquisition quality in [0, 1]; None draws it from the seed.

    Returns:
        ``Case`` with frames ``(T, size, size, 3)`` uint8 RGB and labels ``(T, size, size)`` uint8,
        every frame labelled.
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown echo variant {variant!r}; known: {VARIANTS}")
    if n_frames < 1 or size < 32:
        raise ValueError(f"need n_frames >= 1 and size >= 32, got {n_frames}, {size}")
    rng_anat, rng_acq = case_rng(seed, case_index, _ANATOMY), case_rng(seed, case_index, _ACQ)
    rng_motion, rng_speckle = case_rng(seed, case_index, _MOTION), case_rng(seed, case_index, _SPECKLE)
    q = draw_quality(rng_acq) if quality is None else float(quality)
    acq = draw_acquisition(rng_acq, q, variant, n_frames)
    anat = _apply_partial_view(draw_anatomy(rng_anat), acq.partial_view, rng_acq)
    depth = float(np.clip(max(anat.apex_depth, 10.0) + anat.lv_length + 0.85 * anat.la_length
                          + rng_acq.uniform(8.0, 35.0), 110.0, 200.0))
    from dataclasses import replace
    acq = replace(acq, depth_mm=depth)
    geo = SectorGeometry(size=size, depth_mm=depth, half_angle=acq.half_angle,
                         n_depth=int(round(288 * size / 256)), n_beams=int(round(144 * size / 256)))
    maps = _static_maps(geo, acq, rng_acq)
    rv_level = float(rng_acq.uniform(0.5, 1.0))
    defect = None
    if acq.defect:
        side = rng_acq.choice([-1.0, 1.0])
        u = rng_acq.uniform(0.15, 0.8) * anat.lv_length
        x = anat.apex_offset + side * (anat.r_lateral + 0.5 * anat.wall) * np.cos(anat.axis_angle) + u * np.sin(anat.axis_angle)
        z = anat.apex_depth + u * np.cos(anat.axis_angle)
        defect = (float(x), float(z), float(rng_acq.uniform(10.0, 22.0)))

    phases = frame_phases(n_frames, acq.frame_rate, acq.heart_rate, acq.phase0)
    contr = contraction(phases)
    times = np.arange(n_frames) / acq.frame_rate
    dx = smooth_jitter(rng_motion, n_frames, acq.jitter_mm)
    dz = smooth_jitter(rng_motion, n_frames, acq.jitter_mm)
    drot = np.deg2rad(smooth_jitter(rng_motion, n_frames, acq.jitter_deg))
    resp = acq.respiration_mm * np.sin(2 * np.pi * rng_motion.uniform(0.18, 0.3) * times + rng_motion.uniform(0, 2 * np.pi))

    shape = (geo.n_depth, geo.n_beams)
    persistent = complex_normal(rng_speckle, shape)
    clutter_field = complex_normal(rng_speckle, shape)
    swirl_a, swirl_b = smooth_field(rng_speckle, shape, (7, 6)), smooth_field(rng_speckle, shape, (7, 6))
    coherence = np.full(N_TISSUE, 0.8, np.float32)
    coherence[list(CAVITIES)] = 0.05 if variant == "contrast" else 0.3
    axial = gaussian_kernel(rng_acq.uniform(0.9, 1.4) * 256 / 288 * geo.n_depth / 256 * 1.1)
    lateral = gaussian_kernel(rng_acq.uniform(0.8, 1.2) * (1.0 + 0.4 * (1.0 - q)))
    noise_amp = np.float32(10 ** (acq.noise_db / 20.0))
    near_kill = (1.0 - acq.apical_destruction * np.exp(-geo.polar_r_mm / (max(anat.apex_depth, 5.0) + 12.0))).astype(np.float32)
    # Clutter and electronic noise are specified as displayed (after TGC), so undo the TGC here.
    clutter_amp = (np.sqrt(maps["clutter"] * maps["window"]) / maps["tgc"])[..., None]
    noise_amp_tgc = (noise_amp / maps["tgc"])[..., None]
    lut = colour_lut(acq.colour_map)
    cavity_lut = np.zeros(N_TISSUE, np.float32)
    cavity_lut[list(CAVITIES)] = 1.0

    frames = np.empty((n_frames, size, size, 3), np.uint8)
    labels = np.empty((n_frames, size, size), np.uint8)
    t_flash = -acq.time_since_flash
    previous = None
    for i in range(n_frames):
        flashing = acq.flash_frame >= 0 and acq.flash_frame <= i < acq.flash_frame + 2
        if acq.flash_frame >= 0 and i == acq.flash_frame + 2:
            t_flash = times[i] - 0.5 / acq.frame_rate
        polys = a4c_polygons(anat, float(contr[i]), shift=(float(dx[i]), float(dz[i] + resp[i])), rotation=float(drot[i]))
        labels[i] = label_map(geo, polys, variant)
        cls = geo.to_polar(tissue_map(geo, polys, defect))
        echo_lut, bubble_lut = _echogenicity(variant, acq, t_flash, float(times[i]), flashing, rv_level)
        echo = echo_lut[cls] * maps["texture"]
        is_cavity = cavity_lut[cls]
        if variant == "contrast" and not flashing:
            swirl = np.cos(2.2 * times[i]) * swirl_a + np.sin(2.2 * times[i]) * swirl_b
            echo *= 1.0 - is_cavity * (1.0 - near_kill * np.exp(acq.swirl * swirl - 0.5 * acq.swirl**2))
        bubble_path = np.cumsum(bubble_lut[cls], axis=0) * np.float32(geo.dr_mm * acq.bubble_attenuation)
        amp = np.sqrt(echo) * maps["tissue_att"] * np.exp(-bubble_path) * maps["window"]
        coh = coherence[cls][..., None]
        fresh = complex_normal(rng_speckle, shape)
        noise = complex_normal(rng_speckle, shape)
        scatter = amp[..., None] * (coh * persistent + np.sqrt(1.0 - coh**2) * fresh)
        scatter += clutter_amp * clutter_field
        scatter += noise_amp_tgc * noise
        env = envelope(scatter, axial, lateral) * maps["tgc"]
        bright = log_compress(env, acq.dynamic_range_db, acq.gain_db - 3.0)
        if previous is not None and acq.persistence > 0:
            bright = (1.0 - acq.persistence) * bright + acq.persistence * previous
        previous = bright
        display = geo.scan_convert(bright ** acq.grey_gamma)
        grey = np.clip(display * 255.0 + 0.5, 0, 255).astype(np.uint8)
        rgb = lut[grey]
        draw_overlays(rgb, float(times[i]), acq.heart_rate, acq.phase0, depth, geo.spacing_mm,
                      geo.apex_px[0], "LVO" if variant == "contrast" else "A4C")
        frames[i] = rgb

    ed, es = ed_es_frames(phases)
    meta = {
        "variant": variant, "acquisition": asdict(acq), "anatomy": asdict(anat),
        "sector": {"depth_mm": depth, "half_angle_deg": float(np.rad2deg(acq.half_angle)),
                   "apex_row_px": geo.apex_px[0], "apex_col_px": geo.apex_px[1]},
        "seed": int(seed), "case_index": int(case_index),
    }
    return Case(
        case_id=f"phantom-echo-{variant}-s{seed}-{case_index:04d}", modality="echo",
        frames=frames, labels=labels, label_map=dict(ECHO_MYO_LABELS if variant == "contrast" else CAMUS_LABELS),
        spacing_mm=(geo.spacing_mm, geo.spacing_mm), frame_rate=acq.frame_rate,
        labelled_frames=tuple(range(n_frames)), ed=ed, es=es, quality=q, quality_bin=quality_bin(q),
        source=f"phantom-echo-{variant}", meta=meta,
    ).validate()
