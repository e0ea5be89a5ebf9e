"""Contrast echo or B-mode echo? Decided once per recording, from its attributes or else its pixels.

The app runs a different model pair for each kind of echo (card field ``echo_mode``): contrast
echocardiography (LV opacification, LVO: microbubbles make the blood pool bright and the scanner's
contrast-specific imaging suppresses tissue) and plain B-mode (tissue grey, blood pool dark).

``detect_echo_mode(frames, attributes)`` returns ``(mode, reason)``:

1. **Attributes**, where present. A DICOM US image carries the Contrast/Bolus Module only when
   contrast media was used (PS3.3 A.6 / A.7: "C - Required if contrast media was used in this
   image"), so a non-empty Contrast/Bolus Agent (0018,0010), an item in the Contrast/Bolus Agent
   Sequence (0018,0012) (CID 12030 "Ultrasound Contrast/Bolus Agent"), a route (0018,1040) /
   route sequence (0018,0014), a volume, dose, ingredient or injection time, or a per-frame
   Contrast/Bolus Usage Sequence (0018,9341) saying the agent was administered means contrast.
   An empty agent alone decides nothing (some devices write the Type 2 element empty on every
   image). Sources that know what they are say so directly (``echo_mode`` in the attributes: a
   phantom's variant, a B-mode dataset such as CAMUS or EchoNet-Dynamic). The absence of contrast
   attributes is not taken as proof of B-mode: exports often drop optional modules.
2. **Pixels** otherwise (``image_evidence``), on a few frames spread over the recording, inside the
   sector (the convex hull of the lit region). Two measures, both logs of ratios, medians over frames:

   * ``lines``: bright-line energy over dark-line energy (a Hessian line filter at wall scale, the
     sector's edge band and near field left out). In B-mode the bright structures are thin lines,
     tissue interfaces (walls, pericardium, valves) around dark blood pools; in contrast echo the
     walls between opacified cavities are dark bands (suppressed myocardium, septum).
   * ``centre``: the brightness of the middle of the sector (where the LV cavity lies in apical and
     parasternal views) over the rest of it. An opacified LV lights the middle up; a B-mode one is dark.

   The B-mode score is ``lines - centre``: at or above ``BMODE_MIN_SCORE`` (0) B-mode, else contrast.
   On the phantom generator (``app.data.phantom.echo``, 500 cases of each variant: seeds 0-24, 20
   cases each, sizes 256 and 112) it is right for 498/500 B-mode and 465/500 contrast cases: every
   good-quality case of both, 98 % of medium and 80 % of poor-quality contrast cases. The misses
   are contrast cases whose cavities barely opacify while tissue and clutter leak through (mostly
   quality < 1/3, often a partial view): they look like B-mode. Contrast recordings the app writes
   carry the contrast attributes, so they never depend on the pixels.
3. Nothing to look at (a live source before its first frame, a sector that cannot be found):
   contrast, the convention for echo cards without ``echo_mode``, and the reason says so.

Patient identifiers are never read: only the contrast attributes listed here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, NamedTuple, Sequence

import numpy as np

ECHO_MODES = ("contrast", "bmode")
DEFAULT_MODE = "contrast"
MODE_NAMES = {"contrast": "contrast echo", "bmode": "B-mode echo"}
CHOICES = ("auto", *ECHO_MODES)  # what a user may ask for (``--echo-mode``, the viewer's override)

# DICOM contrast attributes, keyword -> tag. Any non-empty one means contrast was used.
CONTRAST_KEYWORDS = {
    "ContrastBolusAgent": "(0018,0010)",  # Type 2: an empty value alone decides nothing
    "ContrastBolusAgentSequence": "(0018,0012)",
    "ContrastBolusRoute": "(0018,1040)",
    "ContrastBolusAdministrationRouteSequence": "(0018,0014)",
    "ContrastBolusVolume": "(0018,1041)",
    "ContrastBolusStartTime": "(0018,1042)",
    "ContrastBolusTotalDose": "(0018,1044)",
    "ContrastBolusIngredient": "(0018,1048)",
}
_NEGATIVE = ("none", "no", "n/a", "na", "nil", "without", "not used", "no contrast", "0")

# Image test (see the module docstring); tuned and checked on the phantom echo generator.
WORK_SIZE = 128           # frames are shrunk so their longer side is at most this (pixels)
LINE_SCALES = (0.012, 0.02, 0.03)  # Hessian scales as fractions of sqrt(sector area): wall thickness
EDGE_MARGIN = 0.10        # sector edge band left out, fraction of sqrt(sector area)
NEAR_FIELD = 0.20         # top fraction of the sector's depth left out (reverberation, clutter)
SPECKLE_SCALE = 0.015     # Gaussian smoothing before comparing the sector's middle, fraction of sqrt(area)
CENTRE_WIDTH = (0.3, 0.7)  # the middle of the sector: across its width ...
CENTRE_DEPTH = (0.15, 0.55)  # ... and down its depth
BMODE_MIN_SCORE = 0.0     # lines - centre at or above which a recording is B-mode
MIN_SECTOR_FRACTION = 0.05  # a sector smaller than this fraction of the frame: inconclusive
IMAGE_FRAMES = 8          # frames the image test looks at, spread over the recording


class EchoMode(NamedTuple):
    """The decision: ``mode`` (``"contrast"`` or ``"bmode"``) and ``reason`` (one line, in words)."""

    mode: str
    reason: str


def check_mode(mode: str | None, *, allow_auto: bool = False) -> str | None:
    """``mode`` itself when it is a known echo mode (or ``"auto"`` when allowed), else ValueError."""
    known = CHOICES if allow_auto else ECHO_MODES
    if mode is not None and mode not in known:
        raise ValueError(f"unknown echo mode {mode!r} (use {', '.join(known)})")
    return mode


# -- attributes ---------------------------------------------------------------------------------------
def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return "\\".join(_text(v) for v in value)
    return " ".join(str(value).split())


def _sequence_text(items) -> str:
    """Code meanings (else values) of a code sequence's items, joined."""
    out = []
    for item in items or ():
        meaning = _text(getattr(item, "CodeMeaning", "") or getattr(item, "CodeValue", ""))
        out.append(meaning or "item")
    return "; ".join(out)


