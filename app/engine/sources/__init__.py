"""Frame sources behind one interface, and ``open_source(spec)`` which picks the right one.

Specs:
    a path: DICOM file, video file, NIfTI 4D (``.nii``/``.nii.gz``), ACDC patient folder, phantom
        case (``.npz``), other dataset folders the data loaders know, or a folder of images;
    ``phantom:echo`` / ``phantom:cine`` (optionally ``?seed=3&case=7&frames=30``): the generator live;
    ``camera:N``: an OpenCV capture device (frame grabber);
    ``igtl://host:port`` (optionally ``?device=Image``): an OpenIGTLink IMAGE client.
"""

from __future__ import annotations

import logging
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np

from app.data.case import DataError
from app.engine.sources.base import ArraySource, EndOfRecording, FrameSource, RecordingSource, check_frames

log = logging.getLogger(__name__)

__all__ = ["FrameSource", "RecordingSource", "ArraySource", "EndOfRecording", "open_source", "demo_source_spec",
           "echo_mode_of"]

DEMO_DIR = Path(__file__).resolve().parents[2] / "assets" / "demo"


def demo_source_spec() -> str:
    """The shipped demo recording the viewer opens by default (``app/assets/demo/``).

    Falls back to the live echo phantom when no recording is shipped (e.g. a bare checkout).
    """
    if DEMO_DIR.is_dir():
        for pattern in ("*.dcm", "*.npz", "*.nii.gz", "*.avi", "*.mp4", "*"):
            hits = sorted(p for p in DEMO_DIR.glob(pattern) if not p.name.startswith(".")
                          and not p.name.endswith(("_mask.npz", ".json", ".md", ".txt")))
            if hits:
                return str(hits[0])
    return "phantom:echo"


def echo_mode_of(source, requested: str | None = "auto"):
    """Contrast or B-mode echo for an opened source: ``app.data.echo_mode.EchoMode`` (mode, reason).

    ``requested`` ``"contrast"`` / ``"bmode"`` is taken as given; ``"auto"`` (or None) detects once
    per source (the result is kept on the source): its ``info.echo_attributes`` first, else
    ``IMAGE_FRAMES`` frames spread over it (``preview_frames``; a live source has none before it
    plays, and is then assumed contrast, said so in the reason). A cine source has no echo mode: None.
    """
    from app.data.echo_mode import IMAGE_FRAMES, detect_echo_mode, resolve

    if source.info.modality not in ("echo", None):
        return None

    def detect():
        found = getattr(source, "_echo_mode_detected", None)
        if found is None:
            preview = getattr(source, "preview_frames", None)
            try:
                frames = preview(IMAGE_FRAMES) if preview is not None else []
            except Exception as exc:  # a frame that cannot be read: decide without the pixels
                log.warning("%s: could not read frames to tell contrast from B-mode (%s)", source.info.name, exc)
                frames = []
            attributes = dict(getattr(source.info, "echo_attributes", None) or {})
            try:
                found = detect_echo_mode(frames, attributes)
            except Exception as exc:  # odd pixels must not stop a replay: decide on the attributes alone
                log.warning("%s: could not look at the frames to tell contrast from B-mode (%s: %s)",
                            source.info.name, type(exc).__name__, exc)
                found = detect_echo_mode(None, attributes)
            if not frames and not getattr(source.info, "echo_attributes", None) and source.info.n_frames is None:
                found = type(found)(found.mode, f"{found.reason} (a live source: set the echo mode if it is B-mode)")
            try:
                source._echo_mode_detected = found
            except AttributeError:  # a source that takes no attributes: detect again next time
                pass
        return found

    return resolve(requested, detect)


def _query(spec: str) -> tuple[str, dict[str, str]]:
    parts = urlsplit(spec)
    return parts.path if parts.scheme in ("phantom", "camera") else parts.netloc, {
        k: v[-1] for k, v in parse_qs(parts.query).items()}


def _int_option(spec: str, options: dict, key: str, default: int | None) -> int | None:
    if key not in options:
        return default
    try:
        return int(options[key])
    except (TypeError, ValueError):
        raise DataError(spec, f"option {key}={options[key]!r} is not an integer") from None


def open_source(spec: str, *, force: bool = False, **options) -> FrameSource:
    """Open a frame source from a spec string (see the module docstring).

    Args:
        spec: Path or URL-like spec.
        force: Open a DICOM whose modality is neither US (echo) nor a multi-frame MR (cine) anyway,
            with a warning (otherwise ``DataError`` naming the modality).
        **options: Passed to the source (e.g. ``stall_timeout``, ``frame_rate``, ``crop``, ``slice``).

    Raises:
        DataError: Naming the file (or spec) and the problem. A recording readable only in part
            (truncated, a corrupt frame) opens with a warning; its iteration ends with
            ``PartialSource`` (a ``DataError``) after the last readable frame.
    """
    spec = "" if spec is None else str(spec)
    if not spec.strip():
        raise DataError("SOURCE", "empty source: give a file, a folder, phantom:echo|cine, camera:N or igtl://host:port")
    if spec.startswith("phantom:"):
        from app.engine.sources.prefetch import PrefetchedPhantomSource  # renders ahead in a child process

        kind, query = _query(spec)
        query.update({k: v for k, v in options.items() if k in ("seed", "case", "frames")})
        return PrefetchedPhantomSource(kind, seed=_int_option(spec, query, "seed", 0),
                                       case0=_int_option(spec, query, "case", 0),
                                       n_frames=_int_option(spec, query, "frames", None))
    if spec.startswith("camera:"):
        from app.engine.sources.video import CaptureSource

        try:
            device = int(spec.split(":", 1)[1])
        except ValueError:
            raise DataError(spec, "camera spec must be camera:N with N an integer") from None
        return CaptureSource(device, stall_timeout=float(options.get("stall_timeout", 5.0)))
    if spec.startswith("igtl://"):
        from app.engine.sources.igtl import IgtlSource

        parts = urlsplit(spec)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        try:
            port = parts.port
        except ValueError:  # not a number, or outside 0..65535
            port = None
        if not parts.hostname or not port:
            raise DataError(spec, "OpenIGTLink spec must be igtl://host:port (port 1..65535)")
        return IgtlSource(parts.hostname, port, device=options.get("device", query.get("device")),
                          connect_timeout=float(options.get("connect_timeout", 5.0)),
                          stall_timeout=float(options.get("stall_timeout", 5.0)),
                          frame_rate=options.get("frame_rate"))
    return _open_path(Path(spec), options, force=force)


