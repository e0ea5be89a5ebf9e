"""``app.data.dataset_index``: a dataset's parts for ``validate --part``, and ``KIND:DIR`` told from a path."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from app.data.case import DataError
from app.data.data_spec import DataSpecError, looks_like_data_spec, parse_data_spec
from app.data.dataset_index import anonymous_id, cases_of_part, open_dataset
from app.data.phantom_cli import write_phantom_dataset


def test_kind_prefixes_are_specs_and_paths_are_not() -> None:
    for text in ("camus:/d", "ACDC:rel", " echonet:x", "dicom:", "nifti:/a:b"):
        assert looks_like_data_spec(text), text
    for text in ("/data/camus:x", "phantom:echo", "camera:0", "igtl://h:1", "C:\\data", "scan.nii.gz", "camus"):
        assert not looks_like_data_spec(text), text
    with pytest.raises(DataSpecError, match=r"^SOURCE camus:/no/such: /no/such does not exist$"):
        parse_data_spec("camus:/no/such", option="SOURCE")


def test_camus_parts_follow_database_split(tmp_path: Path) -> None:
    write_phantom_dataset("echo", 3, tmp_path / "database_nifti", seed=1, n_frames=4, size=40, fmt="camus")
    split = tmp_path / "database_split"
    split.mkdir()
    (split / "subgroup_training.txt").write_text("patient0001\npatient0002\n")
    (split / "subgroup_testing.txt").write_text("patient0003\n")
    index = open_dataset(parse_data_spec(f"camus:{tmp_path}"))
    assert [r.case_id for r in cases_of_part(index, "test")] == [anonymous_id("camus", "patient0003_4CH")]
    assert len(cases_of_part(index, "all")) == 3
    with pytest.raises(ValueError, match="unknown part"):
        cases_of_part(index, "val")


def test_no_official_split_no_test_part(tmp_path: Path) -> None:
    write_phantom_dataset("echo", 2, tmp_path, seed=1, n_frames=4, size=40, fmt="camus")
    shutil.rmtree(tmp_path / "database_split")  # the phantom writes CAMUS's official split: a folder without one
    index = open_dataset(parse_data_spec(f"camus:{tmp_path}"))
    with pytest.raises(DataError) as err:
        cases_of_part(index, "test")
    assert "no official test part" in str(err.value) and "database_split" in str(err.value)
    assert "\n" not in str(err.value)
