"""Choosing and loading the segmentation model (and its QC pair) for a modality, off the GUI thread.

The choice: the id the user asked for when ``models/`` has it, else the engine's default for the
modality (``default_models``; for echo, of the recording's echo mode, contrast or B-mode); the QC
model is the one the segmentation card ``pairs_with``. A model not made for the recording's echo
mode (there is none of that mode yet, or the user picked one of the other) comes with a note.
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
        echo_mode: The echo mode the models were chosen for (None: cine, or no echo mode known).
        echo_note: The loaded model was not made for that echo mode, in words (else None).
        requested: The model id asked for (None: the default).
    """

    modality: str
    segs: list
    generation: int
    seg: Any = None
    qc: Any = None
    pipeline: Any = None
    note: str | None = None
    echo_mode: str | None = None
    echo_note: str | None = None
    requested: str | None = None


def load_models(engine: EnginePort, modality: str, model_id: str | None, models_dir: Any, *,
                on_result: Callable, overlay: Any, deadline_ms: float, generation: int,
                echo_mode: str | None = None) -> LoadedModels:
    """List the models of ``modality``, pick one, and build its pipeline (runs on a worker thread).

    ``echo_mode`` (echo: ``contrast`` / ``bmode``): the default is a model of that mode (the
    engine's ``default_models(..., echo_mode=...)``), and ``echo_note`` says when the model is not.

    Raises:
        ModelCardError: A card or ONNX file is broken (names the file and the problem).
    """
    cards = list(engine.list_models(modality, models_dir))
    segs = [c for c in cards if c.role == "seg"]
    echo_mode = echo_mode if modality == "echo" else None
    loaded = LoadedModels(modality, segs, generation, echo_mode=echo_mode, requested=model_id)
    if not segs:
        loaded.note = f"no {modality} model in models/"
        return loaded
    loaded.seg = next((c for c in segs if c.id == model_id), None)
    if loaded.seg is None:
        if model_id:
            loaded.note = f"model {model_id} not found in models/; using the shipped {modality} model"
        if echo_mode is not None:
            loaded.seg, _ = engine.default_models(modality, models_dir, echo_mode=echo_mode)
        else:
            loaded.seg, _ = engine.default_models(modality, models_dir)
    loaded.qc = next((c for c in cards if c.role == "qc" and c.id == loaded.seg.pairs_with), None)
    if echo_mode is not None:
        from app.engine.models import echo_mode_note  # the same words as replay's

        loaded.echo_note = echo_mode_note(loaded.seg, echo_mode, cards=cards)
    loaded.pipeline = engine.pipeline(loaded.seg, loaded.qc, on_result=on_result, overlay=overlay,
                                      deadline_ms=deadline_ms)
    return loaded
