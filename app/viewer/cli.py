"""``python -m app`` / ``python -m app view``: open the scanner viewer."""

from __future__ import annotations

import argparse
import os
import sys

HEADLESS_HELP = (
    "No display found (neither DISPLAY nor WAYLAND_DISPLAY is set), so the viewer cannot open a window.\n"
    "  - to run the viewer without a screen:  QT_QPA_PLATFORM=offscreen python -m app\n"
    "  - to validate a recording headless:    python -m app replay SOURCE --report report.json"
)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source", help="recording or device to open (default: the shipped demo recording)")
    parser.add_argument("--model", help="segmentation model id from models/ (default: the shipped one for the modality)")
    parser.add_argument("--models-dir", help="folder of ONNX models with their cards (default: models/)")
    parser.add_argument(
        "--quit-after", type=float, default=None, metavar="SECONDS", help="close the window after this long (demos, tests)"
    )
    parser.add_argument("--fast", action="store_true", help="replay as fast as the pipeline takes frames, every frame processed (speed 'max', like replay --fast)")
    parser.add_argument("--record", metavar="DIR", help="record the session (masks, CSV, QC log) into a new folder under DIR")
    parser.add_argument("--settings", metavar="FILE.ini", help="read and write settings in this INI file instead of the user's")
    parser.add_argument(
        "--quit-after-first-frame", action="store_true",
        help="close the window once the first overlay is painted (start-up measurement; see bench/startup_bench.py)",
    )
    parser.add_argument("--screenshot", metavar="FILE.png", help="save a screenshot of the window just before --quit-after closes it")
    parser.add_argument("--ui-report", metavar="FILE.json",
                        help="on exit, write display figures (event-loop delay, painted latency, pipeline stats)")
    parser.add_argument("--check-display", action="store_true",
                        help="only check that Qt can open a window here (system libraries, display), say so, "
                             "and exit 0, or 2 with what to install or fix")


def display_available(environ: dict[str, str] | None = None) -> bool:
    """True when Qt can open a window: a display server, or an explicit non-window platform."""
    env = os.environ if environ is None else environ
    if env.get("QT_QPA_PLATFORM"):
        return True
    if sys.platform in ("win32", "darwin"):
        return True
    return bool(env.get("DISPLAY") or env.get("WAYLAND_DISPLAY"))


def check_display() -> int:
    """``--check-display``: start Qt once in a child process and say whether a window can open."""
    from app.viewer.platform_check import EXIT_NO_DISPLAY, probe

    ok, what = probe()
    if not ok:
        print(what, file=sys.stderr)
        return EXIT_NO_DISPLAY
    print(f"display OK: Qt opens windows here with its {what} platform plugin")
    return 0


def run(args: argparse.Namespace) -> int:
    if not display_available():
        print(HEADLESS_HELP, file=sys.stderr)
        return 2
    if getattr(args, "check_display", False):
        return check_display()
    from app.viewer.platform_check import EXIT_NO_DISPLAY, check

    problem = check()  # missing system libraries or an unreachable display: one line, not Qt's abort
    if problem is not None:
        print(problem, file=sys.stderr)
        return EXIT_NO_DISPLAY
    from app.viewer.app import launch

    return launch(args)
