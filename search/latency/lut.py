"""The latency lookup table: versioned JSON, canonical keys, hardware fingerprint.

A missing key is an error that names it: a search must never silently assume an op is free.

Two kinds of table, in two files: *clip* tables (an op on a whole input, e.g. a T-frame clip) and
*per-frame* tables (``meta['per_frame']`` true; the streaming step of a causal op on one new frame,
keys ending ``|stream``, ``python -m search profile --per-frame``). A table refuses the other kind's
keys, so their entries never mix, and each carries its own session overhead and calibration.
"""

from __future__ import annotations

import datetime as _dt
import json
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from search.latency.keys import STREAM_SUFFIX, OpKey

FORMAT_VERSION = 1


class MissingLatencyKey(KeyError):
    """The table has no entry for an op signature the search asked for."""

    def __init__(self, key: OpKey, table_path: str | None = None):
        self.key = key
        where = f" in {table_path}" if table_path else ""
        command = "python -m search profile --per-frame" if key.stream else "python -m search profile"
        super().__init__(f"no latency entry for {key.canonical()}{where}; run `{command}` to measure it")


def hardware_fingerprint() -> dict[str, object]:
    """What the figures were measured on: CPU model, core count, OS, Python."""
    import os

    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu or platform.machine(),
        "machine": platform.machine(),
        "logical_cores": os.cpu_count(),
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
    }


@dataclass
class LatencyTable:
    """Median latencies in milliseconds, keyed by ``OpKey.canonical()``.

    Attributes:
        entries: canonical key -> median ms.
        meta: runtime, version, threads, hardware fingerprint, date, repetitions.
        path: Where the table was loaded from (for error messages), if anywhere.
    """

    entries: dict[str, float] = field(default_factory=dict)
    meta: dict[str, object] = field(default_factory=dict)
    path: str | None = None

    def __contains__(self, key: OpKey) -> bool:
        return key.canonical() in self.entries

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, key: OpKey) -> float:
        try:
            return self.entries[key.canonical()]
        except KeyError:
            raise MissingLatencyKey(key, self.path) from None

    @property
    def per_frame(self) -> bool | None:
        """True for a per-frame (streaming step) table, False for a clip table, None while undecided
        (a new table: its first profiling run records the kind)."""
        kind = self.meta.get("per_frame")
        if kind is None and self.entries:  # a table from before the field: its keys tell
            return any(k.endswith(STREAM_SUFFIX) for k in self.entries)
        return None if kind is None else bool(kind)

    def set(self, key: OpKey, ms: float) -> None:
        """Store ``ms`` for ``key``.

        Raises:
            ValueError: a per-frame key in a clip table, or a clip key in a per-frame table.
        """
        kind = self.per_frame
        if kind is not None and kind != key.stream:
            where = self.path or "this table"
            raise ValueError(f"{where} is a {'per-frame' if kind else 'clip'} table; it cannot hold "
                             f"{key.canonical()} (clip and per-frame entries never mix)")
        self.entries[key.canonical()] = float(ms)

    def calibration(self, space: str | None = None):
        """The ``NetworkCalibration`` fitted by ``python -m search latency-check`` for ``space``.

        Falls back to the table's ``"global"`` calibration, then to the identity (plain sum).
        """
        from search.latency.calibration import calibration_for

        return calibration_for(self.meta, space)

    def predict_network_ms(self, sum_ms, n_ops, space: str | None = None):
        """Network latency (ms) from the sum of its op entries and its number of (non-zero) ops.

        ``scale * sum_ms + per_op_ms * n_ops + offset_ms`` with the coefficients of
        ``calibration(space)``. Affine, so estimators may pass *expected* sums and op counts as
        torch tensors and stay differentiable in the architecture weights.
        """
        return self.calibration(space).predict(sum_ms, n_ops)

    def missing(self, keys: Iterable[OpKey]) -> list[OpKey]:
        return sorted({k for k in keys if k.canonical() not in self.entries})

    def save(self, path: Path | str) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = dict(self.meta)
        meta.setdefault("hardware", hardware_fingerprint())
        meta["updated"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        doc = {"format_version": FORMAT_VERSION, "meta": meta, "entries": dict(sorted(self.entries.items()))}
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(doc, indent=1))
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path | str) -> "LatencyTable":
        path = Path(path)
        try:
            doc = json.loads(path.read_text())
        except FileNotFoundError:
            raise FileNotFoundError(f"{path}: latency table not found; run `python -m search profile`") from None
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: latency table is not valid JSON ({exc.msg})") from None
        if doc.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{path}: latency table format {doc.get('format_version')!r}, expected {FORMAT_VERSION}")
        return cls(entries={k: float(v) for k, v in doc["entries"].items()}, meta=doc.get("meta", {}), path=str(path))
