"""Writing model cards (the fields are documented in ``app.cards``, which reads and verifies them)."""

from __future__ import annotations

import datetime as _dt
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.cards import ModelCard, load_card, sha256_of
from app.realtime import REALTIME
from search.export.architecture import Architecture, from_legacy
from search.export.preprocessing import contract

#: The kinds of echo a card can be for (the card's ``echo_mode``; the app's ``app.data.echo_mode.ECHO_MODES``).
ECHO_MODES = ("contrast", "bmode")


@dataclass(frozen=True)
class TensorSpec:
    """A named model input or output.

    Attributes:
        name: The ONNX tensor name.
        shape: Static shape, batch first.
        description: What it holds (units, range).
    """

    name: str
    shape: tuple[int, ...]
    description: str = ""


@dataclass
class CardContent:
    """Everything a card says that is known before measuring (the export adds the measurements).

    Attributes:
        model_id: File stem in ``models/`` and the card's ``id``.
        modality: ``"echo"`` or ``"cine"``.
        role: ``"seg"`` or ``"qc"``.
        method: ``"segqc-hw"``, ``"msnas-hw"``, ``"rtdnas"`` or ``"baseline-..."``.
        inputs: Model inputs in forward-argument order; the first is the card's ``input``.
        outputs: Model outputs in order.
        classes: Label value -> class name (for QC: the classes of the segmentation it scores).
        normalisation: ``{"kind": "scale", "scale": ...}`` or ``{"kind": "zscore"}``.
        layout: ``"NCHW"`` or ``"NCTHW"``.
        data: ``{"source", "split", "seed", ...}``: what it was trained and evaluated on.
        genotype: The searched architecture as plain JSON, or None for handcrafted networks.
        pairs_with: For a seg card, the id of its QC model.
        clip_length: Cine: frames per inference (1 for per-frame models).
        architecture: The typed network description ``search.build_from_card`` rebuilds it from: an
            ``Architecture``, its JSON, or an untyped dict (``{"unet": {...}}``, ...) converted by
            ``search.export.architecture.from_legacy``.
        notes: Free text.
        convergence: The search's convergence verdict (``search.core.convergence.card_field``: converged,
            reasons), written as the card's ``search.convergence``; an unconverged search is also said first
            in the notes. None for handcrafted networks.
        echo_mode: Echo cards: the kind of echo the model is for, ``"contrast"`` (contrast echocardiography)
            or ``"bmode"`` (plain B-mode), written as the card's top-level ``echo_mode``; the app runs the
            pair whose mode matches the recording. None: the field is left out (cine cards).
    """

    model_id: str
    modality: str
    role: str
    method: str
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    classes: dict[int, str]
    normalisation: dict[str, Any]
    layout: str
    data: dict[str, Any]
    genotype: dict[str, Any] | None = None
    pairs_with: str | None = None
    clip_length: int | None = None
    architecture: Architecture | dict[str, Any] | None = None
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    convergence: dict[str, Any] | None = None
    echo_mode: str | None = None

    def __post_init__(self):
        if self.echo_mode is not None:
            if self.modality != "echo":
                raise ValueError(f"{self.model_id}: echo_mode is for echo cards, this one is {self.modality}")
            if self.echo_mode not in ECHO_MODES:
                raise ValueError(f"{self.model_id}: echo_mode must be one of {ECHO_MODES}, got {self.echo_mode!r}")


def _plain(value: Any) -> Any:
    """JSON-safe plain types (no numpy scalars, NaN -> null)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _architecture_json(content: CardContent) -> dict[str, Any] | None:
    """The card's typed ``architecture`` (see ``search.export.architecture``)."""
    arch = content.architecture
    if arch is None or isinstance(arch, Architecture):
        return arch.to_json() if arch is not None else None
    if "kind" in arch and "args" in arch:
        return Architecture.from_json(arch).to_json()
    first = content.inputs[0]
    return from_legacy(arch, genotype=content.genotype, input_shape=first.shape, n_classes=len(content.classes),
                       output_names=[t.name for t in content.outputs]).to_json()


def build_card(content: CardContent, *, onnx_path: Path, metrics: dict[str, Any], export: dict[str, Any],
               quantization: dict[str, Any] | None = None) -> dict[str, Any]:
    """The card dict for ``onnx_path`` (hashes the file as it is now)."""
    first = content.inputs[0]
    card: dict[str, Any] = {
        "id": content.model_id,
        "modality": content.modality,
        "role": content.role,
        "method": content.method,
        "input": {"name": first.name, "shape": list(first.shape), "layout": content.layout, "dtype": "float32",
                  "normalisation": content.normalisation},
        "inputs": [{"name": t.name, "shape": list(t.shape), "dtype": "float32", "description": t.description}
                   for t in content.inputs],
        "outputs": [{"name": t.name, "shape": list(t.shape), "description": t.description} for t in content.outputs],
        "classes": {str(k): v for k, v in sorted(content.classes.items())},
        "genotype": content.genotype,
        "architecture": _architecture_json(content),
        "preprocessing": contract(input_name=first.name, shape=first.shape, layout=content.layout,
                                  normalisation=content.normalisation, classes=content.classes, role=content.role),
        "metrics": metrics,
        "data": content.data,
        "export": export,
        "quantization": quantization,
        "onnx_sha256": sha256_of(onnx_path),
        "created": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
        "notes": content.notes,
    }
    if content.echo_mode is not None:
        card["echo_mode"] = content.echo_mode
    from search.train import precision

    if precision.current() != "fp32":  # trained under bf16 autocast (search.train.precision); fp32 says nothing
        card["training_precision"] = precision.current()
    if content.pairs_with:
        card["pairs_with"] = content.pairs_with
    if content.clip_length is not None:
        card["clip_length"] = int(content.clip_length)
    if content.convergence is not None:
        card["search"] = {"convergence": content.convergence}
        if not content.convergence.get("converged"):
            reasons = "; ".join(content.convergence.get("reasons") or [])
            card["notes"] = f"Search NOT CONVERGED ({reasons}). {card['notes']}".strip()
    card.update(content.extra)
    return _plain(card)


def write_card(card: dict[str, Any], card_path: Path) -> ModelCard:
    """Write ``card`` as JSON beside its ONNX file and read it back through the app's verifier."""
    card_path = Path(card_path)
    card = {**card, "meets_realtime": REALTIME.meets_metrics(card.get("metrics") or {})}  # the rule, its own figures
    card_path.write_text(json.dumps(card, indent=2, allow_nan=False) + "\n")
    return load_card(card_path).verify()
