"""Streaming (continual) inference of a causal clip network: one new frame per call, its past as state.

A clip network built with causal time (``MultiscaleConfig(causal=True)``, ``search.core.ops.make_causal``)
computes output frame t from input frames <= t only, with zeros (-inf for max pools) standing for the
frames before the first. Its temporal ops can then run on one frame at a time, as Continual 3D CNNs
(Hedegaard & Iosifidis, 2022) and streaming speech models do: each op keeps its last ``time_context``
input frames (k_t - 1 for a 3-frame kernel, 4 for a dilated one) and prepends them to the new frame
instead of the padding. :class:`StreamingNetwork` wraps the network so that one call is

    (frame (1, C, 1, H, W), state_0, ..., state_{n-1}) -> (probs (1, K, 1, H, W), state_out_0, ...)

and fed from the initial state (zeros; -inf for max pools), frame after frame, it gives exactly what
the causal clip network gives on the same frames (checked to 1e-4 by ``tests/search/export/test_stream_export.py``),
from the first frame on: the initial state *is* the causal padding. A new frame costs about 1/T of a
T-frame clip.

The trick that traces well (``torch.onnx.export(dynamo=True)``): the wrapper sets each streaming op's
``stream_state`` attribute before calling the network's own ``forward`` on the one-frame input, and
collects each op's ``new_state`` after; the ONNX graph gets explicit inputs ``frame``, ``state_<i>`` and
outputs ``probs``, ``state_out_<i>``. States are numbered in module order (``state_0`` is the stem).

The card's ``streaming`` field (read by ``app.cards``, run by ``app.engine.stages.SegStage``) is
:func:`card_field`: the frame input, the probabilities output, and for every state its input, output,
shape and initial value (``0.0`` or ``"-inf"``: JSON has no infinity).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from search.core.ops import CandidateOp

FRAME_INPUT = "frame"
PROBS_OUTPUT = "probs"


def state_input(i: int) -> str:
    return f"state_{i}"


def state_output(i: int) -> str:
    return f"state_out_{i}"


@dataclass(frozen=True)
class StateSpec:
    """One streaming state: an op's last ``shape[2]`` input frames.

    Attributes:
        index: i of ``state_<i>`` / ``state_out_<i>``.
        op: The op's module path inside the wrapper (e.g. ``net.net.stem``).
        op_name: The op's table name (``stem``, ``sep_conv``, ``max_pool``, ...).
        shape: ``(1, C, frames, H, W)``.
        init: Initial value: 0.0, or -inf for max pools (what the causal padding is).
    """

    index: int
    op: str
    op_name: str
    shape: tuple[int, ...]
    init: float

    @property
    def input(self) -> str:
        return state_input(self.index)

    @property
    def output(self) -> str:
        return state_output(self.index)

    def initial(self) -> np.ndarray:
        return np.full(self.shape, self.init, dtype=np.float32)


class StreamingNetwork(nn.Module):
    """A causal clip network run one frame at a time; ``forward(frame, *states) -> (out, *new_states)``.

    Args:
        net: A clip network ``(N, C, T, H, W) -> (N, K, T, H, W)`` (logits, or probabilities through
            ``ClipProbabilities``) whose temporal ops are all causal; it is shared, not copied.

    Raises:
        ValueError: an op that spans time is not causal, or the network has no temporal op.
    """

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net
        named = [(name, m) for name, m in self.named_modules() if isinstance(m, CandidateOp) and m.time_context > 0]
        if not named:
            raise ValueError("the network has no op that spans time: nothing to stream (run it per frame)")
        symmetric = sorted({m.op_name for _, m in named if not m.causal})
        if symmetric:
            raise ValueError(f"not a causal network: {', '.join(symmetric)} pad the future too "
                             "(build it with causal=True, search.core.ops.make_causal)")
        self._names = [name for name, _ in named]
        self._ops: list[CandidateOp] = [m for _, m in named]  # a plain list: the ops are already submodules
        self._specs: dict[tuple[int, ...], list[StateSpec]] = {}

    def state_specs(self, frame_shape: Sequence[int]) -> list[StateSpec]:
        """The states for frames of ``frame_shape`` ``(1, C, 1, H, W)``, found by one probe run.

        Raises:
            ValueError: an op does not run exactly once per forward (its state could not be carried).
        """
        key = tuple(int(s) for s in frame_shape)
        if key in self._specs:
            return self._specs[key]
        if len(key) != 5 or key[2] != 1:
            raise ValueError(f"a streaming frame is (N, C, 1, H, W), got {list(key)}")
        seen: dict[int, list[tuple[int, ...]]] = {i: [] for i in range(len(self._ops))}
        hooks = [op.register_forward_pre_hook(lambda _m, args, i=i: seen[i].append(tuple(args[0].shape)))
                 for i, op in enumerate(self._ops)]
        try:
            with torch.no_grad():
                self.net(torch.zeros(key))
        finally:
            for h in hooks:
                h.remove()
        wrong = [f"{self._names[i]} ran {len(s)} times" for i, s in seen.items() if len(s) != 1]
        if wrong:
            raise ValueError(f"every streaming op must run once per frame: {', '.join(wrong)}")
        specs = []
        for i, op in enumerate(self._ops):
            n, _, _, h, w = seen[i][0]
            specs.append(StateSpec(i, self._names[i], op.op_name, (n, op.state_channels, op.time_context, h, w),
                                   float(op.time_pad_value)))
        self._specs[key] = specs
        return specs

    def initial_states(self, frame_shape: Sequence[int]) -> list[torch.Tensor]:
        """The state before the first frame (zeros; -inf for max pools)."""
        return [torch.from_numpy(s.initial()) for s in self.state_specs(frame_shape)]

    def forward(self, frame: torch.Tensor, *states: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if len(states) != len(self._ops):
            raise ValueError(f"expected {len(self._ops)} state tensors, got {len(states)}")
        for op, state in zip(self._ops, states):
            op.stream_state, op.new_state = state, None
        try:
            out = self.net(frame)
            new = [op.new_state for op in self._ops]
        finally:
            for op in self._ops:
                op.stream_state = op.new_state = None
        missing = [self._names[i] for i, s in enumerate(new) if s is None]
        if missing:
            raise RuntimeError(f"streaming ops did not run: {', '.join(missing)}")
        return (out, *new)

    def run_clip(self, clip: torch.Tensor, states: Sequence[torch.Tensor] | None = None) -> torch.Tensor:
        """Feed ``clip (1, C, T, H, W)`` frame by frame (from the initial state); the outputs stacked on T."""
        shape = (*clip.shape[:2], 1, *clip.shape[3:])
        states = list(states) if states is not None else self.initial_states(shape)
        outs = []
        with torch.no_grad():
            for t in range(clip.shape[2]):
                out, *states = self(clip[:, :, t:t + 1], *states)
                outs.append(out)
        return torch.cat(outs, dim=2)


def card_field(specs: Sequence[StateSpec], *, frame_input: str = FRAME_INPUT,
               probs_output: str = PROBS_OUTPUT) -> dict[str, Any]:
    """The card's ``streaming`` value (``app.cards.StreamingSpec`` reads it)."""
    return {
        "frame_input": frame_input,
        "probs_output": probs_output,
        "states": [{"input": s.input, "output": s.output, "shape": list(s.shape),
                    "init": "-inf" if s.init == float("-inf") else float(s.init), "op": s.op_name}
                   for s in specs],
        "reset": "on a slice change, a seek (frame index not the previous + 1) or a source change",
        "equivalent_to": "the causal clip network fed the frames since the last reset (zero state = causal padding)",
    }


