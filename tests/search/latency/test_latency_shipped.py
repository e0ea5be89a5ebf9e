"""`latency-check --deployment / --shipped`: sizes from the shipped cards, shipped networks rebuilt from
their cards and reported apart (never fitted on), unrebuildable cards skipped with the reason.

A fake models folder of tiny cards (smoke-preset segqc widths at 48x48); the random networks are the
tiny stand-ins of ``test_latency_cli`` and the timing is faked, so nothing here waits on the clock.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch
from torch import nn

from search.export.architecture import Architecture, parse_args
from search.latency import check, check_cli, core_adapter
from search.latency.check import SampledNetwork
from search.latency.keys import OpKey
from search.latency.lut import LatencyTable
from search.latency.measure import stats_from_samples
from search.methods.spaces import register_all
from tests.search.latency.toy_cards import toy_segqc_pair

register_all()

SIZE = 48  # the fake cards' input side; the smoke preset's is 32
ENTRY_MS = 0.05  # every table entry
SHIPPED_MS = 500.0  # what the fake clock says a shipped network takes: far off any calibration


def _card(folder: Path, card_id: str, *, role: str, method: str, shape: list[int], architecture: dict | None,
          inputs: list[str], outputs: list[str], **extra) -> None:
    raw = {
        "id": card_id, "modality": "echo" if len(shape) == 4 else "cine", "role": role, "method": method,
        "input": {"name": inputs[0], "shape": shape, "layout": "NCHW", "dtype": "float32"},
        "inputs": [{"name": n, "shape": shape} for n in inputs],
        "outputs": [{"name": n, "shape": [1]} for n in outputs],
        "classes": {"0": "background", "1": "myocardium"}, "metrics": {}, "data": {}, "onnx_sha256": "0" * 64,
        "genotype": (architecture or {}).get("genotype"), "architecture": architecture, **extra,
    }
    (folder / f"{card_id}.json").write_text(json.dumps(raw))


def _models_dir(tmp_path: Path) -> Path:
    """A segqc-hw seg + QC pair (48x48, smoke widths), an msnas-hw card without its genotype, a
    handcrafted U-net baseline and a streaming rtdnas card."""
    folder = tmp_path / "models"
    folder.mkdir()
    seg, qc = toy_segqc_pair()
    shape = [1, 3, SIZE, SIZE]
    _card(folder, "echo-toy-seg", role="seg", method="segqc-hw", shape=shape, architecture=seg.to_json(),
          inputs=["image"], outputs=["probs", "uncertainty"], pairs_with="echo-toy-qc")
    _card(folder, "echo-toy-qc", role="qc", method="segqc-hw", shape=shape, architecture=qc.to_json(),
          inputs=["image", "probs", "uncertainty"], outputs=["dice"])
    no_genotype = {"kind": "multiscale", "args": {"in_channels": 1, "num_classes": 4, "base_channels": 4, "n_layers": 3,
                                                  "n_scales": 3, "n_nodes": 2, "dims": 3},
                   "genotype": None, "interface": "probs", "about": {}}
    _card(folder, "cine-toy-msnas", role="seg", method="msnas-hw", shape=[1, 1, 4, 32, 24], architecture=no_genotype,
          inputs=["clip"], outputs=["probs"])
    unet = Architecture(parse_args("unet", {"dims": 2, "in_channels": 3, "n_classes": 2, "depth": 2,
                                            "initial_filters": 4}), None, "probs_uncertainty")
    _card(folder, "baseline-toy-unet", role="seg", method="baseline-unet", shape=shape, architecture=unet.to_json(),
          inputs=["image"], outputs=["probs", "uncertainty"])
    stream_arch = dict(no_genotype, interface="streaming_probs")
    _card(folder, "cine-toy-stream", role="seg", method="rtdnas", shape=[1, 1, 1, 32, 24], architecture=stream_arch,
          inputs=["frame"], outputs=["probs"], default=True,
          streaming={"frame_input": "frame", "probs_output": "probs", "states": [
              {"input": "state_0", "output": "state_out_0", "shape": [1, 1, 2, 32, 24], "init": 0.0}]})
    return folder


def _args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    check_cli.configure(parser)
    return parser.parse_args(argv)


CALLS: list[tuple[str, object]] = []


def _tiny_space(space: str, preset: str, n: int, seed: int, size=None, sparse_share: float = 0.0):
    """Chains of 1-4 core ops on (1, 2, 8, 8), as in test_latency_cli; records the size asked for."""
    from search.core.ops import op_from_key

    CALLS.append((space, size))
    gen = torch.Generator().manual_seed(seed)
    for i in range(n):
        names = ["conv", "sep_conv", "max_pool", "identity"]
        ops = [names[int(j)] for j in torch.randint(0, len(names), (1 + i % 4,), generator=gen)]
        keys = [OpKey(op, 2, 2, 2, (8, 8)) for op in ops]
        yield SampledNetwork(space, i, nn.Sequential(*[op_from_key(k) for k in keys]),
                             torch.randn(1, 2, 8, 8, generator=gen), keys, genotype=ops)


def _fake_clock(models, shapes=None, *, warmup, repeats, intra_op_threads=None, seed=0):
    """Random network i of a space takes 1 + 0.3 i + 0.1 (i mod 3) ms; a shipped one SHIPPED_MS."""
    out = {}
    for name in models:
        _, _, tail = name.partition("/")
        ms = 1.0 + 0.3 * int(tail) + 0.1 * (int(tail) % 3) if tail.isdigit() else SHIPPED_MS
        out[name] = stats_from_samples([ms] * repeats, threads=1, runtime="fake clock")
    return out


def _table(tmp_path: Path, models_dir: Path) -> Path:
    """A table with every key the tiny spaces and the shipped pair need (so --no-profile holds)."""
    from app.cards import discover
    from search.report.shipped_latency import shipped_networks

    nets, _ = shipped_networks(["segqc", "msnas"], discover(models_dir))
    keys = {k for net in nets for k in net.keys}
    keys |= {OpKey(op, 2, 2, 2, (8, 8)) for op in ("conv", "sep_conv", "max_pool", "identity")}
    table = LatencyTable(path=str(tmp_path / "lut.json"))
    for k in keys:
        table.set(k, ENTRY_MS)
    table.save(tmp_path / "lut.json")
    return tmp_path / "lut.json"


@pytest.fixture
def check_setup(tmp_path, monkeypatch):
    torch.set_num_threads(1)
    CALLS.clear()
    monkeypatch.setattr(core_adapter, "sample_networks", _tiny_space)
    monkeypatch.setattr(check, "measure_interleaved", _fake_clock)
    models = _models_dir(tmp_path)
    return models, _table(tmp_path, models)


def _run(capsys, table: Path, models: Path, *extra: str) -> tuple[int, dict]:
    argv = ["--table", str(table), "--spaces", "segqc,msnas", "--preset", "smoke", "--samples", "6", "--warmup", "1",
            "--repeats", "2", "--threads", "1", "--no-profile", "--no-save", "--json", "--models-dir", str(models),
            *extra]
    status = check_cli.run(_args(argv))
    return status, json.loads(capsys.readouterr().out)


def test_deployment_size_comes_from_the_shipped_card(check_setup, capsys) -> None:
    models, table = check_setup
    status, summary = _run(capsys, table, models, "--deployment")
    assert status in (0, 1)
    # segqc: the seg card of the pair (its QC partner named); msnas: its only card (its genotype does not matter)
    assert CALLS == [("segqc", (SIZE, SIZE)), ("msnas", (4, 32, 24))]
    assert summary["deployment"]["segqc"] == {"card": "echo-toy-seg", "partner": "echo-toy-qc",
                                              "input_shape": [3, SIZE, SIZE], "size": [SIZE, SIZE], "other_shapes": {},
                                              "interface": "probs_uncertainty"}
    assert summary["deployment"]["msnas"]["card"] == "cine-toy-msnas"
    segqc = summary["spaces"]["segqc"]
    assert segqc["size_from"] == "card echo-toy-seg" and segqc["threads"] == 1
    assert {"raw", "calibrated_held_out", "within_10pct_goal"} <= set(segqc)
    assert {"mdape_pct", "rmspe_pct", "kendall_tau", "within_10pct"} <= set(segqc["calibrated_held_out"])
    assert "shipped" not in summary


def test_without_deployment_the_preset_size_is_kept(check_setup, capsys) -> None:
    models, table = check_setup
    _, summary = _run(capsys, table, models)
    assert CALLS == [("segqc", None), ("msnas", None)]
    assert summary["deployment"] is None and summary["spaces"]["segqc"]["size_from"] == "preset smoke"


def test_shipped_network_is_rebuilt_and_reported_but_never_fitted_on(check_setup, capsys, tmp_path) -> None:
    models, table = check_setup
    _, alone = _run(capsys, table, models, "--deployment")
    out = tmp_path / "check.json"
    _, summary = _run(capsys, table, models, "--deployment", "--shipped", "--out", str(out))
    # the 500 ms shipped pair changed no calibration and no figure of the random networks
    for space in ("segqc", "msnas", "global"):
        assert summary["spaces"][space]["calibration"] == alone["spaces"][space]["calibration"]
        assert summary["spaces"][space]["networks"] == alone["spaces"][space]["networks"] == (12 if space == "global"
                                                                                              else 6)
    shipped = summary["shipped"]
    assert shipped["n"] == 1 and [n["id"] for n in shipped["networks"]] == ["echo-toy-seg"]
    net = shipped["networks"][0]
    assert net["space"] == "segqc" and net["cards"] == ["echo-toy-seg", "echo-toy-qc"]
    assert net["input_shape"] == [1, 3, SIZE, SIZE] and net["measured_ms"] == SHIPPED_MS
    assert net["predicted_ms_raw"] == pytest.approx(net["n_ops"] * ENTRY_MS)
    cal = summary["spaces"]["segqc"]["calibration"]
    calibrated = cal["scale"] * net["predicted_ms_raw"] + cal["per_op_ms"] * net["n_ops"] + cal["offset_ms"]
    assert net["predicted_ms_calibrated"] == pytest.approx(calibrated)
    assert net["error_pct_raw"] == pytest.approx((net["predicted_ms_raw"] - SHIPPED_MS) / SHIPPED_MS * 100)
    assert shipped["within_10pct"] == {"raw": 0.0, "calibrated": 0.0} and shipped["goal_within_10pct_met"] is False
    records = json.loads(out.read_text())["networks"]
    assert [r["split"] for r in records if r["model_id"]] == ["shipped"]
    assert sum(r["model_id"] is None for r in records) == 12


def test_unrebuildable_cards_are_skipped_with_the_reason(check_setup, capsys) -> None:
    models, table = check_setup
    _, summary = _run(capsys, table, models, "--shipped")
    reasons = {s["id"]: s["reason"] for s in summary["shipped_skipped"]}
    assert set(reasons) == {"cine-toy-msnas", "baseline-toy-unet", "cine-toy-stream"}  # the QC partner was timed
    assert "cannot be rebuilt" in reasons["cine-toy-msnas"] and "genotype" in reasons["cine-toy-msnas"]
    assert "handcrafted" in reasons["baseline-toy-unet"] and "op table" in reasons["baseline-toy-unet"]
    assert "space rtdnas is not checked" in reasons["cine-toy-stream"]


def test_streaming_and_int8_cards_are_named_when_their_space_is_checked(tmp_path) -> None:
    from app.cards import discover
    from search.report.shipped_latency import deployment_for, shipped_networks

    models = _models_dir(tmp_path)
    raw = json.loads((models / "echo-toy-seg.json").read_text())
    raw.update(id="echo-toy-seg-int8", quantization={"float_model": "echo-toy-seg"}, input={**raw["input"],
               "shape": [1, 3, 64, 64]})
    (models / "echo-toy-seg-int8.json").write_text(json.dumps(raw))
    cards = discover(models)
    _, skipped = shipped_networks(["rtdnas"], cards)
    reasons = {s["id"]: s["reason"] for s in skipped}
    assert "--per-frame" in reasons["cine-toy-stream"]
    assert "space segqc is not checked" in reasons["echo-toy-seg-int8"]
    _, skipped = shipped_networks(["segqc"], cards)
    assert "INT8" in {s["id"]: s["reason"] for s in skipped}["echo-toy-seg-int8"]
    # the INT8 card never sizes the check; a streaming card neither, even marked default
    assert deployment_for("segqc", cards).card == "echo-toy-seg"
    with pytest.raises(ValueError, match="no shipped segmentation model of space rtdnas"):
        deployment_for("rtdnas", cards)


def test_sampled_networks_at_another_size_are_the_same_architectures() -> None:
    torch.set_num_threads(1)
    preset = list(core_adapter.sample_networks("segqc", "smoke", 2, seed=0))
    moved = list(core_adapter.sample_networks("segqc", "smoke", 2, seed=0, size=(SIZE, SIZE)))
    assert [n.genotype for n in moved] == [n.genotype for n in preset]
    assert all(tuple(n.example_input.shape) == (1, 3, SIZE, SIZE) for n in moved)
    assert [k.op for k in moved[0].keys] == [k.op for k in preset[0].keys]
    assert moved[0].keys[0].shape == (SIZE, SIZE)
    with pytest.raises(ValueError, match="need \\(H, W\\)"):
        core_adapter.input_shape_at((3, 32, 32), (4, SIZE, SIZE))


def test_printed_table_names_sizes_goal_and_shipped_networks(check_setup, capsys) -> None:
    models, table = check_setup
    argv = ["--table", str(table), "--spaces", "segqc,msnas", "--preset", "smoke", "--samples", "6", "--warmup", "1",
            "--repeats", "2", "--threads", "1", "--no-profile", "--no-save", "--models-dir", str(models),
            "--deployment", "--shipped"]
    check_cli.run(_args(argv))
    text = capsys.readouterr().out
    assert "1 threads" in text and ">=90% in +-10%" in text
    assert f"segqc: deployment input 3x{SIZE}x{SIZE} from card echo-toy-seg + echo-toy-qc" in text
    assert f"echo-toy-seg + echo-toy-qc [segqc, 3x{SIZE}x{SIZE}]: measured {SHIPPED_MS:.2f} ms" in text
    assert "skipped baseline-toy-unet: handcrafted" in text


def test_per_frame_check_refuses_deployment_and_shipped(tmp_path) -> None:
    for flag in ("--deployment", "--shipped"):
        with pytest.raises(SystemExit, match="--per-frame --frame-size"):
            check_cli.run(_args(["--per-frame", flag, "--table", str(tmp_path / "t.json"), "--samples", "4"]))


def test_blocks_timing_spreads_the_same_runs_over_warm_blocks(check_setup, capsys, monkeypatch) -> None:
    """--timing blocks: measure_blocks gets each group with ceil(repeats / rounds) runs per block, the
    check's warm-up per block and the seed; the settings record it; interleaved timing is not called."""
    models, table = check_setup
    calls = []

    def fake_blocks(models_, shapes=None, *, warmup, runs, rounds, intra_op_threads=None, seed=0):
        calls.append({"names": sorted(models_), "warmup": warmup, "runs": runs, "rounds": rounds,
                      "threads": intra_op_threads, "seed": seed})
        return _fake_clock(models_, shapes, warmup=warmup, repeats=runs * rounds)

    def no_interleaving(*args, **kwargs):
        raise AssertionError("--timing blocks timed interleaved")

    monkeypatch.setattr(check, "measure_blocks", fake_blocks)
    monkeypatch.setattr(check, "measure_interleaved", no_interleaving)
    _, summary = _run(capsys, table, models, "--timing", "blocks", "--rounds", "3", "--shipped")
    # one group (2 x 6 random networks and the shipped pair, under the group size of 50); 2 repeats at least,
    # more for these 0.05 ms networks: 5 x 2 = 10 timed runs each, so 4 per block over 3 blocks
    assert len(calls) == 1 and len(calls[0]["names"]) == 13 and "segqc/echo-toy-seg" in calls[0]["names"]
    assert all(c["warmup"] == 1 and c["runs"] == 4 and c["rounds"] == 3 and c["threads"] == 1 for c in calls)
    assert summary["settings"]["timing"] == "blocks" and summary["settings"]["rounds"] == 3
    assert summary["shipped"]["networks"][0]["measured_ms"] == SHIPPED_MS


