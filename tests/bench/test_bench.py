"""bench/pipeline_bench.py on tiny inputs: the report's structure and that its ratios come from its figures.

Behaviour only (no wall-clock thresholds): a few frames per arm, one round, tiny ONNX models.
"""

from __future__ import annotations

import json
import math

import pytest

from tests.app.engine.tiny_models import write_cine_model, write_echo_models
from tests.bench.bench_module import load_bench

pytestmark = pytest.mark.timeout(120)

MAX_FRAMES = 4


def _load_bench():
    return load_bench("pipeline_bench")


@pytest.fixture(scope="module")
def bench():
    return _load_bench()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict:
    """Tiny models (reference baseline + a 'searched' echo pair, a cine clip model, one corrupt) and sources."""
    from app.data.phantom.cine import render_cine_case
    from app.data.phantom.echo import render_echo_case
    from app.data.writers import write_acdc_patient, write_echo_dicom

    models = tmp_path_factory.mktemp("models")
    write_echo_models(models, size=32, seg_id="baseline-tiny-seg", qc_id="baseline-tiny-qc", method="baseline-tiny")
    write_echo_models(models, size=48, seg_id="segqc-hw-tiny-seg", qc_id="segqc-hw-tiny-qc", method="segqc-hw")
    write_echo_models(models, size=32, seg_id="zz-broken-seg", qc_id="zz-broken-qc", method="baseline-broken")
    with open(models / "zz-broken-seg.onnx", "ab") as fh:  # changed after its card was written
        fh.write(b"x")
    write_cine_model(models)
    data = tmp_path_factory.mktemp("data")
    echo = write_echo_dicom(render_echo_case(5, 0, n_frames=8, size=64), data / "phantom.dcm", 1)
    cine = write_acdc_patient(render_cine_case(5, 0, n_frames=6, n_slices=3, shape=(48, 40)), data, 1)
    return {"models": models, "echo": str(echo), "cine": str(cine)}


