"""Which models the app runs, and loading them safely (card verified, outputs checked, warmed up).

Model I/O contract (what ``search.export`` must produce):
    echo seg: input ``image`` ``(1, 3, H, W)`` float32 RGB -> ``probs`` ``(1, C, H, W)`` and
        ``uncertainty`` ``(1, 1, H, W)``;
    cine seg: input ``clip`` ``(1, 1, T, H, W)`` -> ``probs`` ``(1, C, T, H, W)`` (+ optional
        ``uncertainty`` ``(1, 1, T, H, W)``), card ``clip_length`` T; per-frame 2D cine models have
        ``clip_length`` 1 and input ``image`` ``(1, 1, H, W)``;
    QC: inputs ``image`` (the seg model's preprocessed input), ``probs``, ``uncertainty`` ->
        ``dice`` ``(1, 1)``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from app.cards import ModelCard, ModelCardError, default_models_dir, load_card
from app.engine.runtime import create_session, warm_up

log = logging.getLogger(__name__)

# Preferred methods for the default model, best first (the papers' own methods before baselines).
METHOD_PREFERENCE = ("segqc-hw", "msnas-hw", "rtdnas")
SEG_OUTPUTS = ("probs",)
QC_INPUTS = ("image", "probs", "uncertainty")
QC_OUTPUTS = ("dice",)


def _cards(models_dir) -> list[ModelCard]:
    folder = Path(models_dir) if models_dir is not None else default_models_dir()
    if not folder.is_dir():
        return []
    cards = []
    for path in sorted(folder.glob("*.json")):
        try:
            cards.append(load_card(path))
        except ModelCardError as exc:
            log.warning("skipping model card: %s", exc)
    return sorted(cards, key=lambda c: c.id)


def list_models(modality: str | None = None, models_dir=None) -> list[ModelCard]:
    """Cards in ``models_dir`` (default: the shipped ``models/``), optionally of one modality.

    Malformed cards are skipped with a warning (``python -m app models`` reports them). Cards are
    not verified here: ``load_model`` verifies before loading.
    """
    return [c for c in _cards(models_dir) if modality is None or c.modality == modality]


def find_model(model_id: str, models_dir=None) -> ModelCard:
    """The card with this id, or ``ModelCardError`` listing the ids there are."""
    cards = _cards(models_dir)
    for card in cards:
        if card.id == model_id:
            return card
    folder = Path(models_dir) if models_dir is not None else default_models_dir()
    raise ModelCardError(folder / f"{model_id}.json",
                         f"no model {model_id!r} (available: {', '.join(c.id for c in cards) or 'none'})")


# The real-time budget at the scanner: end to end p95 latency and throughput.
BUDGET_LATENCY_MS = 50.0
BUDGET_FPS = 22.0


def meets_budget(seg: ModelCard, qc: ModelCard | None = None) -> bool:
    """Whether a seg model (plus its QC partner) fits 50 ms / 22 FPS by the latency on their cards.

    Uses each card's measured ``latency_ms.p95`` (summed over the pair: they run one after the other)
    and ``fps`` (the pair's throughput is bounded by the summed mean latency). A card without
    latency figures does not count as meeting the budget.
    """
    p95, mean = 0.0, 0.0
    for card in (seg, qc):
        if card is None:
            continue
        lat = card.metrics.get("latency_ms") or {}
        if not isinstance(lat, dict) or lat.get("p95") is None:
            return False
        p95 += float(lat["p95"])
        mean += float(lat.get("mean") or lat.get("p50") or lat["p95"])
    return p95 <= BUDGET_LATENCY_MS and mean > 0 and 1000.0 / mean >= BUDGET_FPS


def _rank(card: ModelCard, by_id: dict[str, ModelCard]) -> tuple:
    method = card.method
    preference = METHOD_PREFERENCE.index(method) if method in METHOD_PREFERENCE else len(METHOD_PREFERENCE)
    dice = card.metrics.get("dice", {}) or {}
    mean = dice.get("mean") if isinstance(dice, dict) else None
    fits = meets_budget(card, by_id.get(card.pairs_with) if card.pairs_with else None)
    searched = method in METHOD_PREFERENCE
    return (not bool(card.raw.get("default", False)), not fits, not searched,
            -(float(mean) if mean is not None else -1.0), preference, card.id)


def qc_for(seg: ModelCard, models_dir=None) -> ModelCard | None:
    """The QC model paired with ``seg`` (its card's ``pairs_with``), else None."""
    if not seg.pairs_with:
        return None
    return find_model(seg.pairs_with, models_dir)


def default_models(modality: str, models_dir=None) -> tuple[ModelCard, ModelCard | None]:
    """The default segmentation model for a modality and its QC pair (None when it has none).

    Preference: a card marked ``"default": true``; then models that fit the real-time budget by
    their cards (``meets_budget``, the QC partner's time included); then the papers' searched
    methods before handcrafted baselines; then the higher mean Dice on its card.

    Raises:
        ModelCardError: When there is no segmentation model for ``modality``.
    """
    segs = [c for c in list_models(modality, models_dir) if c.role == "seg"]
    if not segs:
        folder = Path(models_dir) if models_dir is not None else default_models_dir()
        raise ModelCardError(folder, f"no {modality} segmentation model in this folder (run `python -m search` to build them)")
    by_id = {c.id: c for c in _cards(models_dir)}
    seg = sorted(segs, key=lambda c: _rank(c, by_id))[0]
    return seg, qc_for(seg, models_dir)


@dataclass
class LoadedModel:
    """A verified card with its warmed-up onnxruntime session."""

    card: ModelCard
    session: ort.InferenceSession
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run once; returns output name -> array."""
        return dict(zip(self.output_names, self.session.run(list(self.output_names), feeds)))


def load_model(card: ModelCard, *, intra_op_threads: int | None = None, warm_up_runs: int = 3) -> LoadedModel:
    """Verify a card (hash, input shape), open its session, check the I/O contract, warm it up.

    Raises:
        ModelCardError: File missing, hash mismatch, wrong input shape, or outputs the role needs absent.
    """
    card.verify()
    try:
        session = create_session(card.onnx_path, intra_op_threads=intra_op_threads, allow_spinning=False)
    except Exception as exc:  # onnxruntime raises its own exception types
        raise ModelCardError(card.onnx_path, f"onnxruntime cannot load it: {exc}") from None
    inputs = tuple(i.name for i in session.get_inputs())
    outputs = tuple(o.name for o in session.get_outputs())
    if card.role == "seg":
        needed_in, needed_out = (card.input_name,), SEG_OUTPUTS
    else:
        needed_in, needed_out = QC_INPUTS, QC_OUTPUTS
    missing = [n for n in needed_in if n not in inputs] + [n for n in needed_out if n not in outputs]
    if missing:
        raise ModelCardError(card.onnx_path, f"{card.role} model lacks {missing} (inputs {list(inputs)}, outputs {list(outputs)})")
    if card.role == "seg":
        n_classes = len(card.classes)
        probs_shape = next(o.shape for o in session.get_outputs() if o.name == "probs")
        if isinstance(probs_shape[1], int) and probs_shape[1] != n_classes:
            raise ModelCardError(card.onnx_path, f"outputs {probs_shape[1]} classes but its card lists {n_classes}")
    if warm_up_runs:
        warm_up(session, warm_up_runs)
    return LoadedModel(card=card, session=session, input_names=inputs, output_names=outputs)
