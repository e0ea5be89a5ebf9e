"""The search and the app read datasets in one place: ``search.data`` re-exports ``app.data``'s spec
parser and dataset index, so the test part a method holds out is what ``validate --part test`` scores."""

from __future__ import annotations

from pathlib import Path

import app.data.data_spec as app_spec
import app.data.dataset_index as app_index
import search.data as search_data
from app.data.phantom_cli import write_phantom_dataset
from search.data import ECHO_CAMUS, members_of_refs, segqc_parts


def test_search_data_is_the_app_index() -> None:
    for name in ("open_dataset", "CaseRef", "DatasetIndex", "anonymous_id"):
        assert getattr(search_data, name) is getattr(app_index, name), name
    for name in ("parse_data_spec", "DataSpec", "DataSpecError", "case_list_sha256", "KINDS"):
        assert getattr(search_data, name) is getattr(app_spec, name), name


def test_segqc_test_part_is_validates_test_part(tmp_path: Path) -> None:
    write_phantom_dataset("echo", 6, tmp_path / "database_nifti", seed=2, n_frames=4, size=40, fmt="camus")
    split = tmp_path / "database_split"
    split.mkdir()
    (split / "subgroup_training.txt").write_text("".join(f"patient{i:04d}\n" for i in range(1, 5)))
    (split / "subgroup_testing.txt").write_text("patient0005\npatient0006\n")
    index = search_data.open_dataset(search_data.parse_data_spec(f"camus:{tmp_path}"))
    search_data.check_need(index, ECHO_CAMUS, "segqc-hw")
    held_out = segqc_parts(members_of_refs(index.refs), n_s1=2, n_s2=2, n_test=2, n_qc_val=1, seed=0)["test"]
    assert held_out == sorted(r.case_id for r in app_index.cases_of_part(index, "test"))
