"""Run folders never name a ``--data`` dataset's folder or files (file names can carry patient ids).

``config.json``, the segqc-hw case caches (``data/cases_*.npz``, ``cases_key.json``) and the chain's
``stages.json`` record a dataset as its kind and a hash of its folder (``search.privacy``); phantom
configs keep the hashes they always had, and run folders written before the folder was hashed resume.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from search.privacy import FOLDER_HASH, recorded_config, recorded_source, same_config


def test_recorded_source_hides_the_folder_and_keeps_the_kind() -> None:
    rec = recorded_source("camus:/data/Hospital/DOE_JOHN_1961")
    assert rec.startswith(f"camus:{FOLDER_HASH}") and "DOE" not in rec and "/data" not in rec
    assert recorded_source(rec) == rec  # idempotent
    assert recorded_source("camus:/data/other") != rec  # another folder is another config
    assert recorded_source("phantom") == "phantom"
    doc = {"seed": 0, "data": {"n": 3, "source": "acdc:/data/ACDC"}}
    assert recorded_config(doc)["data"]["source"] == recorded_source("acdc:/data/ACDC")
    assert recorded_config({"seed": 0, "data": {"n": 3, "source": "phantom"}}) == {"seed": 0, "data": {"n": 3}}
    assert same_config(doc, recorded_config(doc)) and not same_config(doc, recorded_config(
        {"seed": 0, "data": {"n": 3, "source": "acdc:/data/other"}}))


def test_method_configs_record_a_dataset_without_its_folder() -> None:
    from search.methods.msnas_hw.config import preset as msnas_preset
    from search.methods.rtdnas.config import preset as rtdnas_preset
    from search.methods.segqc_hw.config import preset as segqc_preset

    for preset in (segqc_preset, msnas_preset, rtdnas_preset):
        cfg = preset("smoke")
        moved = replace(cfg, data=replace(cfg.data, source="acdc:/data/ACDC_patient_DOE"))
        text = json.dumps(moved.to_dict())
        assert "ACDC_patient_DOE" not in text and "/data" not in text
        assert moved.to_dict()["data"]["source"].startswith("acdc:")
        assert moved.to_dict() != cfg.to_dict()  # the data still changes the config (and its hash)
        assert "source" not in cfg.to_dict()["data"]  # the phantom's is unchanged


def test_segqc_hw_case_cache_keeps_no_file_name(tmp_path: Path) -> None:
    """``<out>/data/cases_*.npz`` and ``cases_key.json`` of a CAMUS run hold no path; a rerun reads the cache."""
    from app.data.phantom_cli import write_phantom_dataset
    from search.data import parse_data_spec
    from search.methods.segqc_hw.config import preset
    from search.methods.segqc_hw.data import load_protocol

    root = tmp_path / "CAMUS_DOE_JOHN"
    write_phantom_dataset("echo", 8, root, seed=5, n_frames=6, size=48, fmt="camus")
    cfg = replace(preset("smoke", task="bmode").data, source=parse_data_spec(f"camus:{root}").text)
    cache = tmp_path / "run" / "data"
    first = load_protocol(cfg, cache)
    for path in cache.iterdir():
        raw = path.read_bytes()
        if path.suffix == ".npz":
            with np.load(path) as z:
                raw = z["meta"].tobytes()
        text = raw.decode(errors="replace")
        assert "DOE_JOHN" not in text and "patient0" not in text and str(tmp_path) not in text, path.name
    calls = []
    again = load_protocol(cfg, cache, cases_for=lambda c: calls.append(c) or {})
    assert not calls  # the cache (same key) is read back
    assert {k: [c.case_id for c in v] for k, v in again.items()} == {k: [c.case_id for c in v] for k, v in first.items()}
    assert all(c.meta.get("patient") for v in again.values() for c in v)  # the split facts stay


@pytest.mark.parametrize("module", ["cine_rows", "rtdnas"])
def test_a_run_folder_made_with_the_plain_folder_resumes_and_forgets_it(tmp_path: Path, module: str) -> None:
    """``config.json`` written before folders were hashed is the same configuration: the run resumes and
    the file is rewritten without the folder (msnas-hw and rtdnas-stream check it through ``CineRows``)."""
    from search.methods.rtdnas import space
    from search.methods.rtdnas.config import preset as rtdnas_preset
    from search.methods.rtdnas.experiment import RtdnasExperiment
    from search.train.cine_rows import CineRows

    def check(cfg) -> None:
        if module == "rtdnas":
            RtdnasExperiment(cfg, tmp_path)._check_config()
        else:
            CineRows(space.rows_view(cfg, ()), tmp_path)._check_config()

    base = rtdnas_preset("smoke")
    cfg = replace(base, data=replace(base.data, source="acdc:/data/ACDC_DOE"))
    old = json.loads(json.dumps((cfg if module == "rtdnas" else space.rows_view(cfg, ())).to_dict()))
    old["data"]["source"] = "acdc:/data/ACDC_DOE"  # as written before the folder was hashed
    (tmp_path / "config.json").write_text(json.dumps(old))
    check(cfg)
    assert "ACDC_DOE" not in (tmp_path / "config.json").read_text()
    check(cfg)
    with pytest.raises(ValueError, match="another configuration"):
        check(replace(base, data=replace(base.data, source="acdc:/data/elsewhere")))


def test_chain_stage_records_hold_no_folder_and_still_skip_done_stages(monkeypatch, tmp_path: Path) -> None:
    from search.chain import all_cli

    ran = []
    monkeypatch.setattr(all_cli, "data_skip", lambda stage, spec: None)
    monkeypatch.setattr(all_cli, "_run_module", lambda module, argv, models_dir: ran.append(argv) or 0)
    data = tmp_path / "ACDC_DOE_JOHN"
    data.mkdir()
    parser = argparse.ArgumentParser()
    all_cli.configure(parser)
    argv = ["--models", str(tmp_path / "models"), "--work", str(tmp_path / "work"), "--skip", "profile",
            "baselines", "--data", f"acdc:{data}"]
    assert all_cli.run(parser.parse_args(argv)) == 0
    text = (tmp_path / "work" / "stages.json").read_text()
    assert "DOE_JOHN" not in text and recorded_source(f"acdc:{data.resolve()}") in text
    first = len(ran)
    assert first and all_cli.run(parser.parse_args(argv)) == 0
    assert len(ran) == first  # every stage recorded as done on this data is skipped
    # a record written with the plain folder (before it was hashed) is the same data
    record = json.loads(text)
    for done in record.values():
        done["data"] = f"acdc:{data.resolve()}"
    (tmp_path / "work" / "stages.json").write_text(json.dumps(record))
    assert all_cli.run(parser.parse_args(argv)) == 0
    assert len(ran) == first and "DOE_JOHN" not in (tmp_path / "work" / "stages.json").read_text()


def test_a_run_folder_resumes_under_another_thread_count_but_not_another_config():
    doc = {"preset": "default", "threads": 1, "data": {"n_patients": 16}}
    assert same_config(doc, {**doc, "threads": 2})
    assert not same_config(doc, {**doc, "threads": 2, "data": {"n_patients": 8}})
