"""CAMUS (echo, 2- and 4-chamber views) in both public releases.

2023 NIfTI release::

    patient0001/patient0001_4CH_half_sequence.nii.gz      (X, Y, T) ED -> ES
    patient0001/patient0001_4CH_half_sequence_gt.nii.gz   uint8 0 bg, 1 LV, 2 MYO, 3 LA
    patient0001/patient0001_4CH_ED.nii.gz, _ED_gt, _ES, _ES_gt
    patient0001/Info_4CH.cfg     ED, ES, NbFrame, Sex, Age, ImageQuality, EF, FrameRate

2019 MetaImage release::

    patient0001/patient0001_4CH_sequence.mhd (+ .raw)     DimSize W H T
    patient0001/patient0001_4CH_ED.mhd, _ED_gt.mhd, _ES.mhd, _ES_gt.mhd
    patient0001/Info_4CH.cfg     ED, ES, NbFrame, Sex, Age, ImageQuality, LVedv, LVesv, LVef

Frames come back ``(T, H, W)`` uint8 grey (rows = image y), as SimpleITK would return them. Sex
and age are not copied into the case.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from app.data.case import CAMUS_LABELS, Case, DataError
from app.data.loaders.acdc import read_cfg
from app.data.loaders.metaimage import read_metaimage
from app.data.loaders.nifti import check_labels, read_nifti

log = logging.getLogger(__name__)

VIEWS = ("4CH", "2CH")
ASSUMED_FRAME_RATE = 30.0


def is_camus_patient(folder: Path) -> bool:
    folder = Path(folder)
    return any((folder / f"Info_{v}.cfg").is_file() for v in VIEWS) or any(folder.glob("*_?CH_E[DS].*"))


def _read(path: Path) -> tuple[np.ndarray, tuple[float, float]]:
    """One CAMUS image -> ``(T, H, W)`` array and spacing ``(row, col)`` in mm."""
    if path.name.endswith(".mhd"):
        arr, spacing = read_metaimage(path)
        arr = arr[None] if arr.ndim == 2 else arr
        return arr, (spacing[1], spacing[0])
    data, zooms, _ = read_nifti(path)
    if data.ndim == 2:
        data = data[..., None]
    if data.ndim != 3:
        raise DataError(path, f"expected a 2D or 2D+t image, got shape {data.shape}")
    return np.ascontiguousarray(np.transpose(data, (2, 1, 0))), (float(zooms[1]), float(zooms[0]))


def _find(folder: Path, stem: str) -> Path | None:
    for ext in (".nii.gz", ".nii", ".mhd"):
        p = folder / f"{stem}{ext}"
        if p.exists():
            return p
    return None


def _to_uint8(path: Path, arr: np.ndarray) -> np.ndarray:
    if arr.dtype == np.uint8:
        return arr
    if arr.min() < 0 or arr.max() > 255:
        raise DataError(path, f"image values {arr.min()}..{arr.max()} are outside 0..255")
    return arr.astype(np.uint8)


def load_camus_patient(folder: Path, view: str = "4CH") -> Case:
    """Read one CAMUS patient's view (``"4CH"`` or ``"2CH"``) from either release."""
    folder = Path(folder)
    if view not in VIEWS:
        raise ValueError(f"unknown CAMUS view {view!r}; known: {VIEWS}")
    if not folder.is_dir():
        raise DataError(folder, "missing CAMUS patient folder")
    name = folder.name
    cfg_path = folder / f"Info_{view}.cfg"
    cfg = read_cfg(cfg_path) if cfg_path.exists() else {}
    seq = _find(folder, f"{name}_{view}_half_sequence") or _find(folder, f"{name}_{view}_sequence")
    first = seq or _find(folder, f"{name}_{view}_ED")
    release = "2019-mhd" if first is not None and first.name.endswith(".mhd") else "2023-nifti"
    labelled: list[int] = []
    if seq is not None:
        frames, spacing = _read(seq)
        frames = _to_uint8(seq, frames)
        labels = np.zeros(frames.shape, np.uint8)
        seq_gt = _find(folder, f"{name}_{view}_half_sequence_gt")
        n = frames.shape[0]
        ed = int(cfg.get("ED", 1)) - 1 if "ED" in cfg else 0
        es = int(cfg.get("ES", n)) - 1 if "ES" in cfg else n - 1
        if not (0 <= ed < n and 0 <= es < n):
            log.warning("%s: ED/ES %s/%s outside the %d-frame sequence; using its first and last", cfg_path, ed + 1, es + 1, n)
            ed, es = 0, n - 1
        if seq_gt is not None:
            gt, _ = _read(seq_gt)
            if gt.shape != frames.shape:
                raise DataError(seq_gt, f"label shape {gt.shape} does not match image shape {frames.shape} of {seq.name}")
            labels[:] = check_labels(seq_gt, gt, tuple(CAMUS_LABELS))
            labelled = list(range(n))
        else:
            for idx, tag in ((ed, "ED"), (es, "ES")):
                gt_path = _find(folder, f"{name}_{view}_{tag}_gt")
                if gt_path is None:
                    continue
                gt, _ = _read(gt_path)
                if gt.shape[1:] != frames.shape[1:]:
                    raise DataError(gt_path, f"label shape {gt.shape[1:]} does not match image shape {frames.shape[1:]} of {seq.name}")
                labels[idx] = check_labels(gt_path, gt[0], tuple(CAMUS_LABELS))
                labelled.append(idx)
    else:  # only the ED and ES frames
        imgs, gts = [], []
        spacing = (1.0, 1.0)
        for tag in ("ED", "ES"):
            img_path = _find(folder, f"{name}_{view}_{tag}")
            if img_path is None:
                raise DataError(folder / f"{name}_{view}_{tag}.nii.gz", "missing file (no sequence either)")
            img, spacing = _read(img_path)
            imgs.append(_to_uint8(img_path, img[0]))
            gt_path = _find(folder, f"{name}_{view}_{tag}_gt")
            if gt_path is None:
                gts.append(np.zeros_like(imgs[-1]))
                continue
            gt, _ = _read(gt_path)
            if gt.shape[1:] != img.shape[1:]:
                raise DataError(gt_path, f"label shape {gt.shape[1:]} does not match image shape {img.shape[1:]} of {img_path.name}")
            gts.append(check_labels(gt_path, gt[0], tuple(CAMUS_LABELS)))
            labelled.append(len(imgs) - 1)
        frames, labels, ed, es = np.stack(imgs), np.stack(gts), 0, 1
    fps = float(cfg["FrameRate"]) if "FrameRate" in cfg else ASSUMED_FRAME_RATE
    quality = cfg.get("ImageQuality")
    meta = {"view": view, "release": release, "image_quality": quality,
            "ef": cfg.get("EF", cfg.get("LVef")), "frame_rate_assumed": "FrameRate" not in cfg,
            "echo_attributes": {"echo_mode": "bmode", "echo_mode_basis": "a CAMUS case (CAMUS is B-mode echo)"}}
    return Case(
        case_id=f"{name}_{view}", modality="echo", frames=frames, labels=labels, label_map=dict(CAMUS_LABELS),
        spacing_mm=spacing, frame_rate=fps, labelled_frames=tuple(labelled), ed=ed, es=es,
        quality_bin=quality.lower() if quality and quality.lower() in ("good", "medium", "poor") else None,
        source=str(folder), meta=meta,
    ).validate()


def load_camus(root: Path, view: str = "4CH") -> list[Case]:
    """Every ``patient*`` folder under ``root`` for one view, in name order."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(root, "missing CAMUS folder")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith("patient"))
    if not folders:
        raise DataError(root, "no patientXXXX folders")
    return [load_camus_patient(f, view) for f in folders]
