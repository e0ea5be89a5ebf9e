"""Deterministic bad inputs for the replay fuzz suite (issue 19, item 5).

Case *specs* are plain data drawn from a seeded ``random.Random`` at collection time, so every run
with the same seed tests the same cases; ``build`` turns a spec into files in a temporary folder,
starting from a few good bases: a generated echo DICOM and ACDC cine (``python -m app phantom``),
pydicom's public test files (CT_small, MR_small, the 120-frame color3d JPEG), a small AVI written
with OpenCV and a NIfTI 4D cine. Each kind has its own allowed exit codes (0 ok, 1 partial or
failed part-way, 2 bad input).
"""

from __future__ import annotations

import gzip
import json
import random
import shutil
import struct
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ANY = frozenset({0, 1, 2})
BAD_INPUT = frozenset({2})
PIXEL_TAG = b"\xe0\x7f\x10\x00"  # (7FE0,0010) little endian


@dataclass(frozen=True)
class Case:
    """One fuzz case: which base to damage, how, the extra replay arguments and the exit codes allowed."""

    kind: str
    base: str
    op: str
    params: tuple = ()
    args: tuple = ()
    allowed: frozenset = ANY
    models: str = "tiny"  # "tiny" or a card mutation name

    @property
    def id(self) -> str:
        shown = "-".join(str(p)[:12] for p in self.params)
        force = "force" if "--force" in self.args else ""
        return "-".join(x for x in (self.kind, self.base, self.op, shown, force) if x)


# -- case specs --------------------------------------------------------------------------------------
DICOM_BASES = ("echo", "color3d", "ct", "mr")
TAG_EDITS = {
    "NumberOfFrames": ("0", "1", "5", "1000000", "-3"),
    "Rows": (0, 1, 65535),
    "Columns": (0, 1, 65535),
    "FrameTime": ("0", "-5", "1000000", "0.000001", "nan"),
    "Modality": ("CT", "", "XX", "MR"),
    "BitsAllocated": (1, 12, 32),
    "PhotometricInterpretation": ("RGB", "PALETTE COLOR", "XYZ", "MONOCHROME1"),
    "TransferSyntaxUID": ("1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.2", "1.2.3", "1.2.840.10008.1.2.5"),
}
NIFTI_OPS = ("dim0", "dim_time0", "dim_negative", "truncated_gz", "nan_data", "inf_data", "no_time_unit",
             "pixdim_time0", "three_d_volume", "garbage_gz", "acdc_no_info", "acdc_bad_info")
VIDEO_OPS = ("truncate", "flip", "zero_header", "empty", "text")
CARD_OPS = ("invalid_json", "wrong_hash", "missing_onnx", "wrong_role", "corrupt_onnx", "truncated_json",
            "no_cards", "qc_as_seg", "broken_qc_card")
ARG_CASES = (
    ("--max-frames", "0"), ("--max-frames", "-5"), ("--max-frames", "abc"),
    ("--report", "{dir}"), ("--report", "{dir}/r.txt"), ("--report", "{dir}/missing/r.json"),
    ("--masks", "{dir}/x.txt"), ("--csv", "{dir}"), ("--plot", "{dir}/p.jpg"),
    ("--deadline-ms", "-1"), ("--deadline-ms", "nan"), ("--model", "no-such-model"),
    ("--models-dir", "{dir}/missing"), ("--slice", "99"), ("--slice", "-1"),
    ("SOURCE", ""), ("SOURCE", "{dir}/missing.dcm"), ("SOURCE", "phantom:bogus"),
    ("SOURCE", "igtl://127.0.0.1:1"), ("SOURCE", "{dir}/junk_folder"),
)
DEFAULT_PER_KIND = {"truncate": 14, "flip_pixels": 8, "flip_header": 8, "tag": 24, "video": 8, "nifti": 12,
                    "card": 9, "args": 20}


def specs(seed: int, per_kind: int | None = None) -> list[Case]:
    """All cases for ``seed``: ``per_kind`` cases of each kind (default: ``DEFAULT_PER_KIND``)."""
    rng = random.Random(seed)
    cases: list[Case] = []
    for kind, default in DEFAULT_PER_KIND.items():
        n = per_kind or default
        make = globals()[f"_spec_{kind}"]
        cases += [make(rng, i) for i in range(n)]
    return cases


