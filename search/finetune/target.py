"""Which shipped model is fine-tuned: its card, its rebuilt network, and the errors that stop early.

``load_target`` reads ``<models_dir>/<id>.json``, refuses what cannot be fine-tuned (an unknown id, an
INT8 model, a QC model, a card without a rebuildable architecture) with one :class:`FinetuneError`
naming the model and what to do instead, and rebuilds the network with its own weights.

A streaming model (the card's ``streaming`` field, ``search.export.streaming``) is a causal clip
network run one frame at a time; what trains is that causal clip network (``Target.net``), on clips
z-scored per frame as the app feeds it, ``clip_length`` frames long (its ``retrained_from`` clip
card's, else ``STREAM_CLIP_LENGTH``); it is exported again in streaming form.

A per-frame cine model (input ``(1, 1, H, W)``: the cine default ``cine-skeleton-hw``, the U-net 2D
baseline) is a 2D network the app runs on each frame alone; it trains on every frame of
``PER_FRAME_CLIP_LENGTH``-frame clips, each frame z-scored on its own (``Target.trainable``: the network
applied frame by frame, ``search.baselines.unet.FrameWiseUNet``), and is exported as the same 2D network.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from app.cards import load_card, sha256_of
from search.build import build_from_card
from search.export.architecture import ArchitectureError

#: Exported interfaces ``build_from_card`` wraps around a logits network (``module.net``).
SEG_INTERFACES = ("probs_uncertainty", "probs")
#: A streaming model: ``StreamingNetwork(ClipProbabilities(logits network))`` (``module.net.net``).
STREAMING_INTERFACE = "streaming_probs"
#: Clip length a streaming model trains on when its ``retrained_from`` clip card is not beside it
#: (the rtdnas clip models' window).
STREAM_CLIP_LENGTH = 20
#: Frames per training clip of a per-frame cine model (each frame is its own sample; the clip only batches
#: them, as the per-frame U-net 2D baseline and the cine-skeleton search train).
PER_FRAME_CLIP_LENGTH = 20


class FinetuneError(ValueError):
    """A model that cannot be fine-tuned, named with what to do instead."""


@dataclass
class Target:
    """A shipped segmentation model, rebuilt with its own weights.

    Attributes:
        model_id: The card's id.
        card_path: The card file.
        raw: The card as JSON.
        module: The exported interface (``forward`` takes the card's inputs, returns its outputs).
        net: The logits network inside ``module`` (what trains).
        onnx_sha256: Hash of the shipped ONNX file (the new card's ``finetuned_from``).
        weights_source: ``"state dict <file>"`` or ``"recovered from the ONNX initializers (BN folded)"``.
        train_clip_length: Cine: frames per training clip (a clip model's ``clip_length``; a streaming
            model's clip card's; ``PER_FRAME_CLIP_LENGTH`` for a per-frame model). Echo: 1.
    """

    model_id: str
    card_path: Path
    raw: dict[str, Any]
    module: nn.Module
    net: nn.Module
    onnx_sha256: str
    weights_source: str
    train_clip_length: int = 1

    @property
    def streaming(self) -> dict[str, Any] | None:
        """The card's ``streaming`` field (a model run one frame at a time), or None."""
        return self.raw.get("streaming")

    @property
    def per_frame(self) -> bool:
        """A cine model run on one frame per call (input ``(1, 1, H, W)``), not a clip or streaming model."""
        return self.modality == "cine" and not self.streaming and len(self.input_shape) == 4

    @property
    def trainable(self) -> nn.Module:
        """What trains and is validated: ``net``, applied frame by frame to clips for a per-frame cine model."""
        if not self.per_frame:
            return self.net
        from search.baselines.unet import FrameWiseUNet

        return FrameWiseUNet(self.net)

    @property
    def clip_module(self) -> nn.Module:
        """Streaming models: the causal clip network with its probabilities (what is exported in streaming form)."""
        return self.module.net if self.streaming else self.module

    @property
    def modality(self) -> str:
        return str(self.raw["modality"])

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(s) for s in self.raw["inputs"][0]["shape"])

    @property
    def classes(self) -> dict[int, str]:
        return {int(k): str(v) for k, v in self.raw["classes"].items()}

    @property
    def onnx_path(self) -> Path:
        return self.card_path.with_suffix(".onnx")

    @property
    def pairs_with(self) -> str | None:
        return self.raw.get("pairs_with")


def _known_seg_ids(models_dir: Path) -> list[str]:
    ids = []
    for path in sorted(models_dir.glob("*.json")):
        try:
            raw = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(raw, dict) and raw.get("role") == "seg" and not raw.get("quantization") and "id" in raw:
            ids.append(str(raw["id"]))
    return ids


def _refuse(raw: dict[str, Any], card_path: Path, models_dir: Path) -> None:
    """Raise ``FinetuneError`` for a card that is not a float segmentation model."""
    model_id = raw.get("id", card_path.stem)
    float_model = (raw.get("quantization") or {}).get("float_model")
    if raw.get("quantization"):
        instead = f"fine-tune its float model {float_model} instead" if float_model else "fine-tune a float model"
        raise FinetuneError(f"{card_path}: {model_id} is an INT8 model; {instead} (and quantize the result)")
    if raw.get("role") != "seg":
        seg = [i for i in _known_seg_ids(models_dir)
               if json.loads((models_dir / f"{i}.json").read_text()).get("pairs_with") == model_id]
        hint = f"fine-tune {seg[0]}" if seg else "fine-tune a segmentation model"
        raise FinetuneError(f"{card_path}: {model_id} is a {raw.get('role')} model; {hint} (its QC partner is kept)")
    interface = (raw.get("architecture") or {}).get("interface")
    if interface == STREAMING_INTERFACE and raw.get("streaming"):
        return
    if interface not in SEG_INTERFACES:
        raise FinetuneError(f"{card_path}: {model_id} has no rebuildable segmentation architecture "
                            f"(interface {interface!r}); only models with a typed architecture can be fine-tuned")


def load_target(model_id: str, models_dir: Path | str = "models") -> Target:
    """The shipped model ``model_id`` of ``models_dir``, rebuilt with its own weights (eval mode).

    Raises:
        FinetuneError: unknown id, INT8 or QC model, no rebuildable architecture, or weights that
            cannot be loaded.
    """
    models_dir = Path(models_dir)
    card_path = models_dir / f"{model_id}.json"
    if not card_path.is_file():
        known = ", ".join(_known_seg_ids(models_dir)) or "none"
        raise FinetuneError(f"{card_path}: no model {model_id!r} in {models_dir}; segmentation models there: {known}")
    try:
        raw = json.loads(card_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise FinetuneError(f"{card_path}: not a readable model card ({exc})") from None
    _refuse(raw, card_path, models_dir)
    card = load_card(card_path).verify()
    try:
        module = build_from_card(card, weights=True)
    except (ArchitectureError, RuntimeError, ValueError) as exc:
        raise FinetuneError(f"{card_path}: cannot rebuild {model_id} with its weights ({exc})") from None
    pt = card_path.with_name(((raw.get("export") or {}).get("weights") or {}).get("file") or f"{model_id}.pt")
    source = f"state dict {pt.name}" if pt.is_file() else "recovered from the ONNX initializers (BatchNorm folded)"
    streaming = bool(raw.get("streaming"))
    net = module.net.net if streaming else module.net  # StreamingNetwork(ClipProbabilities(net))
    return Target(model_id=str(raw["id"]), card_path=card_path, raw=raw, module=module, net=net,
                  onnx_sha256=sha256_of(card_path.with_suffix(".onnx")), weights_source=source,
                  train_clip_length=_clip_length(raw, models_dir))


def _clip_length(raw: dict[str, Any], models_dir: Path) -> int:
    """Frames per training clip: echo 1; a clip model's own; a streaming model's clip card's (else 20)."""
    if raw.get("modality") != "cine":
        return 1
    shape = raw["inputs"][0]["shape"]
    if not raw.get("streaming"):
        return int(shape[2]) if len(shape) == 5 else PER_FRAME_CLIP_LENGTH
    base = (raw.get("retrained_from") or {}).get("card")
    path = models_dir / f"{base}.json" if base else None
    if path is not None and path.is_file():
        try:
            return int(json.loads(path.read_text()).get("clip_length") or STREAM_CLIP_LENGTH)
        except (OSError, ValueError, TypeError):
            pass
    return STREAM_CLIP_LENGTH
