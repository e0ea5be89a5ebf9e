"""search.latency.measure: onnxruntime timing with the deployed session settings (no times asserted)."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from app.engine.runtime import default_threads
from search.latency.measure import (
    LatencyStats,
    make_feeds,
    measure_blocks,
    measure_interleaved,
    measure_onnx_latency,
    session_overhead_model,
    stats_from_samples,
)


def _add_model(shape=(1, 3, 8, 8)) -> bytes:
    """Two-input model ``y = a + b``: (1, 3, 8, 8) each."""
    a = helper.make_tensor_value_info("a", TensorProto.FLOAT, list(shape))
    b = helper.make_tensor_value_info("b", TensorProto.FLOAT, list(shape))
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, list(shape))
    graph = helper.make_graph([helper.make_node("Add", ["a", "b"], ["y"])], "add", [a, b], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def test_stats_summarise_samples() -> None:
    stats = stats_from_samples([1.0, 2.0, 3.0, 4.0, 100.0], threads=2, runtime="rt")
    assert stats.p50_ms == 3.0
    assert stats.mean_ms == pytest.approx(22.0)
    assert stats.fps == pytest.approx(1000.0 / 22.0)
    assert 4.0 < stats.p95_ms <= 100.0
    assert stats.repeats == 5 and stats.threads == 2
    with pytest.raises(ValueError, match="no timed runs"):
        stats_from_samples([], threads=1, runtime="rt")


def test_measure_bytes_and_path_record_threads_and_runtime(tmp_path) -> None:
    model = session_overhead_model()
    stats = measure_onnx_latency(model, warmup=1, repeats=5, intra_op_threads=1)
    assert isinstance(stats, LatencyStats)
    assert stats.repeats == 5 and stats.threads == 1
    assert stats.runtime == f"onnxruntime {ort.__version__} CPUExecutionProvider"
    assert 0 < stats.p50_ms <= stats.p95_ms
    path = tmp_path / "m.onnx"
    path.write_bytes(_add_model())
    by_path = measure_onnx_latency(path, {"a": (1, 3, 8, 8), "b": (1, 3, 8, 8)}, warmup=0, repeats=3)
    assert by_path.threads == default_threads()


def test_feeds_from_shapes_arrays_and_errors() -> None:
    from app.engine.runtime import create_session

    session = create_session(_add_model())
    given = np.ones((1, 3, 8, 8), np.float32)
    feeds = make_feeds(session, {"a": given, "b": (1, 3, 8, 8)}, seed=3)
    assert feeds["a"] is given
    assert feeds["b"].shape == (1, 3, 8, 8) and feeds["b"].dtype == np.float32
    again = make_feeds(session, {"a": given, "b": (1, 3, 8, 8)}, seed=3)
    np.testing.assert_array_equal(feeds["b"], again["b"])  # seeded
    with pytest.raises(ValueError, match="unknown input"):
        make_feeds(session, {"c": (1,)})
    with pytest.raises(ValueError, match="2 inputs"):
        make_feeds(session, (1, 3, 8, 8))


def test_interleaved_times_every_model() -> None:
    stats = measure_interleaved({"add": _add_model(), "relu": session_overhead_model()}, warmup=1, repeats=4, seed=1)
    assert set(stats) == {"add", "relu"}
    assert all(s.repeats == 4 for s in stats.values())


def test_overhead_model_is_valid_onnx() -> None:
    onnx.checker.check_model(onnx.load_from_string(session_overhead_model()))


class _Recorder:
    """A session stand-in that logs each run under its model's name."""

    def __init__(self, name: str, log: list[str]) -> None:
        self.name, self.log = name, log

    def run(self, outputs, feeds):
        self.log.append(self.name)

    def get_session_options(self):
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        return opts

    def get_providers(self):
        return ["CPUExecutionProvider"]


def test_blocks_run_each_model_back_to_back_once_per_round(monkeypatch) -> None:
    from search.latency import measure

    runs: list[str] = []
    monkeypatch.setattr(measure, "deployed_session", lambda model, threads=None: _Recorder(model.decode(), runs))
    monkeypatch.setattr(measure, "make_feeds", lambda session, shapes=None: {})
    names = ["a", "b", "c"]
    stats = measure.measure_blocks({n: n.encode() for n in names}, warmup=2, runs=3, rounds=4, seed=5)
    assert set(stats) == set(names) and all(s.repeats == 12 and s.threads == 1 for s in stats.values())
    blocks = [runs[i:i + 5] for i in range(0, len(runs), 5)]  # warm-up 2 + timed 3, contiguous
    assert len(blocks) == 12 and all(len(set(b)) == 1 and len(b) == 5 for b in blocks)
    orders = [[b[0] for b in blocks[r * 3:(r + 1) * 3]] for r in range(4)]
    assert all(sorted(o) == names for o in orders)  # every model once per round
    assert len({tuple(o) for o in orders}) > 1  # the order is shuffled between rounds
    again: list[str] = []
    monkeypatch.setattr(measure, "deployed_session", lambda model, threads=None: _Recorder(model.decode(), again))
    measure.measure_blocks({n: n.encode() for n in names}, warmup=2, runs=3, rounds=4, seed=5)
    assert again == runs  # seeded


def test_blocks_time_real_sessions_and_refuse_bad_counts() -> None:
    stats = measure_blocks({"add": _add_model(), "relu": session_overhead_model()}, warmup=1, runs=2, rounds=2, seed=1)
    assert set(stats) == {"add", "relu"} and all(s.repeats == 4 and s.p50_ms > 0 for s in stats.values())
    for bad in ({"runs": 0}, {"rounds": 0}, {"warmup": -1}):
        with pytest.raises(ValueError, match="need runs >= 1"):
            measure_blocks({"relu": session_overhead_model()}, **bad)
