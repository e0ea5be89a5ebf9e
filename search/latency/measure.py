"""Wall-clock latency of ONNX models under the deployed onnxruntime session settings.

Every figure the project publishes (lookup-table entries, the table check, model-card latency)
comes from here, and every session comes from ``app.engine.runtime.create_session`` with the
live pipeline's arguments (``deployed_session``): the same graph optimisation, execution mode,
thread count and thread spinning as at the scanner. This module does not
import torch, so the export step and the app-side tools can both use it.

Robustness on a shared, noisy machine:

- the garbage collector is paused while timing;
- warm-up runs are discarded (first runs allocate buffers and plan kernels);
- the median is the headline (p95 and mean are reported beside it);
- ``measure_interleaved`` times several models round-robin, in a seeded shuffled order per round,
  so a burst of load from another process hits all of them alike instead of biasing one;
- ``measure_blocks`` times each model the way the app runs it (a block of back-to-back runs, its
  session warm), the blocks of several models in seeded shuffled rounds.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Mapping, Sequence, Union

import numpy as np
import onnxruntime as ort

from app.engine.runtime import create_session, default_threads, gc_paused

log = logging.getLogger(__name__)

ModelSource = Union[str, Path, bytes]
Feeds = Mapping[str, np.ndarray]
#: What the caller may pass as inputs: ready feeds ``{name: array}``, shapes ``{name: shape}``,
#: one shape for a single-input model, or ``None`` to use the model's declared (static) shapes.
FeedsOrShapes = Union[Feeds, Mapping[str, Sequence[int]], Sequence[int], None]

#: The live pipeline opens its sessions without busy-waiting intra-op threads
#: (``app.engine.models``: ``create_session(..., allow_spinning=False)``); figures must come from
#: the same settings. Irrelevant at one thread (no pool), decisive at two on a loaded 2-core CPU.
DEPLOYED_ALLOW_SPINNING = False


def deployed_session(model: ModelSource, intra_op_threads: int | None = None) -> ort.InferenceSession:
    """An onnxruntime session with exactly the live pipeline's settings."""
    return create_session(model, intra_op_threads=intra_op_threads, allow_spinning=DEPLOYED_ALLOW_SPINNING)

#: How several networks are timed together: ``interleaved`` (one run each per round,
#: ``measure_interleaved``) or ``blocks`` (a warm block of back-to-back runs each per round, as the
#: app runs a model, ``measure_blocks``).
TIMINGS = ("interleaved", "blocks")


@dataclass(frozen=True)
class LatencyStats:
    """Latency of one model, measured with onnxruntime.

    Attributes:
        p50_ms: Median wall-clock time of one ``session.run`` in milliseconds (the headline).
        p95_ms: 95th percentile in milliseconds.
        mean_ms: Mean in milliseconds.
        fps: Sequential throughput, ``1000 / mean_ms`` frames per second.
        repeats: Number of timed runs (warm-up runs excluded).
        threads: Intra-op threads of the session.
        runtime: Runtime, version and execution provider, e.g. ``"onnxruntime 1.22.0 CPUExecutionProvider"``.
    """

    p50_ms: float
    p95_ms: float
    mean_ms: float
    fps: float
    repeats: int
    threads: int
    runtime: str

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def runtime_name(session: ort.InferenceSession | None = None) -> str:
    """``"onnxruntime <version> <provider>"`` for a session (CPU provider when none is given)."""
    provider = session.get_providers()[0] if session is not None else "CPUExecutionProvider"
    return f"onnxruntime {ort.__version__} {provider}"


def stats_from_samples(samples_ms: Sequence[float], *, threads: int, runtime: str) -> LatencyStats:
    """Summarise timed runs (milliseconds, warm-up excluded) into ``LatencyStats``."""
    arr = np.asarray(samples_ms, dtype=np.float64)
    if arr.size == 0:
        raise ValueError("no timed runs to summarise")
    mean = float(arr.mean())
    return LatencyStats(
        p50_ms=float(np.median(arr)),
        p95_ms=float(np.percentile(arr, 95)),
        mean_ms=mean,
        fps=1000.0 / mean if mean > 0 else float("inf"),
        repeats=int(arr.size),
        threads=int(threads),
        runtime=runtime,
    )


_ORT_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(uint8)": np.uint8,
    "tensor(bool)": np.bool_,
}


def make_feeds(session: ort.InferenceSession, feeds_or_shapes: FeedsOrShapes = None, *, seed: int = 0) -> dict[str, np.ndarray]:
    """Input arrays for a session: given arrays pass through; shapes become seeded random data.

    Random standard-normal data rather than zeros, so no kernel takes a shortcut on constant input.

    Args:
        session: The session whose inputs to feed.
        feeds_or_shapes: See ``FeedsOrShapes``. A single shape is only allowed for a one-input model.
        seed: Seed of the ``np.random.Generator`` drawing the data.

    Raises:
        ValueError: an input has no shape (dynamic dimension and none given) or a name is unknown.
    """
    inputs = session.get_inputs()
    names = [i.name for i in inputs]
    if feeds_or_shapes is not None and not isinstance(feeds_or_shapes, Mapping):
        if len(inputs) != 1:
            raise ValueError(f"model has {len(inputs)} inputs {names}; pass a dict of shapes or arrays")
        feeds_or_shapes = {names[0]: tuple(int(s) for s in feeds_or_shapes)}
    given = dict(feeds_or_shapes or {})
    unknown = sorted(set(given) - set(names))
    if unknown:
        raise ValueError(f"unknown input name(s) {unknown}; the model's inputs are {names}")
    rng = np.random.default_rng(seed)
    feeds: dict[str, np.ndarray] = {}
    for inp in inputs:
        dtype = _ORT_DTYPES.get(inp.type, np.float32)
        value = given.get(inp.name)
        if isinstance(value, np.ndarray):
            feeds[inp.name] = value
            continue
        shape = tuple(int(s) for s in value) if value is not None else tuple(inp.shape)
        if any(not isinstance(d, int) or d <= 0 for d in shape):
            raise ValueError(f"input {inp.name!r} has dynamic shape {inp.shape}; pass its shape")
        if np.issubdtype(dtype, np.floating):
            feeds[inp.name] = rng.standard_normal(shape).astype(dtype)
        else:
            feeds[inp.name] = np.zeros(shape, dtype=dtype)
    return feeds


def _time_once(session: ort.InferenceSession, feeds: Feeds) -> float:
    start = time.perf_counter_ns()
    session.run(None, feeds)
    return (time.perf_counter_ns() - start) / 1e6


def measure_session(session: ort.InferenceSession, feeds: Feeds, *, warmup: int = 10, repeats: int = 50) -> LatencyStats:
    """Time an existing session: ``warmup`` discarded runs, then ``repeats`` timed runs."""
    if repeats < 1 or warmup < 0:
        raise ValueError(f"need repeats >= 1 and warmup >= 0, got repeats={repeats}, warmup={warmup}")
    for _ in range(warmup):
        session.run(None, feeds)
    with gc_paused():
        samples = [_time_once(session, feeds) for _ in range(repeats)]
    threads = session.get_session_options().intra_op_num_threads
    return stats_from_samples(samples, threads=threads, runtime=runtime_name(session))


def measure_onnx_latency(model: ModelSource, feeds_or_shapes: FeedsOrShapes = None, *, warmup: int = 10,
                         repeats: int = 50, intra_op_threads: int | None = None) -> LatencyStats:
    """Latency of one ONNX model with the deployed session settings.

    Args:
        model: Path to an ``.onnx`` file, or its serialised bytes.
        feeds_or_shapes: Input arrays, input shapes (random data is drawn, seed 0), one shape for
            a one-input model, or ``None`` for the model's static input shapes.
        warmup: Discarded runs before timing.
        repeats: Timed runs.
        intra_op_threads: Threads inside an operator (default: the app's ``default_threads()``).

    Returns:
        ``LatencyStats`` with median, p95, mean, FPS, thread count and runtime version.
    """
    session = deployed_session(model, intra_op_threads)
    feeds = make_feeds(session, feeds_or_shapes)
    stats = measure_session(session, feeds, warmup=warmup, repeats=repeats)
    log.debug("measured %s: p50 %.3f ms over %d runs", _describe(model), stats.p50_ms, stats.repeats)
    return stats


def measure_interleaved(models: Mapping[str, ModelSource], feeds_or_shapes: Mapping[str, FeedsOrShapes] | None = None,
                        *, warmup: int = 10, repeats: int = 50, intra_op_threads: int | None = None,
                        seed: int = 0) -> dict[str, LatencyStats]:
    """Time several models round-robin so that background load affects them alike.

    All sessions are created and warmed up first; then each of ``repeats`` rounds runs every model
    once, in an order shuffled per round by a seeded generator.

    Args:
        models: name -> ONNX path or bytes. Keep the group small (each holds a session in memory).
        feeds_or_shapes: name -> inputs as in ``measure_onnx_latency`` (missing: static shapes).
        warmup: Discarded runs per model before the first round.
        repeats: Timed rounds.
        intra_op_threads: Threads inside an operator (default: the app's ``default_threads()``).
        seed: Seed of the round-order shuffles.

    Returns:
        name -> ``LatencyStats``.
    """
    if repeats < 1 or warmup < 0:
        raise ValueError(f"need repeats >= 1 and warmup >= 0, got repeats={repeats}, warmup={warmup}")
    names, sessions, feeds = _open_sessions(models, feeds_or_shapes, intra_op_threads)
    for n in names:
        for _ in range(warmup):
            sessions[n].run(None, feeds[n])
    rng = np.random.default_rng(seed)
    samples: dict[str, list[float]] = {n: [] for n in names}
    with gc_paused():
        for _ in range(repeats):
            for i in rng.permutation(len(names)):
                n = names[i]
                samples[n].append(_time_once(sessions[n], feeds[n]))
    return _summaries(samples, sessions)


def measure_blocks(models: Mapping[str, ModelSource], feeds_or_shapes: Mapping[str, FeedsOrShapes] | None = None,
                   *, warmup: int = 5, runs: int = 10, rounds: int = 5, intra_op_threads: int | None = None,
                   seed: int = 0) -> dict[str, LatencyStats]:
    """Time several models the way the app runs one: back to back, its session warm, in rounds.

    ``measure_interleaved`` runs each model once per round, so every run follows a different model
    through the caches; the live pipeline instead runs one model frame after frame. Here each of
    ``rounds`` rounds gives every model, in an order shuffled per round by a seeded generator, a
    block of ``warmup`` discarded runs then ``runs`` timed runs. A slow drift of the machine's load
    still hits every model alike (each has a block in every round), while within a block the model
    runs as it does at the scanner.

    Args:
        models: name -> ONNX path or bytes (every session stays in memory for the whole run).
        feeds_or_shapes: name -> inputs as in ``measure_onnx_latency`` (missing: static shapes).
        warmup: Discarded runs at the start of each block.
        runs: Timed runs per block.
        rounds: Blocks per model.
        intra_op_threads: Threads inside an operator (default: the app's ``default_threads()``).
        seed: Seed of the round-order shuffles.

    Returns:
        name -> ``LatencyStats`` over its ``rounds * runs`` timed runs.
    """
    if runs < 1 or rounds < 1 or warmup < 0:
        raise ValueError(f"need runs >= 1, rounds >= 1 and warmup >= 0, got runs={runs}, rounds={rounds}, "
                         f"warmup={warmup}")
    names, sessions, feeds = _open_sessions(models, feeds_or_shapes, intra_op_threads)
    rng = np.random.default_rng(seed)
    samples: dict[str, list[float]] = {n: [] for n in names}
    with gc_paused():
        for _ in range(rounds):
            for i in rng.permutation(len(names)):
                n = names[i]
                for _ in range(warmup):
                    sessions[n].run(None, feeds[n])
                samples[n] += [_time_once(sessions[n], feeds[n]) for _ in range(runs)]
    return _summaries(samples, sessions)


def _open_sessions(models: Mapping[str, ModelSource], feeds_or_shapes: Mapping[str, FeedsOrShapes] | None,
                   intra_op_threads: int | None) -> tuple[list[str], dict[str, ort.InferenceSession], dict[str, Feeds]]:
    """``(names, name -> deployed session, name -> its feeds)`` for several models timed together."""
    names = list(models)
    feeds_or_shapes = feeds_or_shapes or {}
    sessions = {n: deployed_session(models[n], intra_op_threads) for n in names}
    return names, sessions, {n: make_feeds(sessions[n], feeds_or_shapes.get(n)) for n in names}


def _summaries(samples: Mapping[str, Sequence[float]], sessions: Mapping[str, ort.InferenceSession]) -> dict[str, LatencyStats]:
    """name -> ``LatencyStats`` of its timed runs, with its session's threads and runtime."""
    return {n: stats_from_samples(samples[n], threads=sessions[n].get_session_options().intra_op_num_threads,
                                  runtime=runtime_name(sessions[n])) for n in samples}


def session_overhead_model() -> bytes:
    """A one-element ``Relu`` model: what one ``session.run`` costs when the graph does nothing."""
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "session_overhead", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = min(model.ir_version, 8)
    onnx.checker.check_model(model)
    return model.SerializeToString()


def effective_threads(intra_op_threads: int | None) -> int:
    """The thread count a session will really use for ``intra_op_threads`` (``None``: the app default)."""
    return int(intra_op_threads or default_threads())


def _describe(model: ModelSource) -> str:
    return f"<{len(model)} bytes>" if isinstance(model, bytes) else str(model)