@pytest.fixture(scope="module")
def run(bench, inputs, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    argv = ["--rounds", "1", "--seconds", "20", "--seed", "3", "--max-frames", str(MAX_FRAMES),
            "--models-dir", str(inputs["models"]), "--echo-source", inputs["echo"], "--cine-source", inputs["cine"],
            "--out", str(out)]
    assert bench.main(argv) == 0
    return json.loads(out.read_text())


def _arm(report, source, model, runner, mode):
    hits = [a for a in report["arms"] if (a["source"], a["model"], a["runner"], a["mode"]) == (source, model, runner, mode)]
    assert len(hits) == 1, (source, model, runner, mode)
    return hits[0]


def test_report_structure_and_arms(run):
    assert {"machine", "onnxruntime", "settings", "load_avg", "sources", "models", "skipped", "defaults",
            "references", "round_orders", "arms", "engine_vs_naive", "models_table"} <= set(run)
    assert len(run["load_avg"]["start"]) == 3 and len(run["load_avg"]["end"]) == 3
    assert run["defaults"] == {"echo": "segqc-hw-tiny-seg", "cine": "tiny-cine-seg"}
    assert run["references"] == {"echo": "baseline-tiny-seg", "cine": "tiny-cine-seg"}
    assert set(run["models"]) == {"baseline-tiny-seg", "segqc-hw-tiny-seg", "tiny-cine-seg"}
    assert "sha256" in run["skipped"]["zz-broken-seg"]  # a model being rewritten is reported, not fatal
    echo, cine = (s["key"] for s in run["sources"])
    assert [s["slice"] for s in run["sources"]] == [None, 1]  # cine plays its middle slice
    expected = {(echo, m, "engine", mode) for m in ("baseline-tiny-seg", "segqc-hw-tiny-seg") for mode in ("paced", "fast")}
    expected |= {(src, run["defaults"][mod], r, mode) for src, mod in ((echo, "echo"), (cine, "cine"))
                 for r in ("engine", "naive") for mode in ("paced", "fast")}
    expected |= {(cine, "tiny-cine-seg", "engine", mode) for mode in ("paced", "fast")}
    got = [(a["source"], a["model"], a["runner"], a["mode"]) for a in run["arms"]]
    assert sorted(got) == sorted(expected)
    assert sorted(run["round_orders"][0]) == sorted("|".join(a) for a in expected)
    for arm in run["arms"]:
        assert 1 <= arm["processed"] <= MAX_FRAMES and arm["errors"] == 0
        assert arm["processed"] + arm["dropped"] == arm["frames_in"]
        lat = arm["latency_ms"]
        assert 0 < lat["p50"] <= lat["p95"] <= lat["p99"] <= lat["max"]
        stages = {"preprocess", "segment", "qc", "overlay"} | ({"wait"} if arm["runner"] == "naive" else {"queue"})
        assert set(arm["stages_ms_p50"]) == stages
        assert len(arm["rounds"]) == 1 and arm["rounds"][0]["processed"] == arm["processed"]
        assert arm["dice_mean"] is not None  # both sources carry ground truth
        if arm["runner"] == "naive":
            assert arm["dropped"] == 0 and arm["processed"] == MAX_FRAMES  # the naive loop processes every frame
        if arm["mode"] == "fast":
            assert arm["processed"] == MAX_FRAMES and arm["dropped"] == 0


def test_engine_vs_naive_ratios_come_from_the_arms(run):
    assert {(c["source"], c["mode"]) for c in run["engine_vs_naive"]} == {
        (s["key"], m) for s in run["sources"] for m in ("paced", "fast")}
    for c in run["engine_vs_naive"]:
        e = _arm(run, c["source"], c["model"], "engine", c["mode"])
        n = _arm(run, c["source"], c["model"], "naive", c["mode"])
        assert c["engine"]["fps"] == e["fps"] and c["naive"]["p95_ms"] == n["latency_ms"]["p95"]
        assert c["fps_ratio"] == pytest.approx(e["fps"] / n["fps"])
        assert c["p50_ratio"] == pytest.approx(e["latency_ms"]["p50"] / n["latency_ms"]["p50"])
        assert c["p95_ratio"] == pytest.approx(e["latency_ms"]["p95"] / n["latency_ms"]["p95"])
        (pr,) = c["per_round"]  # one round: the same frames as the pooled figures
        assert pr["p95_ratio"] == pytest.approx(e["rounds"][0]["p95_ms"] / n["rounds"][0]["p95_ms"])
        assert pr["fps_ratio"] == pytest.approx(c["fps_ratio"])


def test_only_scheduling_differs_same_frames_same_results(run):
    """Fast mode: both runners segment the same frames with the same sessions, so Dice and QC agree."""
    echo = run["sources"][0]["key"]
    e = _arm(run, echo, "segqc-hw-tiny-seg", "engine", "fast")
    n = _arm(run, echo, "segqc-hw-tiny-seg", "naive", "fast")
    assert e["n_labelled"] == n["n_labelled"] == MAX_FRAMES
    assert e["dice_mean"] == pytest.approx(n["dice_mean"]) and e["qc_mae"] == pytest.approx(n["qc_mae"])


def test_model_rows_ratios_to_reference_and_budget_flags(run):
    rows = run["models_table"]
    assert {(r["source"], r["model"]) for r in rows} == {
        (run["sources"][0]["key"], "baseline-tiny-seg"), (run["sources"][0]["key"], "segqc-hw-tiny-seg"),
        (run["sources"][1]["key"], "tiny-cine-seg")}
    for r in rows:
        paced = _arm(run, r["source"], r["model"], "engine", "paced")
        fast = _arm(run, r["source"], r["model"], "engine", "fast")
        ref_p = _arm(run, r["source"], r["reference"], "engine", "paced")
        ref_f = _arm(run, r["source"], r["reference"], "engine", "fast")
        rr = r["ratio_to_reference"]
        assert rr["paced_p95"] == pytest.approx(paced["latency_ms"]["p95"] / ref_p["latency_ms"]["p95"])
        assert rr["paced_p50"] == pytest.approx(paced["latency_ms"]["p50"] / ref_p["latency_ms"]["p50"])
        assert rr["fast_fps"] == pytest.approx(fast["fps"] / ref_f["fps"])
        assert rr["segment_p50"] == pytest.approx(fast["stages_ms_p50"]["segment"] / ref_f["stages_ms_p50"]["segment"])
        if r["model"] == r["reference"]:
            assert all(math.isclose(v, 1.0) for v in rr.values())
        assert r["meets_latency"] == (paced["latency_ms"]["p95"] <= 50.0)
        assert r["meets_fps"] == (fast["fps"] >= 22.0)
        assert r["meets_budget"] == (r["meets_latency"] and r["meets_fps"])
        assert r["dice_mean"] == fast["dice_mean"]
    echo_rows = [r for r in rows if r["source"] == run["sources"][0]["key"]]
    assert all(r["qc_mae"] is not None for r in echo_rows)


def test_round_order_is_seeded_and_differs_between_rounds(bench):
    arms = [(str(i), "m", "engine", "paced") for i in range(12)]
    first = bench.round_order(arms, 7, 0)
    assert first == bench.round_order(arms, 7, 0) and sorted(first) == sorted(arms)
    assert first != bench.round_order(arms, 7, 1) or first != bench.round_order(arms, 8, 0)
    assert bench.ratio(3.0, 2.0) == 1.5 and bench.ratio(None, 2.0) is None and bench.ratio(1.0, 0.0) is None


def test_markdown_lists_every_model_and_comparison(bench, run):
    text = bench.markdown(run)
    assert "(a) engine vs naive" in text and "(b) every seg model" in text
    for model in run["models"]:
        assert f"| {model} |" in text
    assert "zz-broken-seg" in text  # skipped models are named
