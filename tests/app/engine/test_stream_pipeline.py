"""Streaming cine models in the app (issue 17): the card's ``streaming`` contract, the state carried
from frame to frame by the pipeline (every frame, in order, also dropped ones), and its resets."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest
import torch

from app.cards import ModelCardError, load_card, parse_streaming
from app.engine.models import load_model
from app.engine.pipeline import Pipeline
from app.engine.preprocess import preprocess
from app.engine.stages import SegStage
from app.engine.types import Frame, FrameResult
from tests.app.engine.stream_models import write_stream_model

pytestmark = pytest.mark.timeout(120)
ATOL = 1e-4


@pytest.fixture(scope="module")
def stream_model(tmp_path_factory):
    """``(card path, causal clip network)`` of a tiny streaming model shipped through search.export."""
    return write_stream_model(tmp_path_factory.mktemp("stream-models"))


def _images(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 200, (40, 36)).astype(np.uint8)
    return [np.clip(base.astype(int) + rng.integers(-40, 40, base.shape) + 5 * t, 0, 255).astype(np.uint8)
            for t in range(n)]


def _frame(index: int, image: np.ndarray, **meta) -> Frame:
    return Frame(index=index, image=image, t_arrival=time.perf_counter_ns(), meta={"slice": 0, **meta})


def _reference(net, card, images: list[np.ndarray]) -> np.ndarray:
    """The causal clip network on the frames (each z-scored on its own, as the app prepares them): (T, C, h, w)."""
    x = np.concatenate([preprocess(im[None], card.raw) for im in images], axis=2)
    with torch.no_grad():
        probs = net(torch.from_numpy(x)).numpy()
    return probs[0].transpose(1, 0, 2, 3)


class Collector:
    def __init__(self, gate: threading.Event | None = None):
        self.results: list[FrameResult] = []
        self.gate = gate

    def __call__(self, result: FrameResult) -> None:
        if self.gate is not None:
            self.gate.wait(timeout=30)
        self.results.append(result)


def test_card_streaming_contract(stream_model):
    card_path, _ = stream_model
    card = load_card(card_path)
    spec = card.streaming
    assert spec.frame_input == "frame" and spec.probs_output == "probs"
    assert [s.input for s in spec.states] == [f"state_{i}" for i in range(len(spec.states))]
    assert [s.output for s in spec.states] == [f"state_out_{i}" for i in range(len(spec.states))]
    assert {s.init for s in spec.states} == {0.0, float("-inf")}
    assert all(len(s.shape) == 5 and s.shape[2] in (2, 4) for s in spec.states)
    raw = json.loads(card_path.read_text())
    assert raw["streaming"]["states"][0]["shape"] == list(spec.states[0].shape)


@pytest.mark.parametrize(("change", "problem"), [
    (lambda s: s.update(states=[]), "non-empty list"),
    (lambda s: s["states"][0].update(init="nan"), "init must be"),
    (lambda s: s["states"][0].update(init=None), "init must be"),
    (lambda s: s["states"][1].update(input="state_0"), "used twice"),
    (lambda s: s["states"][0].update(shape=[1, 0, 2]), "positive integers"),
    (lambda s: s.update(frame_input="clip"), "is not the card's input"),
    (lambda s: s.pop("frame_input"), "frame_input"),
])
def test_bad_streaming_fields_are_clear_errors(stream_model, tmp_path, change, problem):
    card_path, _ = stream_model
    raw = json.loads(card_path.read_text())
    change(raw["streaming"])
    bad = tmp_path / card_path.name
    bad.write_text(json.dumps(raw))
    with pytest.raises(ModelCardError, match=problem):
        load_card(bad)
    with pytest.raises(ModelCardError):
        parse_streaming("not an object")


def test_a_card_whose_states_are_not_in_the_model_is_refused(stream_model, tmp_path):
    card_path, _ = stream_model
    raw = json.loads(card_path.read_text())
    raw["streaming"]["states"][0]["input"] = "nope"
    bad = tmp_path / card_path.name
    bad.write_text(json.dumps(raw))
    (tmp_path / card_path.with_suffix(".onnx").name).write_bytes(card_path.with_suffix(".onnx").read_bytes())
    with pytest.raises(ModelCardError, match="'nope'"):
        SegStage(load_model(load_card(bad), warm_up_runs=0))


def test_pipeline_streams_every_frame_equal_to_the_causal_clip_model(stream_model):
    card_path, net = stream_model
    card = load_card(card_path)
    images = _images(9)
    ref = _reference(net, card, images)
    out = Collector()
    with Pipeline(card, on_result=out) as pipe:
        for k, im in enumerate(images):
            assert pipe.wait_slot(timeout=10)
            pipe.submit(_frame(k, im))
        assert pipe.drain(timeout=30)
    assert [r.frame.index for r in out.results] == list(range(9))
    for r in out.results:
        assert r.error is None and r.mask is not None and r.mask.shape == images[0].shape
        # from the first frame on: the zero initial state is the clip model's causal padding
        assert float(np.abs(r.probabilities - ref[r.frame.index]).max()) < ATOL, f"frame {r.frame.index}"


def test_dropped_frames_still_advance_the_state(stream_model):
    """Frames whose overlay is dropped (the worker busy) are still fed to the state, in order."""
    card_path, net = stream_model
    card = load_card(card_path)
    images = _images(16, seed=1)
    ref = _reference(net, card, images)
    gate = threading.Event()
    out = Collector(gate)
    with Pipeline(card, on_result=out) as pipe:
        for k, im in enumerate(images):  # the delivery side is held: the worker blocks, frames pile up
            pipe.submit(_frame(k, im))
        gate.set()
        assert pipe.drain(timeout=30)
        stats = pipe.stats()
    done = [r.frame.index for r in out.results]
    assert stats.dropped >= 16 - 5 and len(done) + stats.dropped == 16
    assert done[-1] == 15
    for r in out.results:
        assert r.error is None
        assert float(np.abs(r.probabilities - ref[r.frame.index]).max()) < ATOL, f"frame {r.frame.index}"


def test_state_resets_on_slice_change_seek_and_source_change(stream_model):
    card_path, net = stream_model
    card = load_card(card_path)
    images = _images(16, seed=2)
    # (index, slice, case): slice 0; slice 1 (a slice change); a seek (index jumps); a new source (index 0 again)
    segments = [
        [(0, 0, "a"), (1, 0, "a"), (2, 0, "a"), (3, 0, "a"), (4, 0, "a")],
        [(5, 1, "a"), (6, 1, "a"), (7, 1, "a")],
        [(12, 1, "a"), (13, 1, "a"), (14, 1, "a")],
        [(0, 1, "b"), (1, 1, "b"), (2, 1, "b"), (3, 1, "b"), (4, 1, "b")],
    ]
    out = Collector()
    expected = []
    k = 0
    with Pipeline(card, on_result=out) as pipe:
        for seg in segments:
            ims = images[k:k + len(seg)]
            k += len(seg)
            expected.extend(_reference(net, card, ims))
            for (index, z, case), im in zip(seg, ims):
                assert pipe.wait_slot(timeout=10)
                pipe.submit(Frame(index=index, image=im, t_arrival=time.perf_counter_ns(),
                                  meta={"slice": z, "case": case}))
        assert pipe.drain(timeout=30)
        resets = pipe._seg.stream_resets
    assert len(out.results) == len(expected) == 16
    for i, (r, e) in enumerate(zip(out.results, expected)):
        assert float(np.abs(r.probabilities - e).max()) < ATOL, f"result {i} (frame {r.frame.index})"
    assert resets == 3


def test_explicit_reset_and_a_case_change_restart_the_state(stream_model):
    card_path, net = stream_model
    card = load_card(card_path)
    images = _images(6, seed=3)
    stage = SegStage(load_model(card, warm_up_runs=0))
    assert stage.is_streaming and not stage.is_clip_model and stage.observe(_frame(0, images[0])) is None
    first = [stage.segment(stage.prepare(_frame(i, im), None), _frame(i, im)).probs for i, im in enumerate(images[:3])]
    stage.reset_stream()  # e.g. the caller opened another source whose frames happen to continue the index
    again = stage.segment(stage.prepare(_frame(3, images[3]), None), _frame(3, images[3])).probs
    ref = _reference(net, card, images[:3])
    ref_again = _reference(net, card, images[3:4])
    assert all(float(np.abs(p[0] - r).max()) < ATOL for p, r in zip(first, ref))
    assert float(np.abs(again[0] - ref_again[0]).max()) < ATOL
    with pytest.raises(ValueError, match="needs the frame"):
        stage.segment(stage.prepare(_frame(4, images[4]), None))
