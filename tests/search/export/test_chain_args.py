"""``python -m search``'s stage arguments: where each method's run goes (no training here)."""

from __future__ import annotations

import argparse

from search.chain import all_cli


def _stage_argv(monkeypatch, tmp_path, **kw) -> dict[str, list[str]]:
    calls = {}

    def fake_run(module, argv, models_dir):
        calls[module.__name__] = argv
        return 0

    monkeypatch.setattr(all_cli, "_run_module", fake_run)
    parser = argparse.ArgumentParser()
    all_cli.configure(parser)
    argv = ["--models", str(tmp_path / "models"), "--work", str(tmp_path / "work"), "--skip", "profile", "baselines"]
    args = parser.parse_args(argv + kw.get("extra", []))
    assert all_cli.run(args) == 0
    return calls


def test_default_rtdnas_runs_the_shipped_seed_beside_msnas_hw(monkeypatch, tmp_path):
    calls = _stage_argv(monkeypatch, tmp_path)
    rt = calls["search.methods.rtdnas.cli"]
    assert rt[rt.index("--seed") + 1] == "1"
    assert rt[rt.index("--out") + 1].endswith("rtdnas/default-seed1")
    assert rt[rt.index("--msnas-dir") + 1].endswith("msnas-hw/default")
    assert "--out" not in calls["search.methods.msnas_hw.cli"]  # the method's own default run folder


def test_runs_folder_is_passed_to_every_method(monkeypatch, tmp_path):
    calls = _stage_argv(monkeypatch, tmp_path, extra=["--preset", "smoke", "--runs", str(tmp_path / "runs")])
    for module, method in (("segqc_hw", "segqc-hw"), ("msnas_hw", "msnas-hw"), ("rtdnas", "rtdnas")):
        argv = calls[f"search.methods.{module}.cli"]
        assert argv[argv.index("--out") + 1] == str(tmp_path / "runs" / method / "smoke")
