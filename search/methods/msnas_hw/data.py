"""Phantom cine patients, the split by patient, and the clip datasets of one ``msnas-hw`` run.

The code is shared with rtdnas and lives in ``search.train.clips``; this module names it for
msnas-hw.
"""

from __future__ import annotations

from search.train.clips import TRAIN_AUGMENTATION, PatientSplit, clip_dataset, load_cases, render_case

__all__ = ["TRAIN_AUGMENTATION", "PatientSplit", "clip_dataset", "load_cases", "render_case"]