def _spec_truncate(rng: random.Random, i: int) -> Case:
    base = (DICOM_BASES + ("nii4d",))[i % 5]
    fraction = round(rng.choice((0.05, 0.3, 0.5, 0.9, 0.99)) if i < 5 else rng.uniform(0.01, 0.999), 3)
    return Case("truncate", base, "cut", (fraction,))


def _force(base: str) -> tuple:
    """CT and MR test files pass the modality check only with --force; forced, their pixels get read."""
    return ("--force",) if base in ("ct", "mr") else ()


def _spec_flip_pixels(rng: random.Random, i: int) -> Case:
    base = DICOM_BASES[i % 4]
    return Case("flip_pixels", base, "flip", (rng.randint(1, 64), rng.getrandbits(32)), args=_force(base))


def _spec_flip_header(rng: random.Random, i: int) -> Case:
    base = DICOM_BASES[i % 4]
    return Case("flip_header", base, "flip", (rng.randint(1, 8), rng.getrandbits(32)), args=_force(base))


def _spec_tag(rng: random.Random, i: int) -> Case:
    tags = list(TAG_EDITS)
    tag = tags[i % len(tags)] if i < 2 * len(tags) else rng.choice(tags)
    value = rng.choice(TAG_EDITS[tag])
    base = ("echo", "color3d")[(i // len(tags)) % 2] if i < 2 * len(tags) else rng.choice(DICOM_BASES)
    return Case("tag", base, "set", (tag, value), args=_force(base) if rng.random() < 0.5 else ())


def _spec_video(rng: random.Random, i: int) -> Case:
    op = VIDEO_OPS[i % len(VIDEO_OPS)] if i < len(VIDEO_OPS) else rng.choice(VIDEO_OPS)
    return Case("video", "avi", op, (round(rng.uniform(0.05, 0.95), 3), rng.getrandbits(32)))


def _spec_nifti(rng: random.Random, i: int) -> Case:
    op = NIFTI_OPS[i % len(NIFTI_OPS)] if i < len(NIFTI_OPS) else rng.choice(NIFTI_OPS)
    return Case("nifti", "nii4d", op, (round(rng.uniform(0.1, 0.9), 3),))


def _spec_card(rng: random.Random, i: int) -> Case:
    op = CARD_OPS[i % len(CARD_OPS)] if i < len(CARD_OPS) else rng.choice(CARD_OPS)
    allowed = ANY if op == "broken_qc_card" else BAD_INPUT
    args = ("--model", "tiny-echo-qc") if op == "qc_as_seg" else ()
    return Case("card", "echo", op, (rng.getrandbits(32),), args=args, allowed=allowed, models=op)


def _spec_args(rng: random.Random, i: int) -> Case:
    option, value = ARG_CASES[i % len(ARG_CASES)] if i < len(ARG_CASES) else rng.choice(ARG_CASES)
    base = "cine" if option == "--slice" else "echo"
    return Case("args", base, option.lstrip("-"), (value,), args=(option, value), allowed=BAD_INPUT)


# -- bases -------------------------------------------------------------------------------------------
def build_bases(folder: Path, root: Path) -> dict[str, Path]:
    """The good inputs every case starts from, written once into ``folder``."""
    from pydicom.data import get_testdata_file

    def phantom(modality: str, *extra: str) -> None:
        subprocess.run([sys.executable, "-m", "app", "phantom", "--modality", modality, "--cases", "1",
                        "--out", str(folder / modality), "--seed", "3", *extra],
                       cwd=root, check=True, capture_output=True, timeout=120)

    phantom("echo", "--frames", "24", "--size", "64")
    phantom("cine", "--frames", "8", "--slices", "2")
    cine = next((folder / "cine").rglob("Info.cfg")).parent  # a patient folder (under ACDC's training/)
    bases = {
        "echo": next((folder / "echo").glob("*.dcm")),
        "cine": cine,
        "nii4d": next(cine.glob("*_4d.nii.gz")),
        "ct": Path(get_testdata_file("CT_small.dcm")),
        "mr": Path(get_testdata_file("MR_small.dcm")),
        "color3d": Path(get_testdata_file("color3d_jpeg_baseline.dcm")),
        "avi": _write_avi(folder / "clip.avi"),
    }
    return bases


def _write_avi(path: Path, frames: int = 30, size: int = 64) -> Path:
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (size, size))
    yy, xx = np.mgrid[:size, :size]
    for t in range(frames):
        disc = ((yy - size / 2) ** 2 + (xx - size / 2) ** 2) < (10 + 6 * np.sin(t / 4)) ** 2
        frame = np.where(disc, 200, 30).astype(np.uint8)
        writer.write(np.dstack([frame] * 3))
    writer.release()
    return path


# -- building a case ---------------------------------------------------------------------------------
def build(case: Case, bases: dict[str, Path], work: Path, tiny_models: Path) -> tuple[list[str], Path]:
    """Writes the case's files under ``work``; returns (replay argv after ``replay``, report path)."""
    report = work / "r.json"
    source = str(bases[case.base])
    args = list(case.args)
    if case.kind in ("truncate", "flip_pixels", "flip_header"):
        data = bases[case.base].read_bytes()
        out = work / bases[case.base].name
        out.write_bytes(_truncate(data, case.params[0]) if case.kind == "truncate"
                        else _flip(data, case.kind == "flip_header", *case.params))
        source = str(out)
    elif case.kind == "tag":
        source = str(_edit_tag(bases[case.base], work, *case.params))
    elif case.kind == "video":
        source = str(_video(bases["avi"], work, case.op, *case.params))
    elif case.kind == "nifti":
        source = str(_nifti(bases, work, case.op, case.params[0]))
    elif case.kind == "args":
        source, args = _args(case, source, work)
    models = tiny_models if case.models == "tiny" else _cards(tiny_models, work / "models", case.op)
    if "--models-dir" not in args:
        args += ["--models-dir", str(models)]
    if "--report" not in args:
        args += ["--report", str(report)]
    else:
        report = Path(args[args.index("--report") + 1])
    return [source, *args], report


def _truncate(data: bytes, fraction: float) -> bytes:
    return data[: max(1, int(len(data) * fraction))]


def _pixel_offset(data: bytes) -> int:
    at = data.rfind(PIXEL_TAG)
    return at if at > 0 else len(data) // 2


def _flip(data: bytes, header: bool, count: int, seed: int) -> bytes:
    """Flips ``count`` random bits in the header (after the preamble) or in the pixel data."""
    rng = random.Random(seed)
    buf = bytearray(data)
    start, end = (132, _pixel_offset(data)) if header else (_pixel_offset(data) + 12, len(data))
    for _ in range(count):
        at = rng.randrange(start, max(start + 1, end))
        buf[at] ^= 1 << rng.randrange(8)
    return bytes(buf)


def _edit_tag(path: Path, work: Path, tag: str, value) -> Path:
    import pydicom
    from pydicom import config

    out = work / f"tag_{path.name}"
    if tag == "TransferSyntaxUID":
        return _replace_uid(path, out, value)
    saved = config.settings.reading_validation_mode, config.settings.writing_validation_mode
    config.settings.reading_validation_mode = config.settings.writing_validation_mode = config.IGNORE
    try:  # write values pydicom would refuse ("nan" FrameTime, negative NumberOfFrames)
        ds = pydicom.dcmread(path)
        setattr(ds, tag, value)
        ds.save_as(out)
    finally:
        config.settings.reading_validation_mode, config.settings.writing_validation_mode = saved
    return out


def _replace_uid(path: Path, out: Path, uid: str) -> Path:
    """Swaps the file meta's transfer syntax UID in place, keeping the element's length."""
    import pydicom

    data = path.read_bytes()
    old = str(pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID).encode()
    length = len(old) + len(old) % 2
    new = uid.encode()[:length].ljust(length, b"\0")
    at = data.find(old, 128)
    out.write_bytes(data[:at] + new + data[at + length:])
    return out


def _video(avi: Path, work: Path, op: str, fraction: float, seed: int) -> Path:
    data = avi.read_bytes()
    out = work / "clip.avi"
    if op == "truncate":
        data = _truncate(data, fraction)
    elif op == "flip":
        rng = random.Random(seed)
        buf = bytearray(data)
        for _ in range(32):
            buf[rng.randrange(256, len(buf))] ^= 0xFF
        data = bytes(buf)
    elif op == "zero_header":
        data = b"\0" * 64 + data[64:]
    elif op == "empty":
        data = b""
    elif op == "text":
        data = b"this is not a video\n"
    out.write_bytes(data)
    return out


# NIfTI-1 header offsets: dim (int16 x8) at 40, pixdim (float32 x8) at 76, xyzt_units (uint8) at 123.
def _nifti(bases: dict[str, Path], work: Path, op: str, fraction: float) -> Path:
    if op.startswith("acdc_"):
        folder = work / "patient"
        shutil.copytree(bases["cine"], folder)
        info = folder / "Info.cfg"
        if op == "acdc_no_info":
            info.unlink()
        else:
            info.write_text("ED: banana\nES\n\0\0garbage")
        return folder
    raw = bytearray(gzip.decompress(bases["nii4d"].read_bytes()))
    if op == "dim0":
        raw[40:42] = struct.pack("<h", 7)
    elif op == "dim_time0":
        raw[48:50] = struct.pack("<h", 0)
    elif op == "dim_negative":
        raw[42:44] = struct.pack("<h", -4)
    elif op == "no_time_unit":
        raw[123] &= 0x07
    elif op == "pixdim_time0":
        raw[92:96] = struct.pack("<f", 0.0)
    elif op in ("nan_data", "inf_data", "three_d_volume"):
        return _nifti_data(bases["nii4d"], work, op)
    out = work / "cine_4d.nii.gz"
    packed = gzip.compress(bytes(raw), mtime=0)
    if op == "truncated_gz":
        packed = _truncate(packed, fraction)
    elif op == "garbage_gz":
        packed = packed[:10] + bytes(len(packed) - 10)
    out.write_bytes(packed)
    return out


def _nifti_data(path: Path, work: Path, op: str) -> Path:
    import nibabel as nib

    image = nib.load(str(path))
    data = np.asarray(image.dataobj).astype(np.float32)
    if op == "nan_data":
        data[..., : max(1, data.shape[-1] // 2)] = np.nan
    elif op == "inf_data":
        data[data.shape[0] // 2] = np.inf
    else:
        data = data[..., 0, 0]
    out = work / "cine_4d.nii.gz"
    nib.save(nib.Nifti1Image(data, image.affine), str(out))
    return out


def _args(case: Case, source: str, work: Path) -> tuple[str, list[str]]:
    (work / "junk_folder").mkdir()
    (work / "junk_folder" / "notes.txt").write_text("nothing to replay here")
    option, value = case.args
    value = value.format(dir=work)
    if option == "SOURCE":
        return value, []
    return source, [option, value]


def _cards(tiny: Path, folder: Path, op: str) -> Path:
    """A copy of the tiny models folder with the echo seg card (or the QC card) broken by ``op``."""
    shutil.copytree(tiny, folder)
    card = folder / "tiny-echo-seg.json"
    onnx = folder / "tiny-echo-seg.onnx"
    if op == "invalid_json":
        card.write_text("{ this is not json")
    elif op == "truncated_json":
        card.write_text(card.read_text()[: len(card.read_text()) // 2])
    elif op == "wrong_hash":
        _edit_card(card, onnx_sha256="0" * 64)
    elif op == "missing_onnx":
        onnx.unlink()
    elif op == "wrong_role":
        _edit_card(card, role="qc")
    elif op == "corrupt_onnx":
        onnx.write_bytes(onnx.read_bytes()[:40])
    elif op == "no_cards":
        for path in folder.iterdir():
            path.unlink()
    elif op == "broken_qc_card":
        (folder / "tiny-echo-qc.json").write_text("[1, 2")
    return folder


def _edit_card(card: Path, **changes) -> None:
    data = json.loads(card.read_text())
    data.update(changes)
    card.write_text(json.dumps(data))
