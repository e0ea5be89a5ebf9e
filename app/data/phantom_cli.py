"""``python -m app phantom``: write a phantom dataset to disk in real formats.

Echo cases become DICOM US multi-frame files (``echo_0000.dcm`` + ``echo_0000_mask.npz``), cine
cases ACDC patient folders in ``training/`` and ``testing/`` (``training/patient001/`` ...).
``--format`` picks another dataset's exact layout for echo: ``camus`` (CAMUS 2023 NIfTI patient
folders with ``database_split/subgroup_{training,validation,testing}.txt``), ``camus2019`` (its 2019
MetaImage release, ``training/`` + ``testing/``) or ``echonet`` (EchoNet-Dynamic AVIs + CSVs with the
``Split`` column), all B-mode with CAMUS labels. Like the real datasets, every format but ``dicom``
has an official split; ``camus`` and ``acdc`` hold out the last ~20% of the patients as the test set
(``app.data.writers.official_split``). A ``manifest.json`` lists every case with its quality, ED/ES,
frame rate and official part (no patient identity anywhere).
"""

from __future__ import annotations

import argparse
from pathlib import Path

FORMATS = {"echo": ("dicom", "camus", "camus2019", "echonet"), "cine": ("acdc",)}
BMODE_FORMATS = ("camus", "camus2019", "echonet")

def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--modality", choices=("echo", "cine"), required=True)
    parser.add_argument("--cases", type=int, required=True, help="number of patients")
    parser.add_argument("--out", type=Path, required=True, help="output folder (created)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--frames", type=int, default=None, help="frames per case (default: 30 echo, 20 cine)")
    parser.add_argument("--format", choices=("dicom", "acdc", "camus", "camus2019", "echonet"), default=None,
                        help="layout: echo dicom (default), camus (2023 NIfTI, database_split/), camus2019 "
                             "(MetaImage, training/ + testing/) or echonet; cine acdc (default: training/ + "
                             "testing/). camus and acdc hold out the last ~20%% of the patients as the official test set")
    parser.add_argument("--variant", choices=("contrast", "bmode"), default=None,
                        help="echo only (default: contrast for dicom; camus and echonet are always bmode)")
    parser.add_argument("--size", type=int, default=None, help="echo display size in pixels (default 256, echonet 112)")
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
    fmt = args.format or FORMATS[args.modality][0]
    if fmt not in FORMATS[args.modality]:
        print(f"phantom: --format {fmt} does not fit --modality {args.modality} (use {'/'.join(FORMATS[args.modality])})",
              file=sys.stderr)
        return 2
    if fmt in BMODE_FORMATS and args.variant == "contrast":
        print(f"phantom: --format {fmt} is B-mode only; drop --variant contrast", file=sys.stderr)
        return 2
    variant = "bmode" if fmt in BMODE_FORMATS else args.variant or "contrast"
    size = args.size or (112 if fmt == "echonet" else 256)
    try:
        manifest = write_phantom_dataset(args.modality, args.cases, args.out, seed=args.seed, n_frames=args.frames,
                                         variant=variant, size=size, n_slices=args.slices, quality=args.quality,
                                         fmt=fmt)
    except (DataError, OSError) as exc:
        print(f"phantom: {exc}", file=sys.stderr)
        return 1
    bins = {}
    for entry in manifest["cases"]:
        bins[entry["quality_bin"]] = bins.get(entry["quality_bin"], 0) + 1
    print(f"wrote {len(manifest['cases'])} {args.modality} cases ({fmt}) to {args.out} (quality bins: {json.dumps(bins)})")
    return 0


def write_phantom_dataset(modality: str, n_cases: int, out: Path, *, seed: int = 0, n_frames: int | None = None,
                          variant: str = "contrast", size: int = 256, n_slices: int = 8,
                          quality: float | None = None, fmt: str | None = None) -> dict:
    """Render and write ``n_cases`` phantom cases under ``out``; returns the manifest written there.

    ``fmt``: ``dicom`` (echo default), ``camus``, ``camus2019``, ``echonet`` (echo, B-mode) or ``acdc``
    (cine, in ``training/`` and ``testing/``); ``camus`` also writes ``database_split/``.
    """
    import json

    from app.data.phantom import GENERATOR_VERSION
    from app.data.writers import write_acdc_patient, write_echo_dicom
    from app.data.writers.acdc import acdc_folder
    from app.data.writers.official_split import official_part

    if modality not in FORMATS:
        raise ValueError(f"unknown modality {modality!r}")
    fmt = fmt or FORMATS[modality][0]
    if fmt not in FORMATS[modality]:
        raise ValueError(f"format {fmt!r} does not fit modality {modality!r}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    entries, echonet_cases = [], []
    for i in range(n_cases):
        part = None  # the case's official part, where the format has one
        if modality == "echo":
            from app.data.phantom.echo import render_echo_case

            if fmt in BMODE_FORMATS:
                variant = "bmode"
            case = render_echo_case(seed, i, n_frames=n_frames or 30, size=size, variant=variant, quality=quality)
            if fmt == "camus":
                from app.data.writers.camus import write_camus_patient

                path = write_camus_patient(case, out, i + 1)
                part = official_part(i + 1, n_cases, with_val=True)
            elif fmt == "camus2019":
                from app.data.writers.camus2019 import write_camus2019_patient

                from app.data.writers.camus2019 import camus2019_part

                path = write_camus2019_patient(case, out, i + 1)
                part = "test" if camus2019_part(i + 1) == "testing" else "train"
            elif fmt == "echonet":
                from app.data.writers.echonet import echonet_name, echonet_split

                echonet_cases.append(case)
                path = out / "Videos" / f"{echonet_name(case)}.avi"
                part = echonet_split(case).lower()
            else:
                path = write_echo_dicom(case, out / f"echo_{i:04d}.dcm", i + 1)
        elif modality == "cine":
            from app.data.phantom.cine import render_cine_case

            case = render_cine_case(seed, i, n_frames=n_frames or 20, n_slices=n_slices, quality=quality)
            path = write_acdc_patient(case, acdc_folder(out, i + 1, n_cases), i + 1)
            part = official_part(i + 1, n_cases)
        else:
            raise ValueError(f"unknown modality {modality!r}")
        entries.append({"path": path.name, "case_id": case.case_id, "quality": case.quality,
                        "quality_bin": case.quality_bin, "ed": case.ed, "es": case.es,
                        "frame_rate": case.frame_rate, "n_frames": case.n_frames})
        if part is not None:
            entries[-1]["official_split"] = part
    if echonet_cases:
        from app.data.writers.echonet import write_echonet_dataset

        write_echonet_dataset(echonet_cases, out)
    if fmt == "camus":
        from app.data.writers.camus import write_camus_split

        write_camus_split(out, n_cases)
    manifest = {"generator": f"cardiac-rt phantom v{GENERATOR_VERSION}", "modality": modality, "seed": seed,
                "format": fmt, "variant": variant if modality == "echo" else None, "cases": entries}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest
