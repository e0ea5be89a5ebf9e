"""``python -m app phantom --format camus|echonet``: the output reads back through the project's loaders."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from app.cli import main as app_main
from app.data.case import CAMUS_LABELS
from app.data.loaders import load_case, load_dataset
from app.data.loaders.camus import load_camus
from app.data.phantom.echo import render_echo_case


def _phantom(tmp_path: Path, fmt: str, *extra: str) -> Path:
    out = tmp_path / fmt
    assert app_main(["phantom", "--modality", "echo", "--cases", "3", "--out", str(out), "--seed", "3",
                     "--format", fmt, "--frames", "16", *extra]) == 0
    return out


def test_camus_layout_reads_back(tmp_path: Path) -> None:
    out = _phantom(tmp_path, "camus", "--size", "64")
    names = sorted(p.name for p in out.iterdir() if p.is_dir() and p.name.startswith("patient"))
    assert names == ["patient0001", "patient0002", "patient0003"]
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["database_split", *names]
    files = sorted(p.name for p in (out / "patient0002").iterdir())
    assert files == ["Info_4CH.cfg"] + sorted(f"patient0002_4CH_{s}.nii.gz" for s in (
        "ED", "ED_gt", "ES", "ES_gt", "half_sequence", "half_sequence_gt"))
    cases = load_camus(out)
    assert len(cases) == 3 and [c.case_id for c in load_dataset(out)] == [f"{n}_4CH" for n in names]
    for k, case in enumerate(cases):
        src = render_echo_case(3, k, n_frames=16, size=64, variant="bmode")
        n = abs(src.es - src.ed) + 1
        assert case.frames.shape == (n, 64, 64) and case.frames.dtype == np.uint8
        assert case.ed == 0 and case.es == n - 1 and case.labelled_frames == tuple(range(n))
        assert set(np.unique(case.labels)) == set(CAMUS_LABELS) == {0, 1, 2, 3}
        np.testing.assert_array_equal(case.labels[0], src.labels[src.ed])
        np.testing.assert_array_equal(case.labels[-1], src.labels[src.es])
        assert case.spacing_mm == pytest.approx(src.spacing_mm, rel=1e-5)
        assert case.frame_rate == pytest.approx(src.frame_rate, abs=0.06)
        assert case.quality_bin == src.quality_bin and 0 <= float(case.meta["ef"]) < 100
    cfg = (out / "patient0001" / "Info_4CH.cfg").read_text()
    assert "Sex" not in cfg and "Age" not in cfg and "phantom" not in cfg.lower()


def test_echonet_layout_reads_back(tmp_path: Path) -> None:
    out = _phantom(tmp_path, "echonet")
    with open(out / "FileList.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 3 and all(r["Split"] in ("TRAIN", "VAL", "TEST") for r in rows)
    assert all(r["FileName"].startswith("0X") and len(r["FileName"]) == 18 for r in rows)
    cases = load_dataset(out)
    assert len(cases) == 3 and [c.case_id for c in cases] == [r["FileName"] for r in rows]
    for k, case in enumerate(cases):
        src = render_echo_case(3, k, n_frames=16, size=112, variant="bmode")
        assert case.frames.shape == (16, 112, 112, 3)
        # The loader calls the larger traced LV ED; a short clip's ES may be the larger one.
        assert {case.ed, case.es} == {src.ed, src.es} and case.labelled_frames == tuple(sorted((src.ed, src.es)))
        assert set(np.unique(case.labels)) == {0, 1}
        for idx in (src.ed, src.es):
            truth, got = src.labels[idx] == 1, case.labels[idx] == 1
            assert 2 * (truth & got).sum() / (truth.sum() + got.sum()) > 0.85
        assert 0 <= case.meta["ef"] < 100 and case.frame_rate == pytest.approx(src.frame_rate, abs=0.01)
        assert np.abs(case.frames.astype(int) - src.frames.astype(int)).mean() < 12  # MJPG is lossy
    # The split is fixed per case, whatever the run.
    again = _phantom(tmp_path / "again", "echonet")
    assert (again / "FileList.csv").read_text() == (out / "FileList.csv").read_text()
    assert load_case(out / "Videos" / f"{rows[0]['FileName']}.avi").case_id == rows[0]["FileName"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["format"] == "echonet" and [c["path"] for c in manifest["cases"]] == [
        f"{r['FileName']}.avi" for r in rows]


@pytest.mark.parametrize("argv", [
    ["--modality", "cine", "--format", "camus"],
    ["--modality", "cine", "--format", "echonet"],
    ["--modality", "echo", "--format", "acdc"],
    ["--modality", "echo", "--format", "camus", "--variant", "contrast"],
])
def test_bad_format_combination_exits_2(tmp_path: Path, capsys, argv: list[str]) -> None:
    assert app_main(["phantom", *argv, "--cases", "1", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("phantom: --") and "\n" not in err
    assert not (tmp_path / "x").exists()


def test_default_formats_unchanged(tmp_path: Path) -> None:
    assert app_main(["phantom", "--modality", "echo", "--cases", "1", "--out", str(tmp_path / "e"),
                     "--frames", "2", "--size", "48", "--format", "dicom"]) == 0
    manifest = json.loads((tmp_path / "e" / "manifest.json").read_text())
    assert manifest["variant"] == "contrast" and manifest["cases"][0]["path"] == "echo_0000.dcm"


def test_half_sequence_runs_ed_to_es() -> None:
    from app.data.writers.camus import half_sequence_indices

    assert half_sequence_indices(2, 5) == [2, 3, 4, 5]
    assert half_sequence_indices(7, 4) == [7, 6, 5, 4]  # ES before ED: the filling frames, reversed


def test_camus_and_acdc_phantoms_ship_an_official_split(tmp_path: Path) -> None:
    """As CAMUS 2023 (``database_split/subgroup_*.txt``) and ACDC (``training/`` + ``testing/``) do: the
    last ~20% of the patients are the test set, the same for every run; the loaders still read them all."""
    from app.data.writers.official_split import official_part, part_sizes

    assert part_sizes(10, with_val=True) == {"train": 7, "val": 1, "test": 2}
    assert part_sizes(5, with_val=False) == {"train": 4, "val": 0, "test": 1}
    assert part_sizes(1, with_val=True) == {"train": 1, "val": 0, "test": 0}
    assert [official_part(i, 10, with_val=True) for i in range(1, 11)] == ["train"] * 7 + ["val"] + ["test"] * 2
    out = tmp_path / "camus"
    assert app_main(["phantom", "--modality", "echo", "--cases", "10", "--out", str(out), "--format", "camus",
                     "--frames", "4", "--size", "32"]) == 0
    split = out / "database_split"
    files = {f: (split / f).read_text().split() for f in
             ("subgroup_training.txt", "subgroup_validation.txt", "subgroup_testing.txt")}
    assert files == {"subgroup_training.txt": [f"patient{i:04d}" for i in range(1, 8)],
                     "subgroup_validation.txt": ["patient0008"],
                     "subgroup_testing.txt": ["patient0009", "patient0010"]}
    assert (split / "subgroup_testing.txt").read_text() == "patient0009\npatient0010\n"  # one name per line
    assert len(load_camus(out)) == 10
    manifest = json.loads((out / "manifest.json").read_text())
    assert [c["official_split"] for c in manifest["cases"]] == ["train"] * 7 + ["val"] + ["test"] * 2

    cine = tmp_path / "acdc"
    assert app_main(["phantom", "--modality", "cine", "--cases", "5", "--out", str(cine), "--frames", "3",
                     "--slices", "2"]) == 0
    assert sorted(p.name for p in cine.iterdir() if p.is_dir()) == ["testing", "training"]
    assert sorted(p.name for p in (cine / "training").iterdir()) == [f"patient{i:03d}" for i in range(1, 5)]
    assert sorted(p.name for p in (cine / "testing").iterdir()) == ["patient005"]
    assert [c.case_id for c in load_dataset(cine)] == [f"patient{i:03d}" for i in range(1, 6)]
    assert load_case(cine / "testing" / "patient005").labels is not None  # labelled at ED and ES, as ACDC
