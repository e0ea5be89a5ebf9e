"""Echo mode and models: the card field, the default pair per echo mode, the fallback note, replay and
validate with ``--echo-mode``."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from app.cards import ModelCardError, load_card
from app.data.echo_mode import EchoMode
from app.engine import models as models_module
from app.engine.models import default_models, echo_mode_note, find_model
from app.engine.replay import ReplayArgumentError, replay
from tests.app.engine.tiny_models import BMODE_CLASSES, write_cine_model, write_echo_models

pytestmark = pytest.mark.timeout(180)

ROOT = Path(__file__).resolve().parents[3]
SHIPPED = ROOT / "models"
CAMUS_CLASSES = {"0": "background", "1": "lv", "2": "myocardium", "3": "la"}


@pytest.fixture(autouse=True)
def _fresh_warnings():
    """Each test sees the fallback warning anew (the library says it once per process)."""
    saved = set(models_module._REPORTED)
    models_module._REPORTED.clear()
    yield
    models_module._REPORTED.clear()
    models_module._REPORTED.update(saved)


@pytest.fixture
def shipped_with_bmode(tmp_path) -> Path:
    """The shipped contrast pair, plus a copy of it carded as the B-mode pair the search will ship.

    The card's hash covers the ONNX file only, so editing the JSON (id, echo_mode, classes) keeps it valid.
    """
    folder = tmp_path / "models"
    folder.mkdir()
    for role in ("seg", "qc"):
        for suffix in (".json", ".onnx"):
            shutil.copy(SHIPPED / f"echo-segqc-hw-{role}{suffix}", folder / f"echo-segqc-hw-{role}{suffix}")
        shutil.copy(SHIPPED / f"echo-segqc-hw-{role}.onnx", folder / f"echo-bmode-segqc-hw-{role}.onnx")
        raw = json.loads((SHIPPED / f"echo-segqc-hw-{role}.json").read_text())
        raw.update(id=f"echo-bmode-segqc-hw-{role}", echo_mode="bmode", classes=CAMUS_CLASSES)
        if role == "seg":
            raw["pairs_with"] = "echo-bmode-segqc-hw-qc"
            raw["metrics"]["dice"]["mean"] = 0.95  # better on paper than the contrast pair: never its stand-in
        (folder / f"echo-bmode-segqc-hw-{role}.json").write_text(json.dumps(raw, indent=1))
    return folder


@pytest.fixture(scope="module")
def tiny_pairs(tmp_path_factory) -> Path:
    """Loadable tiny pairs: a contrast one (no echo_mode field, as today's cards) and a 4-class B-mode one."""
    folder = tmp_path_factory.mktemp("models")
    write_echo_models(folder, seg_id="tiny-echo-seg", qc_id="tiny-echo-qc")
    write_echo_models(folder, seg_id="tiny-bmode-seg", qc_id="tiny-bmode-qc", echo_mode="bmode")
    return folder


@pytest.fixture(scope="module")
def recordings(tmp_path_factory) -> dict[str, Path]:
    """A contrast and a B-mode phantom DICOM (labels beside them), as ``python -m app phantom`` writes them."""
    from app.data.phantom.echo import render_echo_case
    from app.data.writers import write_echo_dicom

    folder = tmp_path_factory.mktemp("echo")
    return {v: write_echo_dicom(render_echo_case(7, 3, n_frames=10, variant=v, quality=0.8), folder / f"{v}.dcm", 1)
            for v in ("contrast", "bmode")}


# -- the card field -----------------------------------------------------------------------------------
def test_card_echo_mode_is_validated_and_defaults_to_contrast(tmp_path, shipped_with_bmode) -> None:
    assert load_card(SHIPPED / "echo-segqc-hw-seg.json").echo_mode == "contrast"
    assert load_card(shipped_with_bmode / "echo-bmode-segqc-hw-seg.json").echo_mode == "bmode"
    cine = write_cine_model(tmp_path / "cine")
    assert load_card(cine).echo_mode is None
    for value, problem in (("doppler", "unknown echo_mode 'doppler'"), ("", "unknown echo_mode ''")):
        path = tmp_path / "bad.json"
        raw = json.loads((SHIPPED / "echo-segqc-hw-seg.json").read_text())
        raw["echo_mode"] = value
        path.write_text(json.dumps(raw))
        with pytest.raises(ModelCardError, match=problem):
            load_card(path)
    raw = json.loads(cine.read_text())
    raw["echo_mode"] = "bmode"
    cine.write_text(json.dumps(raw))
    with pytest.raises(ModelCardError, match="only echo cards have one"):
        load_card(cine)


# -- the default pair per echo mode ------------------------------------------------------------------
def test_default_models_prefer_the_recordings_echo_mode(shipped_with_bmode, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="app.engine.models"):
        seg, qc = default_models("echo", shipped_with_bmode, echo_mode="bmode")
        assert (seg.id, qc.id) == ("echo-bmode-segqc-hw-seg", "echo-bmode-segqc-hw-qc")
        assert seg.classes == {0: "background", 1: "lv", 2: "myocardium", 3: "la"}
        seg, qc = default_models("echo", shipped_with_bmode, echo_mode="contrast")
        assert (seg.id, qc.id) == ("echo-segqc-hw-seg", "echo-segqc-hw-qc")
        # no recording to judge (model lists, live sources): the contrast pair, even when B-mode has more Dice
        assert default_models("echo", shipped_with_bmode)[0].id == "echo-segqc-hw-seg"
    assert caplog.records == []  # each mode has its models: nothing to say
    with pytest.raises(ValueError, match="unknown echo mode 'doppler'"):
        default_models("echo", shipped_with_bmode, echo_mode="doppler")
    # cine ignores it
    assert default_models("cine", SHIPPED, echo_mode="bmode")[0].modality == "cine"


def test_without_a_b_mode_model_the_contrast_pair_runs_with_one_warning(tmp_path, caplog) -> None:
    contrast_only = tmp_path / "models"  # the shipped contrast pair alone (models/ now holds a B-mode pair too)
    contrast_only.mkdir()
    for name in ("echo-segqc-hw-seg", "echo-segqc-hw-qc"):
        for suffix in (".json", ".onnx"):
            shutil.copy(SHIPPED / f"{name}{suffix}", contrast_only / f"{name}{suffix}")
    with caplog.at_level(logging.WARNING, logger="app.engine.models"):
        for _ in range(3):
            seg, qc = default_models("echo", contrast_only, echo_mode="bmode")
            assert (seg.id, qc.id) == ("echo-segqc-hw-seg", "echo-segqc-hw-qc")
    notes = [r.getMessage() for r in caplog.records]
    assert notes == ["no B-mode echo model in models/ yet: running the contrast echo pair echo-segqc-hw-seg + "
                     "echo-segqc-hw-qc on this B-mode echo recording instead (its masks may be poor)"]
    assert echo_mode_note(seg, "bmode", contrast_only) == notes[0]
    assert echo_mode_note(seg, "contrast", contrast_only) is None and echo_mode_note(seg, None, contrast_only) is None
    # with the shipped B-mode pair, a B-mode recording gets it
    assert default_models("echo", SHIPPED, echo_mode="bmode")[0].id == "echo-bmode-segqc-hw-seg"


def test_a_model_picked_by_id_against_the_mode_gets_a_note(shipped_with_bmode) -> None:
    contrast = find_model("echo-segqc-hw-seg", shipped_with_bmode)
    assert echo_mode_note(contrast, "bmode", shipped_with_bmode) == (
        "echo-segqc-hw-seg is a contrast echo model but this recording is B-mode echo "
        "(its models: echo-bmode-segqc-hw-seg)")


# -- replay -------------------------------------------------------------------------------------------
def test_replay_runs_the_pair_of_the_detected_mode(recordings, tiny_pairs, tmp_path) -> None:
    report = replay(str(recordings["bmode"]), report=tmp_path / "b.json", fast=True, models_dir=tiny_pairs)
    assert report["models"] == {"seg": "tiny-bmode-seg", "qc": "tiny-bmode-qc"}
    echo = report["echo_mode"]
    assert echo["mode"] == "bmode" and echo["requested"] == "auto" and echo["model_mode"] == "bmode"
    assert echo["reason"].startswith("B-mode echo: no contrast attributes; the image looks B-mode")
    assert echo["note"] is None
    assert report["processed"] == 10 and report["errors"] == 0 and report["n_labelled"] == 10
    assert json.loads((tmp_path / "b.json").read_text())["echo_mode"] == echo

    report = replay(str(recordings["contrast"]), report=tmp_path / "c.json", fast=True, models_dir=tiny_pairs)
    assert report["models"] == {"seg": "tiny-echo-seg", "qc": "tiny-echo-qc"}
    assert report["echo_mode"]["reason"] == "contrast echo: DICOM ContrastBolusAgent (0018,0010) is 'microbubbles (phantom)'"


def test_replay_echo_mode_option_overrides_the_detection(recordings, tiny_pairs, tmp_path) -> None:
    report = replay(str(recordings["bmode"]), report=tmp_path / "r.json", fast=True, models_dir=tiny_pairs,
                    echo_mode="contrast", max_frames=3)
    assert report["models"]["seg"] == "tiny-echo-seg"
    assert report["echo_mode"] == {"mode": "contrast", "reason": "contrast echo: chosen by the user",
                                   "requested": "contrast", "model_mode": "contrast", "note": None}
    # a model asked for by id keeps running, with a note when it is of the other mode
    report = replay(str(recordings["bmode"]), report=tmp_path / "r.json", fast=True, models_dir=tiny_pairs,
                    model_id="tiny-echo-seg", max_frames=3)
    assert report["models"]["seg"] == "tiny-echo-seg" and report["echo_mode"]["mode"] == "bmode"
    assert report["echo_mode"]["note"] == ("tiny-echo-seg is a contrast echo model but this recording is B-mode echo "
                                           "(its models: tiny-bmode-seg)")
    with pytest.raises(ReplayArgumentError, match="--echo-mode must be one of auto, contrast, bmode"):
        replay(str(recordings["bmode"]), report=tmp_path / "r.json", models_dir=tiny_pairs, echo_mode="doppler")


def test_replay_falls_back_to_contrast_with_a_note(recordings, tmp_path) -> None:
    folder = tmp_path / "models"
    write_echo_models(folder)  # contrast only
    report = replay(str(recordings["bmode"]), report=tmp_path / "r.json", fast=True, models_dir=folder, max_frames=3)
    assert report["models"]["seg"] == "tiny-echo-seg" and report["echo_mode"]["mode"] == "bmode"
    assert report["echo_mode"]["model_mode"] == "contrast"
    assert report["echo_mode"]["note"] == ("no B-mode echo model in models/ yet: running the contrast echo pair "
                                           "tiny-echo-seg + tiny-echo-qc on this B-mode echo recording instead "
                                           "(its masks may be poor)")


def test_replay_cli_echo_mode(recordings, tiny_pairs, tmp_path) -> None:
    out = tmp_path / "r.json"
    proc = subprocess.run([sys.executable, "-m", "app", "replay", str(recordings["contrast"]), "--report", str(out),
                           "--models-dir", str(tiny_pairs), "--fast", "--max-frames", "3", "--echo-mode", "bmode"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    assert report["models"]["seg"] == "tiny-bmode-seg"
    assert report["echo_mode"]["requested"] == "bmode" and report["echo_mode"]["reason"] == "B-mode echo: chosen by the user"
    assert "echo     B-mode echo: chosen by the user" in proc.stdout
    bad = subprocess.run([sys.executable, "-m", "app", "replay", str(recordings["contrast"]), "--report", str(out),
                          "--echo-mode", "doppler"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "--echo-mode" in bad.stderr


# -- validate -----------------------------------------------------------------------------------------
def test_validate_decides_the_mode_once_per_case(recordings, tiny_pairs, tmp_path) -> None:
    from app.validate import validate

    out = validate([str(recordings["bmode"]), str(recordings["contrast"])], report=tmp_path / "v.json",
                   models_dir=tiny_pairs, fast=True, max_frames=3)
    bmode, contrast = out["cases"]
    assert bmode["models"]["seg"] == "tiny-bmode-seg" and bmode["echo_mode"]["mode"] == "bmode"
    assert list(bmode["classes"]) == [BMODE_CLASSES[k] for k in ("1", "2", "3")]  # the B-mode card's classes
    assert contrast["models"]["seg"] == "tiny-echo-seg" and contrast["echo_mode"]["mode"] == "contrast"
    assert list(contrast["classes"]) == ["myocardium"]
    forced = validate([str(recordings["bmode"])], report=tmp_path / "f.json", models_dir=tiny_pairs, fast=True,
                      max_frames=2, echo_mode="contrast")
    assert forced["cases"][0]["models"]["seg"] == "tiny-echo-seg"
    assert forced["cases"][0]["echo_mode"]["reason"] == "contrast echo: chosen by the user"


def test_a_decided_mode_is_not_detected_again(recordings, tiny_pairs, tmp_path, monkeypatch) -> None:
    import app.engine.replay as replay_module

    monkeypatch.setattr(replay_module, "echo_mode_of", lambda *a, **k: pytest.fail("detected again"))
    report = replay(str(recordings["bmode"]), report=tmp_path / "r.json", fast=True, models_dir=tiny_pairs,
                    echo_mode=EchoMode("bmode", "decided upstream"), max_frames=2)
    assert report["echo_mode"]["reason"] == "decided upstream" and report["echo_mode"]["requested"] == "auto"
