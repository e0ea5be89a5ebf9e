"""``app.metrics``: matching a model's classes to a ground truth's by name, and Dice on the match."""

from __future__ import annotations

import numpy as np
import pytest

from app.data.case import ACDC_LABELS, CAMUS_LABELS, ECHO_MYO_LABELS
from app.metrics import class_key, match_classes

CONTRAST = {0: "background", 1: "myocardium"}
BMODE = {0: "background", 1: "LV", 2: "MYO", 3: "LA"}


def test_class_names_compare_case_insensitively_with_synonyms():
    assert class_key("MYO") == class_key("myocardium") == class_key("LV_Myocardium") == "myocardium"
    assert class_key("lv") == class_key("LV cavity") == class_key("Left-Ventricle") == "lv"
    assert class_key("LA") != class_key("LV")


def test_contrast_model_on_camus_scores_myocardium_against_label_2():
    match = match_classes(CONTRAST, dict(CAMUS_LABELS))
    assert match.scored == (1,) and match.ground_truth_label == {1: 2} and not match.not_scored
    gt = np.array([[0, 1, 2, 3]], np.uint8)
    assert match.remap(gt).tolist() == [[0, 0, 1, 0]]  # LV and LA are background to a myocardium-only model
    pred = np.array([[0, 0, 1, 0]], np.uint8)
    assert match.mean_dice(pred, gt) == 1.0


def test_bmode_model_on_myocardium_labels_leaves_lv_and_la_unscored():
    match = match_classes(BMODE, dict(ECHO_MYO_LABELS))
    assert match.ground_truth_label == {2: 1} and match.not_scored == {1: "LV", 3: "LA"}
    gt = np.array([[0, 1, 1, 0]], np.uint8)
    pred = np.array([[1, 2, 2, 3]], np.uint8)  # LV and LA everywhere else: not a Dice 0, not scored at all
    assert match.dice(pred, gt) == {2: 1.0} and match.mean_dice(pred, gt) == 1.0


def test_acdc_and_camus_share_lv_and_myo_under_other_numbers():
    match = match_classes(dict(ACDC_LABELS), dict(CAMUS_LABELS))
    assert match.ground_truth_label == {2: 2, 3: 1} and match.not_scored == {1: "RV"}


def test_same_numbering_or_no_label_map_compares_numbers():
    same = match_classes(BMODE, dict(CAMUS_LABELS))
    gt = np.array([[0, 1, 2, 3, 7]], np.uint8)
    assert same.scored == (1, 2, 3) and same.remap(gt) is gt  # nothing to remap
    for unknown in (None, {}):
        match = match_classes(CONTRAST, unknown)
        assert not match.by_name and match.scored == (1,) and match.remap(gt) is gt


def test_nothing_in_common_scores_nothing():
    match = match_classes(CONTRAST, {0: "background", 1: "RV"})
    assert match.scored == () and match.not_scored == {1: "myocardium"}
    gt = np.ones((2, 2), np.uint8)
    assert np.isnan(match.mean_dice(np.ones((2, 2), np.uint8), gt))
    with pytest.raises(ValueError, match="shape"):
        match.dice(np.ones((3, 3), np.uint8), gt)
