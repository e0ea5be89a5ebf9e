"""The live phantom rendered ahead in a child process, so the stream keeps its frame rate.

Rendering one phantom cine patient (20 frames x 8 slices) takes 0.7-1.5 s of Python and numpy,
about as long as the patient plays. On the player's process it competed with inference for the
GIL and the cores: replayed paced, ``phantom:cine`` delivered frames in bursts and the pipeline
dropped most of them. Here a child process renders case after case:

    child (spawned, niced): render(seed, k) -> send over a one-way pipe -> render(seed, k + 1) ...
    parent (``PrefetchedPhantomSource``): plays case k; at its end takes case k + 1 if it is there

Bounded memory: the pipe holds one message at a time and ``send`` blocks until the parent reads it,
so there is at most one case waiting in the child, one being received and one playing.
Determinism: case k is exactly ``render(seed, k)`` as before. Live pacing: when a case ends while
it is being played in real time and the next one is not rendered yet, the same patient plays
another heartbeat (``frame.meta["repeat"]`` counts them) instead of stalling the stream; a
consumer reading as fast as it can (``replay --fast``) waits for the next case instead, so it sees
every case once, in order. Errors in the child come back as one-line ``DataError``; ``close``
ends the child (and a child whose parent died ends at its next send: no orphans).
"""

from __future__ import annotations

import importlib
import logging
import multiprocessing as mp
import os
import signal
import threading
import time
from typing import Any, Iterator

import numpy as np

from app.data.case import Case, DataError
from app.engine.sources.base import FrameSource
from app.engine.sources.cases import case_preview, echo_attributes_of
from app.engine.types import Frame, SourceInfo

log = logging.getLogger(__name__)

RENDERERS = {"echo": "app.data.phantom.echo:render_echo_case", "cine": "app.data.phantom.cine:render_cine_case"}
NICENESS = 10        # the renderer yields the cores to inference when both are busy
REALTIME_FRACTION = 0.5  # a case played in at least this share of its duration was played live


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"


def _render_loop(renderer: str, seed: int, case0: int, kwargs: dict[str, Any], conn, niceness: int) -> None:
    """Child process: render case after case and send each as ``("case", k, Case)``.

    Sends ``("error", k, message)`` and ends on the first failure. Ends quietly when the parent
    closes its end of the pipe (closed source or dead parent).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: it closes us
    try:
        os.nice(niceness)
    except (AttributeError, OSError):  # no nice() on this platform: run at normal priority
        pass
    index = case0
    try:
        module, _, name = renderer.partition(":")
        render = getattr(importlib.import_module(module), name)
    except Exception as exc:  # report the import problem like a rendering failure
        render, item = None, ("error", index, f"phantom generator not available ({_one_line(exc)})")
    while True:
        if render is not None:
            try:
                item = ("case", index, render(seed, index, **kwargs))
            except Exception as exc:
                item = ("error", index, f"rendering case {index} failed ({_one_line(exc)})")
        try:
            conn.send(item)
        except (BrokenPipeError, EOFError, OSError):
            return  # the parent is gone or closed the source
        except Exception as exc:  # e.g. a case that cannot be pickled
            item = ("error", index, f"sending case {index} failed ({_one_line(exc)})")
            render = None
            continue
        if item[0] == "error":
            conn.close()
            return
        index += 1


class CasePrefetcher:
    """Renders phantom cases ``case0, case0 + 1, ...`` in a child process, one case ahead.

    Args:
        spec: Named in error messages (e.g. ``"phantom:cine"``).
        renderer: ``"module:function"`` with ``function(seed, case_index, **kwargs) -> Case``.
        seed: Dataset seed.
        case0: First case index.
        kwargs: Extra keyword arguments for the renderer (e.g. ``n_frames``).
        context: multiprocessing start method; ``"spawn"`` (default) starts a fresh interpreter,
            safe beside Qt and onnxruntime threads.
        niceness: Added to the child's nice value (lower priority than the pipeline).
    """

    def __init__(self, spec: str, renderer: str, *, seed: int = 0, case0: int = 0,
                 kwargs: dict[str, Any] | None = None, context: str = "spawn", niceness: int = NICENESS):
        self._spec = spec
        ctx = mp.get_context(context)
        self._conn, child_end = ctx.Pipe(duplex=False)
        self._lock = threading.Lock()
        self._closed = False
        self.process = ctx.Process(target=_render_loop, name=f"{spec}-render", daemon=True,
                                   args=(renderer, int(seed), int(case0), dict(kwargs or {}), child_end, int(niceness)))
        self.process.start()
        child_end.close()  # only the child writes: its death then reads as end-of-file here

    def get(self, timeout: float | None = None) -> Case | None:
        """The next case in order; None if none arrived within ``timeout`` s (0: do not wait) or closed.

        Raises:
            DataError: The child failed to render (its one-line message) or ended unexpectedly.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = 0.1 if deadline is None else min(0.1, max(0.0, deadline - time.monotonic()))
            with self._lock:
                if self._closed:
                    return None
                try:
                    item = self._conn.recv() if self._conn.poll(remaining) else None
                except (EOFError, OSError):
                    item = ("died", None, None)
            if item is not None:
                return self._unpack(item)
            if deadline is not None and time.monotonic() >= deadline:
                return None

    def _unpack(self, item: tuple) -> Case | None:
        kind, index, payload = item
        if kind == "case":
            return payload
        if self._closed:
            return None
        if kind == "error":
            raise DataError(self._spec, payload)
        self.process.join(timeout=1.0)
        raise DataError(self._spec, f"the render process ended unexpectedly (exit code {self.process.exitcode})")

    def close(self) -> None:
        """End the child and release the pipe; idempotent, safe while another thread is in ``get``."""
        if self._closed:
            return
        self._closed = True
        if self.process.is_alive():
            self.process.terminate()  # it holds nothing worth saving: at most a half-sent case
        self.process.join(timeout=5.0)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(timeout=5.0)
        with self._lock:  # a reader in get() saw end-of-file or its short poll ran out by now
            self._conn.close()


