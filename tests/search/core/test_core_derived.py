"""Derived networks from genotypes: shapes, same latency keys as the supernets, ONNX export parity."""

import numpy as np
import pytest
import torch

from search.core.derived.multiscale import FusedMultiscaleNet, path_edges
from search.core.derived.nasunet import DerivedNasUnet
from search.core.derived.qcnet import DerivedQcNet, DerivedSegQc
from search.core.genotypes import MultiscaleGenotype, PathGenotype
from search.core.latency_sites import collect_latency_keys
from search.core.sampling import sample_random_genotype
from search.core.supernets.multiscale import MultiscaleConfig, MultiscaleSupernet
from search.core.supernets.nasunet import NasUnetConfig, NasUnetSupernet
from search.core.supernets.qcnet import QcNetConfig, QcSupernet

def export_onnx(model, input_shape, path, output_names=("logits",)):
    """Legacy (TorchScript) export, onnx.checker, and onnxruntime parity with torch.

    The shipped-model exporter lives in ``search.export``; this only proves the graphs export.
    """
    import warnings

    import onnx
    import onnxruntime as ort

    model = model.eval()
    x = torch.randn(input_shape, generator=torch.Generator().manual_seed(0))
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore", DeprecationWarning)  # the legacy exporter warns on every call
        torch.onnx.export(model, (x,), str(path), input_names=["image"], output_names=list(output_names),
                          opset_version=17, dynamo=False)
        ref = model(x)
    onnx.checker.check_model(onnx.load(str(path)))
    ref = [ref] if isinstance(ref, torch.Tensor) else list(ref)
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"image": x.numpy()})
    assert len(got) == len(ref)
    for r, g in zip(ref, got):
        np.testing.assert_allclose(g, r.numpy(), atol=1e-4, rtol=1e-4)
    return path


SEG = NasUnetConfig(depth=2, init_filters=4)
QC = QcNetConfig(init_filters=4, n_stages=2)
MS = MultiscaleConfig(n_layers=3, n_scales=3, base_channels=4, pc_k=2)


def test_derived_segqc_keys_are_covered_by_the_supernets_and_it_exports(tmp_path):
    g = sample_random_genotype("segqc", np.random.default_rng(0))
    seg, qc = DerivedNasUnet(g.seg, SEG, seed=0), DerivedQcNet(g.qc, QC, seed=0)
    net = DerivedSegQc(seg, qc)
    logits, unc, dice = net(torch.randn(2, 3, 16, 16))
    assert logits.shape == (2, 2, 16, 16) and unc.shape == (2, 1, 16, 16) and dice.shape == (2,)
    supernet_keys = collect_latency_keys(NasUnetSupernet(SEG), (3, 16, 16)) | collect_latency_keys(
        QcSupernet(QC), (6, 16, 16)
    )
    assert collect_latency_keys(seg, (3, 16, 16)) <= supernet_keys
    assert collect_latency_keys(qc, (6, 16, 16)) <= supernet_keys
    path = export_onnx(net, (1, 3, 16, 16), tmp_path / "segqc.onnx", output_names=("logits", "uncertainty", "dice"))
    assert path.stat().st_size > 0


@pytest.mark.parametrize("space", ["msnas", "rtdnas"])
def test_fused_multiscale_net_keys_covered_and_exports(space, tmp_path):
    g = sample_random_genotype(space, np.random.default_rng(1), n_layers=3, n_scales=3, n_paths=3)
    net = FusedMultiscaleNet(g, MS, seed=0)
    assert net(torch.randn(2, 1, 2, 8, 8)).shape == (2, 4, 2, 8, 8)
    keys = collect_latency_keys(net, (1, 2, 8, 8))
    assert keys <= collect_latency_keys(MultiscaleSupernet(MS), (1, 2, 8, 8))
    export_onnx(net, (1, 1, 2, 8, 8), tmp_path / "ms.onnx")


def test_shared_path_prefixes_are_computed_once():
    cells = sample_random_genotype("msnas", np.random.default_rng(0), n_layers=3, n_scales=3, n_paths=1).cells
    g = MultiscaleGenotype(cells, (PathGenotype(("ct", "ns", "ep")), PathGenotype(("ct", "ns", "skip"))), 3, 3)
    assert path_edges(g) == [(0, 0, "ct"), (1, 1, "ns"), (2, 1, "ep"), (2, 1, "skip")]
    net = FusedMultiscaleNet(g, MS)
    assert sorted(net.cells) == ["l0_s0_ct", "l1_s1_ns", "l2_s1_ep"]
    assert net.final_scales == [0, 1]


def test_grid_mismatch_is_rejected():
    g = sample_random_genotype("msnas", np.random.default_rng(0), n_layers=4, n_scales=3, n_paths=1)
    with pytest.raises(ValueError, match="grid"):
        FusedMultiscaleNet(g, MS)
