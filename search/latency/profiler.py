"""Fill a latency lookup table by timing every candidate op alone, on this machine.

Each ``OpKey`` is built alone (``search.core.ops.build_op`` by default), exported to ONNX at batch 1
and the key's input shape, and timed with ``search.latency.measure`` under the deployed session
settings. Ops are timed in small interleaved groups, so a burst of load from another process
spreads over a group instead of biasing one entry.

What an entry means: the median of ``session.run`` on the op alone, **minus the cost of a
``session.run`` on an empty graph** (``meta['session_overhead_ms']``, measured in the same run):
a network pays that call overhead once, not once per op. The remaining gap between the sum of
entries and a measured network is the job of the table's calibration (``search.latency.calibration``).

The profiler is cached and resumable: keys already in the table are skipped, and the table is saved
after every group. It refuses to add entries measured under different conditions (runtime version,
threads, CPU) to an existing table: mixing them would make the sums meaningless.

Per-frame tables (``ProfileSettings(per_frame=True)``, issue 17): the keys are per-frame keys
(``OpKey.per_frame``, ``|stream``) and the builder returns each op's *streaming step* with its
inputs, one new frame plus its carried state (``search.export.stream_latency.step_module``, which
runs the op through ``search.export.streaming.StreamingNetwork``, the shipped streaming code path).
The latency layer cannot build that step itself (the streaming wrapper lives in the export layer),
so a per-frame profiler must be given its builder. A per-frame run and a clip run never share a
table: ``per_frame`` is one of the table's conditions.
"""

from __future__ import annotations

import datetime as _dt
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence, Union

import onnxruntime as ort
import torch
from torch import nn

from search.latency.keys import OpKey
from search.latency.lut import LatencyTable, hardware_fingerprint
from search.latency.measure import (
    DEPLOYED_ALLOW_SPINNING,
    effective_threads,
    measure_interleaved,
    session_overhead_model,
)
from search.latency.onnx_bytes import OPSET, export_onnx_bytes

log = logging.getLogger(__name__)

#: Builds the module for one key: ``(key) -> nn.Module`` taking ``(1, c_in, *shape)``, or
#: ``(key) -> (nn.Module, example inputs)`` for a module with more inputs (a streaming step: the
#: frame, then its states).
OpBuilder = Callable[[OpKey], Union[nn.Module, tuple[nn.Module, Sequence[torch.Tensor]]]]
#: Progress callback: ``(n_done, n_total, key)`` after each measured key.
Progress = Callable[[int, int, OpKey], None]

#: Meta fields that must agree between an existing table and a new profiling run.
CONDITION_FIELDS = ("runtime", "runtime_version", "provider", "threads", "allow_spinning", "per_frame")
#: Value a condition had in tables written before the field was recorded.
CONDITION_DEFAULTS = {"allow_spinning": True, "per_frame": False}


class TableConditionsMismatch(ValueError):
    """An existing table was measured under other conditions than the ones requested now."""


@dataclass(frozen=True)
class ProfileSettings:
    """How to time each op.

    Attributes:
        warmup: Discarded runs per op before timing.
        repeats: Timed runs per op (the entry is their median).
        intra_op_threads: Session threads (``None``: the app's default).
        group_size: Ops timed round-robin together.
        seed: Seed of the interleaving order and of the ops' random weights.
        per_frame: Time per-frame keys (each op's streaming step on one new frame plus its state)
            into a per-frame table, instead of clip keys into a clip table.
    """

    warmup: int = 10
    repeats: int = 50
    intra_op_threads: int | None = None
    group_size: int = 8
    seed: int = 0
    per_frame: bool = False


CLIP_STATISTIC = "median ms of session.run on the op alone, minus meta.session_overhead_ms"
PER_FRAME_STATISTIC = ("median ms of session.run on the op's streaming step alone (causal op, one new frame "
                       "(1, C, 1, H, W) plus its carried state in, output and new state out), "
                       "minus meta.session_overhead_ms")


