"""The pipeline on tiny ONNX models: results, drops, faults, the cine window, model/card checks."""

from __future__ import annotations

import json
import shutil
import threading
import time

import numpy as np
import pytest

from app.cards import ModelCardError, load_card
from app.engine.models import default_models, list_models
from app.engine.overlay import OverlayStyle
from app.engine.pipeline import Pipeline
from app.engine.types import Frame, FrameResult

pytestmark = pytest.mark.timeout(60)


def _frame(index: int, image: np.ndarray, gt: np.ndarray | None = None, **meta) -> Frame:
    return Frame(index=index, image=image, t_arrival=time.perf_counter_ns(), ground_truth=gt, meta=meta)


def _bright_square(size: int = 48) -> tuple[np.ndarray, np.ndarray]:
    image = np.zeros((size, size, 3), np.uint8)
    image[10:30, 12:36] = 230
    gt = np.zeros((size, size), np.uint8)
    gt[10:30, 12:36] = 1
    return image, gt


class Collector:
    def __init__(self):
        self.results: list[FrameResult] = []
        self.lock = threading.Lock()

    def __call__(self, result: FrameResult) -> None:
        with self.lock:
            self.results.append(result)


def test_default_models_pick_the_pair(models_dir):
    seg, qc = default_models("echo", models_dir)
    assert (seg.id, qc.id) == ("tiny-echo-seg", "tiny-echo-qc")
    cine, cine_qc = default_models("cine", models_dir)
    assert cine.id == "tiny-cine-seg" and cine_qc is None
    assert {c.id for c in list_models("echo", models_dir)} == {"tiny-echo-seg", "tiny-echo-qc"}
    with pytest.raises(ModelCardError, match="no echo segmentation model"):
        default_models("echo", models_dir / "nowhere")


def test_each_frame_gets_mask_overlay_dice_and_timestamps(models_dir):
    seg, qc = default_models("echo", models_dir)
    out = Collector()
    image, gt = _bright_square()
    with Pipeline(seg, qc, on_result=out) as pipe:
        for k in range(5):
            pipe.submit(_frame(k, image, gt))
            assert pipe.drain(timeout=10)
        stats = pipe.stats()
    assert [r.frame.index for r in out.results] == list(range(5))
    r = out.results[-1]
    assert r.error is None and r.mask.shape == (48, 48) and r.overlay.shape == (48, 48, 3)
    assert r.true_dice == pytest.approx(1.0, abs=0.05)  # the bright square is the foreground
    assert 0.0 <= r.predicted_dice <= 1.0 and r.probabilities.shape == (2, 32, 32)
    order = [r.timestamps[k] for k in ("arrival", "preprocessed", "segmented", "qc", "overlay")]
    assert order == sorted(order) and r.latency_ms > 0
    assert set(r.stage_ms()) == {"queue", "preprocess", "segment", "qc", "overlay"}
    assert r.timestamps["arrival"] <= r.timestamps["started"] <= r.timestamps["preprocessed"]
    assert stats.frames_in == 5 and stats.processed == 5 and stats.dropped == 0 and stats.errors == 0
    assert np.isfinite(stats.latency_ms["p95"]) and stats.stages_ms["segment"] >= 0
    # the overlay actually shows the class colour over the square and leaves the rest alone
    assert tuple(r.overlay[0, 0]) == (0, 0, 0) and r.overlay[20, 20, 0] != r.overlay[20, 20, 2]


def test_newest_frame_wins_when_flooded(models_dir):
    seg, qc = default_models("echo", models_dir)
    out = Collector()
    gate = threading.Event()

    def slow(result):  # hold the composition worker so the inference worker backs up too
        gate.wait(5)
        out(result)

    image, _ = _bright_square()
    with Pipeline(seg, qc, on_result=slow) as pipe:
        for k in range(50):
            pipe.submit(_frame(k, image))
        gate.set()
        assert pipe.drain(timeout=20)
        stats = pipe.stats()
    assert stats.frames_in == 50
    assert stats.processed + stats.dropped == 50 and stats.dropped > 0
    assert out.results[-1].frame.index == 49  # the newest frame is never the one dropped


