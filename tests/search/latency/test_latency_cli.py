"""`python -m search profile` and `latency-check` end to end on tiny hand-made spaces (real timing)."""

from __future__ import annotations

import argparse
import json

import pytest
import torch
from torch import nn

from search.latency import check_cli, core_adapter, profile_cli
from search.latency.check import SampledNetwork
from search.latency.keys import OpKey
from search.latency.lut import LatencyTable


def _args(module, argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    module.configure(parser)
    return parser.parse_args(argv)


def _tiny_space(space: str, preset: str, n: int, seed: int):
    """Chains of 1-4 core ops on (1, 2, 8, 8): a stand-in for a search space."""
    from search.core.ops import op_from_key

    gen = torch.Generator().manual_seed(seed)
    for i in range(n):
        names = ["conv", "sep_conv", "max_pool", "identity"]
        ops = [names[int(j)] for j in torch.randint(0, len(names), (1 + i % 4,), generator=gen)]
        keys = [OpKey(op, 2, 2, 2, (8, 8)) for op in ops]
        module = nn.Sequential(*[op_from_key(k) for k in keys])
        yield SampledNetwork(space, i, module, torch.randn(1, 2, 8, 8, generator=gen), keys, genotype=ops)


def test_profile_cli_measures_missing_keys_into_the_table(tmp_path, monkeypatch, capsys) -> None:
    keys = {OpKey("conv", 2, 2, 2, (8, 8)), OpKey("down_max_pool", 2, 2, 4, (8, 8), stride=2)}
    monkeypatch.setattr(core_adapter, "preset_keys", lambda space, preset: keys)
    table = tmp_path / "lut.json"
    args = _args(profile_cli, ["--table", str(table), "--spaces", "segqc", "--preset", "smoke",
                               "--warmup", "1", "--repeats", "3", "--threads", "1"])
    assert profile_cli.run(args) == 0
    assert set(LatencyTable.load(table).entries) == {k.canonical() for k in keys}
    assert profile_cli.run(args) == 0  # cached: nothing left to measure
    assert "0 to measure" in capsys.readouterr().out


def test_unknown_space_is_named() -> None:
    with pytest.raises(SystemExit, match="nosuch"):
        profile_cli.parse_spaces("segqc,nosuch")


def test_latency_check_cli_reports_figures_and_stores_calibration(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(core_adapter, "sample_networks", _tiny_space)
    table, out = tmp_path / "lut.json", tmp_path / "check.json"
    args = _args(check_cli, ["--table", str(table), "--spaces", "segqc,msnas", "--samples", "8", "--warmup", "1",
                             "--repeats", "3", "--threads", "1", "--json", "--out", str(out)])
    status = check_cli.run(args)
    summary = json.loads(capsys.readouterr().out)
    assert status in (0, 1) and summary["passed"] == (status == 0)
    assert set(summary["spaces"]) == {"segqc", "msnas", "global"}
    for figs in summary["spaces"].values():
        assert {"raw", "calibrated_fit", "calibrated_held_out", "calibration", "meets_targets"} <= set(figs)
        assert figs["calibrated_fit"]["n"] + figs["calibrated_held_out"]["n"] == figs["networks"]
    assert summary["machine"]["threads"] == 1 and "onnxruntime" in summary["machine"]["runtime"]
    stored = LatencyTable.load(table)
    assert set(stored.meta["calibration"]["by_space"]) == {"segqc", "msnas", "global"}
    networks = json.loads(out.read_text())["networks"]
    assert len(networks) == 16
    for net in networks:
        assert sum(net["sum_by_op"].values()) == pytest.approx(net["sum_ms"])
        assert sum(net["count_by_op"].values()) == net["n_ops"] == len(net["genotype"])


def test_latency_check_no_profile_names_the_missing_key(tmp_path, monkeypatch) -> None:
    from search.latency.lut import MissingLatencyKey

    monkeypatch.setattr(core_adapter, "sample_networks", _tiny_space)
    args = _args(check_cli, ["--table", str(tmp_path / "empty.json"), "--spaces", "segqc", "--samples", "4",
                             "--no-profile"])
    with pytest.raises(MissingLatencyKey, match=r"\|2d\|cin2\|cout2\|in8x8\|s1"):
        check_cli.run(args)


def test_op_instances_counts_repeats_and_skips_nested_and_zero() -> None:
    from search.core.ops import build_op

    pool = build_op("max_pool", 2, 2, 4)  # holds a nested conv1x1 projection
    conv = build_op("conv", 2, 4, 4)
    net = nn.Sequential(pool, conv, conv, build_op("zero", 2, 4, 4))
    keys = core_adapter.op_instances(net, torch.zeros(1, 2, 8, 8))
    assert [k.op for k in keys] == ["max_pool", "conv", "conv"]
    assert keys[0] == OpKey("max_pool", 2, 2, 4, (8, 8))
