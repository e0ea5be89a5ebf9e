"""Replay outputs written while the replay runs, so that a killed replay keeps what it did.

* ``CsvRows``: one CSV row per processed frame, flushed as it is written.
* ``MaskStream``: masks appended as they come to ``OUT.partial`` (a raw file of fixed-size records:
  little-endian int32 frame index, then ``rows x cols`` uint8 labels) described by
  ``OUT.partial.json``; ``finish`` turns them into the NIfTI ``OUT`` and removes both. After a crash
  ``recover_masks(OUT)`` (or ``python -m app.engine.replay_output OUT``) does the same from what
  reached the disk.
* ``write_json_atomic``: the report is written to a temporary file in the same folder, then renamed
  over the old one, so a reader (or a kill) never sees half a report.

``check_output_path`` validates an output path before any work starts (suffix, not a folder, its
folder exists and is writable) and raises ``OutputError`` naming the path and the problem.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

CSV_COLUMNS = ("index", "arrival_ms", "preprocess_ms", "segment_ms", "qc_ms", "overlay_ms", "latency_ms",
               "predicted_dice", "true_dice", "error")
REPORT_SUFFIXES = (".json",)
CSV_SUFFIXES = (".csv",)
MASK_SUFFIXES = (".nii", ".nii.gz")
PLOT_SUFFIXES = (".png",)
PARTIAL = ".partial"
_INDEX = np.dtype("<i4")


class OutputError(ValueError):
    """An output path that cannot be written (names the path and the problem)."""

    def __init__(self, path: object, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


@dataclass
class FrameRecord:
    """What the replay keeps of one processed frame (small: no images)."""

    index: int
    arrival_ns: int
    done_ns: int
    stages: dict[str, float]
    latency_ms: float | None
    predicted_dice: float | None
    true_dice: float | None
    error: str | None


# -- validation -------------------------------------------------------------------------------------
def check_output_path(path: Path | str, suffixes: tuple[str, ...], option: str) -> Path:
    """Check that ``path`` can be written as ``option``'s output, before any work starts.

    Raises:
        OutputError: Empty, a folder, a wrong suffix, its folder missing or not writable, or an
            existing file that is not writable.
    """
    if str(path).strip() == "":
        raise OutputError(repr(str(path)), f"{option} needs a file name")
    path = Path(path)
    if path.is_dir():
        raise OutputError(path, f"{option} is a folder; give a file name ending in {' or '.join(suffixes)}")
    if not path.name.lower().endswith(suffixes):
        raise OutputError(path, f"{option} must end in {' or '.join(suffixes)}")
    folder = path.parent
    if not folder.exists():
        raise OutputError(path, f"folder {folder} does not exist")
    if not folder.is_dir():
        raise OutputError(path, f"{folder} is not a folder")
    if path.exists() and not os.access(path, os.W_OK):
        raise OutputError(path, "the file exists and is not writable")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(path, f"folder {folder} is not writable")
    return path


def check_distinct(paths: dict[str, Path | None]) -> None:
    """Two options must not write the same file (``{option: path}``; None entries are ignored)."""
    seen: dict[Path, str] = {}
    for option, path in paths.items():
        if path is None:
            continue
        key = Path(os.path.abspath(path))
        if key in seen:
            raise OutputError(path, f"{option} and {seen[key]} name the same file")
        seen[key] = option


# -- the report -------------------------------------------------------------------------------------
def write_json_atomic(path: Path, data: dict) -> Path:
    """Write strict JSON to a temporary file beside ``path``, flush it to disk, then rename it over."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(json.dumps(data, indent=2, allow_nan=False) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


# -- the CSV ----------------------------------------------------------------------------------------
def _fmt(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4f}" if np.isfinite(value) else ""
    return str(value)


class CsvRows:
    """Per-frame CSV, one flushed row per processed frame; arrival is relative to the first frame.

    Args:
        path: The ``.csv`` file (created or truncated).
        scrub: Applied to error texts (takes out what could name the patient, e.g. the file name).
    """

    def __init__(self, path: Path, scrub=None):
        self.path = Path(path)
        self._scrub = scrub or (lambda text: text)
        self._t0: int | None = None
        self.rows = 0
        self._fh = open(self.path, "w", newline="", encoding="utf-8")
        self._writer = csv.writer(self._fh)
        self._writer.writerow(CSV_COLUMNS)
        self._fh.flush()

    def write(self, r: FrameRecord, t0_ns: int | None = None) -> None:
        """Append and flush one row (``t0_ns``: arrival of frame 0 of the run; default: the first row's)."""
        if self._t0 is None:
            self._t0 = r.arrival_ns if t0_ns is None else t0_ns
        self._writer.writerow([r.index, _fmt((r.arrival_ns - self._t0) / 1e6),
                               *(_fmt(r.stages.get(s)) for s in ("preprocess", "segment", "qc", "overlay")),
                               _fmt(r.latency_ms), _fmt(r.predicted_dice), _fmt(r.true_dice),
                               self._scrub(r.error) if r.error else ""])
        self._fh.flush()
        self.rows += 1

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()


# -- the masks --------------------------------------------------------------------------------------
def _partial_paths(path: Path) -> tuple[Path, Path]:
    return path.with_name(path.name + PARTIAL), path.with_name(path.name + PARTIAL + ".json")


