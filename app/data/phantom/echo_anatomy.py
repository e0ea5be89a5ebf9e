"""Apical four-chamber anatomy as polygons in millimetres, one set per contraction state.

Coordinates: ``x`` lateral (mm, + to the right of the display), ``z`` depth from the probe (mm).
In the heart frame, ``u`` runs along the LV long axis from the endocardial apex (0) to the mitral
plane (``L``) and ``w`` across it (+ toward the LV lateral wall, - toward the septum and RV). The
display follows the usual A4C convention: apex at the top, LV on the right, RV on the left,
atria at the bottom.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

N_SIDE = 48  # contour points per LV side


@dataclass(frozen=True)
class A4cAnatomy:
    """One patient's four-chamber geometry at end-diastole (all lengths in mm, angles in rad)."""

    apex_depth: float        # depth of the endocardial apex below the probe
    apex_offset: float       # lateral offset of the apex from the sector centreline
    axis_angle: float        # tilt of the long axis from vertical (+ = base to the right)
    lv_length: float         # apex-to-mitral-plane length at ED
    r_septal: float          # endocardial half-width on the septal side at the widest point
    r_lateral: float         # endocardial half-width on the lateral side
    bluntness: float         # superellipse exponent of the apex (2 = ellipse, larger = blunter)
    wall: float              # myocardial wall thickness at ED
    apex_wall: float         # wall thickness at the apex at ED
    fractional_shortening: float  # endocardial half-width shortening at ES (0.1 sick .. 0.35 vigorous)
    long_shortening: float   # long-axis shortening at ES
    thickening: float        # relative systolic wall thickening
    la_length: float
    la_width: float
    rv_width: float
    rv_reach: float          # how far toward the apex the RV reaches (fraction of LV length from base)


def draw_anatomy(rng: np.random.Generator) -> A4cAnatomy:
    """Draw one patient's anatomy, including the occasional dilated or hypertrophied heart."""
    kind = rng.choice(["normal", "dilated", "hypertrophic"], p=[0.7, 0.18, 0.12])
    scale = rng.uniform(0.88, 1.12)
    r = rng.uniform(19.0, 25.0) * scale
    wall = rng.uniform(8.0, 11.0)
    fs = rng.uniform(0.24, 0.36)
    if kind == "dilated":
        r *= rng.uniform(1.2, 1.4)
        wall *= rng.uniform(0.7, 0.85)
        fs = rng.uniform(0.07, 0.16)
    elif kind == "hypertrophic":
        wall *= rng.uniform(1.35, 1.7)
        r *= rng.uniform(0.8, 0.92)
    return A4cAnatomy(
        apex_depth=rng.uniform(14.0, 30.0),
        apex_offset=rng.uniform(-8.0, 5.0),
        axis_angle=np.deg2rad(rng.uniform(4.0, 20.0)),
        lv_length=rng.uniform(72.0, 92.0) * scale * (1.1 if kind == "dilated" else 1.0),
        r_septal=r * rng.uniform(0.9, 1.05),
        r_lateral=r * rng.uniform(1.0, 1.15),
        bluntness=rng.uniform(1.8, 2.8),
        wall=wall,
        apex_wall=wall * rng.uniform(0.55, 0.8),
        fractional_shortening=fs,
        long_shortening=rng.uniform(0.08, 0.15) * (0.6 if kind == "dilated" else 1.0),
        thickening=rng.uniform(0.3, 0.55) * (0.5 if kind == "dilated" else 1.0),
        la_length=rng.uniform(38.0, 55.0) * scale,
        la_width=r * rng.uniform(1.5, 1.9),
        rv_width=rng.uniform(22.0, 34.0) * scale,
        rv_reach=rng.uniform(0.6, 0.85),
    )


@dataclass
class A4cPolygons:
    """Polygons (each ``(N, 2)`` float64 ``x, z`` in mm) of one frame's anatomy."""

    lv_myocardium: np.ndarray
    lv_cavity: np.ndarray
    la_cavity: np.ndarray
    rv_cavity: np.ndarray
    ra_cavity: np.ndarray
    rv_free_wall: np.ndarray
    pericardium: np.ndarray      # open polyline outside the epicardium (LV lateral wall, apex, RV)
    mitral_leaflets: tuple[np.ndarray, np.ndarray]  # two open polylines
    septum_ias: np.ndarray        # interatrial septum polyline


def _side(u: np.ndarray, length: float, radius: float, bluntness: float) -> np.ndarray:
    """Half-width of a superellipse-capped bullet at axial position ``u`` (0 = apex, ``length`` = base)."""
    s = np.clip(u / length, 0.0, 1.0)
    w = radius * (1.0 - (1.0 - s) ** bluntness) ** (1.0 / bluntness)
    return w * (1.0 - 0.12 * s**4)  # the base narrows slightly toward the annulus