def test_timing_choices_and_rounds_are_checked(tmp_path) -> None:
    from search.latency.measure import TIMINGS

    assert check_cli.TIMINGS == TIMINGS  # the parser's copies, kept free of onnxruntime and torch
    assert check_cli.DEFAULT_ROUNDS == check.CheckSettings().rounds
    with pytest.raises(SystemExit, match="--rounds"):
        check_cli.run(_args(["--timing", "blocks", "--rounds", "0", "--table", str(tmp_path / "t.json")]))
    with pytest.raises(SystemExit, match="add --timing blocks"):
        check_cli.run(_args(["--rounds", "3", "--table", str(tmp_path / "t.json")]))
    with pytest.raises(ValueError, match="timing must be one of"):
        check.CheckSettings(timing="alone")
    with pytest.raises(ValueError, match="at least one round"):
        check.CheckSettings(timing="blocks", rounds=0)


def test_deployed_random_clip_networks_end_in_the_cards_softmax(tmp_path) -> None:
    """--deployment: a space whose card exports probabilities ("probs") gets random networks ending in the same
    softmax (its cost is in no table entry, so the calibration must see it); the op instances do not change, and
    other interfaces keep the space's own graph."""
    from app.cards import discover
    from search.report.shipped_latency import deployment_for
    from search.train.clips import ClipProbabilities

    models = _models_dir(tmp_path)
    cards = discover(models)
    msnas = deployment_for("msnas", cards)
    assert msnas.interface == "probs" and msnas.to_dict()["interface"] == "probs"
    assert deployment_for("segqc", cards).interface == "probs_uncertainty"
    nets = list(_tiny_space("msnas", "smoke", 2, seed=0))
    wrapped = [msnas.as_deployed(n) for n in nets]
    for bare, dep in zip(nets, wrapped):
        assert isinstance(dep.module, ClipProbabilities) and dep.module.net is bare.module
        assert dep.keys == bare.keys and dep.index == bare.index and dep.model_id is None
        out = dep.module(dep.example_input)
        torch.testing.assert_close(out, torch.softmax(bare.module(bare.example_input), dim=1))
    segqc = deployment_for("segqc", cards)
    assert segqc.as_deployed(nets[0]) is nets[0]


