"""Tiny datasets written at test time in the exact on-disk formats of ACDC, CAMUS and EchoNet."""

from __future__ import annotations

from pathlib import Path

import cv2
import nibabel as nib
import numpy as np


def disc_labels(shape: tuple[int, int], centre: tuple[float, float], r_in: float, r_out: float) -> np.ndarray:
    """``(H, W)`` uint8: 3 inside ``r_in`` (LV), 2 in the ring to ``r_out`` (MYO), 1 a patch left of it (RV)."""
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    r = np.hypot(yy - centre[0], xx - centre[1])
    lab = np.zeros(shape, np.uint8)
    lab[(np.abs(yy - centre[0]) < r_out) & (xx < centre[1] - r_out) & (xx > centre[1] - 2 * r_out)] = 1
    lab[r < r_out] = 2
    lab[r < r_in] = 3
    return lab


def write_acdc(root: Path, name: str = "patient001", t: int = 5, z: int = 3, xy: tuple[int, int] = (24, 20),
               ed: int = 1, es: int = 3) -> Path:
    """An ACDC patient folder: Info.cfg, _4d (X, Y, Z, T) int16, ED/ES frames and _gt (uint8)."""
    folder = root / name
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    vol = rng.integers(0, 400, size=(*xy, z, t)).astype(np.int16)
    affine = np.diag([1.5, 1.5, 10.0, 1.0])
    nib.save(nib.Nifti1Image(vol, affine), folder / f"{name}_4d.nii.gz")
    for f in (ed, es):
        nib.save(nib.Nifti1Image(vol[..., f - 1], affine), folder / f"{name}_frame{f:02d}.nii.gz")
        gt = np.stack([disc_labels(xy, (12, 10), 3 + (f == ed), 6) for _ in range(z)], axis=-1)
        nib.save(nib.Nifti1Image(gt.astype(np.uint8), affine), folder / f"{name}_frame{f:02d}_gt.nii.gz")
    (folder / "Info.cfg").write_text(f"ED: {ed}\nES: {es}\nGroup: DCM\nHeight: 184.0\nNbFrame: {t}\nWeight: 95.0\n")
    return folder


def write_camus_2023(root: Path, name: str = "patient0001", t: int = 4, hw: tuple[int, int] = (30, 20)) -> Path:
    """A CAMUS 2023 NIfTI patient (4CH): half sequence + gt, ED/ES + gt, Info_4CH.cfg.

    Written the way SimpleITK writes a ``(T, H, W)`` array: nibabel sees ``(W, H, T)``.
    """
    folder = root / name
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    seq = rng.integers(0, 255, size=(t, *hw)).astype(np.uint8)
    acdc_to_camus = np.array([0, 3, 2, 1], np.uint8)  # the side patch plays the LA; CAMUS: 1 LV, 2 MYO, 3 LA
    gt = np.stack([acdc_to_camus[disc_labels(hw, (15, 10), 4, 7)] for _ in range(t)])
    affine = np.diag([0.3, 0.2, 1.0, 1.0])
    save = lambda arr, fname: nib.save(nib.Nifti1Image(np.transpose(arr, (2, 1, 0)), affine), folder / fname)  # noqa: E731
    save(seq, f"{name}_4CH_half_sequence.nii.gz")
    save(gt, f"{name}_4CH_half_sequence_gt.nii.gz")
    for tag, idx in (("ED", 0), ("ES", t - 1)):
        save(seq[idx : idx + 1], f"{name}_4CH_{tag}.nii.gz")
        save(gt[idx : idx + 1], f"{name}_4CH_{tag}_gt.nii.gz")
    (folder / "Info_4CH.cfg").write_text(
        f"ED: 1\nES: {t}\nNbFrame: {t}\nSex: F\nAge: 64\nImageQuality: Medium\nEF: 55\nFrameRate: 45\n")
    return folder


def write_echonet(root: Path, names: tuple[str, ...] = ("0X1A", "0X2B"), t: int = 12, size: int = 112) -> Path:
    """An EchoNet-Dynamic folder: FileList.csv, VolumeTracings.csv and MJPG AVIs in Videos/."""
    (root / "Videos").mkdir(parents=True)
    rows, tracings = [], []
    for k, name in enumerate(names):
        writer = cv2.VideoWriter(str(root / "Videos" / f"{name}.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 50, (size, size))
        for f in range(t):
            frame = np.full((size, size, 3), 20 + 10 * f, np.uint8)
            writer.write(frame)
        writer.release()
        rows.append(f"{name},55.0,40.0,90.0,{size},{size},50,{t},{'TRAIN' if k == 0 else 'TEST'}")
        for frame, half in ((2, 20.0), (8, 12.0)):
            cx, top, bottom = 56.0, 20.0, 90.0
            tracings.append(f"{name}.avi,{cx},{top},{cx},{bottom},{frame}")
            for y in np.linspace(top + 5, bottom - 5, 8):
                tracings.append(f"{name}.avi,{cx - half},{y},{cx + half},{y},{frame}")
    (root / "FileList.csv").write_text("FileName,EF,ESV,EDV,FrameHeight,FrameWidth,FPS,NumberOfFrames,Split\n" + "\n".join(rows) + "\n")
    (root / "VolumeTracings.csv").write_text("FileName,X1,Y1,X2,Y2,Frame\n" + "\n".join(tracings) + "\n")
    return root
