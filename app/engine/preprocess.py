"""Frame and clip preprocessing exactly as a model card says: resize, channels, normalisation.

One pure numpy(+cv2) function used at deployment (the pipeline) and in training (``search``
imports it), so the network sees identically prepared inputs in both places.

Card fields read (``card.raw["input"]`` or a plain card dict's ``"input"``):
    shape: ``[1, C, H, W]`` (per-frame models; C is 3 for RGB echo, 1 for grey) or
        ``[1, 1, T, H, W]`` (cine clip models; T is the card's ``clip_length``).
    normalisation: ``{"kind": "scale", "scale": s, "offset": o}`` -> ``x * s + o`` (offset
        optional, default 0), or ``{"kind": "zscore"}`` -> ``(x - mean) / std`` with mean/std over
        the whole frame (per-frame models) or the whole clip (clip models). An empty
        normalisation means ``x`` as float32.
Non-finite input values (NaN, inf) become 0 before normalisation.

A card's ``preprocessing`` states this contract for readers of the ONNX file alone (size, resize
rule, spacing not preserved, normalisation, label map; ``search.export.preprocessing`` writes it
from the card's ``input``); ``tests/search/export/test_cards_rebuild.py`` checks that every shipped
card's contract is what this module does.
"""

from __future__ import annotations

from typing import Any, Mapping

import cv2
import numpy as np

from app.cards import ModelCard, ModelCardError

ZSCORE_EPS = 1e-6
NORMALISATION_KINDS = ("scale", "zscore")


def _input_spec(card: ModelCard | Mapping[str, Any]) -> tuple[tuple[int, ...], dict[str, Any], str]:
    if isinstance(card, ModelCard):
        return card.input_shape, card.normalisation, str(card.card_path)
    spec = card["input"]
    return tuple(int(d) for d in spec["shape"]), dict(spec.get("normalisation") or {}), str(card.get("id", "card"))


def resize_plane(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize ``(H, W)`` or ``(H, W, 3)`` to the model grid (area when shrinking, linear otherwise)."""
    if image.shape[0] == height and image.shape[1] == width:
        return image
    shrink = image.shape[0] > height or image.shape[1] > width
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def _as_channels(plane: np.ndarray, channels: int) -> np.ndarray:
    """``(H, W)`` or ``(H, W, 3)`` -> ``(channels, H, W)`` float32."""
    plane = plane.astype(np.float32, copy=False)
    if plane.ndim == 3 and channels == 1:
        plane = cv2.cvtColor(plane, cv2.COLOR_RGB2GRAY)
    if plane.ndim == 2:
        return np.broadcast_to(plane, (channels, *plane.shape))
    if plane.shape[2] != channels:
        raise ValueError(f"frame has {plane.shape[2]} channels, model wants {channels}")
    return plane.transpose(2, 0, 1)


def normalise(x: np.ndarray, normalisation: Mapping[str, Any], where: str = "card") -> np.ndarray:
    """Apply a card's normalisation to a float32 array (mean/std over the whole array for zscore)."""
    kind = normalisation.get("kind")
    if kind is None:
        return x
    if kind == "scale":
        scale = float(normalisation.get("scale", 1.0))
        offset = float(normalisation.get("offset", 0.0))
        x *= scale
        if offset:
            x += offset
        return x
    if kind == "zscore":
        mean = float(x.mean())
        std = float(x.std())
        x -= mean
        x *= 1.0 / max(std, ZSCORE_EPS)
        return x
    raise ModelCardError(where, f"unknown input normalisation kind {kind!r} (expected one of {NORMALISATION_KINDS})")


def preprocess(frame_or_clip: np.ndarray, card: ModelCard | Mapping[str, Any]) -> np.ndarray:
    """Prepare one frame or one clip for a model.

    Args:
        frame_or_clip: A frame ``(H, W)`` / ``(H, W, 3)``, or for clip models a clip ``(T, H, W)``
            / ``(T, H, W, 3)`` of consecutive frames (oldest first), any numeric dtype.
        card: The model's card (``ModelCard`` or its raw dict).

    Returns:
        float32 array of the card's input shape: ``(1, C, H, W)`` or ``(1, 1, T, H, W)``.
    """
    shape, norm, where = _input_spec(card)
    x = np.asarray(frame_or_clip)
    if len(shape) == 4:
        _, channels, height, width = shape
        if x.ndim not in (2, 3) or (x.ndim == 3 and x.shape[2] not in (1, 3)):
            raise ValueError(f"expected a frame (H, W) or (H, W, 3), got shape {x.shape}")
        if x.ndim == 3 and x.shape[2] == 1:
            x = x[..., 0]
        out = np.empty((1, channels, height, width), dtype=np.float32)
        out[0] = _as_channels(resize_plane(_finite(x), height, width), channels)
    elif len(shape) == 5:
        _, channels, length, height, width = shape
        if x.ndim == 4 and x.shape[3] == 3:
            x = np.stack([cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2GRAY) for f in x])
        if x.ndim != 3:
            raise ValueError(f"expected a clip (T, H, W), got shape {x.shape}")
        if x.shape[0] != length:
            raise ValueError(f"clip has {x.shape[0]} frames, the model wants {length}")
        out = np.empty((1, channels, length, height, width), dtype=np.float32)
        for t in range(length):
            out[0, :, t] = resize_plane(_finite(x[t]), height, width)
    else:
        raise ModelCardError(where, f"input shape {list(shape)} is neither (1,C,H,W) nor (1,1,T,H,W)")
    return normalise(out, norm, where)


def _finite(x: np.ndarray) -> np.ndarray:
    """Float frames with NaN/inf replaced by 0 (uint8 frames pass through untouched)."""
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        return np.nan_to_num(x.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    if x.dtype.kind == "f" and x.dtype != np.float32:
        return x.astype(np.float32)
    if x.dtype.kind in "iub" and x.dtype != np.uint8:
        return x.astype(np.float32)
    return np.ascontiguousarray(x)