def test_one_failing_inference_does_not_stop_the_stream(models_dir, monkeypatch):
    seg, qc = default_models("echo", models_dir)
    out = Collector()
    image, gt = _bright_square()
    with Pipeline(seg, qc, on_result=out) as pipe:
        real = pipe._seg.segment
        calls = {"n": 0}

        def flaky(x):
            calls["n"] += 1
            if calls["n"] == 2:
                raise RuntimeError("simulated onnxruntime failure")
            return real(x)

        monkeypatch.setattr(pipe._seg, "segment", flaky)
        for k in range(4):
            pipe.submit(_frame(k, image, gt))
            assert pipe.drain(timeout=10)
        stats = pipe.stats()
    errors = [r for r in out.results if r.error]
    assert len(errors) == 1 and "simulated onnxruntime failure" in errors[0].error
    assert errors[0].mask is None and errors[0].frame.index == 1
    assert all(r.mask is not None for r in out.results if not r.error)
    assert stats.processed == 4 and stats.errors == 1


@pytest.mark.parametrize("image, ok", [
    (np.full((40, 40, 3), np.nan, np.float32), True),   # NaN frame: zeros in, a (blank) mask out
    (np.full((40, 40), 7, np.uint8), True),              # constant grey frame
    (np.zeros((40, 40, 4), np.uint8), False),            # wrong number of channels
    (np.zeros((40,), np.uint8), False),                  # wrong dimensions
])
def test_degenerate_frames(models_dir, image, ok):
    seg, qc = default_models("echo", models_dir)
    out = Collector()
    with Pipeline(seg, qc, on_result=out) as pipe:
        pipe.submit(_frame(0, image))
        assert pipe.drain(timeout=10)
    (r,) = out.results
    assert (r.error is None) == ok
    if ok:
        assert r.mask.shape == image.shape[:2] and np.isfinite(r.predicted_dice)


def test_cine_window_pads_and_restarts_on_slice_change(models_dir):
    seg, qc = default_models("cine", models_dir)
    out = Collector()
    rng = np.random.default_rng(0)
    with Pipeline(seg, qc, on_result=out) as pipe:
        seen = []
        for k in range(6):
            clip = pipe._seg.observe(_frame(k, rng.random((40, 35)).astype(np.float32), slice=2))
            seen.append(clip)
        assert len(seen[0]) == 4 and all(f is seen[0][0] for f in seen[0])  # padded with frame 0
        assert seen[5][0] is seen[4][1]  # sliding
        restarted = pipe._seg.observe(_frame(6, rng.random((40, 35)).astype(np.float32), slice=3))
        assert all(f is restarted[-1] for f in restarted)
        for k in range(3):
            pipe.submit(_frame(10 + k, rng.random((40, 35)).astype(np.float32), slice=3))
            assert pipe.drain(timeout=10)
    assert all(r.error is None and r.mask.shape == (40, 35) for r in out.results)
    assert out.results[0].probabilities.shape == (4, 32, 28)


def test_overlay_style_can_change_while_running(models_dir):
    seg, qc = default_models("echo", models_dir)
    out = Collector()
    image, _ = _bright_square()
    with Pipeline(seg, qc, on_result=out, overlay=OverlayStyle(opacity=0.0)) as pipe:
        pipe.submit(_frame(0, image))
        pipe.drain(timeout=10)
        pipe.set_overlay(OverlayStyle(opacity=1.0, colors={1: (0, 255, 0)}))
        pipe.submit(_frame(1, image))
        pipe.drain(timeout=10)
        pipe.reset_stats()
        assert pipe.stats().processed == 0
    assert tuple(out.results[0].overlay[20, 20]) == (230, 230, 230)
    assert tuple(out.results[1].overlay[20, 20]) == (0, 255, 0)


def test_close_is_idempotent_and_submit_after_close_is_ignored(models_dir):
    seg, qc = default_models("echo", models_dir)
    pipe = Pipeline(seg, qc)
    pipe.close()
    pipe.close()
    pipe.submit(_frame(0, _bright_square()[0]))
    assert pipe.stats().frames_in == 0


def _copy_models(models_dir, tmp_path):
    folder = tmp_path / "models"
    shutil.copytree(models_dir, folder)
    return folder


