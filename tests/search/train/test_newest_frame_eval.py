"""The newest-frame evaluation of clip models follows the app's sliding window (``SegStage``)."""

from __future__ import annotations

import numpy as np
import pytest

from app.cards import load_card
from app.data.case import ACDC_LABELS, Case
from app.engine.models import load_model
from app.engine.stages import SegStage
from app.engine.types import Frame
from search.train.datasets import CineClipDataset
from search.train.evaluate import app_window, evaluate_newest_frame, evaluate_segmentation, newest_frame_card
from tests.app.engine.tiny_models import write_cine_model


@pytest.mark.parametrize("length", [1, 4])
def test_app_window_is_the_clip_segstage_feeds(tmp_path, length):
    stage = SegStage(load_model(load_card(write_cine_model(tmp_path, length=length)), warm_up_runs=0))
    images = [np.full((32, 28), float(t), np.float32) for t in range(9)]
    for t, image in enumerate(images):
        clip = stage.observe(Frame(index=t, image=image, t_arrival=0, meta={"slice": 0}))
        fed = [int(f[0, 0]) for f in clip] if clip is not None else [t]  # per-frame model: the frame itself
        assert fed == app_window(t, length).tolist()
    # a new slice restarts the window: its first frame is t = 0 again
    clip = stage.observe(Frame(index=9, image=images[5], t_arrival=0, meta={"slice": 1}))
    assert [int(f[0, 0]) for f in clip] == [5] * length


def _moving_case(n_t: int = 6, n_z: int = 2, size: int = 16) -> Case:
    """Four classes in four bands that move one pixel a frame; intensity = 10 * class + 5."""
    base = np.repeat(np.arange(4, dtype=np.uint8), size // 4)[None, :].repeat(size, axis=0)
    labels = np.stack([np.stack([np.roll(base, t + z, axis=1) for z in range(n_z)]) for t in range(n_t)])
    return Case(case_id="moving", modality="cine", frames=(labels.astype(np.float32) * 10 + 5), labels=labels,
                label_map=dict(ACDC_LABELS), spacing_mm=(1.0, 1.0), frame_rate=25.0)


def _reader(blind_last: bool):
    """Reads the class off the z-scored intensity level (four levels in every clip); ``blind_last``: predicts
    background at the clip's last position, like a clip network that fails at the end of its clip."""

    def predict(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        levels = np.unique(np.round(x, 4))
        cls = np.searchsorted(levels, np.round(x, 4))[0, 0]  # (T, H, W)
        if blind_last:
            cls[-1] = 0
        probs = np.moveaxis(np.eye(4, dtype=np.float32)[cls], -1, 0)[None]
        return probs, np.zeros_like(probs[:, :1])

    return predict


def test_newest_frame_dice_sees_what_the_whole_clip_dice_averages_away():
    ds = CineClipDataset([_moving_case()], clip_length=4, size=(16, 16))
    good = _reader(blind_last=False)
    assert evaluate_segmentation(good, ds, 4).mean == pytest.approx(1.0)
    assert evaluate_newest_frame(good, ds, 4).mean == pytest.approx(1.0)
    blind = _reader(blind_last=True)
    clip = evaluate_segmentation(blind, ds, 4)
    assert clip.mean > 0.7  # one position in four is wrong: the clip average hides it ...
    newest = evaluate_newest_frame(blind, ds, 4)
    assert newest.mean == 0.0  # ... the app shows exactly that position
    assert len(newest.per_frame) == 6 * 2  # every labelled frame of every slice, once


def test_newest_frame_card_field():
    ds = CineClipDataset([_moving_case()], clip_length=4, size=(16, 16))
    field = newest_frame_card(_reader(blind_last=False), [ds, ds], ACDC_LABELS)
    assert field["per_class"] == {"RV": 1.0, "MYO": 1.0, "LV": 1.0} and field["mean"] == 1.0
    assert field["frames"] == 24 and "newest frame" in field["evaluated_on"]
    assert field["evaluated_on"].startswith("the 4 test slices")
