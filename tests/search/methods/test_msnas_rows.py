"""msnas-hw --rows / --retrain-steps: chosen Table 2 rows retrained on their own, with their summary."""

from __future__ import annotations

import json

import pytest

from search.methods.msnas_hw.config import RetrainConfig, paper_rows, preset
from search.methods.msnas_hw.rows_summary import below_floor, rows_markdown, rows_summary


def test_retrain_steps_override_keeps_eval_every_unless_longer():
    assert RetrainConfig(steps=250, eval_every=50).with_steps(1000) == RetrainConfig(steps=1000, eval_every=50)
    assert RetrainConfig(steps=250, eval_every=50).with_steps(20).eval_every == 20
    long = RetrainConfig(steps=1000, eval_every=50)
    assert (long.epochs, long.steps_per_epoch) == (20, 50)
    with pytest.raises(ValueError, match=">= 1"):
        RetrainConfig().with_steps(0)
    cfg = preset("default")  # the preset's own steps: the very same configuration (same hash, same folder)
    assert cfg.with_retrain_steps(cfg.retrain.steps).to_dict() == cfg.to_dict()
    assert cfg.with_retrain_steps(1000).to_dict()["retrain"]["steps"] == 1000


def test_summary_says_which_class_is_below_the_floor():
    cfg = preset("smoke")
    row = cfg.rows_named(["unet3d_d3_if16"])[0]
    result = {"dice": {"per_class": {"RV": 0.0, "MYO": 0.82, "LV": 0.91}, "mean": 0.58,
                       "std": {"RV": 0.0, "MYO": 0.03, "LV": 0.02, "mean": 0.01}},
              "params": 10, "train_losses": [1.5, 0.9], "train_seconds": 3.0}
    assert below_floor(result["dice"]) == ["RV"]
    assert below_floor({"per_class": {"RV": 0.4, "MYO": 0.5}}) == ["LV"]  # not scored counts as below
    text = rows_markdown(rows_summary(cfg, [row], {row.key: result}, ["p1"]))
    assert "| U-net 3D (D3, IF16) | 0.910±0.020 | 0.000±0.000 | 0.820±0.030 | 0.580±0.010 |" in text
    assert "- U-net 3D (D3, IF16): below the floor: RV 0.000" in text
    assert "1.500 0.900" in text


def test_unknown_row_is_a_one_line_error(tmp_path, capsys):
    from search.cli import main

    out = tmp_path / "run"
    assert main(["msnas-hw", "--preset", "smoke", "--out", str(out), "--rows", "unet2d_d3_if16", "unet9"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "'unet9'" in err
    assert all(r.key in err for r in paper_rows())
    assert not out.exists()


def test_rows_trains_only_the_chosen_row_and_refuses_another_schedule(tmp_path, capsys):
    from search.cli import main

    out = tmp_path / "run"
    args = ["msnas-hw", "--preset", "smoke", "--out", str(out), "--rows", "unet2d_d3_if16"]
    assert main([*args, "--retrain-steps", "4"]) == 0
    assert [p.name for p in (out / "rows").iterdir()] == ["unet2d_d3_if16"]
    for absent in ("searches", "latency_table.json", "latency.json", "report", "models"):
        assert not (out / absent).exists(), absent
    assert json.loads((out / "config.json").read_text())["retrain"]["steps"] == 4
    doc = json.loads((out / "rows.json").read_text())
    row = doc["rows"]["unet2d_d3_if16"]
    assert set(row["dice"]["per_class"]) == {"LV", "RV", "MYO"}
    assert row["schedule"]["steps"] == row["schedule"]["trained_steps"] == 4 and row["schedule"]["batch_size"] == 1
    assert len(row["learning_curve"]["mean_loss"]) == 2 and row["learning_curve"]["loss_every_steps"] == 2
    assert isinstance(row["floor"]["every_class_met"], bool) and row["train_seconds"] > 0
    text = (out / "rows.md").read_text()
    assert "| U-net 2D (D3, IF16) |" in text and "## Learning curves" in text and "## Floor" in text

    result = out / "rows" / "unet2d_d3_if16" / "result.json"
    stamp = result.stat().st_mtime_ns
    capsys.readouterr()
    assert main([*args, "--retrain-steps", "6"]) == 1  # another schedule: the 4-step result is not reused
    assert "another configuration" in capsys.readouterr().err
    assert result.stat().st_mtime_ns == stamp
