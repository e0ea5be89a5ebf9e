"""bench/skeleton_warmup.py on a tiny synthetic run: every regime trains and reports one Dice per epoch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.bench.bench_module import load_bench
from tests.bench.test_size_table import tiny_run


@pytest.mark.parametrize("regime", ["gdas", "soft", "fixed", "derived"])
def test_each_regime_prints_a_dice_curve_of_the_asked_epochs(tmp_path: Path, capsys, regime: str) -> None:
    bench = load_bench("skeleton_warmup")
    run = tiny_run(tmp_path / "run")
    assert bench.main(["--run", str(run), "--regime", regime, "--blocks", "c2", "c1", "--epochs", "2",
                       "--torch-threads", "1"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    summary = json.loads(out[-1])
    assert summary["regime"] == regime and summary["blocks"] == ["c2", "c1"]
    assert len(summary["dice_s1_per_epoch"]) == 2 and all(0.0 <= d <= 1.0 for d in summary["dice_s1_per_epoch"])
    assert [line.split(":")[0] for line in out[:-1]] == [f"{regime} epoch 1", f"{regime} epoch 2"]


def test_a_run_without_cached_patients_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="cases_s1"):
        load_bench("skeleton_warmup").main(["--run", str(tmp_path), "--epochs", "1"])
