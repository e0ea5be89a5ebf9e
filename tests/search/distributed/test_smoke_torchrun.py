"""segqc-hw's smoke preset on two gloo ranks under torchrun: ranks agree, rank 0 alone writes, resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from torchrun_helpers import REPO, torchrun

pytestmark = pytest.mark.slow  # two smoke runs on two ranks: ~2-3 min on 2 shared cores


def _run(out: Path, digests: Path, writes: Path):
    writes.mkdir(parents=True)
    proc = torchrun([str(REPO / "tests" / "search" / "distributed" / "rank_entry.py"), "segqc-hw", "--preset", "smoke",
                     "--out", str(out)],
                    env={"SEARCH_DIST_DIGESTS": str(digests), "WRITE_LOG_DIR": str(writes)})
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    records = [[json.loads(line) for line in (digests / f"rank{r}.jsonl").read_text().splitlines()] for r in (0, 1)]
    written = [set(json.loads((writes / f"rank{r}.json").read_text())) for r in (0, 1)]
    return proc, records, written


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("segqc2")
    out = root / "out"
    first = _run(out, root / "digests1", root / "writes1")
    second = _run(out, root / "digests2", root / "writes2")  # the same command again: resumes
    return out, first, second


def test_ranks_hold_the_same_weights_and_alphas_after_every_stage(runs):
    _, (_, records, _), _ = runs
    rank0, rank1 = records
    assert rank0 == rank1  # finish_stage raises on a mismatch too; this checks the dumps themselves
    searches = [r for r in rank0 if r["tag"] == "joint search"]
    assert len(searches) >= 2 and all(r["world"] == 2 for r in rank0)
    assert any(r["tag"].startswith("fit") for r in rank0)


def test_the_search_moved_the_alphas_it_agreed_on(runs):
    from search.distributed import digests
    from search.methods.segqc_hw.config import preset
    from search.methods.segqc_hw.search import build_supernets

    out, (_, records, _), _ = runs
    cfg = preset("smoke")
    initial = digests(*build_supernets(cfg, cfg.search.seeds[0]))
    searched = [r for r in records[0] if r["tag"] == "joint search"]
    assert all(r["arch"] != initial["arch"] for r in searched)
    assert (out / "search" / "hw" / f"seed{cfg.search.seeds[0]}" / "genotype.json").is_file()


def test_rank0_alone_writes_checkpoints_cards_onnx_and_report(runs):
    out, (proc, _, written), _ = runs
    rank0, rank1 = written
    assert rank1 == set(), f"rank 1 wrote {sorted(rank1)[:5]}"
    names = {Path(p).name for p in rank0}
    assert {"search.pt", "seg.pt", "qc.pt", "genotype.json", "scores.json", "README.md"} <= names
    models = out / "models"
    onnx = sorted(p.name for p in models.glob("*.onnx"))
    cards = sorted(p.name for p in models.glob("*.json"))
    assert len(onnx) == 2 and [n.replace(".onnx", ".json") for n in onnx] == cards  # the seg + QC pair, once
    assert all(str(models / n) in rank0 for n in onnx)
    assert proc.stdout.count("segqc-hw (smoke): report") == 1  # one rank prints the summary


def test_a_second_run_resumes_on_both_ranks_and_rewrites_no_stage(runs):
    out, _, (_, second, written) = runs
    assert second[0] == second[1]
    # Finished searches and trainings are skipped (stages.json) and read back on every rank: nothing is
    # searched or trained again, and the ranks agree on the weights they loaded.
    assert not [r for r in second[0] if r["tag"] == "joint search" or r["tag"].startswith("fit")]
    assert [r for r in second[0] if r["tag"].startswith("loaded")]
    assert written[1] == set()
    assert not any(Path(p).suffix == ".pt" for p in written[0])
