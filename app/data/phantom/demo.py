"""The shipped demo recording (``app/assets/demo/``): one phantom contrast echo, one phantom cine.

Regenerate with ``python -m app.data.phantom.demo`` (deterministic: same bytes of pixel data every
time for the same generator version).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

DEMO_DIR = Path(__file__).resolve().parents[2] / "assets" / "demo"
ECHO_FILE = "echo_contrast_a4c.dcm"          # + echo_contrast_a4c_mask.npz beside it
CINE_FOLDER = "cine_sax"                    # ACDC layout: cine_sax/patient001/...
DEMO_SEED, ECHO_CASE, CINE_CASE = 2026, 0, 0
ECHO_QUALITY, CINE_QUALITY = 0.8, 0.8


def echo_demo_path(root: Path = DEMO_DIR) -> Path:
    """Path of the shipped demo echo DICOM."""
    return Path(root) / ECHO_FILE


def cine_demo_path(root: Path = DEMO_DIR) -> Path:
    """Path of the shipped demo cine patient folder (ACDC layout)."""
    return Path(root) / CINE_FOLDER / "patient001"


def write_demo(root: Path = DEMO_DIR, echo_frames: int = 60, cine_frames: int = 20, cine_slices: int = 6) -> dict:
    """Render and write both demo recordings under ``root``; returns what was written."""
    from app.data.phantom.cine import render_cine_case
    from app.data.phantom.echo import render_echo_case
    from app.data.writers import write_acdc_patient, write_echo_dicom

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    echo = render_echo_case(DEMO_SEED, ECHO_CASE, n_frames=echo_frames, quality=ECHO_QUALITY)
    write_echo_dicom(echo, root / ECHO_FILE, 1)
    cine_root = root / CINE_FOLDER
    if cine_root.exists():
        shutil.rmtree(cine_root)
    cine = render_cine_case(DEMO_SEED, CINE_CASE, n_frames=cine_frames, n_slices=cine_slices, quality=CINE_QUALITY)
    write_acdc_patient(cine, cine_root, 1)
    info = {
        "echo": {"file": ECHO_FILE, "frames": echo.n_frames, "frame_rate": echo.frame_rate, "ed": echo.ed,
                 "es": echo.es, "quality": echo.quality, "spacing_mm": echo.spacing_mm},
        "cine": {"folder": f"{CINE_FOLDER}/patient001", "frames": cine.n_frames, "slices": cine.n_slices,
                 "frame_rate": cine.frame_rate, "ed": cine.ed, "es": cine.es, "quality": cine.quality},
    }
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the shipped demo recordings.")
    parser.add_argument("--out", type=Path, default=DEMO_DIR)
    args = parser.parse_args(argv)
    print(json.dumps(write_demo(args.out), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