def table_conditions(settings: ProfileSettings) -> dict[str, object]:
    """The meta fields that describe how entries are measured under ``settings`` on this machine."""
    return {
        "runtime": "onnxruntime",
        "runtime_version": ort.__version__,
        "provider": "CPUExecutionProvider",
        "threads": effective_threads(settings.intra_op_threads),
        "allow_spinning": DEPLOYED_ALLOW_SPINNING,
        "hardware": hardware_fingerprint(),
        "warmup": settings.warmup,
        "repeats": settings.repeats,
        "per_frame": settings.per_frame,
        "statistic": PER_FRAME_STATISTIC if settings.per_frame else CLIP_STATISTIC,
        "exporter": f"torch.onnx TorchScript exporter, opset {OPSET}, torch {torch.__version__}",
        "batch": 1,
    }


def check_conditions(table: LatencyTable, conditions: dict[str, object]) -> None:
    """Raise ``TableConditionsMismatch`` when ``table`` holds entries measured under other conditions."""
    if not table.entries:
        return
    where = table.path or "the table"
    for name in CONDITION_FIELDS:
        old = table.meta.get(name, CONDITION_DEFAULTS.get(name))
        if old is not None and old != conditions[name]:
            raise TableConditionsMismatch(
                f"{where}: entries were measured with {name}={old!r}, this run uses "
                f"{conditions[name]!r}; profile into a new table (--table) instead of mixing them"
            )
    old_cpu = (table.meta.get("hardware") or {}).get("cpu")
    new_cpu = conditions["hardware"]["cpu"]  # type: ignore[index]
    if old_cpu is not None and old_cpu != new_cpu:
        raise TableConditionsMismatch(f"{where}: entries were measured on {old_cpu!r}, this machine is {new_cpu!r}")


def default_builder(per_frame: bool = False) -> OpBuilder:
    """``search.core.ops.build_op`` adapted to take an ``OpKey`` (imported on first use).

    Raises:
        ValueError: ``per_frame``: streaming steps are built in the export layer; pass
            ``search.export.stream_latency.step_module`` as the profiler's ``build``.
    """
    if per_frame:
        raise ValueError("a per-frame profiler needs the streaming step builder: "
                         "OpProfiler(..., build=search.export.stream_latency.step_module)")
    from search.latency.core_adapter import module_for_key

    return module_for_key


def measure_session_overhead(settings: ProfileSettings) -> float:
    """Median ms of ``session.run`` on an empty one-element graph (Python <-> runtime round trip)."""
    stats = measure_interleaved({"overhead": session_overhead_model()}, warmup=max(settings.warmup, 20),
                                repeats=max(settings.repeats, 200), intra_op_threads=settings.intra_op_threads,
                                seed=settings.seed)
    return stats["overhead"].p50_ms


