"""search.latency.profiler: a real two-op table (times measured, never asserted), cache, resume, errors."""

from __future__ import annotations

import pytest
from torch import nn

from search.latency.keys import OpKey
from search.latency.lut import LatencyTable, MissingLatencyKey
from search.latency.profiler import (
    OpProfiler,
    ProfileSettings,
    TableConditionsMismatch,
    default_table_path,
    hardware_slug,
)

FAST = ProfileSettings(warmup=1, repeats=3, intra_op_threads=1, group_size=2)
CONV = OpKey("conv", 2, 2, 4, (8, 8))
DOWN_SEP = OpKey("down_sep_conv", 3, 2, 2, (2, 8, 8), stride=2)


class CountingBuilder:
    """Builds tiny hand-made modules and counts how often each key is built."""

    def __init__(self) -> None:
        self.built: list[OpKey] = []

    def __call__(self, key: OpKey) -> nn.Module:
        self.built.append(key)
        conv = nn.Conv2d if key.dims == 2 else nn.Conv3d
        stride = key.stride if key.dims == 2 else (1, key.stride, key.stride)
        return nn.Sequential(conv(key.c_in, key.c_out, 3, stride=stride, padding=1), nn.ReLU())


def test_two_op_table_with_core_ops(tmp_path) -> None:
    path = tmp_path / "lut.json"
    table = LatencyTable()
    measured = OpProfiler(table, FAST, save_to=path).profile([CONV, DOWN_SEP, CONV])
    assert sorted(measured) == sorted([CONV, DOWN_SEP])
    loaded = LatencyTable.load(path)
    assert set(loaded.entries) == {CONV.canonical(), DOWN_SEP.canonical()}
    assert all(v >= 0.0 for v in loaded.entries.values())
    meta = loaded.meta
    assert meta["runtime"] == "onnxruntime" and meta["provider"] == "CPUExecutionProvider"
    assert meta["threads"] == 1 and meta["warmup"] == 1 and meta["repeats"] == 3
    assert meta["hardware"]["logical_cores"] >= 1 and meta["hardware"]["cpu"]
    assert meta["session_overhead_ms"] > 0
    assert {"created", "updated", "runtime_version", "statistic"} <= set(meta)


def test_cached_keys_are_not_measured_again(tmp_path) -> None:
    path = tmp_path / "lut.json"
    build = CountingBuilder()
    table = LatencyTable()
    OpProfiler(table, FAST, build=build, save_to=path).profile([CONV])
    assert build.built == [CONV]
    resumed = LatencyTable.load(path)
    before = dict(resumed.entries)
    measured = OpProfiler(resumed, FAST, build=build, save_to=path).profile([CONV, DOWN_SEP])
    assert measured == [DOWN_SEP]
    assert build.built == [CONV, DOWN_SEP]  # CONV came from the cache
    after = LatencyTable.load(path)
    assert after.entries[CONV.canonical()] == before[CONV.canonical()]
    assert after.meta["session_overhead_ms"] == resumed.meta["session_overhead_ms"]
    assert OpProfiler(after, FAST, build=build).profile([CONV, DOWN_SEP]) == []


def test_saved_after_each_group_so_an_interrupted_run_resumes(tmp_path) -> None:
    path = tmp_path / "lut.json"

    class FailsOnSecondGroup(CountingBuilder):
        def __call__(self, key):
            if key.op == "down_sep_conv":
                raise KeyboardInterrupt
            return super().__call__(key)

    keys = [CONV, OpKey("conv", 2, 2, 2, (8, 8)), DOWN_SEP]  # sorted: groups of 2 then 1
    with pytest.raises(KeyboardInterrupt):
        OpProfiler(LatencyTable(), FAST, build=FailsOnSecondGroup(), save_to=path).profile(keys)
    partial = LatencyTable.load(path)
    assert len(partial) == 2 and DOWN_SEP not in partial


def test_missing_key_error_names_the_key() -> None:
    table = LatencyTable(entries={CONV.canonical(): 0.1}, path="models/latency/x.json")
    assert table.get(CONV) == 0.1
    with pytest.raises(MissingLatencyKey) as err:
        table.get(DOWN_SEP)
    assert DOWN_SEP.canonical() in str(err.value) and "models/latency/x.json" in str(err.value)


def test_refuses_to_mix_measurement_conditions() -> None:
    table = LatencyTable(entries={CONV.canonical(): 0.1}, meta={"threads": 7, "runtime": "onnxruntime"}, path="t.json")
    with pytest.raises(TableConditionsMismatch, match="threads=7"):
        OpProfiler(table, FAST, build=CountingBuilder())


def test_default_table_path_names_machine_and_runtime() -> None:
    import onnxruntime as ort

    path = default_table_path(threads=2, root="/repo")
    assert path.parent.as_posix() == "/repo/models/latency" and path.suffix == ".json"
    assert f"ort{ort.__version__}" in path.name and path.name.endswith("-t2.json")
    assert " " not in hardware_slug(1) and "(" not in hardware_slug(1)


def test_tables_from_before_spinning_was_recorded_count_as_spinning() -> None:
    old = LatencyTable(entries={CONV.canonical(): 0.1}, meta={"threads": 1, "runtime": "onnxruntime"}, path="old.json")
    with pytest.raises(TableConditionsMismatch, match="allow_spinning=True"):
        OpProfiler(old, FAST, build=CountingBuilder())
