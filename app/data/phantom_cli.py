"""``python -m app phantom``: write a phantom dataset to disk in real formats.

Echo cases become DICOM US multi-frame files (``echo_0000.dcm`` + ``echo_0000_mask.npz``), cine
cases ACDC patient folders (``patient001/`` ...). A ``manifest.json`` lists every case with its
quality, ED/ES and frame rate (no patient identity anywhere).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--modality", choices=("echo", "cine"), required=True)
    parser.add_argument("--cases", type=int, required=True, help="number of patients")
    parser.add_argument("--out", type=Path, required=True, help="output folder (created)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--frames", type=int, default=None, help="frames per case (default: 30 echo, 20 cine)")
    parser.add_argument("--variant", choices=("contrast", "bmode"), default="contrast", help="echo only")
    parser.add_argument("--size", type=int, default=256, help="echo display size in pixels")
    parser.add_argument("--slices", type=int, default=8, help="cine slices")
    parser.add_argument("--quality", type=float, default=None, help="fix every case's quality in [0, 1]")


def run(args: argparse.Namespace) -> int:
    import json
    import logging
    import sys

    from app.data.case import DataError

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.cases < 1:
        print("phantom: --cases must be >= 1", file=sys.stderr)
        return 2
    if args.quality is not None and not 0.0 <= args.quality <= 1.0:
        print("phantom: --quality must lie in [0, 1]", file=sys.stderr)
        return 2
    try:
        manifest = write_phantom_dataset(args.modality, args.cases, args.out, seed=args.seed, n_frames=args.frames,
                                         variant=args.variant, size=args.size, n_slices=args.slices, quality=args.quality)
    except (DataError, OSError) as exc:
        print(f"phantom: {exc}", file=sys.stderr)
        return 1
    bins = {}
    for entry in manifest["cases"]:
        bins[entry["quality_bin"]] = bins.get(entry["quality_bin"], 0) + 1
    print(f"wrote {len(manifest['cases'])} {args.modality} cases to {args.out} (quality bins: {json.dumps(bins)})")
    return 0


def write_phantom_dataset(modality: str, n_cases: int, out: Path, *, seed: int = 0, n_frames: int | None = None,
                          variant: str = "contrast", size: int = 256, n_slices: int = 8,
                          quality: float | None = None) -> dict:
    """Render and write ``n_cases`` phantom cases under ``out``; returns the manifest written there."""
    import json

    from app.data.phantom import GENERATOR_VERSION
    from app.data.writers import write_acdc_patient, write_echo_dicom

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    entries = []
    for i in range(n_cases):
        if modality == "echo":
            from app.data.phantom.echo import render_echo_case

            case = render_echo_case(seed, i, n_frames=n_frames or 30, size=size, variant=variant, quality=quality)
            path = write_echo_dicom(case, out / f"echo_{i:04d}.dcm", i + 1)
        elif modality == "cine":
            from app.data.phantom.cine import render_cine_case

            case = render_cine_case(seed, i, n_frames=n_frames or 20, n_slices=n_slices, quality=quality)
            path = write_acdc_patient(case, out, i + 1)
        else:
            raise ValueError(f"unknown modality {modality!r}")
        entries.append({"path": path.name, "case_id": case.case_id, "quality": case.quality,
                        "quality_bin": case.quality_bin, "ed": case.ed, "es": case.es,
                        "frame_rate": case.frame_rate, "n_frames": case.n_frames})
    manifest = {"generator": f"cardiac-rt phantom v{GENERATOR_VERSION}", "modality": modality, "seed": seed,
                "variant": variant if modality == "echo" else None, "cases": entries}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest
