"""Per-frame latency of the causal cine search spaces: a lookup table of streaming steps (issue 17).

A clip table entry (``search.latency``) is an op timed on a whole T-frame clip. A network run
streaming (``search.export.streaming``) pays per new frame something else: each op's *streaming
step*, the op on one new frame ``(1, C, 1, H, W)`` with its carried state (its last ``time_context``
input frames) prepended instead of the causal padding, giving the new frame's output and the new
state. This module measures and predicts that cost:

- :func:`step_module` builds the streaming step of a per-frame key (``OpKey.per_frame``, canonical
  form ending ``|stream``) *through the shipped code path*: the op is made causal
  (``search.core.ops.make_causal``) and wrapped in :class:`~search.export.streaming.StreamingNetwork`,
  whose one call is ``(frame, state) -> (out, new_state)``, exactly what a shipped streaming graph
  runs for that op. Ops that do not span time (1x1 convs, ``upsample``, ``pool2x``, heads,
  ``identity``) have no state: their step is the op on the one frame.
- :func:`stream_preset_keys` enumerates the per-frame keys of a space's supernets under a preset,
  in their causal variant (``make_causal``, what ``MultiscaleConfig(causal=True)`` builds):
  every op then sees one frame, ``(1, H, W)``.
- :func:`stream_keys` lists the per-frame op instances of a causal network (repeats kept, ``zero``
  excluded), from one traced streaming step; :func:`predict_per_frame_ms` sums their entries and
  applies the per-frame table's calibration, as ``search.latency`` does for clips.
- :func:`sample_stream_networks` feeds ``python -m search latency-check --per-frame``: the same
  random architectures as the clip check (same seed, same stream per space), built causal and
  wrapped for streaming, with their per-frame keys.

The per-frame table is its own file (``models/latency/<machine>-stream.json``,
``search.latency.profiler.default_table_path(per_frame=True)``), with ``meta['per_frame']`` true, its
own session overhead and its own calibration; its keys carry ``|stream``, so they never read (nor
write) a clip entry. Build it with ``python -m search profile --per-frame``.

This module lives in the export layer because the streaming wrapper does; the latency layer
(``search.latency.profiler``, ``search.latency.check``) takes the builder and the sampled networks
from here.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch
from torch import nn

from search.core.keys import OpKey
from search.core.ops import make_causal, op_from_key
from search.export.streaming import StreamingNetwork
from search.latency.check import SampledNetwork, table_prediction
from search.latency.lut import LatencyTable
from search.latency.profiler import OpProfiler, ProfileSettings, default_table_path


def frame_shape_of(clip_shape: Sequence[int], size: Sequence[int] | None = None) -> tuple[int, ...]:
    """``(C, T, H, W)`` (a space's input shape, no batch) -> the streaming frame ``(1, C, 1, H, W)``.

    Args:
        clip_shape: The space's input shape under a preset.
        size: ``(H, W)`` instead of the preset's (the networks are fully convolutional: a model
            shipped at another frame size, e.g. ``rtdnas.streaming --size 128x112``, has the preset's
            ops at that size).

    Raises:
        ValueError: not a clip shape (a 2D space has no time to stream).
    """
    shape = tuple(int(s) for s in clip_shape)
    if len(shape) != 4:
        raise ValueError(f"input shape {list(shape)} is not a clip (C, T, H, W): only 3D spaces stream")
    c, _, h, w = shape
    if size is not None:
        h, w = (int(v) for v in size)
    return (1, c, 1, h, w)


def step_module(key: OpKey) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    """The streaming step of a per-frame key, and its example inputs ``(frame, *states)``.

    The op of ``key`` (fresh weights), made causal; when it spans time, wrapped in
    ``StreamingNetwork`` so that one call takes the new frame and the op's state and returns its
    output frame and new state (the state's shape is the op's own: ``state_channels`` x
    ``time_context`` frames). Inputs are random (the profiler times on random data of their shapes).

    Raises:
        ValueError: ``key`` is not a per-frame key (``stream`` unset, 2D, or more than one frame).
    """
    if not key.stream or key.dims != 3 or key.shape[0] != 1:
        raise ValueError(f"{key.canonical()}: not a per-frame key (3D, one frame (1, H, W), |stream)")
    op = make_causal(op_from_key(replace(key, stream=False)))
    frame = torch.randn(1, key.c_in, *key.shape)
    if op.time_context == 0:
        return op, (frame,)
    stream = StreamingNetwork(op)
    states = [torch.randn(s.shape) for s in stream.state_specs(tuple(frame.shape))]
    return stream, (frame, *states)


def stream_keys(net: nn.Module, frame_shape: Sequence[int]) -> list[OpKey]:
    """Per-frame keys of every op instance one streaming step of causal ``net`` runs.

    Args:
        net: A causal clip network (``causal=True`` / ``make_causal``), e.g. ``FusedMultiscaleNet``
            or the shipped ``ClipProbabilities`` around one.
        frame_shape: ``(1, C, 1, H, W)``.

    Returns:
        One key per outermost op call, repeats kept, ``zero`` excluded (as
        ``search.latency.core_adapter.op_instances`` for clips).
    """
    from search.latency.core_adapter import op_instances

    stream = net if isinstance(net, StreamingNetwork) else StreamingNetwork(net)
    frame_shape = tuple(int(s) for s in frame_shape)
    states = stream.initial_states(frame_shape)  # before the hooks: the probe run must not count
    keys = op_instances(stream, torch.zeros(frame_shape), call=lambda m, x: m(x, *states))
    return [k.per_frame() for k in keys]


def stream_preset_keys(space: str, preset: str, size: Sequence[int] | None = None) -> set[OpKey]:
    """Every per-frame key the causal variant of ``space``'s supernets can contain under ``preset``
    (at frame ``size`` (H, W) instead of the preset's, when given).

    Raises:
        ValueError: ``space`` is 2D, or not registered (``search.methods.spaces.register_all``).
    """
    from search.core.latency_sites import collect_latency_keys
    from search.latency.core_adapter import supernet_configs

    keys: set[OpKey] = set()
    for build, shape in supernet_configs(space, preset):
        frame = frame_shape_of(shape, size)
        keys |= {k.per_frame() for k in collect_latency_keys(make_causal(build()), frame[1:])}
    return keys


def streamable_spaces(spaces: Sequence[str], preset: str) -> list[str]:
    """The spaces among ``spaces`` whose every supernet takes clips (3D): those a per-frame table covers."""
    from search.latency.core_adapter import supernet_configs

    return [s for s in spaces if all(len(shape) == 4 for _, shape in supernet_configs(s, preset))]


def stream_profiler(table: LatencyTable, settings: ProfileSettings | None = None, *,
                    save_to: Path | str | None = None) -> OpProfiler:
    """An ``OpProfiler`` that times per-frame keys' streaming steps (:func:`step_module`) into ``table``."""
    settings = replace(settings or ProfileSettings(), per_frame=True)
    return OpProfiler(table, settings, build=step_module, save_to=save_to)


def sample_stream_networks(space: str, preset: str, n: int, seed: int,
                           size: Sequence[int] | None = None) -> Iterator[SampledNetwork]:
    """``n`` random networks of ``space``, causal and wrapped for streaming, with their per-frame keys.

    The architectures and weights are those the clip check samples for the same ``seed``
    (``search.latency.core_adapter.sampled_modules``); each is made causal and wrapped in ``StreamingNetwork``. The
    example input is ``(frame, *states)`` (random states), frames of ``size`` (H, W) when given.
    """
    from search.latency.core_adapter import sampled_modules

    gen = torch.Generator().manual_seed(seed)
    for i, genotype, module, shape in sampled_modules(space, preset, n, seed):
        frame_shape = frame_shape_of(shape, size)
        stream = StreamingNetwork(make_causal(module).eval()).eval()
        keys = stream_keys(stream, frame_shape)
        frame = torch.randn(frame_shape, generator=gen)
        states = [torch.randn(s.shape, generator=gen) for s in stream.state_specs(frame_shape)]
        yield SampledNetwork(space, i, stream, (frame, *states), keys, genotype=genotype.to_dict())


def predict_per_frame_ms(table: LatencyTable, net: nn.Module, frame_shape: Sequence[int],
                         space: str | None = None) -> tuple[float, float, int]:
    """``(predicted ms, sum of entries ms, n_ops)`` for one streaming step of causal ``net``.

    The prediction is the per-frame table's calibration for ``space`` (else its ``"global"`` one,
    else the plain sum) applied to the sum of the per-frame entries of the step's ops.

    Raises:
        ValueError: ``table`` is a clip table.
        MissingLatencyKey: a key is not in the table (named in the message).
    """
    if table.per_frame is False:
        raise ValueError(f"{table.path or 'the table'} is a clip table; a per-frame prediction needs a "
                         "per-frame table (python -m search profile --per-frame)")
    sum_ms, n_ops = table_prediction(table, stream_keys(net, frame_shape))
    return float(table.predict_network_ms(sum_ms, n_ops, space)), sum_ms, n_ops


def per_frame_record(net: nn.Module, frame_shape: Sequence[int], *, space: str, measured_ms: float | None = None,
                     table_path: Path | str | None = None, threads: int | None = None) -> dict[str, Any]:
    """What a streaming model's card records of its per-frame table prediction (never raises on a
    missing table or key: the record says what is missing instead).

    Args:
        net: The causal clip network as shipped (``ClipProbabilities`` around it is fine).
        frame_shape: ``(1, C, 1, H, W)``.
        space: Search space whose per-frame calibration applies (``"rtdnas"``, ``"msnas"``).
        measured_ms: The measured per-frame median, recorded beside the prediction.
        table_path: The per-frame table (default: this machine's, ``default_table_path(per_frame=True)``).
        threads: Session threads of the default table's name (``None``: the app's default).
    """
    from search.latency.calibration import GLOBAL, calibrations_from_meta

    path = Path(table_path) if table_path is not None else default_table_path(threads, per_frame=True)
    record: dict[str, Any] = {"table": path.name, "space": space, "predicted_ms": None,
                              "measured_p50_ms": None if measured_ms is None else round(float(measured_ms), 3)}
    if not path.is_file():
        return {**record, "note": "no per-frame table for this machine: python -m search profile --per-frame"}
    table = LatencyTable.load(path)
    keys = stream_keys(net, frame_shape)
    missing = table.missing(keys)
    if missing:
        return {**record, "missing_keys": len(missing), "note": f"the per-frame table lacks {len(missing)} of the "
                f"network's ops, e.g. {missing[0].canonical()}: python -m search profile --per-frame"}
    predicted, sum_ms, n_ops = predict_per_frame_ms(table, net, frame_shape, space)
    calibrations = calibrations_from_meta(table.meta)
    calibration = space if space in calibrations else (GLOBAL if GLOBAL in calibrations else "none (plain sum)")
    record.update({"predicted_ms": round(predicted, 3), "sum_ms": round(sum_ms, 3), "n_ops": n_ops,
                   "calibration": calibration})
    if measured_ms:
        record["error_pct"] = round((predicted - float(measured_ms)) / float(measured_ms) * 100.0, 1)
    return record