def a4c_polygons(anat: A4cAnatomy, contraction: float, shift: tuple[float, float] = (0.0, 0.0),
                 rotation: float = 0.0) -> A4cPolygons:
    """Four-chamber polygons for one contraction state.

    Args:
        anat: The patient's anatomy at end-diastole.
        contraction: 0 at ED, 1 at ES.
        shift: Rigid displacement ``(dx, dz)`` in mm (probe jitter, respiration).
        rotation: Extra rotation of the heart about the apex in radians (probe jitter).
    """
    c = float(contraction)
    length = anat.lv_length * (1.0 - anat.long_shortening * c)
    fs = anat.fractional_shortening * c
    rs, rl = anat.r_septal * (1.0 - fs), anat.r_lateral * (1.0 - fs)
    # Myocardial area is roughly conserved: the wall thickens as the cavity shrinks.
    wall = anat.wall * (1.0 + anat.thickening * c)
    apex_wall = anat.apex_wall * (1.0 + 0.5 * anat.thickening * c)

    u = np.linspace(0.0, length, N_SIDE)
    endo_s = np.stack([-_side(u, length, rs, anat.bluntness), u], axis=1)
    endo_l = np.stack([_side(u, length, rl, anat.bluntness), u], axis=1)
    ue = np.linspace(-apex_wall, length, N_SIDE)
    epi_s = np.stack([-_side(ue + apex_wall, length + apex_wall, rs + wall, anat.bluntness), ue], axis=1)
    epi_l = np.stack([_side(ue + apex_wall, length + apex_wall, rl + wall, anat.bluntness), ue], axis=1)

    myo = np.concatenate([epi_s[::-1], epi_l, endo_l[::-1], endo_s])
    lv = np.concatenate([endo_s, endo_l[::-1]])

    # Left atrium: an ellipse hanging below the mitral plane, clipped at the plane.
    la_len = anat.la_length * (1.0 + 0.12 * c)  # the atrium fills during ventricular systole
    t = np.linspace(0.0, 2.0 * np.pi, 64, endpoint=False)
    w_mid = 0.5 * (rl - rs)
    la = np.stack([w_mid + 0.5 * anat.la_width * np.cos(t), length + 0.42 * la_len + 0.5 * la_len * np.sin(t)], axis=1)
    la[:, 1] = np.maximum(la[:, 1], length + 1.0)

    # Right ventricle: a crescent outside the septum, from rv_reach of the way up to the base.
    u0 = length * (1.0 - anat.rv_reach)
    ur = np.linspace(u0, length, N_SIDE)
    sept_epi = -_side(ur + apex_wall, length + apex_wall, rs + wall, anat.bluntness)
    rvw = anat.rv_width * (1.0 - 0.25 * c)
    depth = rvw * ((ur - u0) / (length - u0)) ** 0.45
    rv_inner = np.stack([sept_epi - 1.0, ur], axis=1)
    rv_outer = np.stack([sept_epi - 1.0 - depth, ur], axis=1)
    rv = np.concatenate([rv_inner, rv_outer[::-1]])
    free_wall_out = rv_outer.copy()
    free_wall_out[:, 0] -= 4.0
    rv_free_wall = np.concatenate([rv_outer, free_wall_out[::-1]])

    ra_w = 0.8 * anat.rv_width + 10.0
    ra_c = np.array([sept_epi[-1] - 3.0 - 0.5 * ra_w, length + 0.4 * anat.la_length])
    ra = np.stack([ra_c[0] + 0.5 * ra_w * np.cos(t), ra_c[1] + 0.45 * anat.la_length * np.sin(t)], axis=1)
    ra[:, 1] = np.maximum(ra[:, 1], length - 2.0)

    # Pericardium: outside the RV free wall (base -> RV apex), round the LV apex, down the lateral wall.
    apical_septum = epi_s[ue < u0][::-1] + [-1.5, 0.0]
    peri = np.concatenate([free_wall_out[::-1] + [-1.5, 0.0], apical_septum, epi_l + [2.0, 0.0]])

    # Mitral leaflets: hinge at the annulus, open into the LV in diastole, closed in systole.
    open_ = 1.0 - np.clip(c * 2.5, 0.0, 1.0) if c < 0.9 else 0.0
    leaf_len = 0.45 * (rs + rl)
    leaflets = []
    for hinge, sign in ((endo_s[-1], 1.0), (endo_l[-1], -1.0)):
        closed_dir = np.array([sign * 1.0, 0.25])
        open_dir = np.array([sign * 0.25, -1.0])
        d = (1 - open_) * closed_dir + open_ * open_dir
        d /= np.linalg.norm(d)
        tip = hinge + d * leaf_len * (0.85 if sign > 0 else 1.0)
        leaflets.append(np.stack([np.linspace(hinge[0], tip[0], 8), np.linspace(hinge[1], tip[1], 8)], axis=1))
    ias = np.stack([np.full(8, epi_s[-1, 0] - 0.5), np.linspace(length + 2.0, length + 0.9 * anat.la_length, 8)], axis=1)

    ang = anat.axis_angle + rotation
    origin = np.array([anat.apex_offset + shift[0], anat.apex_depth + shift[1]])

    def place(p: np.ndarray) -> np.ndarray:
        # (w, u) -> (x, z): rotate so that +u points down the display, tilted by ang.
        x = p[:, 0] * np.cos(ang) + p[:, 1] * np.sin(ang)
        z = -p[:, 0] * np.sin(ang) + p[:, 1] * np.cos(ang)
        return np.stack([x, z], axis=1) + origin

    return A4cPolygons(
        lv_myocardium=place(myo), lv_cavity=place(lv), la_cavity=place(la), rv_cavity=place(rv),
        ra_cavity=place(ra), rv_free_wall=place(rv_free_wall), pericardium=place(peri),
        mitral_leaflets=(place(leaflets[0]), place(leaflets[1])), septum_ias=place(ias),
    )
