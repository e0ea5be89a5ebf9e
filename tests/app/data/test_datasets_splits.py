"""Dataset cache reuse and patient-level splits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import app.data.datasets as datasets
from app.data.datasets import phantom_dataset
from app.data.splits import patient_split, segqc_protocol


def test_phantom_dataset_is_cached_and_reused(tmp_path: Path, monkeypatch) -> None:
    kwargs = {"n_frames": 2, "size": 48}
    first = phantom_dataset("echo", 3, seed=1, cache_dir=tmp_path, workers=1, **kwargs)
    assert [c.case_id for c in first] == [f"phantom-echo-contrast-s1-{i:04d}" for i in range(3)]

    def no_render(*args, **kw):
        raise AssertionError("rendered again instead of reading the cache")

    monkeypatch.setattr(datasets, "render_case", no_render)
    again = phantom_dataset("echo", 3, seed=1, cache_dir=tmp_path, workers=1, **kwargs)
    assert all(np.array_equal(a.frames, b.frames) and np.array_equal(a.labels, b.labels) for a, b in zip(first, again))
    assert again[0].quality == pytest.approx(first[0].quality) and again[0].ed == first[0].ed
    with pytest.raises(AssertionError, match="rendered again"):  # other parameters: another dataset
        phantom_dataset("echo", 3, seed=2, cache_dir=tmp_path, workers=1, **kwargs)


def test_damaged_cache_entry_is_rendered_again(tmp_path: Path) -> None:
    cases = phantom_dataset("cine", 2, seed=0, cache_dir=tmp_path, workers=1, n_frames=2, n_slices=2, shape=(48, 40))
    entry = next(tmp_path.glob("phantom-cine-*/case_0001.npz"))
    entry.write_bytes(b"broken")
    again = phantom_dataset("cine", 2, seed=0, cache_dir=tmp_path, workers=1, n_frames=2, n_slices=2, shape=(48, 40))
    assert np.array_equal(again[1].frames, cases[1].frames)


def test_parallel_build_matches_serial(tmp_path: Path) -> None:
    serial = phantom_dataset("echo", 2, seed=3, cache_dir=tmp_path / "a", workers=1, n_frames=2, size=48)
    parallel = phantom_dataset("echo", 2, seed=3, cache_dir=tmp_path / "b", workers=2, n_frames=2, size=48)
    assert all(np.array_equal(a.frames, b.frames) for a, b in zip(serial, parallel))


def test_default_cache_dir_from_environment(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("CARDIAC_RT_CACHE", str(tmp_path / "c"))
    assert datasets.default_cache_dir() == tmp_path / "c"


def test_segqc_protocol_40_40_20() -> None:
    ids = [f"p{i:03d}" for i in range(100)]
    split = segqc_protocol(ids, seed=0)
    assert {k: len(v) for k, v in split.items()} == {"s1": 40, "s2": 40, "test": 20}
    assert set().union(*split.values()) == set(ids)
    assert not (set(split["s1"]) & set(split["s2"])) and not (set(split["s2"]) & set(split["test"]))
    assert segqc_protocol(list(reversed(ids)), seed=0) == split  # order does not matter
    assert segqc_protocol(ids, seed=1) != split


def test_split_proportional_for_other_counts() -> None:
    split = segqc_protocol([f"c{i}" for i in range(30)], seed=4)
    assert {k: len(v) for k, v in split.items()} == {"s1": 12, "s2": 12, "test": 6}
    split = patient_split([f"c{i}" for i in range(10)], {"train": 0.5, "val": 0.2}, seed=0)
    assert {k: len(v) for k, v in split.items()} == {"train": 5, "val": 2}


def test_split_stratified_and_validated() -> None:
    ids = [f"c{i}" for i in range(60)]
    strata = {cid: ("poor", "medium", "good")[i % 3] for i, cid in enumerate(ids)}
    split = segqc_protocol(ids, seed=0, strata=strata)
    for part, n in (("s1", 8), ("s2", 8), ("test", 4)):
        assert sorted(strata[c] for c in split[part]).count("poor") == n
    with pytest.raises(ValueError):
        patient_split(["a", "a"], {"x": 1.0}, seed=0)
    with pytest.raises(ValueError):
        patient_split(["a", "b"], {"x": 0.8, "y": 0.8}, seed=0)
