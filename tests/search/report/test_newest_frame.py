"""Shipped cine clip cards state the Dice of what the app shows, measured the way the app runs them.

The app runs a clip model on the sliding window ending at the arriving frame and shows the output's
last position (``app.engine.stages.SegStage``). A card's ``metrics.dice`` averages every position of
every clip. The U-net 3D (D3, IF16) baseline shows why that is not enough: it scores 0.630 on its
card, but in the app it gives about 0.41, because its LV collapses at the last clip position. So
every clip card also carries ``metrics.dice_newest_frame``, and on one of the card's own test slices
the evaluator behind that figure feeds the network what the app feeds it and reads the position the
app reads.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

from app.cards import load_card
from app.engine.models import load_model
from app.engine.stages import SegStage
from app.engine.types import Frame
from search.report.newest_frame import card_test_datasets, is_clip_card, onnx_predictor, with_newest_frame
from search.train.datasets import resize_labels
from search.train.evaluate import app_window

MODELS = Path(__file__).resolve().parents[3] / "models"
CLIP_CARDS = [p for p in sorted(MODELS.glob("*.json")) if is_clip_card(load_card(p))]


def test_models_folder_has_cine_clip_cards() -> None:
    assert any("unet3d" in p.stem for p in CLIP_CARDS) and len(CLIP_CARDS) >= 3


@pytest.mark.parametrize("card_path", CLIP_CARDS, ids=lambda p: p.stem)
def test_clip_card_states_the_dice_of_what_the_app_shows(card_path: Path) -> None:
    metrics = load_card(card_path).metrics
    field = metrics.get("dice_newest_frame")
    assert field, f"{card_path.name}: no metrics.dice_newest_frame (python -m search.report.newest_frame {card_path})"
    assert set(field["per_class"]) == set(metrics["dice"]["per_class"])
    assert 0.0 <= field["mean"] <= 1.0 and field["frames"] > 0
    assert "newest frame of the app's sliding window" in field["evaluated_on"]


@lru_cache(maxsize=None)
def _first_slice(card_path: Path):
    """The first test slice of the card's own test set (first patient only: rendering is the slow part)."""
    ds = card_test_datasets(load_card(card_path), patients=1)[0]
    ci, z = ds.slices()[0]
    return ds, ci, z


@pytest.mark.parametrize("card_path", CLIP_CARDS, ids=lambda p: p.stem)
def test_newest_frame_evaluation_runs_the_model_as_the_app_does(card_path: Path) -> None:
    card = load_card(card_path)
    ds, ci, z = _first_slice(card_path)
    case, length = ds.cases[ci], ds.clip_length
    stage = SegStage(load_model(card, intra_op_threads=1, warm_up_runs=0))
    predict = onnx_predictor(card, threads=1)
    for t in range(length):
        frame = Frame(index=t, image=case.frames[t, z], t_arrival=0, ground_truth=case.labels[t, z],
                      meta={"slice": z})
        x_app = stage.prepare(frame, stage.observe(frame))
        if t not in (1, length - 1):  # a padded window and a full one
            continue
        x_eval, labels = ds.window(ci, z, app_window(t, length))
        np.testing.assert_allclose(x_app, x_eval.numpy()[None], atol=1e-5)
        assert np.array_equal(labels.numpy()[-1], resize_labels(case.labels[t, z], *ds.size))  # the newest frame's
        shown = stage.segment(x_app, frame).probs
        probs, _ = predict(x_eval.numpy()[None])
        np.testing.assert_allclose(shown, probs[:, :, -1], atol=1e-4)


def test_with_newest_frame_changes_nothing_else() -> None:
    raw = {"id": "x", "metrics": {"dice": {"mean": 0.5}, "fps": 3.0, "dice_newest_frame": {"mean": 0.1}},
           "onnx_sha256": "abc"}
    out = with_newest_frame(raw, {"mean": 0.3})
    assert list(out["metrics"]) == ["dice", "dice_newest_frame", "fps"]
    assert out["metrics"]["dice_newest_frame"] == {"mean": 0.3} and out["onnx_sha256"] == "abc"
    assert raw["metrics"]["dice_newest_frame"] == {"mean": 0.1}  # the input is not modified
