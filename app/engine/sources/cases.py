"""Sources backed by ``Case`` objects: loaded datasets (ACDC, NIfTI 4D, phantom files) and the
phantom generator as an endless live stream."""

from __future__ import annotations

import logging
import queue
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from app.data.case import Case, DataError
from app.engine.sources.base import ArraySource, FrameSource
from app.engine.types import Frame, SourceInfo

log = logging.getLogger(__name__)


def case_source(case: Case, name: str | None = None) -> ArraySource:
    """A seekable source over one case (cine cases expose their slices through ``set_slice``)."""
    frames = case.frames
    if frames.ndim < 3:
        raise DataError(case.source or case.case_id, f"frames of shape {frames.shape} are not a sequence")
    sliced = case.modality == "cine"
    info = SourceInfo(
        name=name or case.case_id, modality=case.modality, frame_rate=_rate(case),
        spacing_mm=tuple(float(s) for s in case.spacing_mm) if case.spacing_mm else None,
        label_map={int(k): v for k, v in case.label_map.items()}, echo_attributes=echo_attributes_of(case),
    )
    labelled = tuple(case.labelled_frames) if case.labels is not None else None
    source = ArraySource(info, frames, case.labels, labelled, sliced=sliced)
    if sliced:
        source.set_slice(int(case.n_slices // 2))  # mid-ventricular by default: the most informative slice
    return source


def echo_attributes_of(case: Case) -> dict[str, str]:
    """What a case's loader knew about how the echo was acquired (``SourceInfo.echo_attributes``).

    A loader's own ``meta["echo_attributes"]`` (DICOM contrast attributes, a B-mode dataset), else a
    phantom's ``meta["variant"]``; nothing for cine.
    """
    if case.modality != "echo":
        return {}
    given = case.meta.get("echo_attributes")
    if isinstance(given, dict) and given:
        return {str(k): str(v) for k, v in given.items()}
    variant = case.meta.get("variant")
    if variant in ("contrast", "bmode"):
        return {"echo_mode": variant, "echo_mode_basis": f"a {variant} phantom (its generator's variant)"}
    return {}


def _rate(case: Case) -> float:
    """The case's frame rate as a number (an implausible one is replaced by ``RecordingSource``)."""
    try:
        return float(case.frame_rate)
    except (TypeError, ValueError):
        return float("nan")


def load_case_file(path: Path) -> Case:
    """Read any dataset case the data loaders know (ACDC folder, NIfTI, phantom ``.npz``, ...)."""
    try:
        from app.data.loaders import load_case
    except ImportError as exc:  # the data package is built in parallel; say so instead of guessing
        raise DataError(path, f"no dataset loader available for this kind of file ({exc})") from None
    return load_case(path)


class PhantomLiveSource(FrameSource):
    """The phantom generator as a live scanner: case after case, rendered ahead on a thread.

    ``render(case_index) -> Case`` is called for ``case0, case0 + 1, ...``; at most one rendered case
    waits ahead (bounded memory). Frames carry the phantom's exact labels as ground truth.

    Args:
        modality: ``"echo"`` or ``"cine"`` (cine streams the middle slice).
        render: Renders one case; defaults to the app's phantom generator with ``seed``.
        seed: Dataset seed for the default renderer.
        case0: First case index.
    """

    seekable = False

    def __init__(self, modality: str, *, seed: int = 0, case0: int = 0,
                 render: Callable[[int], Case] | None = None, n_frames: int | None = None):
        if modality not in ("echo", "cine"):
            raise DataError(f"phantom:{modality}", "unknown phantom modality (use echo or cine)")
        self._render = render or _default_renderer(modality, seed, n_frames)
        self._modality = modality
        self._next_case = int(case0)
        self._slice: int | None = None
        self._ahead: queue.Queue[Case | Exception] = queue.Queue(maxsize=1)
        self._closed = threading.Event()
        first = self._render_one()
        if isinstance(first, Exception):
            raise first
        self.info = SourceInfo(
            name=f"phantom {modality} seed {seed}", modality=modality, frame_rate=float(first.frame_rate),
            n_frames=None, n_slices=first.n_slices, spacing_mm=tuple(first.spacing_mm),
            has_ground_truth=first.labels is not None, label_map=dict(first.label_map),
            echo_attributes=echo_attributes_of(first),
        )
        self._first = first
        self._thread: threading.Thread | None = None

    def preview_frames(self, n: int) -> list[np.ndarray]:
        """Frames of the first case (rendered already), spread over it; echo only."""
        return case_preview(self._first, n)

    def _render_one(self) -> Case | Exception:
        index = self._next_case
        self._next_case += 1
        try:
            return self._render(index)
        except Exception as exc:  # a renderer failure ends the stream with a clear error
            return DataError(f"phantom:{self._modality}", f"rendering case {index} failed ({type(exc).__name__}: {exc})")

    def _render_ahead(self) -> None:
        while not self._closed.is_set():
            case = self._render_one()
            while not self._closed.is_set():
                try:
                    self._ahead.put(case, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if isinstance(case, Exception):
                return

    def set_slice(self, z: int) -> None:
        if not 0 <= z < self.info.n_slices:
            raise ValueError(f"{self.info.name}: slice {z} outside 0..{self.info.n_slices - 1}")
        self._slice = int(z)

    def __iter__(self) -> Iterator[Frame]:
        if self._thread is None:
            self._thread = threading.Thread(target=self._render_ahead, name="phantom-render", daemon=True)
            self._thread.start()
        case, index = self._first, 0
        while not self._closed.is_set():
            for t in range(case.n_frames):
                if self._closed.is_set():
                    return
                z = self._slice if self._slice is not None else case.n_slices // 2
                if case.modality == "cine":
                    image, gt = case.frames[t, z], None if case.labels is None else case.labels[t, z]
                else:
                    image, gt = case.frames[t], None if case.labels is None else case.labels[t]
                meta = {"case": case.case_id, "slice": z} if case.modality == "cine" else {"case": case.case_id}
                yield Frame(index=index, image=np.ascontiguousarray(image), t_arrival=time.perf_counter_ns(),
                            ground_truth=None if gt is None else np.ascontiguousarray(gt, dtype=np.uint8), meta=meta)
                index += 1
            nxt = None
            while nxt is None and not self._closed.is_set():
                try:
                    nxt = self._ahead.get(timeout=0.1)
                except queue.Empty:
                    continue
            if isinstance(nxt, Exception):
                raise nxt
            if nxt is not None:
                case = nxt

    def close(self) -> None:
        self._closed.set()
        if self._thread is not None:
            self._thread.join(timeout=10.0)


def _default_renderer(modality: str, seed: int, n_frames: int | None) -> Callable[[int], Case]:
    try:
        if modality == "echo":
            from app.data.phantom.echo import render_echo_case as render
        else:
            from app.data.phantom.cine import render_cine_case as render
    except ImportError as exc:
        raise DataError(f"phantom:{modality}", f"phantom generator not available ({exc})") from None
    kwargs = {} if n_frames is None else {"n_frames": int(n_frames)}
    return lambda case_index: render(seed, case_index, **kwargs)


def case_preview(case: Case, n: int) -> list[np.ndarray]:
    """Up to ``n`` frames spread over an echo case (cine: none, the echo mode does not apply)."""
    if case.modality != "echo" or case.n_frames == 0:
        return []
    picks = sorted({int(round(i)) for i in np.linspace(0, case.n_frames - 1, min(n, case.n_frames))})
    return [np.ascontiguousarray(case.frames[i]) for i in picks]
