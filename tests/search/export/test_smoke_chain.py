"""End to end: ``python -m search --preset smoke`` runs the whole chain (latency table, baselines, the
three methods: data -> search -> retrain -> export -> cards), verifies and summarises every card,
resumes without redoing anything, and ``python -m search report`` builds the results page from it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from app.cards import discover

ROOT = Path(__file__).resolve().parents[3]
STAGES = ("profile", "baselines", "segqc-hw", "segqc-hw-bmode", "msnas-hw", "rtdnas", "cine-qc", "rtdnas-stream",
          "rtdnas-stream-128x112", "cine-qc-128x112", "cine-skeleton", "cine-qc-skeleton")
BASELINE_IDS = {"baseline-unet8-resnet18-seg", "baseline-unet8-resnet18-qc", "baseline-unet3d-d3-if16"}


def _run(*argv: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", CARDIAC_RT_CACHE=str(cwd / "cache"))
    return subprocess.run([sys.executable, "-m", "search", *argv], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=1200)


def _chain_args(tmp: Path) -> list[str]:
    return ["all", "--preset", "smoke", "--models", str(tmp / "models"), "--work", str(tmp / "work"),
            "--runs", str(tmp / "runs"), "--with", "rtdnas-stream-128x112", "cine-qc-128x112", "--diagnostics"]


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("smoke")
    proc = _run(*_chain_args(tmp), cwd=tmp)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return tmp, proc


@pytest.mark.slow
def test_smoke_chain_exports_verified_cards_of_every_stage(chain):
    tmp, proc = chain
    cards = {c.id: c.verify() for c in discover(tmp / "models")}
    assert BASELINE_IDS <= set(cards)
    methods = {c.method for c in cards.values()}
    assert {"segqc-hw", "msnas-hw"} <= methods  # rtdnas ships only a network that beats msnas-hw's
    # segqc-hw on both kinds of echo, each card saying which
    assert cards["echo-segqc-hw-seg-smoke"].raw["echo_mode"] == "contrast"
    assert cards["echo-bmode-segqc-hw-seg-smoke"].raw["echo_mode"] == "bmode"
    assert cards["baseline-unet8-resnet18-seg"].raw["echo_mode"] == "contrast"
    assert (tmp / "runs" / "rtdnas" / "smoke" / "report" / "table1.md").is_file()
    seg, qc, cine = (cards[k] for k in ("baseline-unet8-resnet18-seg", "baseline-unet8-resnet18-qc", "baseline-unet3d-d3-if16"))
    assert seg.pairs_with == qc.id and seg.raw["genotype"] is None
    assert 0.0 <= seg.metrics["dice"]["mean"] <= 1.0 and "qc_mae" in qc.metrics
    assert cine.clip_length == cine.input_shape[2] and cine.modality == "cine"
    assert set(cine.metrics["dice"]["per_class"]) == {"RV", "MYO", "LV"}
    searched = [c for c in cards.values() if c.method in ("segqc-hw", "msnas-hw", "rtdnas") and c.role == "seg"]
    assert searched and all(c.raw["genotype"] for c in searched)
    # split by patient: no patient in two parts, and the card records it
    training = seg.raw["data"]["training"]  # the learning curves of both networks
    assert training["seg_epochs"] == len(training["seg_loss"]) >= 1 and training["qc_epochs"] == len(training["qc_loss"])
    split = seg.raw["data"]["split"]
    ids = [i for part in split.values() for i in part]
    assert len(ids) == len(set(ids)) and set(split) == {"s1", "s2", "test"}
    # every stage ran and is recorded; the summary lists every segmentation model
    record = json.loads((tmp / "work" / "stages.json").read_text())
    assert {s: record[s]["status"] for s in STAGES} == {s: "done" for s in STAGES}
    assert "baseline-unet8-resnet18-seg + baseline-unet8-resnet18-qc" in proc.stdout
    for card in searched:
        assert card.id in proc.stdout
    assert (tmp / "models" / "latency").is_dir()  # its own latency table, not the repository's
    # the stages ran minutes apart: every card re-timed together at the end, the load on the card
    assert f"retime         done: {len(cards)} cards re-timed together" in proc.stdout
    contexts = [c.metrics["latency_context"] for c in cards.values()]
    assert all(x["how"].startswith("python -m search retime: 1 round x 2") for x in contexts)
    assert len({x["measured"] for x in contexts}) <= 2 and all("latency_previous" in c.metrics for c in cards.values())
    # the cine default model got its per-frame QC, paired through its card
    cine_qc = [c for c in cards.values() if c.modality == "cine" and c.role == "qc"]
    assert cine_qc and all(q.method == "cine-qc" for q in cine_qc)
    segs = [c for c in discover(tmp / "models") if c.role == "seg"]
    assert all(any(c.pairs_with == q.id for c in segs) for q in cine_qc)
    # rtdnas-stream: when rtdnas shipped a clip model, its causal retrain ships streaming, paired with the same
    # QC; at 128x112 it ships as <clip>-stream-128x112 with a QC of its own (cine-qc-128x112)
    clip = [c for c in cards.values() if c.method == "rtdnas" and c.role == "seg" and "streaming" not in c.raw]
    stream = [c for c in cards.values() if "streaming" in c.raw]
    assert len(stream) == 2 * len(clip) <= 2
    for c in stream:
        assert c.raw["retrained_from"]["card"] == clip[0].id
        if c.input_shape[-2:] == clip[0].input_shape[-2:]:
            assert c.pairs_with == clip[0].pairs_with
        else:
            assert c.id == f"{clip[0].id}-stream-128x112" and tuple(c.input_shape[-2:]) == (128, 112)
            assert c.pairs_with == f"{c.id}-qc-smoke" and tuple(cards[c.pairs_with].input_shape[-2:]) == (128, 112)
    # cine-skeleton: the searched per-frame U-net, with a per-frame QC of its own (cine-qc-skeleton)
    skeleton = cards["cine-skeleton-hw"]
    assert skeleton.method == "cine-skeleton" and skeleton.clip_length == 1 and "convergence" in skeleton.raw["search"]
    assert skeleton.pairs_with == "cine-skeleton-hw-qc-smoke" and cards[skeleton.pairs_with].role == "qc"


@pytest.mark.slow
def test_smoke_chain_resumes_without_redoing_a_stage(chain):
    tmp, _ = chain
    again = _run(*_chain_args(tmp), cwd=tmp)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    assert again.stdout.count("done earlier") == len(STAGES) and "=== retime" not in again.stdout  # nothing ran
    # the baselines' checkpoints are in the work folder, the methods' runs in the runs folder
    assert {p.name for p in (tmp / "work").rglob("*.pt")} == {"seg.pt", "qc.pt"}
    runs = {"segqc-hw", "segqc-hw-bmode", "msnas-hw", "rtdnas", "cine-qc"}
    assert runs <= {p.name for p in (tmp / "runs").iterdir()} <= runs | {"rtdnas-stream", "rtdnas-stream-128x112",
                                                                         "cine-qc-128x112", "cine-skeleton",
                                                                         "cine-qc-skeleton"}


@pytest.mark.slow
def test_report_from_the_smoke_chain(chain):
    tmp, _ = chain
    out = tmp / "docs" / "results.md"
    proc = _run("report", "--preset", "smoke", "--runs", str(tmp / "runs"), "--models", str(tmp / "models"),
                "--out", str(out), cwd=tmp)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    text = out.read_text()
    assert "no stored results" not in text and "REJECTED" not in text
    for heading in ("#### Table II, ours beside the paper's", "#### Table 2, ours beside the paper's",
                    "#### Table 1: top-weight vs GA", "#### Table 2 of the paper"):
        assert heading in text
    assert (tmp / "docs" / "results" / "pareto_dice_latency.png").is_file()


@pytest.mark.slow
def test_search_without_a_command_verifies_summarises_and_rejects_a_bad_card(chain, tmp_path):
    src, _ = chain
    models = tmp_path / "models"
    shutil.copytree(src / "models", models)
    skip = ["--skip", *STAGES]
    # no command: the options go to `all`, which verifies every card and prints the summary table
    ok = _run("--preset", "smoke", "--models", str(models), "--work", str(tmp_path / "w"), *skip, cwd=tmp_path)
    assert ok.returncode == 0, ok.stdout[-2000:] + ok.stderr[-2000:]
    assert "baseline-unet3d-d3-if16" in ok.stdout and "skipped (--skip)" in ok.stdout
    assert "real time (p95 <= 50 ms and >= 22 FPS)" in ok.stdout
    card = json.loads((models / "baseline-unet3d-d3-if16.json").read_text())
    card["onnx_sha256"] = "f" * 64
    (models / "baseline-unet3d-d3-if16.json").write_text(json.dumps(card))
    bad = _run("--preset", "smoke", "--models", str(models), "--work", str(tmp_path / "w"), *skip, cwd=tmp_path)
    assert bad.returncode == 1
    assert "REJECTED" in bad.stdout and "sha256" in bad.stdout
