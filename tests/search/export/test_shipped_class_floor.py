"""Issue 16's floor on every shipped segmentation model: no class below Dice .3 on its held-out patients."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.cards import default_models_dir
from search.train.restarts import CLASS_FLOOR

SEG_CARDS = [p for p in sorted(default_models_dir().glob("*.json")) if json.loads(p.read_text()).get("role") == "seg"]


def test_there_are_shipped_segmentation_cards():
    assert len(SEG_CARDS) >= 8, [p.name for p in SEG_CARDS]


@pytest.mark.parametrize("path", SEG_CARDS, ids=[p.stem for p in SEG_CARDS])
def test_no_class_of_a_shipped_model_is_below_the_floor(path: Path):
    metrics = json.loads(path.read_text())["metrics"]
    for field in ("dice", "dice_newest_frame"):  # a clip model's newest-frame Dice is what the app shows
        if not isinstance(metrics.get(field), dict):
            continue
        per_class = metrics[field]["per_class"]
        assert per_class, f"{path.name}: metrics.{field} has no classes"
        low = {name: v for name, v in per_class.items() if not v >= CLASS_FLOOR}
        assert not low, f"{path.name}: metrics.{field} below Dice {CLASS_FLOOR}: {low}"
