"""Reading DICOM pixel data defensively: quiet decoders, salvage of truncated files, sane headers.

Shared by the data loader (``load_dicom``) and the replay source (``DicomSource``):

- ``quiet_pydicom()``: pydicom's log records and warnings inside it are collected, not printed
  (its decoders log a full traceback for every corrupt frame before raising);
- ``read_dicom(path)``: the dataset, with the pixel data cut to the frames that are complete when
  the file is truncated (``note`` then says ``truncated: N of M frames readable``), and a warning
  when ``NumberOfFrames`` is smaller than what the pixel data holds;
- ``decode_frame``: one frame, or ``DataError("<file>: frame N: could not be decoded (<reason>)")``;
- ``check_modality``: US is echo, a multi-frame MR is cine, anything else is refused unless forced,
  and so is a file whose content contradicts its Modality tag (``modality_contradiction``);
- ``dicom_frame_rate``: FrameTime / FrameTimeVector / CineRate / RecommendedDisplayFrameRate,
  implausible values replaced (one warning naming the file, the value found and the one used).
"""

from __future__ import annotations

import logging
import re
import struct
import threading
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from app.data.case import DataError
from app.data.frame_rate import ECHO_DEFAULT_FPS, MAX_FPS, MIN_FPS, describe, is_plausible

log = logging.getLogger(__name__)

_PIXEL_DATA_TAG_LE = b"\xe0\x7f\x10\x00"
_ITEM_LE = b"\xfe\xff\x00\xe0"
_SEQ_DELIMITER_LE = b"\xfe\xff\xdd\xe0"
_LONG_VRS = (b"OB", b"OW", b"OF", b"OD", b"OL", b"OV", b"UN", b"UT", b"UC", b"UR", b"SQ")
_MODALITY_NAMES = {"CT": "computed tomography", "MR": "magnetic resonance", "US": "ultrasound", "OT": "other", "CR": "radiograph",
                   "DX": "radiograph", "NM": "nuclear medicine", "PT": "PET", "XA": "angiography",
                   "MG": "mammography", "SC": "secondary capture", "SEG": "segmentation", "SR": "report"}

# -- pydicom's own chatter -------------------------------------------------------------------------
_QUIET = threading.local()
_QUIET_LOCK = threading.RLock()


class _QuietFilter(logging.Filter):
    """Drops pydicom log records on threads inside ``quiet_pydicom`` (keeping their first line)."""

    def filter(self, record: logging.LogRecord) -> bool:
        sink = getattr(_QUIET, "messages", None)
        if sink is None:
            return True
        text = record.getMessage().strip()
        sink.append(text.splitlines()[0] if text else "")
        return False


_FILTER = _QuietFilter()
for _name in ("pydicom", "pydicom.pixels.decoders.base", "pydicom.pixels.utils"):
    logging.getLogger(_name).addFilter(_FILTER)


@contextmanager
def quiet_pydicom() -> Iterator[list[str]]:
    """Inside: pydicom's log records and Python warnings are collected (first lines) instead of shown."""
    outer = getattr(_QUIET, "messages", None)
    messages: list[str] = outer if outer is not None else []
    _QUIET.messages = messages
    try:
        with _QUIET_LOCK, warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield messages
        messages.extend(str(w.message).strip().splitlines()[0] for w in caught if str(w.message).strip())
    finally:
        _QUIET.messages = outer


@contextmanager
def header_errors(path: Path | str) -> Iterator[None]:
    """Quiet pydicom, and turn any error reading header values into one ``DataError`` naming ``path``.

    pydicom converts element values when they are first used, so a corrupt header can raise
    anything (ValueError, NotImplementedError for an unknown VR, ...) long after ``dcmread``.
    """
    try:
        with quiet_pydicom():
            yield
    except DataError:
        raise
    except Exception as exc:
        raise DataError(path, f"broken DICOM header ({type(exc).__name__}: {short_reason(exc)})") from None


def short_reason(exc: BaseException) -> str:
    """One short line from a decoder exception (pydicom's multi-plugin text, no object addresses)."""
    text = str(exc)
    if "raised by all available plugins" in text:
        text = "; ".join(line.strip() for line in text.splitlines()[1:] if line.strip()) or text
    text = re.sub(r"\s*<[^<>]* at 0x[0-9a-fA-F]+>", "", text)
    text = " ".join(text.split())
    if len(text) > 160:
        text = text[:157] + "..."
    return text or type(exc).__name__


