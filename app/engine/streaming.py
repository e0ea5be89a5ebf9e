"""Running a streaming cine model: one call per new frame, its state carried from call to call.

A streaming model (a card with ``streaming``, see ``app.cards.StreamingSpec``; made by
``search.export.streaming``) is a causal clip network cut into steps: a call takes the new
preprocessed frame ``(1, 1, 1, H, W)`` and one state tensor per temporal op (that op's last input
frames), and returns the frame's probabilities and the new states. Fed every frame of a slice in order
from the initial state, it gives what the causal clip network gives on those frames, for about 1/T of
the clip's cost per frame. Numpy only (no torch): the app and ``search`` both use :class:`StreamRunner`.
"""

from __future__ import annotations

from typing import Callable, Mapping

import numpy as np

from app.cards import StreamingSpec

RunFn = Callable[[dict[str, np.ndarray]], Mapping[str, np.ndarray]]


class StreamRunner:
    """Steps a streaming model and keeps its state between steps (not thread-safe: one caller, in order).

    Args:
        run: ``run(feeds) -> outputs by name`` (an onnxruntime session's run over all outputs).
        spec: The card's streaming contract.
    """

    def __init__(self, run: RunFn, spec: StreamingSpec):
        self.run = run
        self.spec = spec
        self._initial = {s.input: np.full(s.shape, s.init, dtype=np.float32) for s in spec.states}
        self._state: dict[str, np.ndarray] = {}
        self.steps = 0
        self.reset()

    def reset(self) -> None:
        """Back to the state before the first frame (zeros, -inf for max pools): causal padding."""
        self._state = dict(self._initial)  # the arrays are never written to: models return new ones
        self.steps = 0

    def step(self, frame: np.ndarray) -> dict[str, np.ndarray]:
        """Feed the next frame ``(1, C, 1, H, W)``; returns every output and keeps the new state."""
        out = self.run({self.spec.frame_input: frame, **self._state})
        missing = [s.output for s in self.spec.states if s.output not in out]
        if missing or self.spec.probs_output not in out:
            raise ValueError(f"streaming model did not return {missing or [self.spec.probs_output]}")
        self._state = {s.input: np.asarray(out[s.output], dtype=np.float32) for s in self.spec.states}
        self.steps += 1
        return dict(out)
