"""The preprocessing contract of a model card: what the app does to a frame before the network sees it.

The app prepares every input with one function, ``app.engine.preprocess.preprocess``, driven by the
card's ``input`` (shape and normalisation). The card's ``preprocessing`` states that contract in
words a user of the ONNX file alone can follow (input size, spacing, normalisation, label map), as
nnU-Net users ask for in its ONNX-export threads. It is derived from the card's own ``input`` and
``classes`` here, and ``tests/search/export/test_cards_rebuild.py`` checks it against what
``preprocess`` does, so the description cannot drift from the code.

Fields::

    {"input": "clip", "layout": "NCTHW", "size": {"frames": 20, "height": 64, "width": 48},
     "channels": 1, "colour": "grey", "resize": "...", "spacing": "not_preserved",
     "normalisation": {"kind": "zscore", "over": "clip", "epsilon": 1e-06},
     "non_finite": "zero", "label_map": {"0": "background", ...}, "image_source": "preprocess"}

``image_source`` is ``preprocess`` for segmentation models and ``segmentation_input`` for QC models:
the app feeds a QC model the segmentation model's prepared input (the newest frame of a clip model's
clip, channels averaged if the counts differ), its ``probs`` and ``uncertainty``
(``app.engine.stages.QcStage``); a z-score is then the segmentation model's (``"over":
"segmentation_input"``).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from app.engine.preprocess import ZSCORE_EPS

RESIZE_RULE = ("cv2.resize of every frame to the model grid: INTER_AREA when either side shrinks, "
               "INTER_LINEAR otherwise; the aspect ratio is not kept")
SPACING_POLICY = "not_preserved"
SPACING_NOTE = ("the frame is resized to the grid whatever its pixel spacing in mm: no resampling to a "
                "fixed spacing, so one network pixel covers a different size on different scanners")
COLOUR_RULE = {1: "grey", 3: "rgb"}


class PreprocessingError(ValueError):
    """A card's ``preprocessing`` that disagrees with its ``input`` and ``classes``."""


def _size(shape: Sequence[int]) -> dict[str, int]:
    if len(shape) == 5:
        return {"frames": int(shape[2]), "height": int(shape[3]), "width": int(shape[4])}
    if len(shape) == 4:
        return {"height": int(shape[2]), "width": int(shape[3])}
    raise PreprocessingError(f"input shape {list(shape)} is neither (1,C,H,W) nor (1,1,T,H,W)")


def _normalisation(normalisation: Mapping[str, Any], over: str) -> dict[str, Any]:
    kind = normalisation.get("kind")
    if kind == "zscore":
        return {"kind": "zscore", "over": over, "epsilon": ZSCORE_EPS}
    if kind == "scale":
        return {"kind": "scale", "scale": float(normalisation.get("scale", 1.0)),
                "offset": float(normalisation.get("offset", 0.0))}
    if kind is None:
        return {"kind": "none"}
    raise PreprocessingError(f"unknown input normalisation kind {kind!r}")


def contract(*, input_name: str, shape: Sequence[int], layout: str, normalisation: Mapping[str, Any],
             classes: Mapping[Any, str], role: str) -> dict[str, Any]:
    """The ``preprocessing`` value of a card with this input, classes and role."""
    channels = int(shape[1])
    return {
        "input": input_name,
        "layout": layout,
        "size": _size(shape),
        "channels": channels,
        "colour": COLOUR_RULE.get(channels, f"{channels} channels"),
        "resize": RESIZE_RULE,
        "spacing": SPACING_POLICY,
        "spacing_note": SPACING_NOTE,
        "normalisation": _normalisation(normalisation, over=("segmentation_input" if role == "qc" else
                                                             "clip" if len(shape) == 5 and int(shape[2]) > 1
                                                             else "frame")),
        "non_finite": "zero",
        "label_map": {str(k): v for k, v in sorted(classes.items(), key=lambda kv: int(kv[0]))},
        "image_source": "segmentation_input" if role == "qc" else "preprocess",
    }


def contract_of_card(card: Mapping[str, Any]) -> dict[str, Any]:
    """The contract a card's ``input``, ``classes`` and ``role`` imply (what ``preprocessing`` must say)."""
    spec = card["input"]
    return contract(input_name=spec["name"], shape=spec["shape"], layout=spec.get("layout", ""),
                    normalisation=spec.get("normalisation") or {}, classes=card["classes"], role=card["role"])


def check_card(card: Mapping[str, Any], where: str = "card") -> dict[str, Any]:
    """The card's ``preprocessing``, after checking it says what its ``input`` implies."""
    got = card.get("preprocessing")
    if not isinstance(got, Mapping):
        raise PreprocessingError(f"{where}: no preprocessing contract")
    want = contract_of_card(card)
    wrong = sorted(k for k in set(want) | set(got) if got.get(k) != want.get(k))
    if wrong:
        raise PreprocessingError(f"{where}: preprocessing disagrees with the card's input/classes in: {', '.join(wrong)}")
    return dict(got)
