"""``python -m search baselines``: the epochs override reaches the echo schedules; cards carry learning curves."""

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
    args = parser.parse_args(["--only", "unet16-resnet18", "--epochs", "60", "20", "--out", str(tmp_path / "m"),
                              "--work", str(tmp_path / "w"), "--no-quantize"])
    cli.run(args)
    p = seen["preset"]
    assert (p.seg_train.epochs, p.qc_train.epochs, p.quantize) == (60, 20, False)
    args = parser.parse_args(["--out", str(tmp_path / "m"), "--work", str(tmp_path / "w")])
    cli.run(args)
    assert (seen["preset"].seg_train.epochs, seen["preset"].qc_train.epochs) == (12, 6)  # the default preset's


def test_training_curves_are_one_loss_per_epoch():
    pair = SimpleNamespace(seg_losses=[0.91234567, 0.5], qc_losses=[0.0342, 0.01234567, 0.0101])
    assert training_curves(pair) == {"seg_epochs": 2, "seg_loss": [0.9123, 0.5], "qc_epochs": 3,
                                     "qc_loss": [0.0342, 0.01235, 0.0101]}