def io_names(specs: Sequence[StateSpec]) -> tuple[list[str], list[str]]:
    """``([frame, state_0, ...], [probs, state_out_0, ...])``."""
    return [FRAME_INPUT, *(s.input for s in specs)], [PROBS_OUTPUT, *(s.output for s in specs)]


def streaming_onnx(stream: StreamingNetwork, frame_shape: Sequence[int], model_id: str = "stream") -> bytes:
    """Export, check and optimise the streaming graph (the project's one export path); the ONNX bytes."""
    from search.export.onnx_export import onnx_bytes

    specs = stream.state_specs(frame_shape)
    inputs, outputs = io_names(specs)
    example = [torch.zeros(tuple(frame_shape)), *stream.initial_states(frame_shape)]
    return onnx_bytes(stream.eval(), example, inputs, outputs, model_id)


def stepped_feeds(stream: StreamingNetwork, clip: np.ndarray, *, skip: int | None = None) -> list[dict[str, np.ndarray]]:
    """Feeds ``{frame, state_i}`` for the frames of ``clip (1, C, T, H, W)`` streamed from the initial state.

    The first ``skip`` frames (default: the longest state) are left out, so every state is finite (a
    max pool's starts at -inf, which a parity check cannot difference).
    """
    x = torch.from_numpy(np.ascontiguousarray(clip, dtype=np.float32))
    shape = (*x.shape[:2], 1, *x.shape[3:])
    specs = stream.state_specs(shape)
    skip = max(s.shape[2] for s in specs) if skip is None else skip
    states = stream.initial_states(shape)
    feeds = []
    with torch.no_grad():
        for t in range(x.shape[2]):
            frame = x[:, :, t:t + 1]
            if t >= skip:
                feeds.append({FRAME_INPUT: frame.numpy().copy(),
                              **{s.input: v.numpy().copy() for s, v in zip(specs, states)}})
            _, *states = stream(frame, *states)
    return feeds


