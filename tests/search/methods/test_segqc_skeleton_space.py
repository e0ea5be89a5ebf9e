"""segqc-hw ``--space skeleton`` (issue 16): the U-net skeleton space as the segmentation search space beside the
paper's QC cells: config and CLI, the pair genotype, the latency model, the derived pair, the card kind, and the
smoke run end to end."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from search.core.derived.unet_skeleton import SkeletonUNet, UNetSkeleton
from search.core.genotypes import GenotypeError, SkeletonQcGenotype, genotype_from_json
from search.core.sampling import sample_random_genotype
from search.methods.segqc_hw.config import SegQcConfig, preset


def _skeleton(cfg: SegQcConfig, **space) -> SegQcConfig:
    return replace(cfg, space=replace(cfg.space, seg_space="skeleton", **space))


def _qc_genotype(seed: int = 0):
    import numpy as np

    return sample_random_genotype("segqc", np.random.default_rng(seed), n_nodes=2).qc


def test_cell_space_config_record_is_what_it_was_and_the_skeleton_one_names_its_own_fields() -> None:
    from search.methods.segqc_hw.config import CELL_SEG_FIELDS, SKELETON_FIELDS
    from search.methods.segqc_hw.latency_model import space_record

    cfg = preset("default")
    assert not set(SKELETON_FIELDS) & set(cfg.to_dict()["space"])  # cell-space hashes unchanged
    assert not set(SKELETON_FIELDS) & set(space_record(cfg.space))
    sk = _skeleton(cfg)
    space = json.loads(json.dumps(sk.to_dict()))["space"]
    assert space["seg_space"] == "skeleton" and space["input_stride"] == 2
    assert space["skeleton_widths"] == [[8, 12, 16], [16, 24, 32], [32, 48, 64], [64, 96, 128]]
    assert not set(CELL_SEG_FIELDS) & set(space)
    assert space_record(sk.space)["seg_space"] == "skeleton"
    from search.report.sections import config_from_dict

    assert config_from_dict(SegQcConfig, json.loads(json.dumps(sk.to_dict()))).space == sk.space


@pytest.mark.parametrize("space, match", [
    ({"seg_space": "cellz"}, "unknown segmentation space"),
    ({"seg_space": "skeleton", "skeleton_widths": ((16, 8),)}, "ascending"),
    ({"seg_space": "skeleton", "skeleton_blocks": ("c2", "x1")}, "block token"),
    ({"seg_space": "skeleton", "input_stride": 3}, "stride"),
])
def test_bad_skeleton_space_is_refused(space: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        replace(preset("smoke").space, **space)


def _cli_config(argv: list[str]) -> SegQcConfig:
    from search.methods.segqc_hw import cli

    parser = argparse.ArgumentParser()
    cli.configure(parser)
    args = parser.parse_args(argv)
    return cli._skeleton_space(args, preset("smoke").space, "segqc-hw")


def test_cli_space_flags() -> None:
    space = _cli_config(["--space", "skeleton", "--skeleton-widths", "8,16", "16,32", "--skeleton-blocks", "c2", "s1",
                         "--input-stride", "1"])
    assert space.seg_space == "skeleton" and space.skeleton_widths == ((8, 16), (16, 32))
    assert space.skeleton_blocks == ("c2", "s1") and space.input_stride == 1
    assert _cli_config([]).seg_space == "cells"
    with pytest.raises(SystemExit, match="only with --space skeleton"):
        _cli_config(["--skeleton-blocks", "c2"])
    with pytest.raises(SystemExit, match="comma-separated"):
        _cli_config(["--space", "skeleton", "--skeleton-widths", "8;16"])
    with pytest.raises(SystemExit, match="ascending"):
        _cli_config(["--space", "skeleton", "--skeleton-widths", "16,8"])


def test_pair_genotype_round_trips_and_refuses_a_bad_spec() -> None:
    g = SkeletonQcGenotype(UNetSkeleton.parse("/2:8c2-16s1"), _qc_genotype())
    assert genotype_from_json(g.to_json()) == g
    assert g.to_dict()["skeleton"] == "/2:8c2-16s1"
    with pytest.raises(GenotypeError, match="skeleton genotype"):
        SkeletonQcGenotype.from_dict({"skeleton": "8q2", "qc": g.qc.to_dict()})


def _full_table(keys) -> dict[str, float]:
    """A synthetic table: every key a distinct, deterministic cost."""
    return {k.canonical(): 0.1 + (hash(k.canonical()) % 997) / 100.0 for k in keys}


def test_latency_model_is_the_skeleton_expectation_plus_the_qc_cells_and_prices_a_derived_pair() -> None:
    from search.core.derived.qcnet import DerivedQcNet
    from search.core.estimators import AdditiveLatency, predict_latency
    from search.core.latency_sites import collect_latency_keys
    from search.core.supernets.unet_skeleton import derived_latency
    from search.latency.lut import LatencyTable
    from search.methods.segqc_hw.latency_model import SkeletonFrameworkLatency
    from search.methods.segqc_hw.search import build_supernets, qc_config, seg_config

    cfg = _skeleton(preset("smoke"))
    choices, qc_cfg, r = seg_config(cfg), qc_config(cfg), 64
    seg, qc = build_supernets(cfg, seed=0)
    keys = set(seg.net.latency_keys(r)) | collect_latency_keys(qc.net, (qc_cfg.in_channels, r, r))
    table = LatencyTable()
    for key, ms in _full_table(keys).items():
        from search.latency.keys import OpKey

        table.set(OpKey.parse(key), ms)
    model = SkeletonFrameworkLatency(table, r, choices, qc_cfg)
    expected = model.bind(seg.net, qc.net)
    want = seg.net.expected_latency(table, r) + AdditiveLatency([(qc.net, (qc_cfg.in_channels, r, r))], table)()
    assert float(expected(None, None).detach()) == pytest.approx(float(want.detach()), rel=1e-6)
    sampled = expected(1.0, torch.Generator().manual_seed(0))
    sampled.backward()
    assert all(p.grad is not None for p in seg.net.arch_parameters())
    g = SkeletonQcGenotype(seg.net.decode(), _qc_genotype())
    qc_ms = predict_latency(DerivedQcNet(g.qc, qc_cfg), (qc_cfg.in_channels, r, r), table)
    assert model.of_genotype(g) == pytest.approx(derived_latency(g.seg, table, r, 3, 2) + qc_ms)


def test_derived_pair_and_the_card_architecture_rebuild_the_same_u() -> None:
    from search.build import build_architecture
    from search.export.architecture import ArchitectureError, from_legacy
    from search.methods.segqc_hw.search import build_derived

    cfg = _skeleton(preset("smoke"))
    g = SkeletonQcGenotype(UNetSkeleton.parse("/2:8c2-16s1-32c1-64s2"), _qc_genotype())
    seg, qc = build_derived(cfg, g, seed=3)
    again, _ = build_derived(cfg, g, seed=3)
    assert isinstance(seg.net, SkeletonUNet)
    x = torch.rand(2, 3, 32, 32)
    seg.eval(), again.eval()
    assert seg(x).shape == (2, 2, 32, 32) and torch.equal(seg(x), again(x))  # seeded
    probs = torch.softmax(seg(x), 1)
    assert qc(x, probs, probs[:, :1]).shape == (2,)
    arch = from_legacy({"unet_skeleton": {"spec": g.seg.spec}}, genotype=None, input_shape=(1, 3, 32, 32),
                       n_classes=2, output_names=["probs", "uncertainty"])
    assert arch.kind == "unet_skeleton" and arch.args.spec == "/2:8c2-16s1-32c1-64s2"
    rebuilt = build_architecture(arch)
    assert sum(p.numel() for p in rebuilt.parameters()) == sum(p.numel() for p in seg.parameters())
    with pytest.raises(ArchitectureError, match="8q2"):
        from_legacy({"unet_skeleton": {"spec": "8q2"}}, genotype=None, input_shape=(1, 3, 32, 32), n_classes=2,
                    output_names=["probs", "uncertainty"])


def test_smoke_run_in_the_skeleton_space_end_to_end(tmp_path: Path, monkeypatch) -> None:
    """Phantoms -> LUT (skeleton keys + QC cells) -> searches of the skeleton supernet -> retrained rows, random
    controls from the skeleton space -> Table II -> report -> a pair whose seg card is a ``unet_skeleton``."""
    from app.cards import load_card
    from search.build import build_from_card
    from search.methods.segqc_hw.experiment import RunPaths, run_segqc_hw

    monkeypatch.setenv("CARDIAC_RT_CACHE", str(tmp_path / "phantoms"))
    cfg = _skeleton(preset("smoke"), skeleton_widths=((4, 8), (8, 16), (16, 32)))
    paths = RunPaths(out=tmp_path / "run", models=tmp_path / "models", docs=tmp_path / "docs")
    run_segqc_hw(cfg, paths)
    results = json.loads((tmp_path / "docs" / "results.json").read_text())
    choices = cfg.space.skeleton_choices(2)
    for key in ("searched_hw", "searched_nohw"):
        row = results["rows"][key]
        g = SkeletonQcGenotype.from_dict(row["genotype"])
        assert choices.contains(g.seg) and row["cost"]["latency_ms"] > 0
        assert isinstance(row["search"]["convergence"]["converged"], bool)
        trace = row["search"]["arch_trace"]
        assert any(name.startswith("seg/skeleton_arch.width") for name in trace["groups"])
    control = results["controls"]["random_searched_hw"]
    assert choices.contains(SkeletonQcGenotype.from_dict(control["genotype"]).seg)
    report = (tmp_path / "docs" / "README.md").read_text()
    assert "U-net skeleton of 3 levels at half resolution" in report
    seg = load_card(tmp_path / "models" / "echo-segqc-hw-seg-smoke.json").verify()
    assert seg.raw["architecture"]["kind"] == "unet_skeleton"
    shipped = {**results["rows"], **results["sensitivity"]}[results["export"]["from_search"]]
    assert seg.raw["architecture"]["args"]["spec"] == shipped["genotype"]["skeleton"]
    net = build_from_card(seg, weights=True)
    assert net(torch.rand(1, 3, cfg.data.resolution, cfg.data.resolution))[0].shape[1] == 2
