"""Contrast or B-mode echo: DICOM contrast attributes first, else the image test, checked on the phantoms."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset

from app.cards import ECHO_MODES as CARD_ECHO_MODES
from app.data.echo_mode import (ECHO_MODES, IMAGE_FRAMES, EchoMode, contrast_attributes, detect_echo_mode,
                                image_evidence, mode_from_attributes, resolve)
from app.data.phantom.echo import render_echo_case
from app.data.writers.dicom_us import CONTRAST_AGENT, write_echo_dicom
from app.engine.sources import echo_mode_of, open_source


def _spread(frames: np.ndarray) -> np.ndarray:
    return frames[np.linspace(0, len(frames) - 1, IMAGE_FRAMES).round().astype(int)]


def test_the_cards_and_the_detector_know_the_same_modes() -> None:
    assert ECHO_MODES == CARD_ECHO_MODES == ("contrast", "bmode")


@pytest.mark.parametrize("variant", ["contrast", "bmode"])
def test_image_test_is_right_on_good_phantoms_of_both_variants(variant: str) -> None:
    """Eight seeds, two good qualities, the app's default size: every case right (see the module
    docstring for the measured accuracy over 1000 cases of every quality and two sizes)."""
    wrong = []
    for seed in range(8):
        for quality in (0.9, 0.7):
            case = render_echo_case(seed, seed, n_frames=12, variant=variant, quality=quality)
            evidence = image_evidence(_spread(case.frames))
            assert evidence.conclusive and 0.1 < evidence.sector_fraction < 0.9
            if evidence.mode != variant:
                wrong.append((seed, quality, round(evidence.score, 2)))
    assert wrong == []


def test_image_reason_says_what_it_measured() -> None:
    case = render_echo_case(3, 1, n_frames=10, variant="bmode", quality=0.8)
    mode, reason = detect_echo_mode(_spread(case.frames))
    assert mode == "bmode"
    assert reason.startswith("B-mode echo: no contrast attributes; the image looks B-mode")
    assert "B-mode score" in reason and "lines" in reason and "centre" in reason and "frames" in reason


def test_grey_frames_and_nothing_to_look_at() -> None:
    case = render_echo_case(2, 0, n_frames=10, variant="contrast", quality=0.9)
    grey = _spread(case.frames).mean(axis=-1).astype(np.float32)  # float grey frames (> 8-bit sources)
    assert detect_echo_mode(grey).mode == "contrast"
    assert detect_echo_mode(None) == EchoMode(
        "contrast", "contrast echo assumed: no contrast attributes and no frames to look at")
    mode, reason = detect_echo_mode(np.zeros((3, 64, 64), np.uint8))  # black frames: no sector
    assert mode == "contrast" and "no ultrasound sector found" in reason


# -- DICOM attributes ---------------------------------------------------------------------------------
def _code(meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = "C-B0322", "SRT", meaning
    return item


@pytest.mark.parametrize(("attributes", "expected"), [
    ({"ContrastBolusAgent": "SonoVue"}, "contrast echo: DICOM ContrastBolusAgent (0018,0010) is 'SonoVue'"),
    ({"ContrastBolusRoute": "IV"}, "contrast echo: DICOM ContrastBolusRoute (0018,1040) is 'IV'"),
    ({"ContrastBolusAgent": "", "ContrastBolusVolume": "2.0"},
     "contrast echo: DICOM ContrastBolusVolume (0018,1041) is '2.0'"),
    ({"ContrastBolusAgentAdministered": "YES"},
     "contrast echo: DICOM Contrast/Bolus Agent Administered (0018,9342) is YES"),
    ({"echo_mode": "bmode", "echo_mode_basis": "a CAMUS case"}, "B-mode echo: a CAMUS case"),
])
def test_attributes_that_decide(attributes: dict, expected: str) -> None:
    assert mode_from_attributes(attributes).reason == expected
    # the attributes win over the pixels
    bmode_frames = _spread(render_echo_case(0, 0, n_frames=8, variant="bmode", quality=0.9).frames)
    assert detect_echo_mode(bmode_frames, attributes).reason == expected


@pytest.mark.parametrize("attributes", [{}, {"ContrastBolusAgent": ""}, {"ContrastBolusAgent": "NONE"},
                                        {"ContrastBolusAgent": "no"}, {"ContrastBolusAgentAdministered": "NO"},
                                        {"echo_mode": "doppler"}])
def test_attributes_that_decide_nothing(attributes: dict) -> None:
    assert mode_from_attributes(attributes) is None


def test_contrast_attributes_of_a_dataset() -> None:
    ds = Dataset()
    ds.PatientName = "DOE^JANE"
    ds.ContrastBolusAgent = ""
    assert contrast_attributes(ds) == {"ContrastBolusAgent": ""}  # present but empty: the caller sees it
    ds.ContrastBolusAgentSequence = [_code("Sulfur hexafluoride microbubbles")]
    ds.ContrastBolusRoute = "IV"
    found = contrast_attributes(ds)
    assert found == {"ContrastBolusAgent": "", "ContrastBolusAgentSequence": "Sulfur hexafluoride microbubbles",
                     "ContrastBolusRoute": "IV"}
    assert "DOE" not in str(found)
    assert detect_echo_mode(None, dataset=ds).reason == (
        "contrast echo: DICOM ContrastBolusAgentSequence (0018,0012) is 'Sulfur hexafluoride microbubbles'")
    enhanced = Dataset()
    usage = Dataset()
    usage.ContrastBolusAgentAdministered = "YES"
    group = Dataset()
    group.ContrastBolusUsageSequence = [usage]
    enhanced.SharedFunctionalGroupsSequence = [group]
    assert detect_echo_mode(None, dataset=enhanced).mode == "contrast"


def test_resolve_takes_the_users_choice_without_detecting() -> None:
    def detect():
        raise AssertionError("not called")

    assert resolve("bmode", detect) == EchoMode("bmode", "B-mode echo: chosen by the user")
    assert resolve("auto", lambda: EchoMode("contrast", "x")) == EchoMode("contrast", "x")
    with pytest.raises(ValueError, match="unknown echo mode"):
        resolve("doppler", detect)


# -- what the app writes and opens ------------------------------------------------------------------
def test_contrast_phantom_dicoms_carry_the_agent_and_b_mode_ones_do_not(tmp_path: Path) -> None:
    for variant in ("contrast", "bmode"):
        case = render_echo_case(5, 2, n_frames=12, variant=variant, quality=0.8)
        path = write_echo_dicom(case, tmp_path / f"{variant}.dcm", 1)
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        assert (ds.get("ContrastBolusAgent") == CONTRAST_AGENT) == (variant == "contrast")
        assert ("ContrastBolusAgent" in ds) == (variant == "contrast")
        with open_source(str(path)) as source:
            echo = echo_mode_of(source)
            assert echo.mode == variant
            if variant == "contrast":  # from the attribute
                assert source.info.echo_attributes == {"ContrastBolusAgent": CONTRAST_AGENT, "ContrastBolusRoute": "IV"}
                assert echo.reason == f"contrast echo: DICOM ContrastBolusAgent (0018,0010) is '{CONTRAST_AGENT}'"
            else:  # from the pixels
                assert source.info.echo_attributes == {}
                assert echo.reason.startswith("B-mode echo: no contrast attributes; the image looks B-mode")
            assert echo_mode_of(source) is echo  # once per source
            assert echo_mode_of(source, "contrast") == EchoMode("contrast", "contrast echo: chosen by the user")


def test_the_real_pydicom_ultrasound_loop_is_b_mode() -> None:
    """pydicom's examples_ybr_color.dcm: a 30-frame parasternal long-axis B-mode loop, no contrast module."""
    with open_source(get_testdata_file("examples_ybr_color.dcm")) as source:
        assert source.info.echo_attributes == {}
        mode, reason = echo_mode_of(source)
    assert mode == "bmode" and f"{IMAGE_FRAMES} frames" in reason


def test_case_files_and_datasets_say_what_they_are(tmp_path: Path) -> None:
    from app.data.loaders.phantom_disk import save_case_npz
    from app.data.phantom_cli import write_phantom_dataset

    case = render_echo_case(1, 0, n_frames=6, variant="bmode", quality=0.8)
    npz = save_case_npz(case, tmp_path / "case_0000.npz")
    with open_source(str(npz)) as source:
        assert echo_mode_of(source) == EchoMode("bmode", "B-mode echo: a bmode phantom (its generator's variant)")
    write_phantom_dataset("echo", 1, tmp_path / "camus", seed=0, n_frames=6, fmt="camus")
    patient = next(p for p in sorted((tmp_path / "camus").iterdir()) if p.is_dir() and p.name.startswith("patient"))
    with open_source(str(patient)) as source:
        assert echo_mode_of(source) == EchoMode("bmode", "B-mode echo: a CAMUS case (CAMUS is B-mode echo)")
    with open_source("phantom:echo?frames=6") as source:  # the live phantom: contrast, from its first case
        assert echo_mode_of(source).reason == "contrast echo: a contrast phantom (its generator's variant)"
