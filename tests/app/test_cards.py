"""``ModelCard.app_dice``: the one rule for the Dice that compares models (a clip model: its newest frame)."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.cards import ModelCard, metric_mean

STREAMING = {"frame_input": "clip", "states": [{"input": "state_0", "output": "state_out_0", "shape": [1, 2, 1, 4, 4],
                                                "init": 0.0}]}


def _card(frames: int | None = 20, streaming: dict | None = None, **metrics) -> ModelCard:
    shape = [1, 1, 64, 48] if frames is None else [1, 1, frames, 64, 48]  # None: a per-frame model
    raw = {"id": "m", "modality": "cine", "role": "seg", "method": "x", "input": {"name": "clip", "shape": shape},
           "metrics": metrics, "streaming": streaming}
    return ModelCard(raw=raw, card_path=Path("m.json"), onnx_path=Path("m.onnx"))


def test_a_clip_card_is_compared_by_its_newest_frame_dice() -> None:
    assert _card().is_clip_model and not _card(frames=None).is_clip_model
    assert not _card(streaming=STREAMING).is_clip_model
    card = _card(dice={"mean": 0.630}, dice_newest_frame={"mean": 0.368, "per_class": {"LV": 0.132}})
    assert card.newest_frame_dice == pytest.approx(0.368)
    assert card.app_dice == pytest.approx(0.368)


@pytest.mark.parametrize("card", [
    _card(dice={"mean": 0.63}),                                                       # a clip card without the field
    _card(frames=None, dice={"mean": 0.63}, dice_newest_frame={"mean": 0.3}),        # per-frame: dice is per frame
    _card(frames=1, dice={"mean": 0.63}, dice_newest_frame={"mean": 0.3}),           # a clip of one frame
    _card(frames=1, streaming=STREAMING, dice={"mean": 0.63}, dice_newest_frame={"mean": 0.3}),  # streaming
    _card(dice={"mean": 0.63}, dice_newest_frame={"mean": None}),                     # no usable mean
    _card(dice={"mean": 0.63}, dice_newest_frame=0.3),                                # not a metric object
])
def test_other_cards_are_compared_by_their_card_dice(card) -> None:
    assert card.newest_frame_dice is None
    assert card.app_dice == pytest.approx(0.63)


def test_no_dice_at_all_is_none() -> None:
    assert _card().app_dice is None and _card(dice=None).app_dice is None
    assert metric_mean({"mean": float("nan")}) is None and metric_mean({"mean": True}) is None
    assert metric_mean({"mean": 1}) == 1.0
