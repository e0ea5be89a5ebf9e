"""The model picker's rows: a clip model's Dice is that of the newest frame, marked and explained."""

from __future__ import annotations

from viewer_fakes import make_card

from app.cards import NEWEST_FRAME_MARK, NEWEST_FRAME_NOTE
from app.viewer.widgets.model_picker import DICE_COLUMN, ModelPicker, card_figures, dice_tooltip


def _clip(models_dir, model_id: str, dice: float, newest: float | None):
    card = make_card(models_dir, model_id, modality="cine", method="baseline-unet3d", dice=dice)
    card.raw.update(clip_length=20, input={"name": "clip", "shape": [1, 1, 20, 128, 112]})
    if newest is not None:
        card.raw["metrics"]["dice_newest_frame"] = {"mean": newest}
    return card


def test_clip_card_row_shows_the_newest_frame_dice(tmp_path) -> None:
    clip = _clip(tmp_path, "unet3d", 0.630, 0.368)
    assert card_figures(clip)[DICE_COLUMN] == f"0.368{NEWEST_FRAME_MARK}"
    assert NEWEST_FRAME_NOTE in dice_tooltip(clip) and "0.630" in dice_tooltip(clip)
    plain = _clip(tmp_path, "old-card", 0.630, None)
    assert card_figures(plain)[DICE_COLUMN] == "0.630" and dice_tooltip(plain) == ""
    echo = make_card(tmp_path, "echo-seg", dice=0.85)
    assert card_figures(echo)[DICE_COLUMN] == "0.850" and dice_tooltip(echo) == ""


def test_picker_table_puts_the_note_on_the_dice_cell(qtbot, tmp_path) -> None:
    picker = ModelPicker()
    qtbot.addWidget(picker)
    picker.set_models("cine", [_clip(tmp_path, "unet3d", 0.630, 0.368), make_card(tmp_path, "stream", "cine")])
    assert picker.table.item(0, DICE_COLUMN).text() == f"0.368{NEWEST_FRAME_MARK}"
    assert NEWEST_FRAME_NOTE in picker.table.item(0, DICE_COLUMN).toolTip()
    assert picker.table.item(1, DICE_COLUMN).text() == "0.850" and not picker.table.item(1, DICE_COLUMN).toolTip()