def onnx_stream_predictor(path: Path | str, streaming: dict[str, Any]
                          ) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """A clip predictor over a streaming ONNX file: the clip's frames streamed from the initial state.

    Returns ``(probs (N, K, T, H, W), zero uncertainty)`` as ``search.train.evaluate`` expects, from
    ``clip (N, 1, T, H, W)``; each clip starts from the initial state (what the causal clip model does).
    """
    from app.cards import parse_streaming
    from app.engine.runtime import create_session
    from app.engine.streaming import StreamRunner

    session = create_session(Path(path))
    names = [o.name for o in session.get_outputs()]
    runner = StreamRunner(lambda feeds: dict(zip(names, session.run(names, feeds))),
                          parse_streaming(streaming, str(path)))

    def predict(clip: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = np.asarray(clip, dtype=np.float32)
        outs = []
        for b in range(x.shape[0]):
            runner.reset()
            outs.append(np.concatenate([runner.step(x[b:b + 1, :, t:t + 1])[runner.spec.probs_output]
                                        for t in range(x.shape[2])], axis=2))
        probs = np.concatenate(outs, axis=0)
        return probs, np.zeros((probs.shape[0], 1, *probs.shape[2:]), np.float32)

    return predict


def export_streaming_model(clip_net: nn.Module, *, model_id: str, architecture: Any, classes: dict[int, str],
                           data: dict[str, Any], clips: Sequence[np.ndarray], out_dir: Path | str,
                           genotype: dict[str, Any] | None = None, method: str = "rtdnas", notes: str = "",
                           pairs_with: str | None = None, evaluate: Callable[[Path], dict[str, Any]] | None = None,
                           latency_repeats: int = 50, extra: dict[str, Any] | None = None):
    """Ship a causal clip network in streaming form through the one export path (``export_model``).

    Args:
        clip_net: The causal clip network with its output interface (``ClipProbabilities(causal net)``).
        model_id: The card's id (``models/<id>.onnx``).
        architecture: The clip network's typed architecture (``search.export.architecture.Architecture``,
            ``causal`` true); the card gets it with the ``streaming_probs`` interface, so
            ``search.build_from_card`` rebuilds the streaming module.
        classes, data, genotype, method, notes, pairs_with: As ``CardContent``.
        clips: Real preprocessed clips ``(1, 1, T, H, W)`` (normalised per frame, as the app feeds a
            streaming model); the parity inputs are their frames streamed from the initial state
            (past the longest state, so every state is finite).
        out_dir: Where the ONNX file, weights and card go.
        evaluate: ``evaluate(onnx_path) -> metrics`` on the exported file (e.g. Dice through
            :func:`onnx_stream_predictor`).
        latency_repeats: Timed runs (per new frame).
        extra: More top-level card fields.

    Returns:
        The verified ``app.cards.ModelCard`` (its ``streaming`` field parsed by the app's reader).
    """
    import dataclasses

    from search.export.card_writer import CardContent, TensorSpec
    from search.export.onnx_export import export_model
    from search.train.datasets import CINE_NORMALISATION

    stream = StreamingNetwork(clip_net.eval()).eval()
    _, c, _, h, w = (int(s) for s in clips[0].shape)
    frame_shape = (1, c, 1, h, w)
    specs = stream.state_specs(frame_shape)
    per_clip = 1 if len(clips) > 1 else 2  # the last frames of (up to) two clips: the states are full
    longest = max((int(s.shape[2]) for s in specs), default=0)

    def looped(clip: np.ndarray) -> np.ndarray:  # a looping cine, as the viewer plays one: long enough to fill
        reps = -(-(longest + per_clip) // max(1, int(clip.shape[2])))  # every state (short smoke clips)
        return np.concatenate([clip] * reps, axis=2) if reps > 1 else clip

    feeds = [f for clip in clips[:2] for f in stepped_feeds(stream, looped(clip))[-per_clip:]]
    if not feeds:
        raise ValueError("the parity clips are shorter than the longest state: no parity input")
    with torch.no_grad():
        n_classes = int(stream(torch.from_numpy(feeds[0][FRAME_INPUT]), *[torch.from_numpy(feeds[0][s.input])
                                                                         for s in specs])[0].shape[1])
    inputs = [TensorSpec(FRAME_INPUT, frame_shape, f"the newest frame of one short-axis slice, resized to {h}x{w}, "
                                                   "z-scored over the frame")]
    inputs += [TensorSpec(s.input, s.shape, f"{s.op_name} ({s.op}): its last {s.shape[2]} input frames; "
                          f"{'-inf' if s.init < 0 else '0'} before the first frame, then the previous call's {s.output}")
               for s in specs]
    outputs = [TensorSpec(PROBS_OUTPUT, (1, n_classes, 1, h, w), "softmax probabilities of the new frame")]
    outputs += [TensorSpec(s.output, s.shape, f"{s.input} after this frame: feed it back with the next frame")
                for s in specs]
    arch = dataclasses.replace(architecture, interface="streaming_probs")
    content = CardContent(
        model_id=model_id, modality="cine", role="seg", method=method, inputs=inputs, outputs=outputs,
        classes=dict(classes), normalisation=dict(CINE_NORMALISATION), layout="NCTHW", data=data,
        genotype=genotype, pairs_with=pairs_with, clip_length=1, architecture=arch, notes=notes,
        extra={"streaming": card_field(specs), **(extra or {})},
    )
    return export_model(stream, content, out_dir, feeds[:2], evaluate=evaluate, latency_repeats=latency_repeats)