def test_missing_model_file(models_dir, tmp_path):
    folder = _copy_models(models_dir, tmp_path)
    (folder / "tiny-echo-seg.onnx").unlink()
    seg, qc = default_models("echo", folder)
    with pytest.raises(ModelCardError, match="tiny-echo-seg.onnx.*missing"):
        Pipeline(seg, qc)


def test_model_that_does_not_match_its_card(models_dir, tmp_path):
    folder = _copy_models(models_dir, tmp_path)
    with open(folder / "tiny-echo-qc.onnx", "ab") as fh:
        fh.write(b"\0")
    seg, qc = default_models("echo", folder)
    with pytest.raises(ModelCardError, match="sha256"):
        Pipeline(seg, qc)


def test_card_with_wrong_input_shape(models_dir, tmp_path):
    folder = _copy_models(models_dir, tmp_path)
    card_path = folder / "tiny-echo-seg.json"
    raw = json.loads(card_path.read_text())
    raw["input"]["shape"] = [1, 3, 64, 64]
    card_path.write_text(json.dumps(raw))
    with pytest.raises(ModelCardError, match="shape"):
        Pipeline(load_card(card_path))


def test_seg_model_without_probs_output(models_dir, tmp_path):
    folder = _copy_models(models_dir, tmp_path)
    # the QC model in the seg role: right file and hash, wrong contract
    raw = json.loads((folder / "tiny-echo-qc.json").read_text())
    raw["role"] = "seg"
    (folder / "tiny-echo-qc.json").write_text(json.dumps(raw))
    with pytest.raises(ModelCardError, match="lacks"):
        Pipeline(load_card(folder / "tiny-echo-qc.json"))


def test_default_cine_model_is_the_best_dice_within_the_budget(tmp_path):
    """A searched model that fits 50 ms / 22 FPS beats a more accurate one that does not, and
    a baseline only wins when no searched model fits."""
    import json

    from tests.app.engine.tiny_models import write_cine_model

    def card(model_id, method, dice, p95, mean):
        write_cine_model(tmp_path, model_id=model_id)
        path = tmp_path / f"{model_id}.json"
        raw = json.loads(path.read_text())
        raw["method"] = method
        raw.setdefault("metrics", {})["dice"] = {"mean": dice}
        raw["metrics"]["latency_ms"] = {"p50": mean, "p95": p95, "mean": mean}
        path.write_text(json.dumps(raw))

    card("slow-accurate", "msnas-hw", 0.80, 180.0, 170.0)
    card("fast-searched", "rtdnas", 0.70, 40.0, 30.0)
    card("fast-baseline", "baseline-unet3d", 0.75, 30.0, 20.0)
    card("fast-searched-better", "msnas-hw", 0.72, 45.0, 35.0)
    assert default_models("cine", tmp_path)[0].id == "fast-searched-better"
    for name in ("fast-searched-better", "fast-searched"):
        (tmp_path / f"{name}.json").unlink()
    assert default_models("cine", tmp_path)[0].id == "fast-baseline"  # in budget beats accurate but slow
    (tmp_path / "fast-baseline.json").unlink()
    assert default_models("cine", tmp_path)[0].id == "slow-accurate"  # nothing fits: searched, best Dice


def test_true_dice_matches_classes_by_name_with_the_source_label_map(models_dir):
    """The myocardium-only tiny model's class 1 is scored against the label the ground truth calls MYO."""
    seg, qc = default_models("echo", models_dir)
    image, square = _bright_square()
    camus = np.where(square == 1, 2, 0).astype(np.uint8)  # the square is CAMUS 2 MYO
    camus[40:44, 2:6] = 1  # some LV elsewhere
    out = Collector()
    with Pipeline(seg, qc, on_result=out, ground_truth_labels={0: "background", 1: "LV", 2: "MYO", 3: "LA"}) as pipe:
        assert pipe.class_match.ground_truth_label == {1: 2}
        pipe.submit(_frame(0, image, camus))
        assert pipe.drain(timeout=10)
        pipe.set_ground_truth_labels(None)  # unknown label map: numbers again (1 = LV, a few pixels)
        pipe.submit(_frame(1, image, camus))
        assert pipe.drain(timeout=10)
    by_name, by_number = out.results
    assert by_name.true_dice == pytest.approx(1.0, abs=0.05)
    assert by_number.true_dice < 0.1
