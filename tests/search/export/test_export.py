"""The one export path: parity with PyTorch for each baseline type on phantom inputs, cards that
the app verifies, and cards that disagree with their ONNX file rejected."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from app.cards import ModelCardError, load_card
from app.data.phantom.echo import render_echo_case
from search.baselines.registry import get_baseline
from search.baselines.resnet_qc import ResNetQc
from search.baselines.unet import UNet
from search.export.card_writer import CardContent, TensorSpec
from search.export.onnx_export import PARITY_ATOL, ExportError, check_parity, export_model
from search.train.datasets import CineClipDataset, EchoFrameDataset
from search.train.seg_outputs import SegmentationWithUncertainty
from search.train.synthetic import synthetic_cine_case

ECHO = {0: "background", 1: "myocardium"}
CINE = {0: "background", 1: "RV", 2: "MYO", 3: "LV"}


@pytest.fixture(scope="module")
def echo_inputs():
    """Preprocessed frames of a real phantom echo patient at 64x64."""
    ds = EchoFrameDataset([render_echo_case(0, 0, n_frames=2, size=64)], size=(64, 64))
    return [{"image": ds[i][0].numpy()[None]} for i in range(len(ds))]


def _seg_content(model_id, inputs, n_classes, classes, modality="echo", clip_length=1, **kw):
    shape = inputs[0][next(iter(inputs[0]))].shape
    name = next(iter(inputs[0]))
    out_spatial = shape[2:]
    return CardContent(model_id=model_id, modality=modality, role="seg", method="baseline-unet",
                       inputs=[TensorSpec(name, shape)],
                       outputs=[TensorSpec("probs", (1, n_classes, *out_spatial)),
                                TensorSpec("uncertainty", (1, 1, *out_spatial))],
                       classes=classes, normalisation={"kind": "scale", "scale": 1 / 255}, layout="NCHW",
                       data={"source": "test", "seed": 0}, clip_length=clip_length, **kw)


def _small_unet(name: str, **changes) -> UNet:
    torch.manual_seed(0)
    return UNet(dataclasses.replace(get_baseline(name).unet, initial_filters=4, **changes))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["unet8-resnet18", "unet16-resnet18"])
def test_echo_unet_and_qc_export_with_parity(tmp_path, echo_inputs, name):
    # half the registry's width (U-net(8) -> 4, U-net(16) -> 8 initial filters): the two rows stay distinct
    spec = get_baseline(name)
    torch.manual_seed(0)
    seg = SegmentationWithUncertainty(UNet(dataclasses.replace(spec.unet, initial_filters=spec.unet.initial_filters // 2)))
    card = export_model(seg, _seg_content("seg", echo_inputs, 2, ECHO, pairs_with="qc"), tmp_path, echo_inputs,
                        evaluate=lambda p: {"dice": {"per_class": {"myocardium": 0.5}, "mean": 0.5}}, latency_repeats=3)
    assert card.verify() is card
    raw = card.raw
    assert raw["export"]["parity"]["max_abs_diff"] <= PARITY_ATOL
    assert raw["export"]["parity"]["inputs"] == 2
    assert raw["metrics"]["flops"] > 0 and raw["metrics"]["params"] > 0
    assert raw["metrics"]["latency_ms"]["p50"] > 0 and raw["metrics"]["fps"] > 0
    assert "logical cores" in raw["metrics"]["hardware"] and "onnxruntime" in raw["metrics"]["runtime"]
    assert raw["genotype"] is None and raw["pairs_with"] == "qc" and raw["metrics"]["dice"]["mean"] == 0.5
    assert not list(tmp_path.glob("*.data"))  # one self-contained file

    torch.manual_seed(0)
    qc = ResNetQc(dataclasses.replace(spec.qc, width=4))
    rng = np.random.default_rng(0)
    feeds = [dict(f, probs=rng.random((1, 2, 64, 64), dtype=np.float32),
                  uncertainty=rng.random((1, 1, 64, 64), dtype=np.float32)) for f in echo_inputs]
    qc_content = CardContent("qc", "echo", "qc", "baseline-resnet18",
                             [TensorSpec(n, feeds[0][n].shape) for n in ("image", "probs", "uncertainty")],
                             [TensorSpec("dice", (1, 1))], ECHO, {"kind": "scale", "scale": 1 / 255}, "NCHW",
                             {"source": "test"})
    qc_card = export_model(qc, qc_content, tmp_path, feeds, latency_repeats=3)
    assert [i["name"] for i in qc_card.raw["inputs"]] == ["image", "probs", "uncertainty"]


@pytest.mark.parametrize("name", ["unet3d-d3-if16", "unet3d-d4-if32"])
def test_cine_3d_unet_export_with_parity(tmp_path, name):
    case = synthetic_cine_case(0, 0, n_frames=4, n_slices=1, size=(32, 32))
    ds = CineClipDataset([case], clip_length=4, size=(32, 32))
    feeds = [{"clip": ds[0][0].numpy()[None]}]
    net = SegmentationWithUncertainty(_small_unet(name, clip_length=4))
    content = _seg_content(name, feeds, 4, CINE, modality="cine", clip_length=4)
    card = export_model(net, content, tmp_path, feeds, latency_repeats=2)
    assert card.input_shape == (1, 1, 4, 32, 32) and card.clip_length == 4


@pytest.mark.parametrize("name", ["unet2d-d3-if16", "unet2d-d5-if64"])
def test_cine_per_frame_unet_export_with_parity(tmp_path, name):
    case = synthetic_cine_case(0, 0, n_frames=2, n_slices=1, size=(32, 32))
    clip = CineClipDataset([case], clip_length=2, size=(32, 32), per_frame_norm=True)[0][0].numpy()
    feeds = [{"image": np.ascontiguousarray(clip[None, :, t])} for t in range(2)]
    net = SegmentationWithUncertainty(_small_unet(name))
    card = export_model(net, _seg_content(name, feeds, 4, CINE, modality="cine"), tmp_path, feeds, latency_repeats=2)
    assert card.input_shape == (1, 1, 32, 32) and card.clip_length == 1


class _Drifting(torch.nn.Module):
    """Behaves differently in PyTorch after export (a stand-in for an export bug)."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        self.offset = 0.0

    def forward(self, x):
        probs, unc = self.inner(x)
        return probs, unc + self.offset


