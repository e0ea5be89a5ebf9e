"""The one mid-stage checkpoint writer: atomic, stamped with the training precision, checked on resume."""

from __future__ import annotations

import pytest
import torch

from search.train import checkpoints, precision


def test_save_is_atomic_and_stamped_and_load_checks_the_precision(tmp_path):
    path = tmp_path / "deep" / "seg.pt"
    checkpoints.save({"epoch": 3, "w": torch.ones(2)}, path)
    assert sorted(p.name for p in path.parent.iterdir()) == ["seg.pt"]  # no temporary file left behind
    state = checkpoints.load(path)
    assert state["epoch"] == 3 and state["precision"] == "fp32" and torch.equal(state["w"], torch.ones(2))
    checkpoints.save({"epoch": 4}, path)  # replaces the previous one
    assert checkpoints.load(path)["epoch"] == 4
    (tmp_path / "deep" / "seg.json").write_text("{}")  # a sibling of the same stem is never the temporary file
    checkpoints.save({"epoch": 5}, path)
    assert (tmp_path / "deep" / "seg.json").read_text() == "{}"
    precision.use("bf16")
    try:
        with pytest.raises(precision.PrecisionMismatch, match="seg.pt: this checkpoint was trained in fp32"):
            checkpoints.load(path)
    finally:
        precision.use("fp32")
