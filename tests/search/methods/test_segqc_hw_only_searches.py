"""segqc-hw ``--searches``: run only some of a run's searches (e.g. the hardware-aware one alone), search stage only."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import pytest

from search.methods.segqc_hw.config import preset
from search.methods.segqc_hw.experiment import searches
from tests.search.methods.synthetic_echo import synthetic_protocol_parts


def test_searches_keeps_the_named_ones_in_order_and_names_the_choices_on_a_miss() -> None:
    cfg = replace(preset("smoke"), search=replace(preset("smoke").search, sensitivity_lambda2=(0.01,)))
    assert [v for _, _, v in searches(cfg)] == ["nohw", "hw", "hw_lambda0.01"]
    assert searches(cfg, ["hw"]) == [("searched_hw", cfg.search.lambda2, "hw")]
    assert [v for _, _, v in searches(cfg, ["hw_lambda0.01", "nohw"])] == ["nohw", "hw_lambda0.01"]
    with pytest.raises(ValueError, match="no search named hw_lambda0.5: this run's searches are nohw, hw, hw_lambda0.01"):
        searches(cfg, ["hw", "hw_lambda0.5"])
    with pytest.raises(ValueError, match="none given"):
        searches(cfg, [])


def test_the_cli_passes_the_names_on_and_refuses_them_past_the_search(monkeypatch, tmp_path: Path) -> None:
    from search.methods.segqc_hw import cli

    seen = {}
    monkeypatch.setattr("search.methods.segqc_hw.experiment.run_segqc_hw",
                        lambda cfg, paths, device, stop_after, only_searches=None, random_controls=True: seen.update(only=only_searches))
    parser = argparse.ArgumentParser()
    cli.configure(parser)
    base = ["--preset", "smoke", "--out", str(tmp_path / "r"), "--no-ship"]
    cli.run(parser.parse_args([*base, "--stop-after", "search", "--searches", "hw"]))
    assert seen == {"only": ["hw"]}
    cli.run(parser.parse_args(base))
    assert seen == {"only": None}
    with pytest.raises(SystemExit, match="--searches needs --stop-after search"):
        cli.run(parser.parse_args([*base, "--searches", "hw"]))
    with pytest.raises(SystemExit, match="--searches: no search named hw2"):
        cli.run(parser.parse_args([*base, "--stop-after", "search", "--searches", "hw2"]))


def test_a_run_with_only_the_hw_search_writes_that_search_alone(monkeypatch, tmp_path: Path) -> None:
    from search.methods.segqc_hw.experiment import RunPaths, SegQcExperiment, run_segqc_hw

    parts = synthetic_protocol_parts()
    monkeypatch.setattr("search.methods.segqc_hw.data.protocol_for", lambda cfg: lambda _: parts)  # no phantoms
    cfg = preset("smoke")
    out = tmp_path / "run"
    paths = RunPaths(out=out, models=tmp_path / "models", docs=tmp_path / "docs")
    with pytest.raises(ValueError, match="stop_after='search'"):
        SegQcExperiment(cfg, paths).run("all", ["hw"])
    assert str(out / "search") in run_segqc_hw(cfg, paths, stop_after="search", only_searches=["hw"])
    assert sorted(p.name for p in (out / "search").iterdir()) == ["hw", "warmup"]  # the shared warm-up, no nohw
    stages = json.loads((out / "stages.json").read_text())["stages"]
    assert [n for n in stages if n.startswith("search:")] == ["search:hw/seed0"]