def test_stored_calibration_says_how_it_was_fitted(check_setup, capsys) -> None:
    models, table = check_setup
    argv = ["--table", str(table), "--spaces", "msnas", "--preset", "smoke", "--samples", "6", "--warmup", "1",
            "--repeats", "2", "--threads", "1", "--no-profile", "--json", "--models-dir", str(models), "--deployment",
            "--sparse-share", "0.5"]
    check_cli.run(_args(argv))
    capsys.readouterr()
    doc = LatencyTable.load(table).meta["calibration"]
    assert doc["timing"] == "interleaved" and doc["rounds"] is None and doc["sparse_share"] == 0.5
    assert doc["preset"] == "smoke" and doc["deployment"]["msnas"]["card"] == "cine-toy-msnas"
    assert doc["deployment"]["msnas"]["interface"] == "probs"


def test_deployment_check_times_the_random_networks_as_deployed(check_setup, capsys, monkeypatch) -> None:
    """The CLI wires it: with --deployment every random network passes through its space's Deployment.as_deployed."""
    from search.report import shipped_latency

    seen = []
    original = shipped_latency.Deployment.as_deployed

    def counting(self, net):
        seen.append((self.space, net.index))
        return original(self, net)

    monkeypatch.setattr(shipped_latency.Deployment, "as_deployed", counting)
    models, table = check_setup
    _run(capsys, table, models, "--deployment")
    assert sorted(seen) == sorted([("segqc", i) for i in range(6)] + [("msnas", i) for i in range(6)])
    seen.clear()
    _run(capsys, table, models)
    assert not seen


