"""``python -m search baselines``: the epochs overrides reach the echo and cine schedules; cards carry learning curves."""

from __future__ import annotations

import argparse
from types import SimpleNamespace

from search.baselines import cli
from search.baselines.run import training_curves


def test_epochs_override_reaches_both_echo_schedules(monkeypatch, tmp_path):
    seen = {}

    def fake_run(preset, out, work, names, progress, data=None):
        seen["preset"] = preset
        return []

    monkeypatch.setattr("search.baselines.run.run_baselines", fake_run)
    parser = argparse.ArgumentParser()
    cli.configure(parser)
    args = parser.parse_args(["--only", "unet16-resnet18", "--epochs", "30", "10", "--out", str(tmp_path / "m"),
                              "--work", str(tmp_path / "w"), "--no-quantize"])
    cli.run(args)
    p = seen["preset"]
    assert (p.seg_train.epochs, p.qc_train.epochs, p.quantize) == (30, 10, False)
    args = parser.parse_args(["--out", str(tmp_path / "m"), "--work", str(tmp_path / "w")])
    cli.run(args)
    assert (seen["preset"].seg_train.epochs, seen["preset"].qc_train.epochs) == (60, 20)  # the default preset's


def test_training_curves_are_one_loss_per_epoch():
    pair = SimpleNamespace(seg_losses=[0.91234567, 0.5], qc_losses=[0.0342, 0.01234567, 0.0101])
    assert training_curves(pair) == {"seg_epochs": 2, "seg_loss": [0.9123, 0.5], "qc_epochs": 3,
                                     "qc_loss": [0.0342, 0.01235, 0.0101]}


def test_cine_epochs_override_reaches_the_cine_schedule_only(monkeypatch, tmp_path, capsys):
    seen = {}
    monkeypatch.setattr("search.baselines.run.run_baselines",
                        lambda preset, out, work, names, progress, data=None: seen.setdefault("p", []).append(preset) or [])
    parser = argparse.ArgumentParser()
    cli.configure(parser)
    base = ["--only", "unet2d-d3-if16", "--out", str(tmp_path / "m"), "--work", str(tmp_path / "w")]
    cli.run(parser.parse_args(base + ["--cine-epochs", "30"]))
    p = seen["p"][-1]
    assert (p.cine_train.epochs, p.cine_train.steps_per_epoch, p.seg_train.epochs) == (30, 12, 60)
    cli.run(parser.parse_args(base))
    assert seen["p"][-1].cine_train.epochs == 60  # the default preset's
    assert cli.run(parser.parse_args(base + ["--cine-epochs", "0"])) == 2
    assert "--cine-epochs must be at least 1" in capsys.readouterr().err and len(seen["p"]) == 2
