"""bench/cine_skeleton_train_seeds.py (smoke recipe): one per-frame card per skeleton and training seed, resumable."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.cards import load_card
from tests.bench.bench_module import load_bench


@pytest.mark.slow
def test_each_skeleton_and_seed_is_retrained_into_a_card(tmp_path: Path, capsys) -> None:
    bench = load_bench("cine_skeleton_train_seeds")
    models = tmp_path / "models"
    argv = ["--specs", "8c2-16c2", "4c2-8c1", "--seeds", "1", "--preset", "smoke", "--out", str(tmp_path / "run"),
            "--models-dir", str(models)]
    assert bench.main(argv) == 0
    ids = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["models"]
    assert ids == ["skel-8c2-16c2-t1", "skel-4c2-8c1-t1"]
    card = load_card(models / "skel-8c2-16c2-t1.json").verify()
    assert card.raw["training_seed"] == 1 and card.raw["architecture"]["args"]["spec"] == "8c2-16c2"
    assert card.clip_length == 1 and card.method == "cine-skeleton"
    stamp = (models / "skel-8c2-16c2-t1.onnx").stat().st_mtime_ns
    assert bench.main(argv) == 0 and (models / "skel-8c2-16c2-t1.onnx").stat().st_mtime_ns == stamp  # kept
    assert bench.main(["--specs", "8x9", "--seeds", "1", "--out", str(tmp_path), "--models-dir", str(models)]) == 2
