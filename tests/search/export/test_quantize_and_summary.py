"""INT8: shipped only when faster at <= 0.005 Dice loss; the summary table of shipped models."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import onnx
import pytest
import torch

from app.cards import load_card
from search.baselines.registry import get_baseline
from search.baselines.unet import UNet
from search.export.card_writer import CardContent, TensorSpec
from search.export.onnx_export import export_model
from search.export.quantize import quantize_if_faster, quantize_model
from search.export.summary import format_summary, summary_markdown, summary_rows
from search.train.seg_outputs import SegmentationWithUncertainty


@pytest.fixture(scope="module")
def fp32_card(tmp_path_factory):
    torch.manual_seed(0)
    unet = UNet(dataclasses.replace(get_baseline("unet8-resnet18").unet, initial_filters=4, depth=3))
    rng = np.random.default_rng(0)
    feeds = [{"image": rng.random((1, 3, 32, 32), dtype=np.float32)}]
    content = CardContent("q", "echo", "seg", "baseline-unet", [TensorSpec("image", (1, 3, 32, 32))],
                          [TensorSpec("probs", (1, 2, 32, 32)), TensorSpec("uncertainty", (1, 1, 32, 32))],
                          {0: "background", 1: "myocardium"}, {"kind": "scale", "scale": 1 / 255}, "NCHW",
                          {"source": "test"})
    return export_model(SegmentationWithUncertainty(unet), content, tmp_path_factory.mktemp("q"), feeds,
                        evaluate=lambda p: {"dice": {"mean": 0.8}}, latency_repeats=2)


def _calibration(n=4):
    rng = np.random.default_rng(1)
    return [{"image": rng.random((1, 3, 32, 32), dtype=np.float32)} for _ in range(n)]


def test_quantized_graph_has_int8_weights_and_a_float_head(fp32_card, tmp_path):
    out = tmp_path / "q8.onnx"
    quantize_model(fp32_card.onnx_path, out, _calibration())
    graph = onnx.load(str(out)).graph
    ops = {n.op_type for n in graph.node}
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
    assert {"Softmax", "Log"} <= ops
    softmax = next(n for n in graph.node if n.op_type == "Softmax")
    consumers = [n.op_type for n in graph.node if softmax.output[0] in n.input]
    assert consumers and "QuantizeLinear" not in consumers  # probabilities and entropy stay float


def test_int8_with_too_much_dice_loss_is_not_shipped(fp32_card):
    decision = quantize_if_faster(fp32_card, _calibration(), lambda p: {"dice": {"mean": 0.8 - 0.02}},
                                  _calibration(1)[0], repeats=3)
    assert decision.shipped is None and "not shipped" in decision.reason
    assert not (fp32_card.onnx_path.parent / "q-int8.onnx").exists()


def test_int8_card_says_what_it_is_when_shipped(fp32_card):
    decision = quantize_if_faster(fp32_card, _calibration(), lambda p: {"dice": {"mean": 0.8}},
                                  _calibration(1)[0], repeats=3)
    if decision.int8_p50_ms >= decision.fp32_p50_ms:  # on this machine it may simply not be faster
        assert decision.shipped is None
        return
    card = decision.shipped
    assert card.id == "q-int8" and card.verify() is card
    q = card.raw["quantization"]
    assert q["float_model"] == "q" and "int8" in q["kind"] and q["int8_p50_ms"] < q["fp32_p50_ms"]


def _card(tmp_path, model_id, role, p50, p95, dice=None, qc_mae=None, pairs_with=None, modality="echo"):
    raw = {"id": model_id, "modality": modality, "role": role, "method": "baseline-x",
           "input": {"name": "image", "shape": [1, 3, 8, 8]}, "outputs": [], "classes": {"0": "bg"},
           "metrics": {"latency_ms": {"p50": p50, "p95": p95}, "dice": {"mean": dice} if dice is not None else None,
                       "qc_mae": qc_mae},
           "data": {}, "onnx_sha256": "0"}
    if pairs_with:
        raw["pairs_with"] = pairs_with
    path = tmp_path / f"{model_id}.json"
    path.write_text(json.dumps(raw))
    return load_card(path)


def test_summary_adds_the_qc_partner_and_applies_the_budget(tmp_path):
    cards = [_card(tmp_path, "seg", "seg", 30.0, 40.0, dice=0.8, pairs_with="qc"),
             _card(tmp_path, "qc", "qc", 15.0, 20.0, qc_mae=0.05),
             _card(tmp_path, "cine", "seg", 400.0, 450.0, dice=0.7, modality="cine")]
    rows = {r.model: r for r in summary_rows(cards)}
    pair = rows["seg + qc"]
    assert pair.p50_ms == 45.0 and pair.p95_ms == 60.0 and pair.qc_mae == 0.05
    assert not pair.real_time  # p95 60 ms > 50 ms
    assert not rows["cine"].real_time
    table = format_summary(cards)
    assert "seg + qc" in table and "cine" in table and len(table.splitlines()) == 4


def test_summary_markdown_has_one_row_per_seg_model_with_its_machine(tmp_path):
    seg = _card(tmp_path, "seg", "seg", 30.0, 40.0, dice=0.8, pairs_with="qc")
    seg.raw["metrics"].update(hardware="Test CPU, 2 logical cores, x86_64, Linux 6", runtime="onnxruntime 1.0 CPU, 2 threads, x")
    cards = [seg, _card(tmp_path, "qc", "qc", 15.0, 20.0, qc_mae=0.05)]
    lines = summary_markdown(cards).splitlines()
    assert len(lines) == 3 and "meets 50 ms / 22 FPS" in lines[0]
    assert lines[2] == ("| seg + qc | echo | 0.800 | 0.050 | 45.0 | 60.0 | 22.2 | no | "
                        "Test CPU, 2 logical cores, x86_64; onnxruntime 1.0 CPU, 2 threads; load not recorded |")
    seg.raw["metrics"]["latency_context"] = {"load_avg_before": [0.84, 1.0, 1.1]}
    assert summary_markdown(cards).splitlines()[2].endswith("2 threads; load 0.84 |")
    assert summary_markdown([]) == "(no segmentation models)"


def test_summary_uses_the_newest_frame_dice_of_clip_models_and_says_so(tmp_path):
    from app.cards import NEWEST_FRAME_MARK, NEWEST_FRAME_NOTE

    clip = _card(tmp_path, "unet3d", "seg", 1000.0, 1200.0, dice=0.630, modality="cine")
    clip.raw.update(clip_length=20, input={"name": "clip", "shape": [1, 1, 20, 128, 112]})
    clip.raw["metrics"]["dice_newest_frame"] = {"mean": 0.368}
    stream = _card(tmp_path, "stream", "seg", 5.0, 6.0, dice=0.833, modality="cine")
    rows = {r.model: r for r in summary_rows([clip, stream])}
    assert rows["unet3d"].dice == 0.368 and rows["unet3d"].newest_frame and rows["unet3d"].dice_all_positions == 0.630
    assert rows["stream"].dice == 0.833 and not rows["stream"].newest_frame
    md = summary_markdown([clip, stream])
    assert f"| unet3d | cine | 0.368{NEWEST_FRAME_MARK} |" in md and "| stream | cine | 0.833 |" in md
    assert NEWEST_FRAME_NOTE in md.splitlines()[-1] and "unet3d 0.630" in md.splitlines()[-1]
    text = format_summary([clip, stream])
    assert f"0.368{NEWEST_FRAME_MARK}" in text and NEWEST_FRAME_NOTE in text.splitlines()[-1]
    assert NEWEST_FRAME_NOTE not in format_summary([stream]) + summary_markdown([stream])