def test_a_shipped_skeleton_card_is_rebuilt_in_the_skeleton_space(tmp_path) -> None:
    """The cine default is a per-frame U-net skeleton (spec, no genotype): it is rebuilt as deployed (softmax and
    uncertainty in the graph) and predicted from the whole-block keys it runs, like the space's random networks."""
    from app.cards import discover
    from search.core.derived.unet_skeleton import UNetSkeleton
    from search.core.supernets.unet_skeleton import skeleton_keys
    from search.report.shipped_latency import deployment_for, shipped_networks

    folder = tmp_path / "models"
    folder.mkdir()
    arch = {"kind": "unet_skeleton", "args": {"in_channels": 1, "n_classes": 4, "spec": "8c2-16c1"},
            "genotype": None, "interface": "probs_uncertainty", "about": {}}
    _card(folder, "cine-toy-skeleton", role="seg", method="cine-skeleton", shape=[1, 1, 32, 32], architecture=arch,
          inputs=["image"], outputs=["probs", "uncertainty"], default=True)
    cards = discover(folder)
    dep = deployment_for("skeleton", cards)
    assert dep.card == "cine-toy-skeleton" and dep.size == (32, 32) and dep.interface == "probs_uncertainty"
    nets, skipped = shipped_networks(["skeleton"], cards)
    assert not skipped and len(nets) == 1
    net = nets[0]
    assert net.space == "skeleton" and net.genotype == {"cine-toy-skeleton": {"kind": "unet_skeleton", "in_channels": 1,
                                                                               "n_classes": 4, "spec": "8c2-16c1"}}
    assert net.keys == skeleton_keys(UNetSkeleton.parse("8c2-16c1"), (32, 32), 1, 4)
    with torch.no_grad():
        probs, unc = net.module(net.example_input)
    assert probs.shape == (1, 4, 32, 32) and unc.shape == (1, 1, 32, 32)  # as the app gets it
    # the space's random networks: the smoke preset's widths and blocks, keys the profiler enumerates
    needed = core_adapter.preset_keys("skeleton", "smoke")
    sampled = list(core_adapter.sample_networks("skeleton", "smoke", 4, seed=0, sparse_share=1.0))
    assert all(n.keys and set(n.keys) <= needed for n in sampled)

    def cheap_levels(share: float) -> int:  # levels at the narrowest width and the first block token
        draws = core_adapter.sampled_modules("skeleton", "smoke", 12, 0, sparse_share=share)
        return sum(level in ("4c2", "8c2") for _, g, _, _ in draws for level in g.spec.split("-"))

    assert cheap_levels(1.0) > cheap_levels(0.0)  # a sparse draw is a cheap network, as the search ships
    built = core_adapter.module_for_key(net.keys[0])
    assert built(torch.zeros(1, 1, 32, 32)).shape == (1, 8, 32, 32)  # the profiler builds whole-block keys


