"""Segmentation quality at a glance: traffic-light levels and the "stays low" alert.

Pure Python (no Qt): the viewer feeds it every processed frame's predicted Dice, in order, and
shows what it says. The alert counts processed frames, not painted ones, so it means the same
thing whether the display is throttled or not.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass


class Quality(enum.Enum):
    """Traffic-light level of one frame's predicted Dice."""

    GOOD = "good"
    FAIR = "fair"
    POOR = "poor"
    UNKNOWN = "unknown"  # no QC model, or the frame failed


@dataclass(frozen=True)
class QualityThresholds:
    """Where the traffic light changes colour, and when low quality becomes an alert.

    Attributes:
        good: Predicted Dice at or above which a frame is green.
        fair: Predicted Dice at or above which a frame is amber (below: red).
        alert_frames: Consecutive red frames that raise the alert.
        clear_frames: Consecutive non-red frames that clear it again (hysteresis, so the banner
            does not flicker on a borderline sequence).
    """

    good: float = 0.80
    fair: float = 0.70
    alert_frames: int = 15
    clear_frames: int = 5

    def __post_init__(self):
        if not 0.0 <= self.fair <= self.good <= 1.0:
            raise ValueError(f"need 0 <= fair <= good <= 1, got fair={self.fair}, good={self.good}")
        if self.alert_frames < 1 or self.clear_frames < 1:
            raise ValueError("alert_frames and clear_frames must be >= 1")

    def classify(self, dice: float | None) -> Quality:
        """The traffic-light level of one predicted Dice (None or NaN -> UNKNOWN)."""
        if dice is None or not math.isfinite(dice):
            return Quality.UNKNOWN
        if dice >= self.good:
            return Quality.GOOD
        if dice >= self.fair:
            return Quality.FAIR
        return Quality.POOR


ALERT_TEXT = "Low segmentation quality - adjust the probe or re-acquire"


class QualityMonitor:
    """Counts runs of red frames and says when the alert starts and stops.

    Args:
        thresholds: Initial thresholds (replace with ``set_thresholds``).
    """

    def __init__(self, thresholds: QualityThresholds | None = None):
        self.thresholds = thresholds or QualityThresholds()
        self.reset()

    def reset(self) -> None:
        """Forget the runs (a new source or model)."""
        self.poor_run = 0
        self.ok_run = 0
        self.alert = False
        self.last = Quality.UNKNOWN

    def set_thresholds(self, thresholds: QualityThresholds) -> None:
        self.thresholds = thresholds

    def update(self, dice: float | None) -> bool | None:
        """Feed one processed frame.

        Returns:
            True when this frame raised the alert, False when it cleared it, None otherwise.
        """
        level = self.thresholds.classify(dice)
        self.last = level
        if level is Quality.UNKNOWN:
            return None  # no information: neither extend nor break a run
        if level is Quality.POOR:
            self.poor_run += 1
            self.ok_run = 0
            if not self.alert and self.poor_run >= self.thresholds.alert_frames:
                self.alert = True
                return True
            return None
        self.ok_run += 1
        self.poor_run = 0
        if self.alert and self.ok_run >= self.thresholds.clear_frames:
            self.alert = False
            return False
        return None