class PrefetchedPhantomSource(FrameSource):
    """The phantom generator as a live scanner, rendered one case ahead in a child process.

    Frames carry the phantom's exact labels as ground truth; cine streams one slice (the middle
    one unless ``set_slice`` chose another). See the module docstring for pacing and errors.

    Args:
        modality: ``"echo"`` or ``"cine"``.
        seed: Dataset seed.
        case0: First case index.
        n_frames: Frames per case (None: the generator's default).
        hold: Played live, repeat the current patient while the next is not rendered (False:
            always wait for it, so the stream is the exact case sequence whatever the pace).
        start_timeout: Seconds to wait for the first case.
        renderer: ``"module:function"`` overriding the phantom generator (tests).
    """

    seekable = False

    def __init__(self, modality: str, *, seed: int = 0, case0: int = 0, n_frames: int | None = None,
                 hold: bool = True, start_timeout: float = 120.0, renderer: str | None = None,
                 context: str = "spawn"):
        spec = f"phantom:{modality}"
        if modality not in RENDERERS:
            raise DataError(spec, "unknown phantom modality (use echo or cine)")
        kwargs = {} if n_frames is None else {"n_frames": int(n_frames)}
        self._prefetch = CasePrefetcher(spec, renderer or RENDERERS[modality], seed=seed, case0=case0,
                                        kwargs=kwargs, context=context)
        try:
            first = self._prefetch.get(timeout=start_timeout)
            if first is None:
                raise DataError(spec, f"no case rendered within {start_timeout:g} s")
        except BaseException:
            self._prefetch.close()
            raise
        self.info = SourceInfo(
            name=f"phantom {modality} seed {seed}", modality=modality, frame_rate=float(first.frame_rate),
            n_frames=None, n_slices=first.n_slices, spacing_mm=tuple(first.spacing_mm),
            has_ground_truth=first.labels is not None, label_map=dict(first.label_map),
            echo_attributes=echo_attributes_of(first),
        )
        self._first = first
        self._hold = bool(hold)
        self._slice: int | None = None
        self._closed = threading.Event()
        self.repeats = 0  # heartbeats replayed because the next case was not rendered in time

    def preview_frames(self, n: int) -> list[np.ndarray]:
        """Frames of the first case (rendered already), spread over it; echo only."""
        return case_preview(self._first, n)

    @property
    def slice_index(self) -> int:
        """The streamed cine slice (the middle one until ``set_slice``); 0 for echo."""
        return self._slice if self._slice is not None else self.info.n_slices // 2

    def set_slice(self, z: int) -> None:
        if not 0 <= z < self.info.n_slices:
            raise ValueError(f"{self.info.name}: slice {z} outside 0..{self.info.n_slices - 1}")
        self._slice = int(z)

    def __iter__(self) -> Iterator[Frame]:
        case, index, repeat = self._first, 0, 0
        while not self._closed.is_set():
            started = time.perf_counter()
            for t in range(case.n_frames):
                if self._closed.is_set():
                    return
                yield self._frame(case, t, index, repeat)
                index += 1
            live = time.perf_counter() - started >= REALTIME_FRACTION * case.n_frames / (self.info.frame_rate or 1.0)
            nxt = self._prefetch.get(timeout=0.0) if self._hold and live else self._wait_next()
            if nxt is None:
                if self._closed.is_set():
                    return
                repeat += 1
                self.repeats += 1
                log.debug("%s: next case not rendered yet, repeating %s", self.info.name, case.case_id)
                continue
            case, repeat = nxt, 0

    def _wait_next(self) -> Case | None:
        while not self._closed.is_set():
            case = self._prefetch.get(timeout=0.1)
            if case is not None:
                return case
        return None

    def _frame(self, case: Case, t: int, index: int, repeat: int) -> Frame:
        if case.modality == "cine":
            z = self._slice if self._slice is not None else case.n_slices // 2
            image, gt = case.frames[t, z], None if case.labels is None else case.labels[t, z]
            meta = {"case": case.case_id, "slice": z}
        else:
            image, gt = case.frames[t], None if case.labels is None else case.labels[t]
            meta = {"case": case.case_id}
        if repeat:
            meta["repeat"] = repeat
        return Frame(index=index, image=np.ascontiguousarray(image), t_arrival=time.perf_counter_ns(),
                     ground_truth=None if gt is None else np.ascontiguousarray(gt, dtype=np.uint8), meta=meta)

    def close(self) -> None:
        self._closed.set()
        self._prefetch.close()
