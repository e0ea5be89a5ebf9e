"""Echo cases -> an EchoNet-Dynamic folder (``Videos/*.avi``, ``FileList.csv``, ``VolumeTracings.csv``).

Each video is an MJPG AVI of the case's frames. The LV tracing of the ED and ES frames is written
as EchoNet does: per frame a first row with the long axis, then 20 chords across the LV, each
``X1,Y1,X2,Y2`` in pixels, found from the LV label (1) along its principal axis. File names are
``0X`` + 16 hex digits derived from the case id (no identity). ``EDV``/``ESV`` come from the
single-plane area-length formula on the LV label (the larger is EDV), ``EF`` from them; ``Split`` (TRAIN/VAL/TEST,
about 6:1:1) is fixed by the case id. ``app.data.loaders.echonet`` reads the folder back.
"""

from __future__ import annotations

import hashlib
import zlib
from pathlib import Path

import cv2
import numpy as np

from app.data.case import Case

FILELIST_HEADER = "FileName,EF,ESV,EDV,FrameHeight,FrameWidth,FPS,NumberOfFrames,Split"
TRACINGS_HEADER = "FileName,X1,Y1,X2,Y2,Frame"
N_CHORDS = 20


def echonet_name(case: Case) -> str:
    """``0X`` + 16 upper-case hex digits, fixed by the case id."""
    return "0X" + hashlib.sha1(case.case_id.encode()).hexdigest()[:16].upper()


def echonet_split(case: Case) -> str:
    """TRAIN, VAL or TEST, fixed by the case id (about 6:1:1)."""
    k = zlib.crc32(case.case_id.encode()) % 8
    return "TRAIN" if k < 6 else "VAL" if k == 6 else "TEST"


def _lv_axes(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """LV pixels' centroid, long-axis and cross-axis unit vectors, and ``(N, 2)`` (along, across) coords."""
    ys, xs = np.nonzero(mask)
    pts = np.stack([xs, ys], axis=1).astype(np.float64)
    centre = pts.mean(axis=0)
    _, vecs = np.linalg.eigh(np.cov((pts - centre).T))
    u, v = vecs[:, 1], vecs[:, 0]
    rel = pts - centre
    return centre, u, v, np.stack([rel @ u, rel @ v], axis=1)


def lv_tracing(mask: np.ndarray) -> list[tuple[float, float, float, float]]:
    """Long axis then chords ``(x1, y1, x2, y2)`` tracing the LV of one ``(H, W)`` 0/1 mask."""
    if int(mask.sum()) < 9:
        raise ValueError("LV label too small to trace")
    centre, u, v, st = _lv_axes(mask)
    s_min, s_max = st[:, 0].min() - 0.5, st[:, 0].max() + 0.5
    rows = [(*(centre + s_min * u), *(centre + s_max * u))]
    for s in np.linspace(s_min, s_max, N_CHORDS + 2)[1:-1]:
        band = st[np.abs(st[:, 0] - s) <= 0.75, 1]
        if band.size == 0:
            continue
        a, b = centre + s * u + (band.min() - 0.5) * v, centre + s * u + (band.max() + 0.5) * v
        rows.append((*a, *b))
    if len(rows) < 3:
        raise ValueError("LV label too thin to trace")
    return [tuple(round(float(c), 3) for c in r) for r in rows]


def lv_volume_ml(mask: np.ndarray, spacing_mm: tuple[float, float]) -> float:
    """Single-plane area-length LV volume ``8 A^2 / (3 pi L)`` in mL from a 0/1 mask."""
    if int(mask.sum()) < 3:
        return 0.0
    area = float(mask.sum()) * spacing_mm[0] * spacing_mm[1]
    _, u, _, st = _lv_axes(mask)
    length = (np.ptp(st[:, 0]) + 1.0) * float(np.hypot(u[0] * spacing_mm[1], u[1] * spacing_mm[0]))
    return 8.0 * area**2 / (3.0 * np.pi * length) / 1000.0


def lv_volumes_ml(ed_mask: np.ndarray, es_mask: np.ndarray, spacing_mm: tuple[float, float]) -> tuple[float, float]:
    """``(EDV, ESV)`` in mL: the larger and smaller area-length volume of the two masks.

    The larger one is called ED, as ``app.data.loaders.echonet`` does with the traced areas (a short
    phantom clip may not reach true end-systole, so its ES frame can be the larger).
    """
    a, b = lv_volume_ml(ed_mask, spacing_mm), lv_volume_ml(es_mask, spacing_mm)
    return max(a, b), min(a, b)


def _write_avi(path: Path, frames: np.ndarray, fps: float) -> None:
    h, w = frames.shape[1:3]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), float(fps), (w, h))
    if not writer.isOpened():
        raise OSError(f"{path}: cannot open an MJPG video writer")
    try:
        for frame in frames:
            rgb = frame if frame.ndim == 3 else np.repeat(frame[..., None], 3, axis=2)
            writer.write(cv2.cvtColor(np.ascontiguousarray(rgb, dtype=np.uint8), cv2.COLOR_RGB2BGR))
    finally:
        writer.release()


def write_echonet_dataset(cases: list[Case], root: Path) -> list[Path]:
    """Write echo ``cases`` (labels 1 = LV, ED and ES set) under ``root``; returns the video paths."""
    root = Path(root)
    (root / "Videos").mkdir(parents=True, exist_ok=True)
    file_rows, tracing_rows, paths = [FILELIST_HEADER], [TRACINGS_HEADER], []
    for case in cases:
        if case.modality != "echo" or case.labels is None or case.ed is None or case.es is None:
            raise ValueError(f"{case.case_id}: EchoNet needs an echo case with labels, ED and ES")
        name = echonet_name(case)
        path = root / "Videos" / f"{name}.avi"
        _write_avi(path, case.frames, case.frame_rate)
        lv = {idx: (case.labels[idx] == 1).astype(np.uint8) for idx in (case.ed, case.es)}
        spacing = (float(case.spacing_mm[0]), float(case.spacing_mm[1]))
        edv, esv = lv_volumes_ml(lv[case.ed], lv[case.es], spacing)
        ef = 100.0 * (edv - esv) / edv if edv > 0 else 0.0
        t, h, w = case.frames.shape[:3]
        file_rows.append(f"{name},{ef:.2f},{esv:.2f},{edv:.2f},{h},{w},{case.frame_rate:.3f},{t},{echonet_split(case)}")
        for idx in sorted({case.ed, case.es}):
            for x1, y1, x2, y2 in lv_tracing(lv[idx]):
                tracing_rows.append(f"{name}.avi,{x1},{y1},{x2},{y2},{idx}")
        paths.append(path)
    (root / "FileList.csv").write_text("\n".join(file_rows) + "\n")
    (root / "VolumeTracings.csv").write_text("\n".join(tracing_rows) + "\n")
    return paths
