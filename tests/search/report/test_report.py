"""``python -m search report``: the papers' tables beside ours, from tiny stored runs in the methods'
formats; methods without results are named, not crashed on; the output is deterministic."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.cards import sha256_of
from search.cli import main
from search.report.build import build_report
from search.report.pareto import pareto_front
from search.report.sections import ParetoPoint
from tests.search.report import stored_runs


def _tiny_card(models: Path, model_id: str, p50: float, p95: float, dice: float, modality: str = "cine") -> None:
    """A real (one-op) ONNX file and a card that matches it."""
    import onnx
    from onnx import TensorProto, helper

    shape = [1, 1, 4, 8, 8]
    graph = helper.make_graph([helper.make_node("Identity", ["clip"], ["probs"])], "g",
                              [helper.make_tensor_value_info("clip", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("probs", TensorProto.FLOAT, shape)])
    models.mkdir(parents=True, exist_ok=True)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), models / f"{model_id}.onnx")
    card = {"id": model_id, "modality": modality, "role": "seg", "method": "baseline-test",
            "input": {"name": "clip", "shape": shape}, "outputs": [], "classes": {"0": "background"},
            "metrics": {"dice": {"mean": dice}, "latency_ms": {"p50": p50, "p95": p95},
                        "hardware": "Test CPU, 2 logical cores, x86_64, Linux", "runtime": "onnxruntime x, 2 threads"},
            "data": {}, "onnx_sha256": sha256_of(models / f"{model_id}.onnx")}
    (models / f"{model_id}.json").write_text(json.dumps(card))


@pytest.fixture
def stored(tmp_path):
    """runs/<method>/smoke for all three methods, and a models folder with two cards."""
    runs = tmp_path / "runs"
    stored_runs.segqc_run(runs / "segqc-hw" / "smoke")
    stored_runs.msnas_run(runs / "msnas-hw" / "smoke")
    stored_runs.rtdnas_run(runs / "rtdnas" / "smoke")
    _tiny_card(tmp_path / "models", "cine-fast", 20.0, 30.0, 0.71)
    _tiny_card(tmp_path / "models", "cine-slow", 80.0, 95.0, 0.74)
    return tmp_path


def _report(root: Path, **kw) -> tuple[str, object]:
    report = build_report("smoke", root / "runs", root / "docs" / "results.md", root / "models", **kw)
    return (root / "docs" / "results.md").read_text(), report


def _table(text: str, heading: str) -> list[str]:
    """The Markdown table lines right after ``heading``."""
    after = text.split(heading, 1)[1].lstrip("\n").splitlines()
    return [line for line in after[: next((i for i, s in enumerate(after) if not s.startswith("|")), len(after))]]


def _cells(table: list[str], first: str) -> list[str]:
    """The cells of the row whose first cell is ``first``."""
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in table]
    return next(r for r in rows if r[0] == first)


def test_every_papers_table_is_there_beside_ours(stored):
    text, report = _report(stored)
    assert not report.unreadable and "no stored results" not in text
    # segqc-hw Table II: ours and the paper's (U-net(16)+ResNet18 Dice 0.839, 82 ms, 3635 M)
    row = _cells(_table(text, "#### Table II, ours beside the paper's"), "U-net(16)+ResNet18")
    assert {"0.644", "77.2", "0.839", "82", "3635"} <= set(row)
    assert "0.622" in _cells(_table(text, "#### Table II, ours beside the paper's"), "hardware-aware (lambda2 = 0.001)")
    sensitivity = _table(text, "#### Latency weight sensitivity (not in the paper; same harness and process)")
    assert "15.5" in _cells(sensitivity, "hardware-aware (lambda2 = 0.01, sensitivity)")
    # msnas-hw Table 2: three rows stored, the other four "not run", the paper's rows in italics
    table2 = _table(text, "#### Table 2, ours beside the paper's")
    assert _cells(table2, "U-net 3D (D3, IF16) (ours)")[1:5] == ["0.801±0.030", "0.601±0.010", "0.701±0.020", "0.701±0.020"]
    assert "30.0" in _cells(table2, "U-net 3D (D3, IF16) (ours)")
    assert sum("(ours) | not run |" in line for line in table2) == 4
    assert "*0.880*" in _cells(table2, "*MS-NAS 3D (n=4) (paper, ACDC, GTX 1080)*")
    # rtdnas Table 1: the GA twin of N_l = 2 is restored from the derivation; same table as the method's own
    table1 = _table(text, "#### Table 1: top-weight vs GA on the same searched cells, ours and the paper's")
    own = (stored / "runs" / "rtdnas" / "smoke" / "report" / "table1.md").read_text().splitlines()
    assert table1 == own
    assert {"0.597 ± 0.000", "29.0", "31.0", "0.859 / 26 / 40.4"} <= set(_cells(table1, "GA"))
    assert _cells(table1, "GA (= top-weight)")[1] == "2"
    # rtdnas Table 2 with msnas-hw's rows as baselines, and the paper's Table 2
    rt2 = _table(text, "#### Table 2: ours and msnas-hw's baselines (same data, clips, machine)")
    assert _cells(rt2, "MS-NAS 3D (n=4)")[-1] == "msnas-hw run" and _cells(rt2, "RT-DNAS GA (N_l = 1)")[5] == "12.0"
    assert _cells(_table(text, "#### Table 2 of the paper (RT-DNAS: P100, ACDC)"), "*DeU-NAS*")[1:] == [
        "*0.961*", "*0.927*", "*0.971*", "*0.953*", "*121*", "*10.2*"]
    # the models table, from the cards
    cards = _table(text, "Meets = p95 <= 50 ms and >= 22 FPS for inference alone on the card's machine.")
    assert _cells(cards, "cine-fast")[1:8] == ["cine", "0.710", "-", "20.0", "30.0", "50.0", "yes"]
    assert _cells(cards, "cine-fast")[8].startswith("Test CPU, 2 logical cores, x86_64;")
    assert _cells(cards, "cine-slow")[7] == "no"


def test_rtdnas_table2_matches_the_methods_own(tmp_path):
    stored_runs.rtdnas_run(tmp_path / "runs" / "rtdnas" / "smoke")
    text, _ = _report(tmp_path)
    own = (tmp_path / "runs" / "rtdnas" / "smoke" / "report" / "table2.md").read_text().splitlines()
    assert _table(text, "#### Table 2: ours and msnas-hw's baselines (same data, clips, machine)") == own
    assert "(none stored yet)" in text


def test_figures_are_copied_and_the_cross_method_plot_drawn(stored):
    text, _ = _report(stored)
    figures = stored / "docs" / "results"
    names = sorted(p.name for p in figures.glob("*.png"))
    assert names == ["msnas-hw-frontier.png", "pareto_dice_latency.png", "rtdnas-cells_ga_n3.png", "rtdnas-fig2.png",
                     "segqc-hw-qc_scatter.png"]  # rtdnas' best GA net meeting the budget: drawn here
    for name in names:
        assert f"](results/{name})" in text
    src = stored / "runs" / "segqc-hw" / "smoke" / "report" / "qc_scatter.png"
    assert (figures / "segqc-hw-qc_scatter.png").read_bytes() == src.read_bytes()


def test_figures_in_a_docs_copy_are_linked_not_copied(stored):
    docs = stored / "docs"
    run_frontier = stored / "runs" / "msnas-hw" / "smoke" / "report" / "frontier.png"
    (docs / "msnas").mkdir(parents=True)
    (docs / "msnas" / "frontier.png").write_bytes(run_frontier.read_bytes())  # the method's docs copy
    (docs / "rtdnas").mkdir()
    (docs / "rtdnas" / "fig2.png").write_bytes(b"an older figure")  # not the run's figure: copied instead
    text, _ = _report(stored, docs=docs)
    assert "](msnas/frontier.png)" in text and "msnas-hw-frontier.png" not in text
    assert not (docs / "results" / "msnas-hw-frontier.png").exists()
    run_fig2 = stored / "runs" / "rtdnas" / "smoke" / "report" / "fig2.png"
    assert "](results/rtdnas-fig2.png)" in text
    assert (docs / "results" / "rtdnas-fig2.png").read_bytes() == run_fig2.read_bytes()
    assert sorted(p.name for p in (docs / "results").glob("*.png")) == [
        "pareto_dice_latency.png", "rtdnas-cells_ga_n3.png", "rtdnas-fig2.png", "segqc-hw-qc_scatter.png"]


def test_missing_methods_are_stated_not_crashed_on(tmp_path):
    stored_runs.msnas_run(tmp_path / "runs" / "msnas-hw" / "smoke")
    (tmp_path / "runs" / "rtdnas" / "smoke").mkdir(parents=True)  # started, nothing stored yet
    text, report = _report(tmp_path)
    assert "no stored results for segqc-hw (run `python -m search segqc-hw`)" in text
    assert "no stored results for rtdnas (run `python -m search rtdnas`)" in text and "run unfinished" in text
    assert "#### Table 2, ours beside the paper's" in text and not report.unreadable
    assert "(no segmentation models)" in text  # empty models folder


def test_the_methods_own_reports_are_linked(stored):
    (stored / "docs" / "msnas").mkdir(parents=True)
    (stored / "docs" / "msnas" / "report.md").write_text("# msnas-hw\n")
    text, _ = _report(stored, docs=stored / "docs")
    assert "](msnas/report.md) |" in text  # relative to docs/results.md
    assert text.count("| - |") >= 2  # segqc-hw and rtdnas have no docs copy here


def test_segqc_results_of_another_preset_are_not_used(tmp_path):
    stored_runs.segqc_run(tmp_path / "docs-copy", preset="default")
    text, _ = _report(tmp_path, docs=None, overrides={"segqc-hw": tmp_path / "docs-copy"})
    assert "no stored results for segqc-hw" in text


def test_unreadable_results_are_named(stored):
    (stored / "runs" / "msnas-hw" / "smoke" / "rows" / "msnas_n4" / "result.json").write_text("{not json")
    text, report = _report(stored)
    assert report.unreadable == ["msnas-hw", "rtdnas"]  # rtdnas reads msnas-hw's rows as its baselines
    assert "stored results for msnas-hw in" in text and "could not be read (JSONDecodeError" in text
    assert "#### Table II, ours beside the paper's" in text  # the other methods are still reported


def test_output_is_deterministic_and_stale_figures_are_removed(stored):
    first, _ = _report(stored)
    pngs = {p.name: p.read_bytes() for p in (stored / "docs" / "results").glob("*.png")}
    (stored / "docs" / "results" / "old.png").write_bytes(b"stale")
    second, _ = _report(stored)
    assert first == second
    assert {p.name: p.read_bytes() for p in (stored / "docs" / "results").glob("*.png")} == pngs


def test_cli_writes_the_report(stored):
    out = stored / "out" / "results.md"
    argv = ["report", "--preset", "smoke", "--runs", str(stored / "runs"), "--out", str(out),
            "--models", str(stored / "models")]
    assert main(argv) == 0
    assert "Table II" in out.read_text() and (stored / "out" / "results" / "pareto_dice_latency.png").is_file()
    assert main(argv + ["--run", "nope=/x"]) == 2


def test_pareto_front_keeps_only_undominated_points():
    pts = [ParetoPoint("cine", n, "s", ms, d) for n, ms, d in
           (("a", 10, 0.5), ("b", 20, 0.7), ("c", 30, 0.6), ("d", 40, 0.8), ("e", float("nan"), 0.9))]
    assert [p.label for p in pareto_front(pts)] == ["a", "b", "d"]


def test_runs_with_another_seed_get_their_own_section(stored):
    stored_runs.rtdnas_run(stored / "runs" / "rtdnas" / "smoke-seed1")
    text, report = _report(stored)
    assert "## rtdnas: real-time constrained search with genetic path selection, 3D cine MR (Lu et al., MICCAI 2022, " \
           "arXiv:2206.04682; Tables 1 and 2), replicate run with seed 1" in text
    assert any(line.startswith("rtdnas-seed1: ") for line in report.status)
    assert (stored / "docs" / "results" / "rtdnas-seed1-fig2.png").is_file()
    assert (stored / "docs" / "results" / "rtdnas-fig2.png").is_file()  # the preset's own run is still there
