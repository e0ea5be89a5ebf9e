"""LAT of eq. 3: the expected latency of seg + QC from this CPU's lookup table (FBNet additive form).

The table holds every op signature the two supernets contain at the *measurement* resolution
(``measure.resolution``, 256x256 as in seed 000 and the issue's targets), profiled here with
onnxruntime by ``search.latency.profiler`` (only missing keys; cached in the run folder). Training
may run at a lower resolution: the latency term still prices the architecture at the resolution
Table II reports. The estimator itself is ``search.core.estimators.AdditiveLatency``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from search.core.estimators import AdditiveLatency, predict_latency
from search.core.genotypes import SegQcGenotype
from search.core.latency_sites import collect_latency_keys
from search.core.mixed import SOFTMAX, ArchWeighting
from search.core.supernets.nasunet import NasUnetConfig, NasUnetSupernet
from search.core.supernets.qcnet import QcNetConfig, QcSupernet
from search.latency.lut import LatencyTable
from search.latency.profiler import OpProfiler, ProfileSettings

log = logging.getLogger(__name__)


class FrameworkLatency:
    """Expected and predicted latency (ms) of seg + QC at one resolution.

    Args:
        table: Lookup table holding every key of both supernets at ``resolution``.
        resolution: Input side the keys were traced at.
        seg_cfg, qc_cfg: Shapes of the two networks.
    """

    def __init__(self, table: LatencyTable, resolution: int, seg_cfg: NasUnetConfig, qc_cfg: QcNetConfig):
        self.table, self.resolution, self.seg_cfg, self.qc_cfg = table, resolution, seg_cfg, qc_cfg

    def shapes(self) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
        r = self.resolution
        return (self.seg_cfg.in_channels, r, r), (self.qc_cfg.in_channels, r, r)

    def bind(self, seg: NasUnetSupernet, qc: QcSupernet):
        """``expected_latency(tau, generator)`` of these two supernets (see ``joint_search.LatencyFn``).

        ``tau`` given: Gumbel-softmax samples ``GS(alpha)`` drawn from ``generator`` (eq. 4);
        ``tau=None``: the deterministic softmax expectation (for logging).
        """
        seg_shape, qc_shape = self.shapes()
        estimator = AdditiveLatency([(seg, seg_shape), (qc, qc_shape)], self.table)

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


def ensure_table(cfg, path: Path, seg_cfg: NasUnetConfig, qc_cfg: QcNetConfig) -> FrameworkLatency:
    """Load the run's table, profile the keys it lacks on this CPU, and return the latency model.

    Args:
        cfg: ``SegQcConfig`` (its ``measure`` block: resolution, profiling runs, threads).
        path: Table JSON (created, saved after every profiled group: resumable).
        seg_cfg, qc_cfg: Shapes of the two supernets.
    """
    r = cfg.measure.resolution
    table = LatencyTable.load(path) if path.is_file() else LatencyTable(path=str(path))
    keys = (collect_latency_keys(NasUnetSupernet(seg_cfg), (seg_cfg.in_channels, r, r))
            | collect_latency_keys(QcSupernet(qc_cfg), (qc_cfg.in_channels, r, r)))
    settings = ProfileSettings(warmup=cfg.measure.lut_warmup, repeats=cfg.measure.lut_repeats,
                               intra_op_threads=cfg.measure.intra_op_threads, seed=cfg.seed)
    profiler = OpProfiler(table, settings, save_to=path)
    missing = profiler.missing(keys)
    if missing:
        log.info("latency table %s: profiling %d of %d op signatures at %dx%d", path, len(missing), len(keys), r, r)
        profiler.profile(missing)
        table.save(path)
    return FrameworkLatency(table, r, seg_cfg, qc_cfg)
