"""search.export.stream_latency: the per-frame (streaming step) latency table of the causal cine spaces
(issue 17). Timings are real but tiny and never asserted; the smoke preset only."""

from __future__ import annotations

import argparse
import json
from collections import Counter

import numpy as np
import pytest
import torch

from search.core.keys import OpKey
from search.export import stream_latency
from search.export.stream_latency import (
    per_frame_record,
    predict_per_frame_ms,
    sample_stream_networks,
    step_module,
    stream_keys,
    stream_preset_keys,
    stream_profiler,
)
from search.export.streaming import StreamingNetwork
from search.latency import check_cli, profile_cli
from search.latency.core_adapter import op_instances, preset_keys
from search.latency.lut import LatencyTable, MissingLatencyKey
from search.latency.onnx_bytes import export_onnx_bytes
from search.latency.profiler import (
    OpProfiler,
    ProfileSettings,
    TableConditionsMismatch,
    default_builder,
    default_table_path,
)
from search.methods.spaces import register_all
from tests.app.engine.stream_models import SIZE, tiny_clip_net

FAST = ProfileSettings(warmup=1, repeats=3, intra_op_threads=1, group_size=4)
FRAME = (1, 1, 1, *SIZE)


@pytest.fixture(autouse=True, scope="module")
def _spaces():
    torch.set_num_threads(1)
    register_all()


