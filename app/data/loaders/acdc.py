"""ACDC (Automated Cardiac Diagnosis Challenge) in its on-disk layout.

::

    training/patient001/Info.cfg                 ED: 1 / ES: 12 / Group: DCM / Height / NbFrame / Weight
    training/patient001/patient001_4d.nii.gz     (X, Y, Z, T) cine
    training/patient001/patient001_frame01.nii.gz       (X, Y, Z) the ED frame
    training/patient001/patient001_frame01_gt.nii.gz    uint8: 0 bg, 1 RV, 2 MYO, 3 LV
    training/patient001/patient001_frame12(.nii.gz|_gt.nii.gz)   the ES frame
    training/patient001/patient001_4d_gt.nii.gz  (optional, our extension) labels of every frame

ED/ES in ``Info.cfg`` are 1-based. Arrays come back as ``(T, Z, X, Y)`` (rows = NIfTI x), spacing
``(dx, dy)`` from the header; only Group and NbFrame are kept from ``Info.cfg`` (no body size).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np

from app.data.case import ACDC_LABELS, Case, DataError
from app.data.frame_rate import MAX_FPS, MIN_FPS, is_plausible
from app.data.loaders.nifti import check_labels, read_nifti

log = logging.getLogger(__name__)


def read_cfg(path: Path) -> dict[str, str]:
    """``Key: value`` lines of an ACDC / CAMUS ``.cfg`` file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "missing file")
    out: dict[str, str] = {}
    for n, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        if ":" not in line:
            raise DataError(path, f"line {n} is not 'Key: value': {line[:40]!r}")
        key, value = line.split(":", 1)
        out[key.strip()] = value.strip()
    return out


def _cfg_int(cfg: dict[str, str], key: str, path: Path) -> int:
    try:
        return int(float(cfg[key]))
    except KeyError:
        raise DataError(path, f"no {key} entry") from None
    except ValueError:
        raise DataError(path, f"{key} is not a number: {cfg[key]!r}") from None


def is_acdc_patient(folder: Path) -> bool:
    folder = Path(folder)
    return (folder / "Info.cfg").is_file() and any(folder.glob("*_4d.nii*"))


def _frame_rate(path: Path, zooms: tuple[float, ...], t_unit: str, n_frames: int) -> tuple[float, bool]:
    """``(fps, assumed)`` from the time step; unknown (or 1 s, nibabel's unset value): one ~1 s cycle."""
    assumed = float(min(max(n_frames, MIN_FPS), MAX_FPS))
    scale = {"msec": 1e-3, "sec": 1.0, "usec": 1e-6}.get(t_unit)
    if len(zooms) > 3 and zooms[3] > 0 and scale is not None and zooms[3] * scale != 1.0:
        fps = 1.0 / (zooms[3] * scale)
        if is_plausible(fps):
            return fps, False
        log.warning("%s: time step %g %s is not a plausible frame rate (outside %g-%g fps); "
                    "assuming the %d frames span one cycle: %g fps", path, zooms[3], t_unit, MIN_FPS, MAX_FPS,
                    n_frames, assumed)
    return assumed, True


def load_acdc_patient(folder: Path) -> Case:
    """Read one ``patientXXX`` folder into a cine ``Case`` with ED and ES labelled."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(folder, "missing ACDC patient folder")
    name = folder.name
    cfg_path = folder / "Info.cfg"
    cfg = read_cfg(cfg_path)
    ed1, es1 = _cfg_int(cfg, "ED", cfg_path), _cfg_int(cfg, "ES", cfg_path)
    four_d = folder / f"{name}_4d.nii.gz"
    if not four_d.exists() and (folder / f"{name}_4d.nii").exists():
        four_d = folder / f"{name}_4d.nii"
    data, zooms, t_unit = read_nifti(four_d)
    if data.ndim != 4:
        raise DataError(four_d, f"expected a 4D (X, Y, Z, T) cine, got shape {data.shape}")
    frames = np.ascontiguousarray(np.transpose(data, (3, 2, 0, 1)).astype(np.float32))
    n_frames = frames.shape[0]
    if "NbFrame" in cfg and _cfg_int(cfg, "NbFrame", cfg_path) != n_frames:
        log.warning("%s: NbFrame %s but the 4D image has %d frames", cfg_path, cfg["NbFrame"], n_frames)
    labels = np.zeros(frames.shape, np.uint8)
    labelled = []
    for idx1 in sorted({ed1, es1}):
        if not 1 <= idx1 <= n_frames:
            raise DataError(cfg_path, f"frame {idx1} outside 1..{n_frames} of {four_d.name}")
        gt_path = folder / f"{name}_frame{idx1:02d}_gt.nii.gz"
        if not gt_path.exists() and (folder / f"{name}_frame{idx1:02d}_gt.nii").exists():
            gt_path = folder / f"{name}_frame{idx1:02d}_gt.nii"
        gt, _, _ = read_nifti(gt_path)
        if gt.ndim == 4 and gt.shape[3] == 1:
            gt = gt[..., 0]
        gt = np.transpose(gt, (2, 0, 1)) if gt.ndim == 3 else gt
        if gt.shape != frames.shape[1:]:
            raise DataError(gt_path, f"label shape (Z, X, Y) {gt.shape} does not match image shape {frames.shape[1:]} of {four_d.name}")
        labels[idx1 - 1] = check_labels(gt_path, gt, tuple(ACDC_LABELS))
        labelled.append(idx1 - 1)
    all_gt = folder / f"{name}_4d_gt.nii.gz"
    if all_gt.exists():  # our extension: every frame labelled
        gt, _, _ = read_nifti(all_gt)
        if gt.ndim != 4 or np.transpose(gt, (3, 2, 0, 1)).shape != frames.shape:
            raise DataError(all_gt, f"label shape {gt.shape} does not match image shape {data.shape} of {four_d.name}")
        labels = check_labels(all_gt, np.transpose(gt, (3, 2, 0, 1)), tuple(ACDC_LABELS))
        labelled = list(range(n_frames))
    fps, assumed = _frame_rate(four_d, zooms, t_unit, n_frames)
    meta = {"group": cfg.get("Group"), "nb_frame": cfg.get("NbFrame"), "slice_thickness_mm": float(zooms[2]),
            "frame_rate_assumed": assumed, "array_axes": "T, Z, X, Y"}
    return Case(
        case_id=name, modality="cine", frames=frames, labels=labels, label_map=dict(ACDC_LABELS),
        spacing_mm=(float(zooms[0]), float(zooms[1])), frame_rate=fps, labelled_frames=tuple(labelled),
        ed=ed1 - 1, es=es1 - 1, source=str(folder), meta=meta,
    ).validate()


def load_acdc(root: Path) -> list[Case]:
    """Every ``patient*`` folder under ``root`` (``training/`` or ``testing/``), in name order."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(root, "missing ACDC folder")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and re.fullmatch(r"patient\d+", p.name))
    if not folders:
        raise DataError(root, "no patientXXX folders")
    return [load_acdc_patient(f) for f in folders]
