"""Start-up time of the viewer: from launching the command to the first overlay painted.

Runs the viewer (offscreen) with ``--quit-after-first-frame --ui-report`` a few times and reports the
wall-clock time from spawning the process to the first painted overlay on the shipped demo recording.
Works for ``python -m app`` and for the standalone bundle::

    python bench/startup_bench.py                                  # python -m app
    python bench/startup_bench.py --cmd dist/cardiac-rt/cardiac-rt # the bundle
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def time_to_first_overlay(cmd: list[str], timeout: float = 120.0) -> float:
    """Seconds from spawning ``cmd view ...`` to its first painted overlay."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "ui.json"
        env = dict(os.environ, QT_QPA_PLATFORM=os.environ.get("QT_QPA_PLATFORM", "offscreen"))
        full = [*cmd, "view", "--quit-after-first-frame", "--quit-after", str(timeout),
                "--settings", str(Path(tmp) / "settings.ini"), "--ui-report", str(report)]
        t0 = time.time()
        subprocess.run(full, env=env, check=True, timeout=timeout + 30, capture_output=True)
        painted = json.loads(report.read_text()).get("first_frame_painted_unix")
        if painted is None:
            raise RuntimeError(f"{' '.join(full)}: no frame was painted before the window closed")
        return painted - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cmd", default=f"{sys.executable} -m app", help="command that runs the app CLI")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--out", help="write the figures as JSON")
    args = ap.parse_args()
    cmd = shlex.split(args.cmd)
    times = [time_to_first_overlay(cmd) for _ in range(args.runs)]
    result = {"cmd": args.cmd, "runs": args.runs, "seconds": times, "median_s": statistics.median(times),
              "max_s": max(times), "machine": f"{os.cpu_count()} logical CPUs, {sys.platform}"}
    print(json.dumps(result, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