def contrast_attributes(ds) -> dict[str, str]:
    """The contrast attributes of a pydicom dataset that carry a value, as ``keyword -> text``.

    Reads only the elements in ``CONTRAST_KEYWORDS`` and, for enhanced objects, whether any
    per-frame Contrast/Bolus Usage Sequence says the agent was administered. Never raises: an
    element that cannot be read is left out. ``ContrastBolusAgent`` is kept even when empty
    (with the value ``""``), so the caller can tell the element was there.
    """
    found: dict[str, str] = {}
    for keyword in CONTRAST_KEYWORDS:
        try:
            if keyword not in ds:
                continue
            value = ds[keyword].value
            text = _sequence_text(value) if keyword.endswith("Sequence") else _text(value)
        except Exception:  # a corrupt element: it says nothing
            continue
        if text or keyword == "ContrastBolusAgent":
            found[keyword] = text
    try:
        groups = list(ds.get("SharedFunctionalGroupsSequence") or ())
        groups += list(ds.get("PerFrameFunctionalGroupsSequence") or ())[:1]
        for group in groups:
            for usage in group.get("ContrastBolusUsageSequence") or ():
                administered = _text(usage.get("ContrastBolusAgentAdministered", ""))
                if administered:
                    found["ContrastBolusAgentAdministered"] = administered
    except Exception:  # a corrupt functional group: it says nothing
        pass
    return found


def _says_none(text: str) -> bool:
    return text.strip().lower() in _NEGATIVE


def mode_from_attributes(attributes: Mapping[str, Any] | None) -> EchoMode | None:
    """The mode the attributes decide, or None when they decide nothing (see the module docstring)."""
    if not attributes:
        return None
    told = attributes.get("echo_mode")
    if told in ECHO_MODES:
        basis = _text(attributes.get("echo_mode_basis")) or "the source says so"
        return EchoMode(str(told), f"{MODE_NAMES[told]}: {basis}")
    administered = _text(attributes.get("ContrastBolusAgentAdministered")).upper()
    if administered == "YES":
        return EchoMode("contrast", "contrast echo: DICOM Contrast/Bolus Agent Administered (0018,9342) is YES")
    evidence = [(k, _text(attributes.get(k))) for k in CONTRAST_KEYWORDS if _text(attributes.get(k))]
    evidence = [(k, v) for k, v in evidence if not _says_none(v)]
    if evidence:
        keyword, value = evidence[0]
        shown = value if len(value) <= 40 else value[:37] + "..."
        return EchoMode("contrast", f"contrast echo: DICOM {keyword} {CONTRAST_KEYWORDS[keyword]} is {shown!r}")
    return None


# -- pixels -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ImageEvidence:
    """What the image test measured (NaN everywhere when no sector was found).

    Attributes:
        score: The B-mode score ``lines - centre``: at or above ``BMODE_MIN_SCORE``, B-mode.
        lines: ``log(bright-line energy / dark-line energy)`` in the sector (thin bright tissue
            interfaces against dark bands), median over frames.
        centre: ``log`` of the middle of the sector's brightness over the rest's (an opacified LV
            cavity lights up the middle), median over frames.
        frames: Frames measured.
        sector_fraction: The sector's share of the frame.
    """

    score: float
    lines: float
    centre: float
    frames: int
    sector_fraction: float

    @property
    def conclusive(self) -> bool:
        return math.isfinite(self.score)

    @property
    def mode(self) -> str:
        return "bmode" if self.conclusive and self.score >= BMODE_MIN_SCORE else "contrast"


