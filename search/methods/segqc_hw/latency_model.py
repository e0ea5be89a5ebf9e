"""LAT of eq. 3: the expected latency of seg + QC from this CPU's lookup table (FBNet additive form).

Its entries are best-of-N, not medians (why: ``search.latency.best_of``; found while this table was first
built, at load average 10-13).

The table holds every op signature the two supernets contain at the *measurement* resolution
(``measure.resolution``, 256x256 as in the paper and the issue's targets), profiled here with
onnxruntime best-of-N by ``search.latency.best_of`` (only missing keys; cached in the run folder). Training
may run at a lower resolution: the latency term still prices the architecture at the resolution
Table II reports. The estimator itself is ``search.core.estimators.AdditiveLatency``.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path

import torch

from search.core.estimators import AdditiveLatency, predict_latency
from search.core.genotypes import SegQcGenotype
from search.core.latency_sites import collect_latency_keys
from search.core.mixed import SOFTMAX, ArchWeighting
from search.core.supernets.nasunet import NasUnetConfig, NasUnetSupernet
from search.core.supernets.qcnet import QcNetConfig, QcSupernet
from search.latency.keys import OpKey
from search.latency.lut import LatencyTable
from search.latency.best_of import best_of_profiler, check_statistic
from search.latency.profiler import ProfileSettings
from search.train.stages import Stage, latency_table_stage

log = logging.getLogger(__name__)


class FrameworkLatency:
    """Expected and predicted latency (ms) of seg + QC at one resolution.

    Args:
        table: Lookup table holding every key of both supernets at ``resolution``.
        resolution: Input side the keys were traced at.
        seg_cfg, qc_cfg: Shapes of the two networks.
        inputs_by_use: The expected latency charges a droppable cell input's alignment by the probability
            that some edge reads it (``SearchConfig.input_cost == "by_use"``).
    """

    def __init__(self, table: LatencyTable, resolution: int, seg_cfg: NasUnetConfig, qc_cfg: QcNetConfig,
                 inputs_by_use: bool = False):
        self.table, self.resolution, self.seg_cfg, self.qc_cfg = table, resolution, seg_cfg, qc_cfg
        self.inputs_by_use = inputs_by_use

    def shapes(self) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
        r = self.resolution
        return (self.seg_cfg.in_channels, r, r), (self.qc_cfg.in_channels, r, r)

    def bind(self, seg: NasUnetSupernet, qc: QcSupernet):
        """``expected_latency(tau, generator)`` of these two supernets (see ``joint_search.LatencyFn``).

        ``tau`` given: Gumbel-softmax samples ``GS(alpha)`` drawn from ``generator`` (eq. 4);
        ``tau=None``: the deterministic softmax expectation (for logging).
        """
        seg_shape, qc_shape = self.shapes()
        estimator = AdditiveLatency([(seg, seg_shape), (qc, qc_shape)], self.table, inputs_by_use=self.inputs_by_use)

        def expected_latency(tau: float | None, generator: torch.Generator | None) -> torch.Tensor:
            if tau is None:
                return estimator(SOFTMAX)
            return estimator(ArchWeighting("gumbel", tau=tau, generator=generator))

        return expected_latency

    def of_genotype(self, genotype: SegQcGenotype) -> float:
        """The table's plain-sum prediction for the derived pair (ms)."""
        from search.core.derived.nasunet import DerivedNasUnet
        from search.core.derived.qcnet import DerivedQcNet

        seg_shape, qc_shape = self.shapes()
        return (predict_latency(DerivedNasUnet(genotype.seg, self.seg_cfg), seg_shape, self.table)
                + predict_latency(DerivedQcNet(genotype.qc, self.qc_cfg), qc_shape, self.table))