def test_the_per_frame_unet_baseline_is_checked_as_the_skeleton_network_it_is(tmp_path) -> None:
    """The handcrafted U-net 2D (D3) is the skeleton ``IFc2-2IFc2-4IFc2`` layer for layer: its card is rebuilt as the
    app runs it (the baselines' ``UNet``) and predicted from the skeleton space's keys; a 3D U-net lists none."""
    from app.cards import discover
    from search.baselines.unet import UNet, UNetConfig
    from search.core.derived.unet_skeleton import SkeletonUNet, UNetSkeleton
    from search.core.supernets.unet_skeleton import skeleton_keys
    from search.report.shipped_latency import shipped_networks

    folder = tmp_path / "models"
    folder.mkdir()
    unet2d = Architecture(parse_args("unet", {"dims": 2, "in_channels": 1, "n_classes": 4, "depth": 3,
                                              "initial_filters": 4}), None, "probs_uncertainty")
    _card(folder, "baseline-toy-unet2d", role="seg", method="baseline-unet2d", shape=[1, 1, 32, 32],
          architecture=unet2d.to_json(), inputs=["image"], outputs=["probs", "uncertainty"])
    nets, skipped = shipped_networks(["skeleton"], discover(folder))
    assert not skipped and len(nets) == 1
    net = nets[0]
    assert net.space == "skeleton" and net.genotype["baseline-toy-unet2d"]["kind"] == "unet"
    skeleton = UNetSkeleton.parse("4c2-8c2-16c2")
    assert net.keys == skeleton_keys(skeleton, (32, 32), 1, 4)
    assert isinstance(net.module.net, UNet)  # timed as shipped, not as its skeleton twin
    twin = SkeletonUNet(skeleton, 1, 4)
    assert sum(p.numel() for p in twin.parameters()) == sum(p.numel() for p in net.module.net.parameters())
    assert UNet(UNetConfig(dims=3, in_channels=1, n_classes=4, depth=2, initial_filters=4,
                           clip_length=4)).latency_keys((4, 32, 32)) is None
