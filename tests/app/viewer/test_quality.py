"""The traffic light and the 'quality stays low' alert (pure logic, no Qt)."""

import math

import pytest

from app.viewer.quality import Quality, QualityMonitor, QualityThresholds


def test_classify_levels_and_unknown() -> None:
    t = QualityThresholds(good=0.8, fair=0.7)
    assert t.classify(0.85) is Quality.GOOD
    assert t.classify(0.8) is Quality.GOOD
    assert t.classify(0.75) is Quality.FAIR
    assert t.classify(0.69) is Quality.POOR
    assert t.classify(None) is Quality.UNKNOWN
    assert t.classify(math.nan) is Quality.UNKNOWN


def test_thresholds_reject_inverted_or_empty() -> None:
    with pytest.raises(ValueError):
        QualityThresholds(good=0.6, fair=0.7)
    with pytest.raises(ValueError):
        QualityThresholds(alert_frames=0)


def test_alert_raised_after_n_consecutive_poor_frames_only() -> None:
    mon = QualityMonitor(QualityThresholds(good=0.8, fair=0.7, alert_frames=4, clear_frames=2))
    events = [mon.update(d) for d in (0.5, 0.5, 0.5, 0.9, 0.5, 0.5, 0.5)]
    assert events == [None] * 7 and not mon.alert  # runs of 3 never reach 4
    assert mon.update(0.5) is True and mon.alert
    assert mon.update(0.5) is None  # raised once, not per frame


def test_unknown_frames_neither_extend_nor_break_a_run() -> None:
    mon = QualityMonitor(QualityThresholds(alert_frames=3, clear_frames=2))
    assert [mon.update(d) for d in (0.1, None, 0.1, None)] == [None] * 4
    assert mon.update(0.1) is True


def test_alert_clears_with_hysteresis() -> None:
    mon = QualityMonitor(QualityThresholds(alert_frames=2, clear_frames=3))
    mon.update(0.1)
    assert mon.update(0.1) is True
    assert [mon.update(d) for d in (0.9, 0.9, 0.1, 0.9, 0.9)] == [None] * 5  # a red frame restarts the count
    assert mon.update(0.95) is False and not mon.alert