class MaskStream:
    """Masks written as they come, then one NIfTI ``(rows, cols, T)`` uint8 at the end.

    Args:
        path: The final ``.nii``/``.nii.gz`` file.
        spacing_mm: Pixel spacing (row, col), or None (1 mm).
        frame_rate: Frames per second (the time step of the volume), or None (1 s).
    """

    def __init__(self, path: Path, spacing_mm: tuple[float, float] | None = None, frame_rate: float | None = None):
        self.path = Path(path)
        self.raw_path, self.meta_path = _partial_paths(self.path)
        self._spacing = [float(s) for s in (spacing_mm or (1.0, 1.0))]
        self._frame_rate = float(frame_rate) if frame_rate else None
        self._shape: tuple[int, int] | None = None
        self._fh = None
        self._skipped = 0
        self.written = 0
        for stale in (self.raw_path, self.meta_path):
            if stale.exists():
                stale.unlink()

    def add(self, index: int, mask: np.ndarray) -> None:
        """Append one frame's label map (flushed); a mask of another size than the first is skipped."""
        mask = np.ascontiguousarray(mask, dtype=np.uint8)
        if self._fh is None:
            self._shape = (int(mask.shape[0]), int(mask.shape[1]))
            meta = {"format": "cardiac-rt replay masks", "rows": self._shape[0], "cols": self._shape[1],
                    "record": "int32 little-endian frame index, then rows*cols uint8 labels (row-major)",
                    "spacing_mm": self._spacing, "frame_rate": self._frame_rate}
            write_json_atomic(self.meta_path, meta)
            self._fh = open(self.raw_path, "wb")
        if mask.shape != self._shape:
            if self._skipped == 0:
                log.warning("%s: frame %d mask is %s, not %s: skipped", self.path, index, mask.shape, self._shape)
            self._skipped += 1
            return
        self._fh.write(np.asarray(index, dtype=_INDEX).tobytes() + mask.tobytes())
        self._fh.flush()
        self.written += 1

    def close(self) -> None:
        if self._fh is not None and not self._fh.closed:
            self._fh.close()

    def finish(self, n_frames: int = 0) -> Path | None:
        """Close the stream, write the NIfTI and remove the partial files (None: no mask came)."""
        self.close()
        if self._fh is None:
            log.warning("no masks to write to %s (no frame was segmented)", self.path)
            return None
        return recover_masks(self.path, n_frames)


def read_partial_masks(path: Path | str) -> tuple[dict[int, np.ndarray], dict]:
    """The masks that reached the disk for final file ``path`` (a cut-off last record is ignored).

    Returns:
        ``({frame index: mask}, the description from OUT.partial.json)``.

    Raises:
        OutputError: No partial masks beside ``path`` or a broken description.
    """
    raw_path, meta_path = _partial_paths(Path(path))
    if not meta_path.is_file() or not raw_path.is_file():
        raise OutputError(path, f"no partial masks here ({raw_path.name} and {meta_path.name} are needed)")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        rows, cols = int(meta["rows"]), int(meta["cols"])
    except (ValueError, KeyError, TypeError) as exc:
        raise OutputError(meta_path, f"unreadable description ({exc})") from None
    record = np.dtype([("index", _INDEX), ("mask", np.uint8, (rows, cols))])
    count = raw_path.stat().st_size // record.itemsize
    data = np.fromfile(raw_path, dtype=record, count=count)
    return {int(i): m for i, m in zip(data["index"], data["mask"])}, meta


def masks_volume(masks: dict[int, np.ndarray], n_frames: int = 0) -> np.ndarray:
    """``(rows, cols, T)`` uint8: a frame without a mask repeats the previous one (what the viewer
    showed for a dropped frame); frames before the first mask are empty."""
    first = next(iter(masks.values()))
    n = max(int(n_frames), max(masks) + 1)
    volume = np.zeros((*first.shape, n), dtype=np.uint8)
    last = None
    for t in range(n):
        last = masks.get(t, last)
        if last is not None and last.shape == first.shape:
            volume[..., t] = last
    return volume


def write_masks_nifti(path: Path, volume: np.ndarray, spacing_mm, frame_rate: float | None) -> Path:
    """Write the volume as NIfTI via a temporary file beside ``path`` and a rename."""
    from app.data.loaders.nifti import write_nifti

    path = Path(path)
    suffix = ".nii.gz" if path.name.lower().endswith(".gz") else ".nii"
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp{suffix}")
    spacing = spacing_mm or (1.0, 1.0)
    dt = 1.0 / frame_rate if frame_rate else 1.0
    try:
        write_nifti(tmp, volume, (float(spacing[0]), float(spacing[1]), dt), time_unit="sec")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def recover_masks(path: Path | str, n_frames: int = 0) -> Path | None:
    """Turn ``OUT.partial`` (+ ``.json``) into the NIfTI ``OUT`` and remove them (None: empty)."""
    path = Path(path)
    masks, meta = read_partial_masks(path)
    raw_path, meta_path = _partial_paths(path)
    if not masks:
        log.warning("no masks to write to %s (no frame was segmented)", path)
        out = None
    else:
        out = write_masks_nifti(path, masks_volume(masks, n_frames), meta.get("spacing_mm"), meta.get("frame_rate"))
    raw_path.unlink()
    meta_path.unlink()
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m app.engine.replay_output OUT.nii.gz``: finish the masks of a killed replay."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or argv[0].startswith("-"):
        print("usage: python -m app.engine.replay_output OUT.nii.gz  (turns OUT.nii.gz.partial into OUT.nii.gz)",
              file=sys.stderr)
        return 2
    try:
        out = recover_masks(argv[0])
    except (OutputError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"masks    {out}" if out else "masks    none (no frame was segmented)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
