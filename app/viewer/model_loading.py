"""Choosing and loading the segmentation model (and its QC pair) for a modality, off the GUI thread.

The choice: the id the user asked for when ``models/`` has it, else the engine's default for the
modality (``default_models``); the QC model is the one the segmentation card ``pairs_with``.
Loading builds the engine's ``Pipeline``, which verifies the card's hash and input shape and
creates the onnxruntime sessions: seconds of work that must never block the window.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from app.viewer.engine_port import EnginePort


@dataclass
class LoadedModels:
    """What a model-loading job hands back to the GUI thread.

    Attributes:
        modality: The modality the models were listed for.
        segs: Its segmentation cards (for the picker).
        generation: The result generation the pipeline reports under.
        seg, qc: The cards loaded (None: no model).
        pipeline: The running pipeline, or None when there is no model.
        note: Why no model, or that the requested one was replaced by the default.
    """

    modality: str
    segs: list
    generation: int
    seg: Any = None
    qc: Any = None
    pipeline: Any = None
    note: str | None = None


def load_models(engine: EnginePort, modality: str, model_id: str | None, models_dir: Any, *,
                on_result: Callable, overlay: Any, deadline_ms: float, generation: int) -> LoadedModels:
    """List the models of ``modality``, pick one, and build its pipeline (runs on a worker thread).

    Raises:
        ModelCardError: A card or ONNX file is broken (names the file and the problem).
    """
    cards = list(engine.list_models(modality, models_dir))
    segs = [c for c in cards if c.role == "seg"]
    loaded = LoadedModels(modality, segs, generation)
    if not segs:
        loaded.note = f"no {modality} model in models/"
        return loaded
    loaded.seg = next((c for c in segs if c.id == model_id), None)
    if loaded.seg is None:
        if model_id:
            loaded.note = f"model {model_id} not found in models/; using the shipped {modality} model"
        loaded.seg, _ = engine.default_models(modality, models_dir)
    loaded.qc = next((c for c in cards if c.role == "qc" and c.id == loaded.seg.pairs_with), None)
    loaded.pipeline = engine.pipeline(loaded.seg, loaded.qc, on_result=on_result, overlay=overlay,
                                      deadline_ms=deadline_ms)
    return loaded
