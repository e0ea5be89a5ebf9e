"""segqc-hw's sandwich rule (issue 16): the extreme width networks, their gradients, config, CLI and a search."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from search.core.derived.unet_skeleton import Level, UNetSkeleton
from search.core.mixed import ArchWeighting
from search.core.supernets.unet_skeleton import SkeletonChoices, SkeletonSupernet
from search.methods.segqc_hw.config import preset
from tests.search.methods.synthetic_echo import synthetic_echo_cases
from tests.search.methods.test_segqc_hw_gdas import _Table

CHOICES = SkeletonChoices(widths=((4, 8), (8, 12)), blocks=("c2",), input_stride=2)


def _skeleton_smoke(**search):
    cfg = preset("smoke")
    return replace(cfg, space=replace(cfg.space, seg_space="skeleton", skeleton_widths=((4, 8), (8, 16)),
                                      skeleton_blocks=("c2",)),
                   search=replace(cfg.search, sampler="gdas", **search))


@pytest.mark.parametrize("which, widths", [("max", (8, 12)), ("min", (4, 8))])
def test_an_extreme_network_is_the_widest_or_narrowest_subnet(which, widths):
    net = SkeletonSupernet(CHOICES, seed=3).eval()
    x = torch.randn(2, 3, 16, 16)
    w = net.extreme_width_weights(which)
    assert all(not w[f"width{k}"].requires_grad for k in range(2))
    sub = net.subnet(UNetSkeleton(tuple(Level(width, "c", 2) for width in widths), 2))
    with torch.no_grad():
        assert torch.allclose(net(x, weights=w), sub(x), atol=1e-5)
    with pytest.raises(ValueError, match="'max' or 'min'"):
        net.extreme_width_weights("mid")


def test_sandwich_backward_trains_the_wide_channels_and_leaves_the_width_logits_alone():
    from search.methods.segqc_hw.joint_search import sandwich_backward
    from search.methods.segqc_hw.networks import SegLogits

    seg = SegLogits(SkeletonSupernet(CHOICES, seed=0)).train()
    seg.weighting = ArchWeighting.gdas(torch.Generator().manual_seed(0), 1.0)
    x, y = torch.randn(2, 3, 16, 16), torch.randint(0, 2, (2, 16, 16))
    loss = sandwich_backward(seg, x, y, dice_weight=1.0)
    assert loss > 0
    conv = seg.net.encoders[1].candidates[0].units[0][0].weight  # level 1's first conv, out channels 12
    assert conv.grad is not None and conv.grad[8:].abs().sum() > 0  # channels only the widest network has
    assert conv.grad[:8].abs().sum() > 0
    assert all(p.grad is None or not p.grad.any() for name, p in seg.net.skeleton_arch.items() if name.startswith("width"))


def test_sandwich_config_cli_and_refusals(monkeypatch, tmp_path):
    from search.methods.segqc_hw import cli
    from search.methods.segqc_hw.experiment import search_config
    from search.methods.segqc_hw.joint_search import check_sandwich
    from search.methods.segqc_hw.search import build_supernets

    plain = _skeleton_smoke()
    assert "sandwich" not in plain.to_dict()["search"]  # configs and hashes from before the rule stay
    on = _skeleton_smoke(sandwich=True)
    assert on.to_dict()["search"]["sandwich"] is True
    assert search_config(on, 0.001, 0) != search_config(plain, 0.001, 0)  # and never shares a folder or a warm-up
    with pytest.raises(ValueError, match="skeleton space"):
        check_sandwich(build_supernets(preset("smoke"), 0)[0])
    seen = {}
    monkeypatch.setattr("search.methods.segqc_hw.experiment.run_segqc_hw",
                        lambda cfg, paths, device, stop_after, only_searches=None, random_controls=True: seen.setdefault("cfg", cfg) and "ok")
    parser = argparse.ArgumentParser()
    cli.configure(parser)
    cli.run(parser.parse_args(["--preset", "smoke", "--space", "skeleton", "--sandwich", "--out", str(tmp_path / "r"),
                               "--no-ship"]))
    assert seen["cfg"].search.sandwich is True
    with pytest.raises(SystemExit, match="--sandwich only with --space skeleton"):
        cli.run(parser.parse_args(["--preset", "smoke", "--sandwich", "--out", str(tmp_path / "c"), "--no-ship"]))


@pytest.mark.slow
def test_a_sandwich_search_runs_both_extremes_every_weight_step_and_records_them(tmp_path: Path, monkeypatch):
    from search.methods.segqc_hw import joint_search

    calls = []
    real = joint_search.sandwich_backward

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(joint_search, "sandwich_backward", counted)
    from search.methods.segqc_hw.latency_model import SkeletonFrameworkLatency
    from search.methods.segqc_hw.search import qc_config, search_stage, seg_config

    cfg = _skeleton_smoke(sandwich=True, warmup_epochs=1, alternate_epochs=1)
    latency = SkeletonFrameworkLatency(_Table(), 32, seg_config(cfg), qc_config(cfg))
    _genotype, rec = search_stage(cfg, 0.01, 0, synthetic_echo_cases(3, 1, size=32),
                                  synthetic_echo_cases(3, 2, size=32), latency, tmp_path / "s")
    assert rec["sandwich"] is True and len(rec["history"]) == 2
    assert all(h["sandwich_loss"] > 0 for h in rec["history"])
    assert len(calls) > 0 and len(calls) % 2 == 0  # one per S1 weight step, the same count in both epochs
    saved = json.loads((tmp_path / "s" / "genotype.json").read_text())
    assert saved["sandwich"] is True and saved["search_config"]["sandwich"] is True
    assert saved["search_config"]["arch_lr"] == cfg.search.arch_lr and saved["search_config"]["lambda2"] == 0.01