def _open_path(path: Path, options: dict, *, force: bool = False) -> FrameSource:
    from app.engine.sources.cases import case_source, load_case_file
    from app.engine.sources.dicom import DicomSource, is_dicom
    from app.engine.sources.images import ImageFolderSource, image_files
    from app.engine.sources.video import VIDEO_SUFFIXES, VideoFileSource

    if not path.exists():
        raise DataError(path, "missing file or folder")
    name = path.name.lower()
    if path.is_dir():
        if image_files(path) and not any(path.glob("*.nii*")):
            return ImageFolderSource(path, frame_rate=float(options.get("frame_rate", 30.0)))
        source = case_source(load_case_file(path), name=path.name)
    elif is_dicom(path):
        labels, label_map, labelled = _dicom_labels(path, force)
        source = DicomSource(path, crop=bool(options.get("crop", True)), labels=labels, label_map=label_map,
                             labelled_frames=labelled, force=force)
    elif path.suffix.lower() in VIDEO_SUFFIXES:
        source = VideoFileSource(path)
    elif name.endswith((".nii", ".nii.gz")):
        from app.data.loaders.acdc import is_acdc_patient

        # inside an ACDC patient folder: the whole patient (with its ED/ES ground truth)
        source = case_source(load_case_file(path), name=path.parent.name) if is_acdc_patient(path.parent) \
            else _nifti_source(path)
    elif path.stat().st_size == 0:
        raise DataError(path, "empty file")
    else:
        source = case_source(load_case_file(path), name=path.name)
    if options.get("slice") is not None:
        try:
            source.set_slice(int(options["slice"]))
        except ValueError as exc:
            raise DataError(path, str(exc)) from None
    return source


def _dicom_labels(path: Path, force: bool = False) -> tuple[np.ndarray | None, dict | None, tuple[int, ...] | None]:
    """Ground truth written beside a DICOM (``<stem>_mask.npz`` / ``<stem>_gt.nii.gz``), if any."""
    try:
        from app.data.loaders.dicom import load_dicom, mask_beside
    except ImportError:
        return None, None, None
    if mask_beside(path) is None:
        return None, None, None
    case = load_dicom(path, force=force)
    if case.labels is None:
        return None, None, None
    return case.labels, dict(case.label_map), tuple(case.labelled_frames)


def _nifti_frame_rate(path: Path, zooms: tuple[float, ...], t_unit: str) -> float:
    """Frames per second from the header's time step; 25 fps (cine MR) with a warning when it has none."""
    from app.data.frame_rate import CINE_DEFAULT_FPS, checked_fps

    dt = zooms[3] if len(zooms) > 3 else 0.0
    scale = {"sec": 1.0, "msec": 1e-3, "usec": 1e-6}.get(t_unit)
    if scale is None:  # nibabel's default header says "unknown" with a time step of 1
        log.warning("%s: no time unit in the header (time step %g, unit %s); playing at %g fps",
                    path, dt, t_unit, CINE_DEFAULT_FPS)
        return CINE_DEFAULT_FPS
    fps = 1.0 / (dt * scale) if dt > 0 else float("nan")
    return checked_fps(path, fps, f"time step {dt:g} {t_unit}", CINE_DEFAULT_FPS)


def _nifti_source(path: Path) -> FrameSource:
    """A NIfTI 4D cine ``(x, y, z, t)`` -> ``(T, Z, rows=x, cols=y)``; 3D ``(x, y, t)`` -> 2D+t."""
    from app.data.loaders.nifti import read_nifti
    from app.engine.sources.cases import case_source
    from app.data.case import Case

    data, zooms, t_unit = read_nifti(path)
    if data.ndim == 4:
        frames = np.ascontiguousarray(data.transpose(3, 2, 0, 1), dtype=np.float32)
        modality = "cine"
    elif data.ndim == 3:
        frames = np.ascontiguousarray(data.transpose(2, 0, 1))
        modality = "cine"
        frames = frames[:, None].astype(np.float32)
    else:
        raise DataError(path, f"expected a 4D (x, y, z, t) or 3D (x, y, t) NIfTI, got shape {data.shape}")
    check_frames(path, frames)
    frame_rate = _nifti_frame_rate(path, zooms, t_unit)
    if not np.isfinite(frames).all():
        log.warning("%s: non-finite voxels (they become 0 in preprocessing)", path)
    case = Case(case_id=path.name, modality=modality, frames=frames, labels=None, label_map={},
                spacing_mm=(float(zooms[0]), float(zooms[1])), frame_rate=frame_rate, source=str(path))
    return case_source(case, name=path.name)
