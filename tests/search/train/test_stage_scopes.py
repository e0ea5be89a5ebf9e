"""The stage harness's per-stage scope: a stage's own config, its scratch files, a method's own table profiler."""

from __future__ import annotations

import json

from search.latency.keys import OpKey
from search.latency.profiler import ProfileSettings
from search.train.stages import Stage, StageRunner, latency_table_stage


def _stage(tmp_path, name: str, config, calls: list, **kwargs) -> Stage:
    out = tmp_path / f"{name}.txt"
    return Stage(name, run=lambda: (calls.append(name), out.write_text(name)), outputs=(out,), config=config, **kwargs)


def test_a_stage_with_its_own_config_reruns_only_when_that_part_changes(tmp_path) -> None:
    calls: list = []
    cfg = {"search": {"epochs": 1}, "retrain": {"epochs": 1}}

    def stages(c):
        return [_stage(tmp_path, "search", c["search"], calls), _stage(tmp_path, "retrain", c, calls)]

    runner = StageRunner(tmp_path, cfg)
    for stage in stages(cfg):
        runner.run(stage)
    changed = {"search": {"epochs": 1}, "retrain": {"epochs": 2}}
    runner = StageRunner(tmp_path, changed)
    for stage in stages(changed):
        runner.run(stage)
    assert calls == ["search", "retrain", "retrain"]
    record = json.loads((tmp_path / "stages.json").read_text())["stages"]
    assert record["search"]["reason"] == "skipped: result exists at search.txt, config hash unchanged"
    assert record["retrain"]["reason"].startswith("reran: result at retrain.txt was made with config hash")


def test_scratch_files_go_with_a_stale_result_and_stay_for_a_resume(tmp_path) -> None:
    checkpoint = tmp_path / "train.pt"
    seen: list = []
    out = tmp_path / "scores.json"

    def train():
        seen.append(checkpoint.is_file())
        checkpoint.write_text("epoch 1")
        out.write_text("{}")

    def stage(config):
        return Stage("train", run=train, outputs=(out,), scratch=(checkpoint,), config=config)

    checkpoint.write_text("interrupted")  # an interrupted first run left its checkpoint: resume from it
    StageRunner(tmp_path, {}).run(stage({"lr": 1}))
    StageRunner(tmp_path, {}).run(stage({"lr": 2}))  # another config: start from scratch
    assert seen == [True, False]


def test_latency_table_stage_measures_missing_keys_with_the_methods_profiler(tmp_path) -> None:
    path = tmp_path / "lut.json"
    keys = [OpKey("conv", 2, 2, 2, (8, 8)), OpKey("sep_conv", 2, 2, 2, (8, 8))]
    asked: list = []

    def profile(table, missing) -> None:
        asked.append(list(missing))
        for key in missing:
            table.set(key, 1.5)
        table.save(path)

    first = latency_table_stage(path, lambda: keys[:1], ProfileSettings(), profile=profile, config={"r": 8})
    assert StageRunner(tmp_path, {}).run(first).get(keys[0]) == 1.5
    both = latency_table_stage(path, lambda: keys, ProfileSettings(), profile=profile, config={"r": 8})
    runner = StageRunner(tmp_path, {})
    assert len(runner.run(both)) == 2 and asked == [keys[:1], keys[1:]]
    assert runner.status(both) == (True, "skipped: result exists at lut.json, config hash unchanged")
