"""End to end: ``python -m search baselines --preset smoke`` (data -> train -> export -> cards), and
``python -m search`` verifying and summarising whatever is in its models folder."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from app.cards import discover

ROOT = Path(__file__).resolve().parents[2]


def _run(*argv: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", CARDIAC_RT_CACHE=str(cwd / "cache"))
    return subprocess.run([sys.executable, "-m", "search", *argv], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)


@pytest.fixture(scope="module")
def smoke_models(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("smoke")
    proc = _run("baselines", "--preset", "smoke", "--out", str(tmp / "models"), "--work", str(tmp / "work"), cwd=tmp)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return tmp, proc


@pytest.mark.slow
def test_smoke_chain_exports_verified_cards(smoke_models):
    tmp, proc = smoke_models
    cards = {c.id: c.verify() for c in discover(tmp / "models")}
    assert set(cards) == {"baseline-unet8-resnet18-seg", "baseline-unet8-resnet18-qc", "baseline-unet3d-d3-if16"}
    seg, qc, cine = (cards[k] for k in ("baseline-unet8-resnet18-seg", "baseline-unet8-resnet18-qc", "baseline-unet3d-d3-if16"))
    assert seg.pairs_with == qc.id and seg.raw["genotype"] is None
    assert 0.0 <= seg.metrics["dice"]["mean"] <= 1.0 and "qc_mae" in qc.metrics
    assert cine.clip_length == cine.input_shape[2] and cine.modality == "cine"
    assert set(cine.metrics["dice"]["per_class"]) == {"RV", "MYO", "LV"}
    # split by patient: no patient in two parts, and the card records it
    split = seg.raw["data"]["split"]
    ids = [i for part in split.values() for i in part]
    assert len(ids) == len(set(ids)) and set(split) == {"s1", "s2", "test"}
    assert "baseline-unet8-resnet18-seg + baseline-unet8-resnet18-qc" in proc.stdout
    # resumable: checkpoints of every stage are there, and a rerun reuses them
    assert {p.name for p in (tmp / "work").rglob("*.pt")} == {"seg.pt", "qc.pt"}
    assert len(list((tmp / "work").rglob("*.pt"))) == 3


@pytest.mark.slow
def test_search_all_verifies_and_summarises_and_rejects_a_bad_card(smoke_models, tmp_path):
    src, _ = smoke_models
    models = tmp_path / "models"
    shutil.copytree(src / "models", models)
    skip = ["--skip", "profile", "baselines", "segqc-hw", "msnas-hw", "rtdnas"]
    ok = _run("all", "--preset", "smoke", "--models", str(models), "--work", str(tmp_path / "w"), *skip, cwd=tmp_path)
    assert ok.returncode == 0, ok.stdout[-2000:] + ok.stderr[-2000:]
    assert "baseline-unet3d-d3-if16" in ok.stdout and "skipped (--skip)" in ok.stdout
    card = json.loads((models / "baseline-unet3d-d3-if16.json").read_text())
    card["onnx_sha256"] = "f" * 64
    (models / "baseline-unet3d-d3-if16.json").write_text(json.dumps(card))
    bad = _run("all", "--preset", "smoke", "--models", str(models), "--work", str(tmp_path / "w"), *skip, cwd=tmp_path)
    assert bad.returncode == 1
    assert "REJECTED" in bad.stdout and "sha256" in bad.stdout