class OpProfiler:
    """Times ``OpKey``s and stores their medians in a ``LatencyTable``.

    Args:
        table: The table to fill (entries already present are skipped).
        settings: Timing settings.
        build: ``(key) -> nn.Module`` (or ``(module, example inputs)``); default
            ``search.core.ops.build_op`` via ``core_adapter`` (clip tables only: a per-frame profiler
            needs ``search.export.stream_latency.step_module``).
        save_to: Where to save after each group (resumable); ``None`` keeps the table in memory.
    """

    def __init__(self, table: LatencyTable, settings: ProfileSettings = ProfileSettings(), *,
                 build: OpBuilder | None = None, save_to: Path | str | None = None):
        self.table = table
        self.settings = settings
        self._build = build
        self.save_to = Path(save_to) if save_to is not None else None
        self.conditions = table_conditions(settings)
        check_conditions(table, self.conditions)

    @property
    def build(self) -> OpBuilder:
        if self._build is None:
            self._build = default_builder(self.settings.per_frame)
        return self._build

    def missing(self, keys: Iterable[OpKey]) -> list[OpKey]:
        """Keys not in the table yet, sorted canonically (deduplicated)."""
        return self.table.missing(keys)

    def profile(self, keys: Iterable[OpKey], *, progress: Progress | None = None) -> list[OpKey]:
        """Measure every key the table lacks; return the keys measured (in measuring order).

        Raises:
            ValueError: a clip key in a per-frame run, or a per-frame key in a clip run.
        """
        todo = self.missing(keys)
        wrong = [k for k in todo if k.stream != self.settings.per_frame]
        if wrong:
            kind = "per-frame" if self.settings.per_frame else "clip"
            raise ValueError(f"a {kind} profiling run got {len(wrong)} key(s) of the other kind, e.g. "
                             f"{wrong[0].canonical()} (clip and per-frame entries never mix)")
        if not todo:
            log.info("latency table already holds all requested keys")
            return []
        torch.manual_seed(self.settings.seed)
        self._update_meta(measure_session_overhead(self.settings))
        overhead = float(self.table.meta["session_overhead_ms"])  # one value for every entry of the table
        log.info("profiling %d ops (session overhead %.4f ms)", len(todo), overhead)
        done: list[OpKey] = []
        for start in range(0, len(todo), self.settings.group_size):
            group = todo[start:start + self.settings.group_size]
            medians = self.measure_group(group)
            for key in group:
                self.table.set(key, max(0.0, medians[key] - overhead))
                done.append(key)
                if progress is not None:
                    progress(len(done), len(todo), key)
            if self.save_to is not None:
                self.table.save(self.save_to)
        return done

    def measure_group(self, keys: Sequence[OpKey]) -> dict[OpKey, float]:
        """Raw median ms of ``session.run`` for each key's op alone, timed round-robin."""
        models, shapes = {}, {}
        for key in keys:
            name = key.canonical()
            built = self.build(key)
            if isinstance(built, tuple):  # (module, inputs): a streaming step takes its states too
                module, inputs = built[0], tuple(built[1])
                models[name] = export_onnx_bytes(module, inputs)
                shapes[name] = {f"input{i}": tuple(x.shape) for i, x in enumerate(inputs)}
                continue
            x = torch.randn(1, key.c_in, *key.shape)
            models[name] = export_onnx_bytes(built, x)
            shapes[name] = tuple(x.shape)
        stats = measure_interleaved(models, shapes, warmup=self.settings.warmup, repeats=self.settings.repeats,
                                    intra_op_threads=self.settings.intra_op_threads, seed=self.settings.seed)
        return {key: stats[key.canonical()].p50_ms for key in keys}

    def _update_meta(self, overhead_ms: float) -> None:
        meta = self.table.meta
        first = not self.table.entries
        for name, value in self.conditions.items():
            if first or name not in meta:
                meta[name] = value
        # A resumed run subtracts the first run's overhead too, so every entry means the same thing.
        if first or "session_overhead_ms" not in meta:
            meta["session_overhead_ms"] = overhead_ms
        meta.setdefault("created", _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))


def hardware_slug(threads: int | None = None) -> str:
    """File-name slug of this machine and runtime, e.g. ``intel-xeon-processor-2cpu-ort1.22.0-t2``."""
    import re

    hw = hardware_fingerprint()
    cpu = re.sub(r"\((r|tm)\)", "", str(hw["cpu"]).lower())
    cpu = re.sub(r"[^a-z0-9]+", "-", cpu).strip("-") or str(hw["machine"])
    return f"{cpu}-{hw['logical_cores']}cpu-ort{ort.__version__}-t{effective_threads(threads)}"


#: File-name suffix of a per-frame table beside its clip table.
PER_FRAME_SUFFIX = "-stream"


def default_table_path(threads: int | None = None, root: Path | str | None = None, *, per_frame: bool = False) -> Path:
    """``models/latency/<hardware slug>.json`` under the repository (or ``root``); the per-frame
    table is ``<hardware slug>-stream.json`` beside it."""
    base = Path(root) if root is not None else Path(__file__).resolve().parents[2]
    suffix = PER_FRAME_SUFFIX if per_frame else ""
    return base / "models" / "latency" / f"{hardware_slug(threads)}{suffix}.json"