def _luminance(frame: np.ndarray, scale: tuple[float, float] | None) -> np.ndarray:
    """One frame as float32 grey 0..255 (mean of R, G, B); green graphics become 0."""
    import cv2

    f = np.asarray(frame)
    if f.ndim == 3 and f.shape[-1] in (3, 4):
        f = f[..., :3].astype(np.float32)
        grey = f.mean(axis=-1)
        # green graphics (ECG trace, markers): no display colour map (grey, warm or cool tints) is green
        grey[f[..., 1] - np.maximum(f[..., 0], f[..., 2]) > 60.0] = 0.0
    elif f.ndim == 3:
        grey = f[..., 0].astype(np.float32)
    else:
        grey = f.astype(np.float32)
    if scale is not None:  # > 8-bit data: the recording's own range onto 0..255
        lo, hi = scale
        grey = (grey - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(grey)
    grey = np.nan_to_num(grey, nan=0.0, posinf=0.0, neginf=0.0)
    h, w = grey.shape
    if max(h, w) > WORK_SIZE:
        k = WORK_SIZE / max(h, w)
        grey = cv2.resize(grey, (max(8, round(w * k)), max(8, round(h * k))), interpolation=cv2.INTER_AREA)
    return grey


def sector_mask(grey: np.ndarray) -> np.ndarray | None:
    """The imaged sector of ``(T, H, W)`` grey frames: the convex hull of the largest lit region, or None."""
    import cv2

    lit_max = cv2.GaussianBlur(grey.max(axis=0), (0, 0), 1.0)
    lit = cv2.morphologyEx((lit_max > 4.0).astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(lit)
    if n <= 1:
        return None
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    hull = cv2.convexHull(cv2.findNonZero((labels == largest).astype(np.uint8)))
    mask = np.zeros(lit.shape, np.uint8)
    cv2.fillConvexPoly(mask, hull, 1)
    return mask.astype(bool)


def _line_energy(image: np.ndarray, sigma: float, region: np.ndarray) -> tuple[float, float]:
    """Mean squared strength of bright lines and of dark lines at scale ``sigma`` inside ``region``."""
    import cv2

    s = cv2.GaussianBlur(image, (0, 0), sigma)
    dxx = cv2.Sobel(s, cv2.CV_32F, 2, 0, ksize=3)
    dyy = cv2.Sobel(s, cv2.CV_32F, 0, 2, ksize=3)
    dxy = cv2.Sobel(s, cv2.CV_32F, 1, 1, ksize=3)
    half_trace = 0.5 * (dxx + dyy)
    spread = np.sqrt((0.5 * (dxx - dyy)) ** 2 + dxy ** 2)
    l1, l2 = (half_trace - spread) * sigma**2, (half_trace + spread) * sigma**2  # l1 <= l2
    bright = np.where((l1 < 0) & (-l1 > 2.0 * np.abs(l2)), -l1, 0.0)[region]  # a ridge: curved across only
    dark = np.where((l2 > 0) & (l2 > 2.0 * np.abs(l1)), l2, 0.0)[region]
    return float(np.mean(bright**2)), float(np.mean(dark**2))


def image_evidence(frames: Sequence[np.ndarray] | np.ndarray) -> ImageEvidence:
    """Measure the image test's ``lines`` and ``centre`` on echo frames (see the module docstring).

    Args:
        frames: A few frames of one recording, each ``(H, W, 3)`` RGB or ``(H, W)`` grey, as displayed.
    """
    import cv2

    frames = [np.asarray(f) for f in frames]
    if not frames:
        return ImageEvidence(float("nan"), float("nan"), float("nan"), 0, 0.0)
    scale = None
    if any(f.dtype != np.uint8 for f in frames):
        values = np.concatenate([f[np.isfinite(f)].ravel() for f in frames]).astype(np.float64)
        scale = (float(values.min()), float(values.max())) if values.size else (0.0, 1.0)
    try:
        grey = np.stack([_luminance(f, scale) for f in frames])
    except ValueError:  # frames of different shapes: the first one's shape wins
        grey = np.stack([_luminance(f, scale) for f in frames if f.shape == frames[0].shape])
    mask = sector_mask(grey)
    fraction = float(mask.mean()) if mask is not None else 0.0
    if mask is None or fraction < MIN_SECTOR_FRACTION:
        return ImageEvidence(float("nan"), float("nan"), float("nan"), len(grey), fraction)
    size = math.sqrt(float(mask.sum()))
    margin = int(EDGE_MARGIN * size) | 1
    region = cv2.erode(mask.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (margin, margin))).astype(bool)
    rows = np.nonzero(mask)[0]
    region[: int(rows.min() + NEAR_FIELD * (rows.max() - rows.min()))] = False
    centre = _centre_region(mask)
    rest = mask & ~centre
    if region.sum() < 50 or centre.sum() < 20 or rest.sum() < 20:
        return ImageEvidence(float("nan"), float("nan"), float("nan"), len(grey), fraction)
    lines, centres = [], []
    for image in grey:
        energies = [_line_energy(image, fraction_of_size * size, region) for fraction_of_size in LINE_SCALES]
        bright, dark = max(e[0] for e in energies), max(e[1] for e in energies)
        lines.append(math.log((bright + 1e-3) / (dark + 1e-3)))
        smooth = cv2.GaussianBlur(image, (0, 0), SPECKLE_SCALE * size)
        centres.append(math.log((float(np.median(smooth[centre])) + 5.0) / (float(np.median(smooth[rest])) + 5.0)))
    line, middle = float(np.median(lines)), float(np.median(centres))
    return ImageEvidence(line - middle, line, middle, len(grey), fraction)


def _centre_region(mask: np.ndarray) -> np.ndarray:
    """The middle of the sector (where the LV cavity lies in apical and parasternal views).

    Across: 30-70 % of the sector's width on each row; down: 15-55 % of its depth.
    """
    rows = np.nonzero(mask.any(axis=1))[0]
    top, bottom = int(rows.min()), int(rows.max())
    out = np.zeros_like(mask)
    for r in range(top + int(CENTRE_DEPTH[0] * (bottom - top)), top + int(CENTRE_DEPTH[1] * (bottom - top)) + 1):
        cols = np.nonzero(mask[r])[0]
        if cols.size:
            left, width = cols.min(), cols.max() - cols.min()
            out[r, left + int(CENTRE_WIDTH[0] * width): left + int(CENTRE_WIDTH[1] * width) + 1] = True
    return out & mask


def mode_from_images(frames: Sequence[np.ndarray] | np.ndarray) -> EchoMode:
    """The image test's decision with its reason."""
    evidence = image_evidence(frames)
    if not evidence.conclusive:
        return EchoMode(DEFAULT_MODE, f"{MODE_NAMES[DEFAULT_MODE]} assumed: no contrast attributes and no "
                                      f"ultrasound sector found in {evidence.frames} frames")
    figures = (f"B-mode score {evidence.score:.2f} {'>=' if evidence.mode == 'bmode' else '<'} {BMODE_MIN_SCORE:g}: "
               f"lines {evidence.lines:.2f}, centre {evidence.centre:.2f}, {evidence.frames} frames")
    if evidence.mode == "bmode":
        return EchoMode("bmode", f"B-mode echo: no contrast attributes; the image looks B-mode (thin bright "
                                 f"tissue lines, no bright blood pool in the middle of the sector; {figures})")
    return EchoMode("contrast", f"contrast echo: no contrast attributes; the image looks like contrast echo "
                                f"(a bright blood pool, walls as dark bands; {figures})")


def detect_echo_mode(frames: Sequence[np.ndarray] | np.ndarray | None = None,
                     attributes: Mapping[str, Any] | None = None, dataset=None) -> EchoMode:
    """Contrast or B-mode for one echo recording: its attributes first, else its pixels.

    Args:
        frames: A few frames of the recording (``IMAGE_FRAMES`` spread over it is plenty), or None.
        attributes: What the source knows: DICOM contrast attributes (``contrast_attributes``)
            and/or ``echo_mode`` + ``echo_mode_basis``.
        dataset: A pydicom dataset to read the contrast attributes from (added to ``attributes``).

    Returns:
        ``EchoMode(mode, reason)``.
    """
    attrs = dict(attributes or {})
    if dataset is not None:
        attrs.update(contrast_attributes(dataset))
    decided = mode_from_attributes(attrs)
    if decided is not None:
        return decided
    if frames is None or len(frames) == 0:
        return EchoMode(DEFAULT_MODE, f"{MODE_NAMES[DEFAULT_MODE]} assumed: no contrast attributes and no frames "
                                      "to look at")
    return mode_from_images(frames)


def resolve(requested: str | None, detect) -> EchoMode:
    """``requested`` (``auto``/None: call ``detect()``; ``contrast``/``bmode``: as given, said so)."""
    check_mode(requested, allow_auto=True)
    if requested in ECHO_MODES:
        return EchoMode(requested, f"{MODE_NAMES[requested]}: chosen by the user")
    return detect()
