"""The one export path on every derived (searched) network type, wrapped as the methods ship them:
segqc-hw's NAS-Unet (probs + in-graph uncertainty) and its QC net (three inputs), and the fused
multi-scale net of msnas-hw and rtdnas (clip -> softmax). Parity with PyTorch on phantom inputs
(tolerance ``PARITY_ATOL``), a verified card recording the genotype."""

from __future__ import annotations

import numpy as np
import pytest

from search.core.derived.multiscale import FusedMultiscaleNet
from search.core.derived.nasunet import DerivedNasUnet
from search.core.derived.qcnet import DerivedQcNet
from search.core.sampling import sample_random_genotype
from search.core.supernets.multiscale import MultiscaleConfig
from search.core.supernets.nasunet import NasUnetConfig
from search.core.supernets.qcnet import QcNetConfig
from search.export.card_writer import CardContent, TensorSpec
from search.export.onnx_export import PARITY_ATOL, export_model
from search.methods.msnas_hw.shipping import ClipProbabilities
from search.methods.segqc_hw.networks import QcOnParts, SegLogits
from search.train.datasets import CineClipDataset, EchoFrameDataset
from search.train.seg_outputs import SegmentationWithUncertainty
from search.train.synthetic import synthetic_cine_case

ECHO = {0: "background", 1: "myocardium"}
CINE = {0: "background", 1: "RV", 2: "MYO", 3: "LV"}
SCALE = {"kind": "scale", "scale": 1 / 255}


def _check(card, genotype) -> None:
    assert card.verify() is card
    parity = card.raw["export"]["parity"]
    assert parity["max_abs_diff"] <= PARITY_ATOL and parity["inputs"] >= 1
    assert card.raw["genotype"] == genotype.to_dict()
    assert card.raw["metrics"]["params"] > 0 and card.raw["metrics"]["flops"] > 0


@pytest.fixture(scope="module")
def echo_frames():
    """Two preprocessed frames of a phantom echo patient at 32x32, ``(1, 3, 32, 32)`` each."""
    from app.data.phantom.echo import render_echo_case

    ds = EchoFrameDataset([render_echo_case(0, 0, n_frames=2, size=32)], size=(32, 32))
    return [ds[i][0].numpy()[None] for i in range(len(ds))]


@pytest.mark.slow
def test_searched_segqc_pair_exports_with_parity(tmp_path, echo_frames):
    g = sample_random_genotype("segqc", np.random.default_rng(3))
    seg = SegmentationWithUncertainty(SegLogits(DerivedNasUnet(g.seg, NasUnetConfig(depth=2, init_filters=4), seed=0)))
    feeds = [{"image": f} for f in echo_frames]
    spec = (1, 2, 32, 32)
    content = CardContent("seg", "echo", "seg", "segqc-hw", [TensorSpec("image", (1, 3, 32, 32))],
                          [TensorSpec("probs", spec), TensorSpec("uncertainty", (1, 1, 32, 32))], ECHO, SCALE, "NCHW",
                          {"source": "test"}, genotype=g.seg.to_dict(), pairs_with="qc")
    seg_card = export_model(seg.eval(), content, tmp_path, feeds, latency_repeats=2)
    _check(seg_card, g.seg)

    qc = QcOnParts(DerivedQcNet(g.qc, QcNetConfig(init_filters=4, n_stages=2), seed=0))
    rng = np.random.default_rng(0)
    qc_feeds = [dict(f, probs=rng.random(spec, dtype=np.float32), uncertainty=rng.random((1, 1, 32, 32), dtype=np.float32))
                for f in feeds]
    qc_content = CardContent("qc", "echo", "qc", "segqc-hw",
                             [TensorSpec(n, qc_feeds[0][n].shape) for n in ("image", "probs", "uncertainty")],
                             [TensorSpec("dice", (1,))], ECHO, SCALE, "NCHW", {"source": "test"}, genotype=g.qc.to_dict())
    _check(export_model(qc.eval(), qc_content, tmp_path, qc_feeds, latency_repeats=2), g.qc)


@pytest.mark.parametrize("space", ["msnas", "rtdnas"])
def test_searched_multiscale_net_exports_with_parity(tmp_path, space):
    g = sample_random_genotype(space, np.random.default_rng(1), n_layers=3, n_scales=3, n_paths=2)
    net = ClipProbabilities(FusedMultiscaleNet(g, MultiscaleConfig(n_layers=3, n_scales=3, base_channels=4, pc_k=2), seed=0))
    case = synthetic_cine_case(0, 0, n_frames=4, n_slices=1, size=(16, 16))
    feeds = [{"clip": CineClipDataset([case], clip_length=4, size=(16, 16))[0][0].numpy()[None]}]
    content = CardContent(space, "cine", "seg", f"{space}-test", [TensorSpec("clip", (1, 1, 4, 16, 16))],
                          [TensorSpec("probs", (1, 4, 4, 16, 16))], CINE, {"kind": "zscore"}, "NCTHW",
                          {"source": "test"}, genotype=g.to_dict(), clip_length=4)
    card = export_model(net.eval(), content, tmp_path, feeds, latency_repeats=2)
    _check(card, g)
    assert card.input_shape == (1, 1, 4, 16, 16) and card.clip_length == 4