def _args(module, argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    module.configure(parser)
    return parser.parse_args(argv)


@pytest.mark.parametrize("name", ["stem", "sep_conv", "dil_conv", "max_pool", "conv1x1", "upsample"])
def test_step_module_is_the_shipped_streaming_step(name: str) -> None:
    """The profiled module is the op's StreamingNetwork step: fed frame t and the state after frames
    < t, it gives frame t of the causal op on the clip (what a shipped streaming graph runs)."""
    c_in = 1 if name == "stem" else 3
    c_out = 3 if name in ("max_pool", "upsample") else 5
    key = OpKey(name, 3, c_in, c_out, (1, 8, 6), stream=True)
    torch.manual_seed(0)
    step, inputs = step_module(key)
    assert tuple(inputs[0].shape) == (1, c_in, 1, 8, 6)
    op = step.net if isinstance(step, StreamingNetwork) else step
    assert op.op_name == name and (op.causal or op.time_context == 0)
    assert len(inputs) == (2 if op.time_context else 1)
    x = torch.randn(1, c_in, 5, 8, 6)
    with torch.no_grad():
        clip_out = op.eval()(x)
        if isinstance(step, StreamingNetwork):
            states = step.initial_states(tuple(inputs[0].shape))
            for t in range(x.shape[2]):
                out, *states = step(x[:, :, t:t + 1], *states)
                assert float((out - clip_out[:, :, t:t + 1]).abs().max()) < 1e-5
        else:
            assert float((step(x[:, :, -1:]) - clip_out[:, :, -1:]).abs().max()) < 1e-5
    assert export_onnx_bytes(step, inputs)  # the profiler's exporter takes the step with its states


def test_step_module_refuses_clip_keys() -> None:
    for key in (OpKey("conv", 3, 4, 4, (1, 8, 8)), OpKey("conv", 3, 4, 4, (3, 8, 8), stream=True)):
        with pytest.raises(ValueError, match="not a per-frame key"):
            step_module(key)


def test_smoke_per_frame_keys_are_the_clip_keys_on_one_frame() -> None:
    """The causal cine spaces need, per frame, exactly the ops they need per clip, on one frame."""
    for space in ("msnas", "rtdnas"):
        frame_keys = stream_preset_keys(space, "smoke")
        assert frame_keys == {k.per_frame() for k in preset_keys(space, "smoke")}
        assert all(k.stream and k.shape[0] == 1 and k.canonical().endswith("|stream") for k in frame_keys)
        assert {"stem", "conv", "dil_conv", "sep_conv", "max_pool", "identity"} <= {k.op for k in frame_keys}
    with pytest.raises(ValueError, match="only 3D spaces stream"):
        stream_preset_keys("segqc", "smoke")
    # another frame size: the same ops at that size (a model shipped with rtdnas.streaming --size)
    wide = stream_preset_keys("rtdnas", "smoke", (48, 40))
    assert {(k.op, k.c_in, k.c_out) for k in wide} == {(k.op, k.c_in, k.c_out) for k in frame_keys}
    assert {k.shape for k in wide if k.op == "stem"} == {(1, 48, 40)}


def test_stream_keys_are_the_ops_of_one_streaming_step() -> None:
    net = tiny_clip_net()
    keys = stream_keys(net, FRAME)
    clip_keys = op_instances(net, torch.zeros(1, 1, 5, *SIZE))
    assert Counter(keys) == Counter(k.per_frame() for k in clip_keys)
    assert {k.op for k in keys} >= {"stem", "conv", "sep_conv", "max_pool", "avg_pool", "classifier"}


def test_per_frame_profile_table_never_mixes_with_clip_entries(tmp_path) -> None:
    keys = [OpKey("sep_conv", 3, 4, 4, (1, 8, 8), stream=True), OpKey("max_pool", 3, 4, 4, (1, 8, 8), stream=True),
            OpKey("conv1x1", 3, 4, 8, (1, 8, 8), stream=True)]
    path = tmp_path / "lut-stream.json"
    profiler = stream_profiler(LatencyTable(path=str(path)), FAST, save_to=path)
    assert set(profiler.profile(keys)) == set(keys)
    table = LatencyTable.load(path)
    assert table.per_frame is True and table.meta["per_frame"] is True
    assert "streaming step" in table.meta["statistic"]
    assert all(table.get(k) >= 0.0 for k in keys)
    with pytest.raises(ValueError, match="never mix"):  # a clip key in the per-frame run
        profiler.profile([OpKey("sep_conv", 3, 4, 4, (2, 8, 8))])
    with pytest.raises(ValueError, match="never mix"):  # nor in the table itself
        table.set(OpKey("sep_conv", 3, 4, 4, (2, 8, 8)), 0.1)
    clip = LatencyTable(entries={"conv|3d|cin4|cout4|in2x8x8|s1": 0.1},
                        meta={"threads": 1, "runtime": "onnxruntime", "allow_spinning": False})
    assert clip.per_frame is False
    with pytest.raises(ValueError, match="clip table"):
        clip.set(keys[0], 0.1)
    with pytest.raises(TableConditionsMismatch, match="per_frame"):
        stream_profiler(clip, FAST)
    with pytest.raises(TableConditionsMismatch, match="per_frame"):
        OpProfiler(table, FAST)  # a clip run into the per-frame table
    with pytest.raises(ValueError, match="streaming step builder"):
        default_builder(per_frame=True)
    with pytest.raises(MissingLatencyKey, match="--per-frame"):
        table.get(OpKey("conv", 3, 4, 4, (1, 8, 8), stream=True))


def test_prediction_sums_per_frame_entries_with_the_calibration(tmp_path) -> None:
    net = tiny_clip_net()
    keys = stream_keys(net, FRAME)
    table = LatencyTable(entries={k.canonical(): 0.25 for k in keys}, meta={"per_frame": True})
    predicted, sum_ms, n_ops = predict_per_frame_ms(table, net, FRAME, "rtdnas")
    assert n_ops == len(keys) and sum_ms == pytest.approx(0.25 * len(keys)) and predicted == pytest.approx(sum_ms)
    table.meta["calibration"] = {"by_space": {"rtdnas": {"scale": 2.0, "per_op_ms": 0.01, "offset_ms": 0.5}}}
    predicted, _, _ = predict_per_frame_ms(table, net, FRAME, "rtdnas")
    assert predicted == pytest.approx(2.0 * sum_ms + 0.01 * n_ops + 0.5)
    with pytest.raises(ValueError, match="clip table"):
        predict_per_frame_ms(LatencyTable(entries={"conv|3d|cin4|cout4|in2x8x8|s1": 0.1}), net, FRAME)

    # the card's record: no table, a table lacking keys, a full table
    path = tmp_path / "lut-stream.json"
    assert per_frame_record(net, FRAME, space="rtdnas", table_path=path)["predicted_ms"] is None
    partial = LatencyTable(entries={keys[0].canonical(): 0.25}, meta={"per_frame": True})
    partial.save(path)
    record = per_frame_record(net, FRAME, space="rtdnas", table_path=path)
    assert record["predicted_ms"] is None and record["missing_keys"] == len(set(keys)) - 1
    table.save(path)
    record = per_frame_record(net, FRAME, space="rtdnas", measured_ms=20.0, table_path=path)
    assert record["predicted_ms"] == pytest.approx(predicted, abs=1e-3) and record["calibration"] == "rtdnas"
    assert record["measured_p50_ms"] == 20.0 and record["n_ops"] == len(keys)
    json.dumps(record)  # goes on the card as it is


def test_sampled_streaming_networks_are_the_clip_checks_architectures() -> None:
    from search.latency.core_adapter import sample_networks

    clips = list(sample_networks("rtdnas", "smoke", 2, 0))
    for clip, frame in zip(clips, sample_stream_networks("rtdnas", "smoke", 2, 0)):
        assert frame.genotype == clip.genotype
        assert Counter(frame.keys) == Counter(k.per_frame() for k in clip.keys)
        x, *states = frame.inputs()
        assert x.shape[2] == 1 and len(states) == len(frame.module.state_specs(tuple(x.shape)))
        with torch.no_grad():
            out, *new = frame.module(*frame.inputs())
        assert out.shape[2] == 1 and [s.shape for s in new] == [s.shape for s in states]


def test_profile_cli_per_frame(tmp_path, monkeypatch, capsys) -> None:
    assert profile_cli.parse_spaces(None, per_frame=True) == ["msnas", "rtdnas"]
    with pytest.raises(SystemExit, match="segqc"):
        profile_cli.parse_spaces("segqc,rtdnas", per_frame=True)
    keys = {OpKey("sep_conv", 3, 4, 4, (1, 8, 8), stream=True), OpKey("stem", 3, 1, 4, (1, 8, 8), stream=True)}
    sizes = []
    monkeypatch.setattr(stream_latency, "stream_preset_keys", lambda space, preset, size: sizes.append(size) or keys)
    table = tmp_path / "lut-stream.json"
    argv = ["--per-frame", "--table", str(table), "--preset", "smoke", "--warmup", "1", "--repeats", "3",
            "--threads", "1"]
    assert profile_cli.run(_args(profile_cli, argv)) == 0
    assert set(LatencyTable.load(table).entries) == {k.canonical() for k in keys}
    assert profile_cli.run(_args(profile_cli, argv)) == 0  # cached
    out = capsys.readouterr().out
    assert "per-frame (streaming step) op signatures" in out and "0 to measure" in out
    with pytest.raises(SystemExit, match="torch-cuda"):
        profile_cli.run(_args(profile_cli, [*argv, "--torch-cuda"]))
    assert profile_cli.run(_args(profile_cli, [*argv, "--frame-size", "128x112", "--dry-run"])) == 0
    assert sizes[-1] == (128, 112) and sizes[0] is None
    with pytest.raises(SystemExit, match="needs --per-frame"):
        profile_cli.run(_args(profile_cli, ["--frame-size", "128x112", "--dry-run", "--table", str(table)]))
    assert default_table_path(1, tmp_path, per_frame=True).name.endswith("-t1-stream.json")


@pytest.mark.slow
def test_per_frame_check_on_the_smoke_preset(tmp_path, capsys) -> None:
    """``latency-check --per-frame`` end to end on a handful of smoke networks: the per-frame table is
    profiled, the networks timed one new frame at a time, and Kendall tau and RMSPE reported."""
    table, out = tmp_path / "lut-stream.json", tmp_path / "check.json"
    args = _args(check_cli, ["--per-frame", "--table", str(table), "--spaces", "rtdnas", "--preset", "smoke",
                             "--samples", "6", "--warmup", "1", "--repeats", "3", "--threads", "1", "--json",
                             "--out", str(out)])
    status = check_cli.run(args)
    summary = json.loads(capsys.readouterr().out)
    assert status in (0, 1) and summary["per_frame"] is True and set(summary["spaces"]) == {"rtdnas"}
    figs = summary["spaces"]["rtdnas"]
    for name in ("raw", "calibrated_held_out"):
        assert np.isfinite(figs[name]["rmspe_pct"]) and -1.0 <= figs[name]["kendall_tau"] <= 1.0
    stored = LatencyTable.load(table)
    assert stored.per_frame and set(stored.meta["calibration"]["by_space"]) == {"rtdnas"}
    assert all(k.endswith("|stream") for k in stored.entries)
    networks = json.loads(out.read_text())["networks"]
    assert len(networks) == 6 and all(n["measured_p50_ms"] > 0 for n in networks)
