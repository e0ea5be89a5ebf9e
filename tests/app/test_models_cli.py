"""``python -m app models [--benchmark]``: which figures it shows, what it stars, what it says once."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file

from app.cards import load_card
from app.cli import main
from app.engine import benchmark as bm
from tests.app.engine.tiny_models import write_echo_models

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv(bm.CACHE_ENV, str(folder))
    return folder


@pytest.fixture
def two_pairs(tmp_path) -> Path:
    """A searched echo pair (the default by its cards) and a baseline pair."""
    folder = tmp_path / "models"
    write_echo_models(folder, seg_id="aa-echo-seg", qc_id="aa-echo-qc", method="segqc-hw")
    write_echo_models(folder, seg_id="zz-echo-seg", qc_id="zz-echo-qc", method="baseline-tiny")
    return folder


def _starred(out: str) -> set[str]:
    rows = [line for line in out.splitlines() if line.startswith("* ") and not line.startswith("* the app's")]
    return {line.split()[1] for line in rows}


def _row(out: str, model_id: str) -> str:
    return [line for line in out.splitlines() if line[2:].split()[:1] == [model_id]][-1]  # the table's row


def test_missing_folder_is_named(tmp_path, capsys):
    assert main(["models", "--models-dir", str(tmp_path / "nowhere")]) == 1
    err = capsys.readouterr().err
    assert "does not exist" in err and str(tmp_path / "nowhere") in err


def test_empty_folder_has_no_cards(tmp_path, capsys):
    assert main(["models", "--models-dir", str(tmp_path)]) == 1
    assert "no model cards" in capsys.readouterr().out


def test_card_figures_are_labelled_card(two_pairs, cache, capsys):
    assert main(["models", "--models-dir", str(two_pairs)]) == 0
    out = capsys.readouterr().out
    assert _starred(out) == {"aa-echo-seg", "aa-echo-qc"}
    assert "card" in _row(out, "aa-echo-seg").split() and "latency here" not in out
    assert "--benchmark" in out  # tells how to get this machine's figures


def test_broken_model_is_not_starred(two_pairs, cache, capsys, caplog):
    with open(two_pairs / "aa-echo-seg.onnx", "ab") as fh:
        fh.write(b"x")
    with caplog.at_level(logging.WARNING):
        assert main(["models", "--models-dir", str(two_pairs)]) == 1
    out = capsys.readouterr().out
    assert "BAD: sha256" in _row(out, "aa-echo-seg")
    assert _starred(out) == {"zz-echo-seg", "zz-echo-qc"}
    # said once, in its row: no library warning repeats it
    assert not [r for r in caplog.records if "aa-echo-seg" in r.getMessage()]


def test_broken_qc_partner_is_not_starred(two_pairs, cache, capsys):
    with open(two_pairs / "aa-echo-qc.onnx", "ab") as fh:
        fh.write(b"x")
    main(["models", "--models-dir", str(two_pairs)])
    assert "aa-echo-qc" not in _starred(capsys.readouterr().out)


def test_invalid_json_card_is_reported_once(two_pairs, cache, capsys, caplog):
    (two_pairs / "aa-echo-seg.json").write_text("{")
    with caplog.at_level(logging.WARNING):
        assert main(["models", "--models-dir", str(two_pairs)]) == 1
    captured = capsys.readouterr()
    said = captured.out + captured.err + "\n".join(r.getMessage() for r in caplog.records)
    assert said.count("aa-echo-seg") == 1 and "not valid JSON" in _row(captured.out, "aa-echo-seg")
    assert _starred(captured.out) == {"zz-echo-seg", "zz-echo-qc"}


def test_benchmark_fills_the_cache_and_the_table_says_so(two_pairs, cache, capsys):
    assert main(["models", "--models-dir", str(two_pairs), "--benchmark", "--rounds", "2"]) == 0
    out = capsys.readouterr().out
    assert "aa-echo-seg + aa-echo-qc: p50" in out and str(bm.default_cache_file()) in out
    assert bm.default_cache_file().is_file()
    assert "here" in _row(out, "aa-echo-seg").split() and "latency here: this machine (benchmarked " in out


def test_injected_local_figures_move_the_star(two_pairs, cache, capsys):
    cards = [load_card(two_pairs / f"{i}.json") for i in ("aa-echo-seg", "aa-echo-qc")]
    figures = bm.LocalFigures.load()
    entry = bm.figures_entry(cards, [90.0] * 10, threads=1, warmup=0, measured="2026-12-03T06:50+00:00",
                             state={"uptime_s": 5.0, "load_avg": [1.25, 1.0, 1.0]})
    figures.record(bm.entry_key(*cards), entry)
    figures.record(bm.entry_key(cards[0]), entry)
    figures.save()
    main(["models", "--models-dir", str(two_pairs)])
    out = capsys.readouterr().out
    assert _starred(out) == {"zz-echo-seg", "zz-echo-qc"}
    row = _row(out, "aa-echo-seg").split()
    assert "here" in row and "no" in row and "90.0" in row
    assert "latency here: this machine (benchmarked 2026-12-03 06:50 UTC, load 1.25)" in out


def test_rounds_must_be_positive(two_pairs, cache, capsys):
    assert main(["models", "--models-dir", str(two_pairs), "--benchmark", "--rounds", "0"]) == 2
    assert "--rounds" in capsys.readouterr().err


@pytest.mark.timeout(120)
def test_replay_warns_once_when_the_default_card_is_invalid(two_pairs, cache, tmp_path):
    (two_pairs / "aa-echo-seg.json").write_text('{"id": "aa-echo-seg",')
    proc = subprocess.run(
        [sys.executable, "-m", "app", "replay", get_testdata_file("color3d_jpeg_baseline.dcm"), "--report",
         str(tmp_path / "r.json"), "--fast", "--max-frames", "2", "--models-dir", str(two_pairs)],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if "aa-echo-seg.json" in line]
    assert len(lines) == 1 and "not valid JSON" in lines[0], proc.stderr
    assert "not shown" not in proc.stderr  # no repeats held back either
    assert json.loads((tmp_path / "r.json").read_text())["processed"] == 2


def test_clip_models_show_and_are_starred_by_the_dice_of_the_newest_frame(tmp_path, cache, capsys):
    from app.cards import NEWEST_FRAME_MARK, NEWEST_FRAME_NOTE
    from tests.app.engine.tiny_models import write_cine_model

    folder = tmp_path / "models"
    for model_id, dice, newest in (("aa-clip-collapses", 0.83, 0.37), ("zz-clip-steady", 0.75, 0.72)):
        path = write_cine_model(folder, model_id=model_id)
        raw = json.loads(path.read_text())
        raw["metrics"].update(dice={"mean": dice}, dice_newest_frame={"mean": newest})
        path.write_text(json.dumps(raw, indent=1))
    write_echo_models(folder, seg_id="echo-seg", qc_id="echo-qc", method="segqc-hw")
    assert main(["models", "--models-dir", str(folder)]) == 0
    out = capsys.readouterr().out
    assert {"zz-clip-steady", "echo-seg", "echo-qc"} == _starred(out)
    assert f"0.370{NEWEST_FRAME_MARK}" in _row(out, "aa-clip-collapses").split()
    assert f"0.720{NEWEST_FRAME_MARK}" in _row(out, "zz-clip-steady").split()
    assert "0.500" in _row(out, "echo-seg").split()  # a per-frame model: its card's Dice, unmarked
    note = next(line for line in out.splitlines() if line.startswith(f"Dice {NEWEST_FRAME_MARK}:"))
    assert NEWEST_FRAME_NOTE in note and "aa-clip-collapses 0.830" in note
    # a table without clip models has no such note
    assert main(["models", "--models-dir", str(folder), "--modality", "echo"]) == 0
    assert NEWEST_FRAME_NOTE not in capsys.readouterr().out
