"""Background jobs for the viewer, superqt-style: a ``QRunnable`` that reports through signals.

Opening a source (file parsing, decoding the first frames), verifying and loading a model
(hashing, building an onnxruntime session) and tearing a player down (joining a thread that may
be blocked on a live device) all happen here, never on the GUI thread. The job never raises
inside the thread: an exception becomes the ``errored`` signal.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from PyQt6.QtCore import QObject, QRunnable, QThreadPool, pyqtSignal

log = logging.getLogger(__name__)


class WorkerSignals(QObject):
    """``returned(value)``, ``errored(exception)``, ``finished()`` (always, last)."""

    returned = pyqtSignal(object)
    errored = pyqtSignal(object)
    finished = pyqtSignal()


class Worker(QRunnable):
    """Runs ``fn(*args, **kwargs)`` on a thread pool. Connect the signals before ``start``."""

    def __init__(self, fn: Callable[..., Any], *args: Any, **kwargs: Any):
        super().__init__()
        self.fn, self.args, self.kwargs = fn, args, kwargs
        self.signals = WorkerSignals()
        self.setAutoDelete(False)  # the Python object owns it; keeps the signals alive until delivered

    def run(self) -> None:
        try:
            value = self.fn(*self.args, **self.kwargs)
        except Exception as exc:  # reported, never raised in the pool thread
            log.debug("worker %s failed: %s", getattr(self.fn, "__name__", self.fn), exc)
            self.signals.errored.emit(exc)
        else:
            self.signals.returned.emit(value)
        finally:
            self.signals.finished.emit()

    def start(self, pool: QThreadPool) -> "Worker":
        pool.start(self)
        return self
