"""``--data SPEC``: parsing, its one-line errors, the config key and the card's hashes."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from search.data import (KINDS, DataSpec, DataSpecError, case_list_sha256, config_without_phantom,
                         parse_data_spec)
from search.methods.common_cli import add_method_arguments, run_places


def test_phantom_is_the_default() -> None:
    for text in (None, "", "phantom", " phantom "):
        spec = parse_data_spec(text)
        assert spec == DataSpec() and spec.is_phantom and spec.text == "phantom"


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_kind_takes_a_folder(tmp_path: Path, kind: str) -> None:
    spec = parse_data_spec(f"{kind}:{tmp_path}")
    assert spec.kind == kind and spec.root == tmp_path.resolve() and not spec.is_phantom
    assert spec.text == f"{kind}:{tmp_path.resolve()}" and parse_data_spec(spec.text) == spec
    assert parse_data_spec(f"{kind.upper()}:{tmp_path}").kind == kind


@pytest.mark.parametrize("text, words", [
    ("mnist:{tmp}", "unknown dataset kind 'mnist'"),
    ("camus", "camus needs a folder"),
    ("acdc:", "acdc needs a folder"),
    ("echonet:{tmp}/missing", "missing does not exist"),
    ("nifti:{tmp}/file.txt", "is a file, not a folder"),
])
def test_bad_specs_name_the_problem(tmp_path: Path, text: str, words: str) -> None:
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(DataSpecError) as err:
        parse_data_spec(text.format(tmp=tmp_path))
    message = str(err.value)
    assert words in message and "\n" not in message and message.startswith("--data ")


def test_method_flag_is_one_usage_line(tmp_path: Path, capsys) -> None:
    parser = argparse.ArgumentParser(prog="python -m search segqc-hw")
    add_method_arguments(parser, method="segqc-hw", preset_help="")
    assert parser.parse_args([]).data.is_phantom
    assert parser.parse_args(["--data", f"camus:{tmp_path}"]).data.kind == "camus"
    with pytest.raises(SystemExit):
        parser.parse_args(["--data", "ukbb:/x"])
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].endswith("argument --data: unknown dataset kind 'ukbb'; use one of phantom, camus:DIR, acdc:DIR, "
                            "echonet:DIR, dicom:DIR, nifti:DIR")


def test_dataset_runs_never_default_to_the_shipped_models(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    add_method_arguments(parser, method="segqc-hw", preset_help="")
    phantom = run_places(parser.parse_args([]), method="segqc-hw", docs_name="segqc", root=tmp_path)
    assert phantom.out == tmp_path / "runs" / "segqc-hw" / "default" and phantom.models_dir == tmp_path / "models"
    data = run_places(parser.parse_args(["--data", f"camus:{tmp_path}"]), method="segqc-hw", docs_name="segqc",
                      root=tmp_path)
    assert data.out == tmp_path / "runs" / "segqc-hw" / "default-camus"
    assert data.models_dir == data.out / "models" and data.docs_dir is None


def test_config_key_leaves_the_phantom_unchanged() -> None:
    doc = {"seed": 0, "data": {"n": 3, "source": "phantom"}}
    assert config_without_phantom(doc) == {"seed": 0, "data": {"n": 3}}
    other = {"seed": 0, "data": {"n": 3, "source": "camus:/d"}}
    assert config_without_phantom(other) == other


def test_method_configs_hash_the_data_only_when_it_is_not_the_phantom() -> None:
    from dataclasses import replace

    from search.methods.msnas_hw.config import preset as msnas_preset
    from search.methods.rtdnas.config import preset as rtdnas_preset
    from search.methods.segqc_hw.config import preset as segqc_preset
    from search.privacy import recorded_source

    for preset in (segqc_preset, msnas_preset, rtdnas_preset):
        cfg = preset("smoke")
        assert "source" not in cfg.to_dict()["data"]
        moved = replace(cfg, data=replace(cfg.data, source="acdc:/data/ACDC"))
        assert moved.to_dict()["data"]["source"] == recorded_source("acdc:/data/ACDC")  # kind + folder hash


def test_card_info_holds_hashes_and_counts_only(tmp_path: Path) -> None:
    spec = parse_data_spec(f"camus:{tmp_path}")
    parts = {"s1": ["camus-b", "camus-a"], "test": ["camus-c"]}
    info = spec.card_info(parts, split="segqc-hw S1/S2/test, by patient, seed 0", seed=0, preset="smoke")
    assert info["dataset"] == "CAMUS" and info["source"] == "camus" and info["counts"] == {"s1": 2, "test": 1}
    assert info["case_list_sha256"] == case_list_sha256(["camus-c", "camus-a", "camus-b"])
    assert info["part_sha256"]["s1"] == case_list_sha256(["camus-a", "camus-b"])
    text = repr(info)
    assert "camus-a" not in text and str(tmp_path) not in text
    assert case_list_sha256(["b", "a"]) == case_list_sha256(["a", "b"]) != case_list_sha256(["a"])