def test_parity_failure_is_an_export_error(tmp_path, echo_inputs):
    net = _Drifting(SegmentationWithUncertainty(_small_unet("unet8-resnet18")))
    card = export_model(net, _seg_content("drift", echo_inputs, 2, ECHO), tmp_path, echo_inputs[:1], latency_repeats=2)
    net.offset = 1e-2
    with pytest.raises(ExportError, match="uncertainty.*differs from PyTorch"):
        check_parity(net, card.onnx_path, echo_inputs, ["probs", "uncertainty"], ["image"], model_id="drift")


def test_parity_inputs_must_match_the_card(tmp_path, echo_inputs):
    content = _seg_content("bad", echo_inputs, 2, ECHO)
    content.inputs = [TensorSpec("image", (1, 3, 32, 32))]
    with pytest.raises(ExportError, match="shape"):
        export_model(SegmentationWithUncertainty(_small_unet("unet8-resnet18")), content, tmp_path, echo_inputs)


@pytest.fixture(scope="module")
def exported(tmp_path_factory, echo_inputs):
    out = tmp_path_factory.mktemp("models")
    seg = SegmentationWithUncertainty(_small_unet("unet8-resnet18"))
    return export_model(seg, _seg_content("m", echo_inputs, 2, ECHO), out, echo_inputs[:1], latency_repeats=2)


def test_card_with_a_stale_hash_is_rejected(exported, tmp_path):
    (tmp_path / "m.onnx").write_bytes(exported.onnx_path.read_bytes())
    raw = dict(exported.raw, onnx_sha256="0" * 64)
    (tmp_path / "m.json").write_text(json.dumps(raw))
    with pytest.raises(ModelCardError, match="sha256.*does not match"):
        load_card(tmp_path / "m.json").verify()


def test_card_with_a_wrong_input_shape_is_rejected(exported, tmp_path):
    (tmp_path / "m.onnx").write_bytes(exported.onnx_path.read_bytes())
    raw = json.loads(exported.card_path.read_text())
    raw["input"]["shape"] = [1, 3, 128, 128]
    (tmp_path / "m.json").write_text(json.dumps(raw))
    with pytest.raises(ModelCardError, match="has shape .* but the card says"):
        load_card(tmp_path / "m.json").verify()


def test_modified_onnx_is_rejected(exported, tmp_path):
    (tmp_path / "m.json").write_text(exported.card_path.read_text())
    data = bytearray(exported.onnx_path.read_bytes())
    data[-10] ^= 0xFF
    (tmp_path / "m.onnx").write_bytes(bytes(data))
    with pytest.raises(ModelCardError, match="sha256"):
        load_card(tmp_path / "m.json").verify()


def test_card_is_plain_json_with_the_documented_fields(exported):
    raw = json.loads(exported.card_path.read_text())
    for key in ("id", "modality", "role", "method", "input", "outputs", "classes", "genotype", "metrics", "data",
                "onnx_sha256", "created", "quantization", "clip_length"):
        assert key in raw, key
    assert raw["input"]["normalisation"] == {"kind": "scale", "scale": 1 / 255}
    assert raw["input"]["layout"] == "NCHW" and raw["input"]["dtype"] == "float32"
