"""EchoNet-Dynamic: apical 4-chamber AVI videos with LV tracings at ED and ES.

::

    FileList.csv        FileName,EF,ESV,EDV,FrameHeight,FrameWidth,FPS,NumberOfFrames,Split
                        (FileName without ".avi")
    VolumeTracings.csv  FileName,X1,Y1,X2,Y2,Frame   (FileName with ".avi")
    Videos/0X1A0A263B22CCD966.avi   112 x 112

For each traced frame the first row is the long axis, the others are chords across the LV; the
LV outline is ``X1[1:]`` followed by ``X2[1:]`` reversed (likewise for Y), rasterised with
``cv2.fillPoly``. The larger traced area is end-diastole, the smaller end-systole. EchoNet gives
no pixel spacing: ``spacing_mm`` is NaN.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import cv2
import numpy as np

from app.data.case import Case, DataError
from app.data.frame_rate import ECHO_DEFAULT_FPS, checked_fps, describe

log = logging.getLogger(__name__)

ECHONET_LABELS = {0: "background", 1: "LV"}
FILELIST_COLUMNS = ("FileName", "EF", "ESV", "EDV", "FrameHeight", "FrameWidth", "FPS", "NumberOfFrames", "Split")
TRACING_COLUMNS = ("FileName", "X1", "Y1", "X2", "Y2", "Frame")


def _read_csv(path: Path, columns: tuple[str, ...]) -> list[dict[str, str]]:
    if not path.is_file():
        raise DataError(path, "missing file")
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in columns if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(path, f"missing columns {missing}")
        return list(reader)


def read_video(path: Path) -> np.ndarray:
    """All frames of an AVI as ``(T, H, W, 3)`` uint8 RGB."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "missing file")
    cap = cv2.VideoCapture(str(path))
    frames = []
    declared = cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0
    try:
        while True:
            ok, bgr = cap.read()
            if not ok:
                break
            frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    finally:
        cap.release()
    if not frames:
        raise DataError(path, "no readable video frames")
    if 0 < declared < 1e8 and declared - len(frames) > max(1, int(declared) // 100):
        log.warning("%s: truncated: %d of %d frames readable", path, len(frames), int(declared))
    return np.stack(frames)


def lv_polygon(rows: list[dict[str, str]]) -> np.ndarray:
    """``(N, 2)`` float ``(x, y)`` LV outline from one frame's tracing rows (first row = long axis)."""
    pts = np.array([[float(r["X1"]), float(r["Y1"]), float(r["X2"]), float(r["Y2"])] for r in rows[1:]])
    if len(pts) < 2:
        raise ValueError("a traced frame needs the long axis and at least two chords")
    return np.concatenate([pts[:, 0:2], pts[::-1, 2:4]])


def rasterise(polygon: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Fill a ``(N, 2)`` ``(x, y)`` polygon (pixel units) -> ``(H, W)`` uint8 mask of 0/1."""
    mask = np.zeros(shape, np.uint8)
    cv2.fillPoly(mask, [np.round(polygon * 16.0).astype(np.int32)], 1, lineType=cv2.LINE_8, shift=4)
    return mask


class EchoNetDataset:
    """Index of an EchoNet-Dynamic folder; ``load(name)`` reads one video as a ``Case``."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.file_list_path = self.root / "FileList.csv"
        self.tracings_path = self.root / "VolumeTracings.csv"
        self.files = {r["FileName"].removesuffix(".avi"): r for r in _read_csv(self.file_list_path, FILELIST_COLUMNS)}
        self.tracings: dict[str, dict[int, list[dict[str, str]]]] = {}
        if self.tracings_path.exists():
            for r in _read_csv(self.tracings_path, TRACING_COLUMNS):
                name = r["FileName"].removesuffix(".avi")
                try:
                    frame = int(r["Frame"])
                except ValueError:
                    raise DataError(self.tracings_path, f"Frame is not an integer: {r['Frame']!r}") from None
                self.tracings.setdefault(name, {}).setdefault(frame, []).append(r)

    def names(self, split: str | None = None) -> list[str]:
        """File names (no ``.avi``), optionally only those of one ``Split`` (TRAIN, VAL, TEST)."""
        return [n for n, r in self.files.items() if split is None or r["Split"].upper() == split.upper()]

    def load(self, name: str) -> Case:
        name = name.removesuffix(".avi")
        if name not in self.files:
            raise DataError(self.file_list_path, f"no row for {name}")
        row = self.files[name]
        video_path = self.root / "Videos" / f"{name}.avi"
        frames = read_video(video_path)
        t, h, w = frames.shape[:3]
        labels = np.zeros((t, h, w), np.uint8)
        areas = {}
        for frame, rows in sorted(self.tracings.get(name, {}).items()):
            if not 0 <= frame < t:
                raise DataError(self.tracings_path, f"{name}.avi: traced frame {frame} outside 0..{t - 1}")
            try:
                labels[frame] = rasterise(lv_polygon(rows), (h, w))
            except (ValueError, KeyError) as exc:
                raise DataError(self.tracings_path, f"{name}.avi frame {frame}: bad tracing ({exc})") from exc
            areas[frame] = int(labels[frame].sum())
        ed = max(areas, key=areas.get) if areas else None
        es = min(areas, key=areas.get) if len(areas) > 1 else None
        try:
            fps = float(row["FPS"])
        except ValueError:
            raise DataError(self.file_list_path, f"{name}: FPS is not a number: {row['FPS']!r}") from None
        fps = checked_fps(f"{self.file_list_path} ({name})", fps, f"FPS {describe(fps)}", ECHO_DEFAULT_FPS)
        meta = {"split": row["Split"], "ef": float(row["EF"]) if row["EF"] else None, "video": video_path.name,
                "echo_attributes": {"echo_mode": "bmode",
                                    "echo_mode_basis": "an EchoNet-Dynamic video (EchoNet-Dynamic is B-mode echo)"}}
        return Case(
            case_id=name, modality="echo", frames=frames, labels=labels, label_map=dict(ECHONET_LABELS),
            spacing_mm=(float("nan"), float("nan")), frame_rate=fps, labelled_frames=tuple(sorted(areas)),
            ed=ed, es=es, source=str(video_path), meta=meta,
        ).validate()


def load_echonet(root: Path, split: str | None = None) -> list[Case]:
    """Every video of an EchoNet-Dynamic folder (or of one split)."""
    ds = EchoNetDataset(root)
    return [ds.load(n) for n in ds.names(split)]