# -- reading and salvaging ---------------------------------------------------------------------------
@dataclass
class DicomData:
    """A dataset whose pixel data holds ``n_frames`` complete frames.

    Attributes:
        ds: The dataset (pixel data cut to the complete frames when the file is truncated).
        n_frames: Frames that can be decoded (at most the declared ``NumberOfFrames``).
        n_declared: ``NumberOfFrames`` as the header says (1 when absent).
        note: ``"truncated: N of M frames readable"`` when frames are missing, else None.
    """

    ds: object
    n_frames: int
    n_declared: int
    note: str | None = None


def read_dicom(path: Path | str) -> DicomData:
    """Read ``path``; salvage the complete frames of a truncated file.

    Raises:
        DataError: Missing, not DICOM, no pixel data, or not even one complete frame.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    path = Path(path)
    if not path.is_file():
        raise DataError(path, "missing file")
    try:
        with quiet_pydicom():
            ds = pydicom.dcmread(str(path))
    except InvalidDicomError as exc:
        raise DataError(path, f"not a DICOM file ({short_reason(exc)})") from None
    except Exception as exc:  # truncated or corrupt: EOFError, zlib.error, struct.error, ValueError...
        ds = None
        reason = f"{type(exc).__name__}: {short_reason(exc)}"
    else:
        reason = ""
    with header_errors(path):
        if ds is not None and ("PixelData" in ds or "FloatPixelData" in ds or "DoubleFloatPixelData" in ds):
            if "PixelData" not in ds:
                _check_geometry(path, ds)
                n = _declared_frames(ds)
                return DicomData(ds, n, n)
            return _count_frames(path, ds, bytes(ds.PixelData), complete=True)
        header, raw = _header_and_raw_pixels(path)
        if header is None:
            raise DataError(path, f"unreadable or truncated DICOM ({reason or 'no dataset'})")
        if raw is None:
            sop = getattr(header.get("SOPClassUID"), "name", None) or str(header.get("SOPClassUID", "unknown"))
            if reason:  # the header reads, the rest does not: damage, not a document without pixels
                raise DataError(path, f"damaged DICOM ({sop}): the header reads but the rest does not ({reason}); "
                                      "no frames could be salvaged")
            raise DataError(path, f"is a non-image DICOM ({sop}): it has no pixel data")
        return _count_frames(path, header, raw, complete=False)


def _check_geometry(path: Path, ds) -> None:
    """Rows, Columns and SamplesPerPixel must be there, and be positive numbers, to make frames."""
    for key in ("Rows", "Columns"):
        try:
            value = int(ds.get(key))
        except (TypeError, ValueError):
            value = 0
        if value <= 0:
            raise DataError(path, f"has pixel data but no usable {key} ({ds.get(key)!r}): cannot make frames of it")


def _declared_frames(ds) -> int:
    try:
        return max(1, int(ds.get("NumberOfFrames", 1) or 1))
    except (TypeError, ValueError):
        return 1


def _header_and_raw_pixels(path: Path):
    """``(dataset up to the pixel data, raw pixel data value as far as the file goes)``.

    ``(None, None)`` when even the header is unreadable; ``(header, None)`` when the file has no
    pixel data element (or one this reader cannot salvage: big endian, deflated).
    """
    import pydicom

    try:
        with open(path, "rb") as fh, quiet_pydicom():
            header = pydicom.dcmread(fh, stop_before_pixels=True)
            tag = fh.read(4)
            if tag != _PIXEL_DATA_TAG_LE or not _little_endian(header):
                return header, None
            ts = header.file_meta.get("TransferSyntaxUID")
            if ts is not None and ts.is_deflated:
                return header, None
            if ts is not None and ts.is_implicit_VR:
                head = fh.read(4)
            else:
                vr = fh.read(2)
                head = fh.read(6)[2:] if vr in _LONG_VRS else fh.read(2)
            if len(head) < 2:
                return header, b""
            raw = fh.read()
    except Exception:  # any failure here means there is nothing to salvage
        return None, None
    return header, raw


def _little_endian(ds) -> bool:
    ts = getattr(ds, "file_meta", {}).get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    return ts is None or bool(ts.is_little_endian)


def _transfer_syntax(ds):
    return ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None


def _count_frames(path: Path, ds, raw: bytes, *, complete: bool) -> DicomData:
    """Check the frames in ``raw`` against ``NumberOfFrames``; cut ``ds`` to the complete ones."""
    _check_geometry(path, ds)
    declared = _declared_frames(ds)
    ts = _transfer_syntax(ds)
    if ts is not None and ts.is_encapsulated:
        frames, stream_complete, n_fragments = _encapsulated_frames(raw, ts, declared)
        found = len(frames)
        complete = complete or stream_complete
        if complete and found < declared <= n_fragments:
            return DicomData(ds, declared, declared)  # intact, but grouped in a way this reader cannot see
    else:
        frame_bytes = _native_frame_bytes(ds, declared)
        if frame_bytes is None:
            return DicomData(ds, declared, declared)
        found = len(raw) // frame_bytes
        frames = None
        if found == 0:
            raise DataError(path, f"truncated: the pixel data holds {len(raw)} bytes, less than one "
                                  f"{frame_bytes}-byte frame (no frame readable)")
    if found == 0:
        raise DataError(path, f"truncated: no complete frame in the pixel data (0 of {declared} frames readable)")
    if found > declared:
        if complete:
            log.warning("%s: NumberOfFrames is %d but the pixel data holds %d frames; playing the %d declared",
                        path, declared, found, declared)
        return DicomData(ds, declared, declared)
    if found == declared:
        return DicomData(ds, declared, declared)
    note = f"truncated: {found} of {declared} frames readable"
    _cut_pixel_data(ds, raw, frames, found)
    return DicomData(ds, found, declared, note)


def _native_frame_bytes(ds, declared: int) -> int | None:
    try:
        from pydicom.pixels.utils import get_expected_length

        if int(ds.get("BitsAllocated", 8)) < 8:
            return None  # bit-packed frames do not end on byte boundaries
        total = int(get_expected_length(ds, "bytes"))
    except Exception:  # the header is too broken to tell; the decoder will say
        return None
    return total // declared if total > 0 and total % declared == 0 else None


def _cut_pixel_data(ds, raw: bytes, frames: list[list[tuple[int, int]]] | None, found: int) -> None:
    if frames is not None:
        from pydicom.encaps import encapsulate

        joined = [b"".join(raw[pos + 8:pos + 8 + n] for pos, n in fragments) for fragments in frames[:found]]
        ds.add_new(0x7FE00010, "OB", encapsulate(joined))
        ds["PixelData"].is_undefined_length = True
    else:
        frame_bytes = len(raw) // found if found else 0
        frame_bytes = _native_frame_bytes(ds, _declared_frames(ds)) or frame_bytes
        ds.PixelData = raw[: found * frame_bytes]
    ds.NumberOfFrames = found


def _items(raw: bytes) -> tuple[list[tuple[int, int]], bool]:
    """``[(offset of the item tag, value length)]`` of the complete items, and whether the sequence ended."""
    items: list[tuple[int, int]] = []
    pos = 0
    while pos + 8 <= len(raw):
        tag = raw[pos:pos + 4]
        (length,) = struct.unpack_from("<I", raw, pos + 4)
        if tag == _SEQ_DELIMITER_LE:
            return items, True
        if tag != _ITEM_LE or length == 0xFFFFFFFF or pos + 8 + length > len(raw):
            break
        items.append((pos, length))
        pos += 8 + length
    return items, False


def _frame_starts(raw: bytes, fragments: list[tuple[int, int]], ts) -> list[int] | None:
    """Indices (into ``fragments``) where frames start, from the codestream markers; None: unknown."""
    if ts.is_deflated:
        return None
    if _is_jpeg_family(ts):  # SOI, or a JPEG 2000 codestream / box
        markers = (b"\xff\xd8", b"\xff\x4f\xff\x51", b"\x00\x00\x00\x0cjP")
        starts = [k for k, (pos, _) in enumerate(fragments) if raw[pos + 8:pos + 12].startswith(markers)]
        if starts:
            return starts
    return list(range(len(fragments)))  # RLE and the rest: one fragment per frame


def _is_jpeg_family(ts) -> bool:
    return str(ts).startswith("1.2.840.10008.1.2.4.")


def _encapsulated_frames(raw: bytes, ts, declared: int) -> tuple[list[list[tuple[int, int]]], bool, int]:
    """The complete frames of encapsulated pixel data (each its fragments' ``(item offset, length)``),
    whether the item sequence ended, and the number of complete fragments."""
    items, ended = _items(raw)
    if not items:
        return [], ended, 0
    bot_pos, bot_len = items[0]
    fragments = items[1:]
    if not fragments:
        return [], ended, 0
    if bot_len >= 4 and bot_len % 4 == 0:
        first = fragments[0][0]
        offsets = set(struct.unpack_from(f"<{bot_len // 4}I", raw, bot_pos + 8))
        starts = [k for k, (pos, _) in enumerate(fragments) if pos - first in offsets]
    else:
        starts = _frame_starts(raw, fragments, ts) if declared > 1 else [0]
    if not starts or starts[0] != 0:
        starts = [0] + list(starts or [])
    bounds = starts + [len(fragments)]
    frames = [fragments[a:b] for a, b in zip(bounds, bounds[1:])]
    if not ended and _is_jpeg_family(ts):
        pos, n = frames[-1][-1]
        if not raw[pos + 8:pos + 8 + n][-4:].rstrip(b"\x00").endswith(b"\xff\xd9"):
            frames = frames[:-1]  # cut inside the last frame: no end-of-image marker
    return frames, ended, len(fragments)


# -- frames, modality and timing -----------------------------------------------------------------------
def decode_frame(data: DicomData, index: int, path: Path | str) -> np.ndarray:
    """Frame ``index`` as pydicom decodes it (YBR converted to RGB), or a one-line ``DataError``."""
    from pydicom.pixels import pixel_array

    try:
        with quiet_pydicom():
            return pixel_array(data.ds, index=index)
    except DataError:
        raise
    except Exception as exc:  # decoders raise many types (RuntimeError, ValueError, OSError, struct.error)
        raise DataError(path, f"frame {index}: could not be decoded ({short_reason(exc)})") from None


# SOP classes (the kind of image object, fixed when the scanner wrote it) that contradict the Modality tag.
_US_SOP_CLASSES = {"1.2.840.10008.5.1.4.1.1.3.1": "Ultrasound Multi-frame Image Storage",
                   "1.2.840.10008.5.1.4.1.1.6.1": "Ultrasound Image Storage",
                   "1.2.840.10008.5.1.4.1.1.6.2": "Enhanced US Volume Storage",
                   "1.2.840.10008.5.1.4.1.1.3": "Ultrasound Multi-frame Image Storage (retired)",
                   "1.2.840.10008.5.1.4.1.1.6": "Ultrasound Image Storage (retired)"}
_MR_SOP_CLASSES = {"1.2.840.10008.5.1.4.1.1.4": "MR Image Storage",
                   "1.2.840.10008.5.1.4.1.1.4.1": "Enhanced MR Image Storage",
                   "1.2.840.10008.5.1.4.1.1.4.3": "Enhanced MR Color Image Storage",
                   "1.2.840.10008.5.1.4.1.1.4.4": "Legacy Converted Enhanced MR Image Storage"}
_MR_COLOUR_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.4.3"
_COLOUR_PHOTOMETRIC = ("RGB", "YBR", "PALETTE COLOR")
# Attributes only an MR acquisition has (MR Image module): an ultrasound file carries none of them.
_MR_ATTRIBUTES = ("MagneticFieldStrength", "RepetitionTime", "EchoTime", "ScanningSequence")


def _sop_class(ds) -> str:
    """The SOP class UID from the dataset, else from the file meta (never raises)."""
    for source in (ds, getattr(ds, "file_meta", None)):
        try:
            value = source.get("SOPClassUID" if source is ds else "MediaStorageSOPClassUID") if source else None
        except Exception:  # a broken element: no evidence
            value = None
        if value:
            return str(value).strip()
    return ""


def modality_contradiction(ds, code: str) -> str | None:
    """What in the file contradicts its Modality tag ``code`` (``"MR"`` or ``"US"``), or None.

    An ultrasound recording whose Modality was rewritten to MR still has an ultrasound SOP class, an
    ultrasound region sequence and colour pixels (MR images are greyscale); an MR image labelled US
    still has an MR SOP class and MR acquisition attributes (field strength, TR, TE).
    """
    try:
        sop = _sop_class(ds)
        found = []
        if code == "MR":
            if sop in _US_SOP_CLASSES:
                found.append(f"SOP class {_US_SOP_CLASSES[sop]}")
            if ds.get("SequenceOfUltrasoundRegions"):
                found.append("an ultrasound region sequence")
            photometric = str(ds.get("PhotometricInterpretation", "") or "").strip().upper()
            if photometric.startswith(_COLOUR_PHOTOMETRIC) and sop != _MR_COLOUR_SOP_CLASS:
                found.append(f"colour pixels ({photometric}; MR images are greyscale)")
        elif code == "US":
            if sop in _MR_SOP_CLASSES:
                found.append(f"SOP class {_MR_SOP_CLASSES[sop]}")
            present = [name for name in _MR_ATTRIBUTES if str(ds.get(name, "") or "").strip()]
            if present:
                found.append(f"MR acquisition attributes ({', '.join(present)})")
    except Exception:  # a corrupt header: the other checks report it; no evidence here
        return None
    return ", ".join(found) or None


def check_modality(path: Path | str, ds, n_frames: int, *, force: bool = False) -> str | None:
    """``"echo"`` for US, ``"cine"`` for a multi-frame MR; anything else ``DataError`` unless ``force``.

    A file whose content contradicts its Modality tag (``modality_contradiction``: an ultrasound
    loop relabelled MR, an MR series relabelled US) is refused too, naming the evidence. With
    ``force`` the file is opened anyway as its tag says (one warning): US as echo, an MR as cine,
    anything else as None.
    """
    code = str(ds.get("Modality", "") or "").strip().upper()
    declared = {"US": "echo", "MR": "cine"}.get(code)
    contradiction = modality_contradiction(ds, code) if declared else None
    if contradiction:
        actual, models = ("ultrasound", "echo") if code == "MR" else ("MR", "cine")
        problem = (f"declares modality {code} but its content is {actual}: {contradiction}; "
                   f"set its Modality (0008,0060) to {'US' if code == 'MR' else 'MR'} for the {models} models")
        if not force:
            raise DataError(path, f"{problem}, or --force plays it as {code}")
        log.warning("%s: %s; playing it as %s anyway (--force)", path, problem, code)
    if code == "US":
        return "echo"
    if code == "MR" and n_frames > 1:
        return "cine"
    if code == "MR":
        problem = "is a single MR image (1 frame), not a cine loop"
    else:
        what = f"{code} ({_MODALITY_NAMES[code]})" if code in _MODALITY_NAMES else (code or "missing")
        problem = f"modality {what} is neither ultrasound (US, for the echo models) nor MR (for the cine models)"
    if force:
        log.warning("%s: %s; opening it anyway (--force)", path, problem)
        return "cine" if code == "MR" else None
    raise DataError(path, f"{problem}; --force opens it anyway")


def _number(value) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _rate_candidates(ds) -> list[tuple[str, float | None]]:
    """``(how the value reads in the file, the frame rate it means)`` for each timing field present."""
    out: list[tuple[str, float | None]] = []
    frame_time = ds.get("FrameTime")
    if frame_time is not None and str(frame_time).strip():
        ms = _number(frame_time)
        fps = 1000.0 / ms if ms else None
        shown = f" ({fps:.3g} fps)" if fps is not None and fps > 0 else ""
        out.append((f"FrameTime {describe(frame_time, 'ms')}{shown}", fps))
    vector = ds.get("FrameTimeVector")
    if vector is not None:
        try:
            steps = np.asarray([float(v) for v in list(vector)[1:]], dtype=np.float64)
        except (TypeError, ValueError):
            steps = np.asarray([np.nan])
        if steps.size:
            mean = float(steps.mean())
            out.append((f"FrameTimeVector (mean step {describe(mean, 'ms')})", 1000.0 / mean if mean else None))
    for key in ("CineRate", "RecommendedDisplayFrameRate"):
        value = ds.get(key)
        if value is not None and str(value).strip():
            out.append((f"{key} {describe(value)}", _number(value)))
    return out


def dicom_frame_rate(ds, where: object, default: float = ECHO_DEFAULT_FPS) -> tuple[float, bool]:
    """``(frames per second, assumed)`` from the first plausible timing field.

    An implausible field (outside 1-200 fps, zero, junk) is skipped with one warning naming the
    file, the value found and the value used; with no usable field, ``default`` (assumed=True).
    """
    rejected = []
    for found, fps in _rate_candidates(ds):
        if is_plausible(fps):
            if rejected:
                log.warning("%s: %s is not plausible (outside %g-%g fps); using %s instead",
                            where, rejected[0], MIN_FPS, MAX_FPS, found)
            return float(fps), False
        rejected.append(found)
    if rejected:
        log.warning("%s: %s is not plausible (outside %g-%g fps); playing at %g fps",
                    where, rejected[0], MIN_FPS, MAX_FPS, default)
    return float(default), True
