"""Our own on-disk case format: one ``.npz`` per case (arrays + a JSON header).

Used by the dataset cache (``app.data.datasets``) and for masks written beside DICOM files.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np

from app.data.case import Case, DataError

FORMAT = "cardiac-rt-case/1"


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def case_header(case: Case) -> dict:
    """Everything in a ``Case`` except the arrays, as plain JSON types."""
    return {
        "format": FORMAT, "case_id": case.case_id, "modality": case.modality,
        "label_map": {str(k): v for k, v in case.label_map.items()},
        "spacing_mm": [float(s) for s in case.spacing_mm], "frame_rate": float(case.frame_rate),
        "labelled_frames": [int(i) for i in case.labelled_frames],
        "ed": None if case.ed is None else int(case.ed), "es": None if case.es is None else int(case.es),
        "quality": None if case.quality is None else float(case.quality), "quality_bin": case.quality_bin,
        "source": case.source, "meta": _jsonable(case.meta),
    }


def save_case_npz(case: Case, path: Path, *, with_frames: bool = True, compress: bool = True) -> Path:
    """Write ``case`` to ``path`` (``.npz``) atomically (temporary file, then rename).

    Args:
        with_frames: False writes only labels and header (a mask file beside a DICOM).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {"header": np.frombuffer(json.dumps(case_header(case)).encode(), dtype=np.uint8)}
    if with_frames:
        arrays["frames"] = case.frames
    if case.labels is not None:
        arrays["labels"] = case.labels
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        (np.savez_compressed if compress else np.savez)(fh, **arrays)
    os.replace(tmp, path)
    return path


def read_npz(path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """Header and arrays of a case ``.npz``; ``DataError`` naming the file when unreadable."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "missing file")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(path, f"unreadable or truncated .npz ({exc})") from exc
    if "header" not in arrays:
        raise DataError(path, "not a cardiac-rt case file (no header)")
    try:
        header = json.loads(arrays.pop("header").tobytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(path, f"corrupt header ({exc})") from exc
    if header.get("format") != FORMAT:
        raise DataError(path, f"unknown case format {header.get('format')!r}, expected {FORMAT!r}")
    return header, arrays


def case_from_header(header: dict, frames: np.ndarray, labels: np.ndarray | None, source: str) -> Case:
    return Case(
        case_id=header["case_id"], modality=header["modality"], frames=frames, labels=labels,
        label_map={int(k): v for k, v in header["label_map"].items()},
        spacing_mm=tuple(header["spacing_mm"]), frame_rate=float(header["frame_rate"]),
        labelled_frames=tuple(header["labelled_frames"]), ed=header["ed"], es=header["es"],
        quality=header["quality"], quality_bin=header["quality_bin"], source=source, meta=header.get("meta", {}),
    )


def load_case_npz(path: Path) -> Case:
    """Read a case written by ``save_case_npz`` (frames included)."""
    header, arrays = read_npz(path)
    if "frames" not in arrays:
        raise DataError(path, "holds labels only (a mask file); open the image it belongs to")
    case = case_from_header(header, arrays["frames"], arrays.get("labels"), str(path))
    case.meta.setdefault("origin", header.get("source", ""))
    try:
        return case.validate()
    except DataError as exc:
        raise DataError(path, exc.problem) from exc
