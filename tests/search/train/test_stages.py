"""The stage harness: skip-if-done with a record of why, reruns of stale stages, the latency-table stage."""

from __future__ import annotations

import json

import pytest

from search.latency.keys import OpKey
from search.latency.profiler import ProfileSettings
from search.train.stages import Stage, StageRunner, latency_table_stage, stopwatch


def _writer(path, calls: list, text: str = "done"):
    def run():
        calls.append(path.name)
        path.write_text(text)
        return text

    return run


def test_a_stage_runs_once_then_is_skipped_with_its_reason(tmp_path) -> None:
    calls: list = []
    out = tmp_path / "result.txt"
    stage = Stage("make", run=_writer(out, calls), outputs=("result.txt",), load=lambda: out.read_text() + " (loaded)")
    assert StageRunner(tmp_path, {"a": 1}).run(stage) == "done"
    again = StageRunner(tmp_path, {"a": 1}).run(stage)
    assert again == "done (loaded)" and calls == ["result.txt"]
    record = json.loads((tmp_path / "stages.json").read_text())["stages"]["make"]
    assert record["status"] == "skipped"
    assert record["reason"] == "skipped: result exists at result.txt, config hash unchanged"
    assert record["outputs"] == ["result.txt"] and record["seconds"] >= 0


def test_a_changed_config_reruns_a_stage_from_scratch(tmp_path) -> None:
    calls: list = []
    out = tmp_path / "result.txt"
    stage = Stage("make", run=lambda: (calls.append(out.exists()), out.write_text("x")), outputs=(out,))
    StageRunner(tmp_path, {"a": 1}).run(stage)
    runner = StageRunner(tmp_path, {"a": 2})
    skip, reason = runner.status(stage)
    assert not skip and reason.startswith("reran: result at result.txt was made with config hash")
    runner.run(stage)
    assert calls == [False, False]  # the stale result was removed before the rerun


def test_another_thread_count_skips_what_is_done(tmp_path) -> None:
    calls: list = []
    out = tmp_path / "result.txt"
    stage = Stage("make", run=_writer(out, calls), outputs=("result.txt",))
    StageRunner(tmp_path, {"a": 1, "threads": 1}).run(stage)
    skip, reason = StageRunner(tmp_path, {"a": 1, "threads": 2}).status(stage)
    assert skip and reason.endswith("config hash unchanged") and calls == ["result.txt"]
    assert not StageRunner(tmp_path, {"a": 2, "threads": 1}).status(stage)[0]


def test_changed_inputs_rerun_a_stage(tmp_path) -> None:
    source, out = tmp_path / "in.txt", tmp_path / "out.txt"
    source.write_text("1")
    calls: list = []
    stage = Stage("copy", run=lambda: (calls.append(1), out.write_text(source.read_text())), outputs=(out,),
                  inputs=(source,))
    StageRunner(tmp_path, {}).run(stage)
    StageRunner(tmp_path, {}).run(stage)
    source.write_text("2")
    runner = StageRunner(tmp_path, {})
    assert runner.status(stage) == (False, "reran: the inputs of out.txt changed")
    runner.run(stage)
    assert len(calls) == 2 and out.read_text() == "2"


def test_results_made_before_records_are_skipped_and_said_so(tmp_path) -> None:
    (tmp_path / "r.json").write_text("{}")
    stage = Stage("old", run=lambda: pytest.fail("must not run"), outputs=("r.json",))
    StageRunner(tmp_path, {}).run(stage)
    record = json.loads((tmp_path / "stages.json").read_text())["stages"]["old"]
    assert record["reason"] == "skipped: result exists at r.json (made before stage records)"


def test_a_stage_without_outputs_always_runs_and_a_missing_output_is_an_error(tmp_path) -> None:
    calls: list = []
    runner = StageRunner(tmp_path, {})
    runner.run(Stage("report", run=lambda: calls.append(1)))
    runner.run(Stage("report", run=lambda: calls.append(1)))
    assert calls == [1, 1]
    assert runner.records["report"]["reason"] == "ran: always runs (it declares no result files)"
    with pytest.raises(RuntimeError, match="stage lazy finished without writing nothing.txt"):
        runner.run(Stage("lazy", run=lambda: None, outputs=("nothing.txt",)))


def test_an_unreadable_record_names_its_file(tmp_path) -> None:
    (tmp_path / "stages.json").write_text("{not json")
    with pytest.raises(ValueError, match="stages.json: unreadable stage record"):
        StageRunner(tmp_path, {})


def test_stopwatch_times_a_block() -> None:
    with stopwatch() as watch:
        inside = watch.elapsed()
    assert 0 <= inside <= watch.seconds


def test_latency_table_stage_profiles_only_missing_keys(tmp_path) -> None:
    keys = [OpKey("conv", 2, 2, 2, (8, 8))]
    path = tmp_path / "lut.json"
    settings = ProfileSettings(warmup=1, repeats=2, intra_op_threads=1)
    stage = latency_table_stage(path, lambda: keys, settings)
    table = StageRunner(tmp_path, {}).run(stage)
    assert keys[0] in table
    runner = StageRunner(tmp_path, {})
    assert runner.status(stage)[0]  # every key there: skipped
    more = latency_table_stage(path, lambda: keys + [OpKey("sep_conv", 2, 2, 2, (8, 8))], settings)
    skip, reason = runner.status(more)
    assert not skip and reason == "ran: lut.json not complete"
    assert len(runner.run(more)) == 2