class SkeletonFrameworkLatency(FrameworkLatency):
    """:class:`FrameworkLatency` of a skeleton-space run (``SpaceConfig.seg_space == "skeleton"``): the seg part is
    the skeleton supernet's exact expectation (``SkeletonSupernet.expected_latency``) and, for a derived pair, the
    table sum of its blocks (``unet_skeleton.derived_latency``); the QC part is the paper's, as above.

    Args:
        choices: The skeleton space (``SkeletonChoices``), in place of the cell space's ``NasUnetConfig``.
    """

    def __init__(self, table: LatencyTable, resolution: int, choices, qc_cfg: QcNetConfig):
        super().__init__(table, resolution, None, qc_cfg)
        self.choices = choices

    def shapes(self) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
        r = self.resolution
        return (self.choices.in_channels, r, r), (self.qc_cfg.in_channels, r, r)

    def bind(self, seg, qc: QcSupernet):
        _, qc_shape = self.shapes()
        qc_part = AdditiveLatency([(qc, qc_shape)], self.table)

        def expected_latency(tau: float | None, generator: torch.Generator | None) -> torch.Tensor:
            weighting = SOFTMAX if tau is None else ArchWeighting("gumbel", tau=tau, generator=generator)
            return seg.expected_latency(self.table, self.resolution, weighting) + qc_part(weighting)

        return expected_latency

    def of_seg(self, skeleton) -> float:
        """The table's prediction for one skeleton seg net alone (ms)."""
        from search.core.supernets.unet_skeleton import derived_latency

        return derived_latency(skeleton, self.table, self.resolution, self.choices.in_channels, self.choices.n_classes)

    def of_genotype(self, genotype) -> float:
        from search.core.derived.qcnet import DerivedQcNet

        _, qc_shape = self.shapes()
        return self.of_seg(genotype.seg) + predict_latency(DerivedQcNet(genotype.qc, self.qc_cfg), qc_shape, self.table)


def is_skeleton(seg_cfg) -> bool:
    """Whether a seg space config is the skeleton space's ``SkeletonChoices`` (else the cell space's ``NasUnetConfig``)."""
    from search.core.supernets.unet_skeleton import SkeletonChoices

    return isinstance(seg_cfg, SkeletonChoices)


def space_record(space) -> dict:
    """``asdict(space)`` as the table stage records it: a cell-space run without the skeleton fields (its hash
    stays what it was before the skeleton space existed)."""
    from search.methods.segqc_hw.config import SKELETON_FIELDS

    doc = asdict(space)
    return doc if space.seg_space != "cells" else {k: v for k, v in doc.items() if k not in SKELETON_FIELDS}


def lut_stage(cfg, path: Path, seg_cfg, qc_cfg: QcNetConfig) -> Stage:
    """The run's latency-table stage: every op of both supernets at ``measure.resolution``, best of N.

    Args:
        cfg: ``SegQcConfig`` (its ``measure`` block: resolution, profiling runs, threads).
        path: Table JSON (created, saved after every profiled group: resumable, only missing keys).
        seg_cfg, qc_cfg: Shapes of the two supernets (``seg_cfg``: ``NasUnetConfig``, or the skeleton space's
            ``SkeletonChoices``).

    Returns:
        A ``search.train.stages.Stage`` whose result is the loaded ``LatencyTable``.
    """
    r = cfg.measure.resolution
    settings = ProfileSettings(warmup=cfg.measure.lut_warmup, repeats=cfg.measure.lut_repeats,
                               intra_op_threads=cfg.measure.intra_op_threads, seed=cfg.seed)

    def keys() -> set[OpKey]:
        if is_skeleton(seg_cfg):
            from search.core.supernets.unet_skeleton import SkeletonSupernet

            seg_keys = set(SkeletonSupernet(seg_cfg).latency_keys(r))
        else:
            seg_keys = collect_latency_keys(NasUnetSupernet(seg_cfg), (seg_cfg.in_channels, r, r))
        return seg_keys | collect_latency_keys(QcSupernet(qc_cfg), (qc_cfg.in_channels, r, r))

    m = cfg.measure
    config = {"resolution": r, "intra_op_threads": m.intra_op_threads, "lut_warmup": m.lut_warmup,
              "lut_repeats": m.lut_repeats, "seed": cfg.seed, "space": space_record(cfg.space)}
    return latency_table_stage(path, keys, settings, progress=log.info, profile=best_of_profiler(settings, path),
                               config=config)


def framework_latency(cfg, table: LatencyTable, seg_cfg, qc_cfg: QcNetConfig) -> FrameworkLatency:
    """The latency model of ``table`` (a best-of-N table of this method) at ``measure.resolution``."""
    check_statistic(table, Path(table.path or "latency table"))
    if is_skeleton(seg_cfg):
        return SkeletonFrameworkLatency(table, cfg.measure.resolution, seg_cfg, qc_cfg)
    return FrameworkLatency(table, cfg.measure.resolution, seg_cfg, qc_cfg,
                            inputs_by_use=cfg.search.input_cost == "by_use")


def ensure_table(cfg, path: Path, seg_cfg, qc_cfg: QcNetConfig) -> FrameworkLatency:
    """Profile the keys ``path`` lacks (``lut_stage`` without a run record) and return the latency model."""
    return framework_latency(cfg, lut_stage(cfg, path, seg_cfg, qc_cfg).run(), seg_cfg, qc_cfg)
