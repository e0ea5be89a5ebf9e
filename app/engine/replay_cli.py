"""``python -m app replay SOURCE --report FILE.json``: headless replay for validation.

Exit status: 0 done; 1 the source failed part-way or an output could not be written (the report
covers the frames before it); 2 bad input (one line ``error: ...`` naming the file and the
problem, nothing written); 130 stopped by Ctrl-C (SIGINT), 143 stopped by SIGTERM (outputs written
first in both cases). Library warnings are printed once each, one line each.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import signal
import sys
import threading
from pathlib import Path

from app.realtime import REALTIME

EXIT_BY_SIGNAL = {"SIGINT": 130, "SIGTERM": 143}
DEBUG_ENV = "CARDIAC_RT_DEBUG"  # set to 1 to get a traceback for an unexpected error


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", metavar="SOURCE",
                        help="a recording (DICOM, video, NIfTI 4D, ACDC folder, image folder, phantom case), "
                             "phantom:echo|cine, camera:N or igtl://host:port")
    parser.add_argument("--report", required=True, type=Path, metavar="FILE.json", help="where to write the JSON report")
    parser.add_argument("--model", metavar="ID", help="segmentation model id (default: the modality's default)")
    parser.add_argument("--fast", action="store_true", help="every frame as fast as possible (default: paced at the source rate)")
    parser.add_argument("--masks", type=Path, metavar="OUT.nii.gz", help="also write the masks as NIfTI (rows x cols x time)")
    parser.add_argument("--csv", type=Path, metavar="OUT.csv", help="also write per-frame timings and Dice as CSV")
    parser.add_argument("--plot", type=Path, metavar="OUT.png", help="also draw the latency CDF as PNG")
    parser.add_argument("--slice", type=int, metavar="Z", help="cine: the short-axis slice to replay")
    parser.add_argument("--max-frames", type=int, metavar="N", help="stop after N frames (live sources: otherwise until Ctrl-C)")
    parser.add_argument("--models-dir", type=Path, metavar="DIR", help="folder of model cards (default: the shipped models/)")
    parser.add_argument("--deadline-ms", type=float, default=REALTIME.p95_ms, help=f"latency budget per frame, ms (default {REALTIME.p95_ms:g}, the real-time rule)")
    parser.add_argument("--name", metavar="LABEL",
                        help="the source's name in the report (default: its kind and a hash of its path, "
                             "never the file name)")
    parser.add_argument("--force", action="store_true",
                        help="open a source the modality check refuses and allow a model of another modality")
    add_echo_mode_option(parser)


def add_echo_mode_option(parser: argparse.ArgumentParser) -> None:
    """``--echo-mode {auto,contrast,bmode}`` (replay and validate)."""
    parser.add_argument("--echo-mode", choices=("auto", "contrast", "bmode"), default="auto",
                        help="echo: contrast or B-mode echo, which picks the default model pair (default auto: "
                             "from the file's contrast attributes, else from its pixels; the report says which and why)")


class OneLineHandler(logging.Handler):
    """Prints each distinct warning or error once, on one line (``warning: ...``), no tracebacks.

    Messages that differ only in their numbers (``frame 3 failed``, ``frame 4 failed``) count as
    one; ``summary`` says how many repeats were not shown.
    """

    _WARNING_PREFIX = re.compile(r"^.*?:\d+: (?:UserWarning: )?")

    def __init__(self, stream=None):
        super().__init__(logging.WARNING)
        self.stream = stream
        self.seen: dict[tuple[int, str], list] = {}
        self.previous_level = logging.NOTSET

    def _text(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.name == "py.warnings":
            message = self._WARNING_PREFIX.sub("", message.strip().splitlines()[0] if message.strip() else "")
        lines = message.strip().splitlines()
        text = lines[0] if lines else ""
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            text += f" ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
        return text

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self._text(record)
            key = (record.levelno, re.sub(r"\d+", "#", text))
            entry = self.seen.setdefault(key, [text, 0])
            entry[1] += 1
            if entry[1] == 1:
                level = "error" if record.levelno >= logging.ERROR else "warning"
                print(f"{level}: {text}", file=self.stream or sys.stderr, flush=True)
        except Exception:  # logging must never fail the replay
            self.handleError(record)

    def summary(self) -> list[str]:
        """``warning: N more like '...'`` for each message that repeated."""
        return [f"warning: {count - 1} more like '{text}' not shown" for text, count in self.seen.values() if count > 1]


def _install_logging() -> OneLineHandler:
    handler = OneLineHandler()
    root = logging.getLogger()
    handler.previous_level = root.level
    for old in [h for h in root.handlers if isinstance(h, OneLineHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.captureWarnings(True)
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")  # OpenCV's own stderr chatter (native code)
    return handler


def _remove_logging(handler: OneLineHandler) -> None:
    for line in handler.summary():
        print(line, file=sys.stderr)
    root = logging.getLogger()
    root.removeHandler(handler)
    root.setLevel(handler.previous_level)
    logging.captureWarnings(False)


def _install_signals(stop) -> dict:
    """SIGINT and SIGTERM request a stop (outputs are still written); a second one gives up at once."""
    if threading.current_thread() is not threading.main_thread():
        return {}

    def on_signal(signum, _frame) -> None:
        if stop.requested:
            raise KeyboardInterrupt
        stop.request(signal.Signals(signum).name)

    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, on_signal)
    return previous


def run_guarded(work, *, expected: tuple[type[BaseException], ...], before: str, os_name) -> tuple[object, int | None]:
    """Run ``work(stop)`` the way the headless commands do: SIGINT / SIGTERM request a clean stop
    (``_install_signals``), every failure is one ``error:`` line on stderr, signals are restored after.

    Args:
        work: Called with a fresh ``app.engine.replay.StopRequest``; returns the command's result.
        expected: Errors of bad input, printed as they are (exit 2).
        before: What an interrupt stopped, e.g. ``"the replay could finish its outputs"``.
        os_name: ``OSError`` -> the name of the file or input it names in the message (exit 2).

    Returns:
        ``(result, None)``, or ``(None, exit status)`` after the error line: 2 bad input, 130 / 143 stopped by
        SIGINT / SIGTERM, 1 an unexpected error (a bug; its traceback with ``CARDIAC_RT_DEBUG=1``).
    """
    from app.engine.replay import StopRequest

    stop = StopRequest()
    previous = _install_signals(stop)
    try:
        return work(stop), None
    except expected as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None, 2
    except OSError as exc:
        print(f"error: {os_name(exc)}: {exc.strerror or exc}", file=sys.stderr)
        return None, 2
    except KeyboardInterrupt:
        reason = stop.reason or "SIGINT"
        print(f"error: stopped by {reason} before {before}", file=sys.stderr)
        return None, EXIT_BY_SIGNAL.get(reason, 130)
    except Exception as exc:  # a bug: one line unless asked for the traceback
        if os.environ.get(DEBUG_ENV):
            raise
        print(f"error: unexpected {type(exc).__name__}: {exc} (set {DEBUG_ENV}=1 for the traceback)", file=sys.stderr)
        return None, 1
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _check_args(args: argparse.Namespace) -> str | None:
    """Problems argparse cannot see (the full output checks run in ``replay``)."""
    if not str(args.source).strip():
        return "SOURCE is empty: give a file, a folder, phantom:echo|cine, camera:N or igtl://host:port"
    if args.max_frames is not None and args.max_frames <= 0:
        return f"--max-frames must be at least 1, got {args.max_frames}"
    if args.slice is not None and args.slice < 0:
        return f"--slice must be 0 or more, got {args.slice}"
    return None


def run(args: argparse.Namespace) -> int:
    handler = _install_logging()
    try:
        return _run(args)
    finally:
        _remove_logging(handler)


def _run(args: argparse.Namespace) -> int:
    from app.cards import ModelCardError
    from app.data.case import DataError
    from app.engine.replay import OutputError, ReplayArgumentError, replay, summary_lines

    problem = _check_args(args)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    report, rc = run_guarded(
        lambda stop: replay(args.source, report=args.report, model_id=args.model, fast=args.fast,
                            models_dir=args.models_dir, masks_out=args.masks, csv_out=args.csv,
                            slice_index=args.slice, max_frames=args.max_frames, deadline_ms=args.deadline_ms,
                            plot_out=args.plot, name=args.name, force=args.force, stop=stop,
                            echo_mode=getattr(args, "echo_mode", "auto")),
        expected=(DataError, ModelCardError, OutputError, ReplayArgumentError),
        before="the replay could finish its outputs", os_name=lambda exc: exc.filename or args.source)
    if rc is not None:
        return rc
    for line in summary_lines(report):
        print(line)
    print(f"report   {args.report}")
    if report.get("interrupted"):
        return EXIT_BY_SIGNAL.get(report.get("interrupted_by"), 130)
    return 1 if report.get("source_error") or report.get("output_error") else 0
