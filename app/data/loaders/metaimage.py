"""A small MetaImage (``.mhd`` + ``.raw``) reader and writer, numpy only (no SimpleITK needed).

Covers what the CAMUS 2019 release uses: 2D/3D images, uncompressed or zlib-compressed, data in a
separate file or after the header (``ElementDataFile = LOCAL``).
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np

from app.data.case import DataError

_TYPES = {
    "MET_UCHAR": np.uint8, "MET_CHAR": np.int8, "MET_USHORT": np.uint16, "MET_SHORT": np.int16,
    "MET_UINT": np.uint32, "MET_INT": np.int32, "MET_FLOAT": np.float32, "MET_DOUBLE": np.float64,
}
_NAMES = {np.dtype(v): k for k, v in _TYPES.items()}


def read_header(path: Path) -> tuple[dict[str, str], int]:
    """Header fields of a ``.mhd`` and the byte offset where its text ends."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "missing file")
    raw = path.read_bytes()
    fields: dict[str, str] = {}
    offset = 0
    for line in raw.split(b"\n"):
        offset += len(line) + 1
        text = line.decode("latin-1").strip()
        if not text:
            continue
        if "=" not in text:
            raise DataError(path, f"not a MetaImage header (line {text[:40]!r})")
        key, value = (s.strip() for s in text.split("=", 1))
        fields[key] = value
        if key == "ElementDataFile":
            break
    for key in ("NDims", "DimSize", "ElementType", "ElementDataFile"):
        if key not in fields:
            raise DataError(path, f"MetaImage header lacks {key}")
    return fields, offset


def read_metaimage(path: Path) -> tuple[np.ndarray, tuple[float, ...]]:
    """Read a MetaImage.

    Returns:
        ``(array, spacing)``: the array in C order with axes reversed from ``DimSize`` (so a
        ``DimSize = W H T`` sequence comes back ``(T, H, W)``, as SimpleITK returns it), and
        ``ElementSpacing`` in ``DimSize`` order (x, y[, z]).
    """
    path = Path(path)
    fields, offset = read_header(path)
    try:
        dims = [int(v) for v in fields["DimSize"].split()]
        dtype = np.dtype(_TYPES[fields["ElementType"]])
    except (ValueError, KeyError) as exc:
        raise DataError(path, f"unsupported DimSize/ElementType ({exc})") from exc
    if fields.get("BinaryDataByteOrderMSB", fields.get("ElementByteOrderMSB", "False")).lower() == "true":
        dtype = dtype.newbyteorder(">")
    data_name = fields["ElementDataFile"]
    if data_name == "LOCAL":
        payload = path.read_bytes()[offset:]
        data_path = path
    else:
        data_path = path.parent / data_name
        if not data_path.is_file():
            raise DataError(data_path, f"missing data file named by {path.name}")
        payload = data_path.read_bytes()
    if fields.get("CompressedData", "False").lower() == "true":
        try:
            payload = zlib.decompress(payload)
        except zlib.error as exc:
            raise DataError(data_path, f"corrupt compressed MetaImage data ({exc})") from exc
    n = int(np.prod(dims))
    if len(payload) < n * dtype.itemsize:
        raise DataError(data_path, f"truncated MetaImage data: {len(payload)} bytes, expected {n * dtype.itemsize}")
    array = np.frombuffer(payload[: n * dtype.itemsize], dtype=dtype).reshape(dims[::-1])
    spacing = tuple(float(v) for v in fields.get("ElementSpacing", " ".join(["1"] * len(dims))).split())
    return array.astype(dtype.newbyteorder("="), copy=True), spacing


def write_metaimage(path: Path, array: np.ndarray, spacing: tuple[float, ...], compress: bool = False) -> Path:
    """Write ``array`` (C order, axes ``(..., y, x)``) as ``path`` (.mhd) + ``<stem>.raw``."""
    path = Path(path)
    array = np.ascontiguousarray(array)
    if array.dtype not in _NAMES:
        raise ValueError(f"dtype {array.dtype} has no MetaImage type")
    dims = array.shape[::-1]
    raw_path = path.with_suffix(".zraw" if compress else ".raw")
    payload = array.astype(array.dtype.newbyteorder("<")).tobytes()
    if compress:
        payload = zlib.compress(payload)
    raw_path.write_bytes(payload)
    header = [
        "ObjectType = Image", f"NDims = {len(dims)}", "BinaryData = True", "BinaryDataByteOrderMSB = False",
        f"CompressedData = {'True' if compress else 'False'}",
        f"TransformMatrix = {' '.join('1' if i == j else '0' for i in range(len(dims)) for j in range(len(dims)))}",
        f"Offset = {' '.join('0' for _ in dims)}", f"ElementSpacing = {' '.join(str(float(s)) for s in spacing)}",
        f"DimSize = {' '.join(str(d) for d in dims)}", f"ElementType = {_NAMES[array.dtype]}",
        f"ElementDataFile = {raw_path.name}",
    ]
    path.write_text("\n".join(header) + "\n")
    return path
