"""The differentiable search of msnas-hw: the shared first-order bilevel search.

Equations: the msnas-hw paper (Zeng et al., ICCAD 2020, arXiv:2008.07071).

Loss (eq. 6): ``CE + lambda * LAT``, LAT the expected latency in ms of the top-n longest paths. The
loop (warm-up, then alternating weight / architecture steps, resumable checkpoints) lives in
``search.train.bilevel`` because rtdnas runs it too; this module names it for msnas-hw.
"""

from __future__ import annotations

from search.train.bilevel import ArchitectureSearch, LatencyTerm, StepRecord, segmentation_ce

__all__ = ["ArchitectureSearch", "LatencyTerm", "StepRecord", "segmentation_ce"]
