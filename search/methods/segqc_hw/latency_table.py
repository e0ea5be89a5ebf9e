"""Table II's cost columns: end-to-end framework latency (seg then QC) and FLOPs, all rows in one process.

Each row's two networks are serialised to ONNX at the measurement resolution (256x256 as in the
paper; the architectures are fully convolutional up to the QC's global pooling, so the weights
trained at a lower resolution run unchanged) and opened with the deployed session settings
(``search.latency.measure.deployed_session``: the live pipeline's, no thread spinning). Then ``timed_runs`` rounds each run every row once, in a
seeded shuffled order per round, so background load on the shared CPU hits all rows alike: one
framework run = the seg session on a real preprocessed frame, then the QC session on that frame and
the seg outputs (exactly the deployed data flow). A row's latency is the median of its rounds;
its best-of-N (minimum) is reported beside it, because this machine's two cores are shared with
other jobs and the minimum is what the pair costs when it has the cores (see ``latency_model``).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Mapping

import numpy as np
import torch
from torch import nn

from search.export.flops import count_flops, count_params
from search.latency.lut import hardware_fingerprint
from search.latency.measure import deployed_session, gc_paused, runtime_name, stats_from_samples
from search.latency.onnx_bytes import export_onnx_bytes
from search.train.seg_outputs import SegmentationWithUncertainty

log = logging.getLogger(__name__)


@dataclass
class RowCost:
    """Measured cost of one seg + QC pair.

    Attributes:
        latency_ms: Median end-to-end framework latency (seg + QC), ms.
        latency_p95_ms: 95th percentile, ms.
        latency_min_ms: Best of the timed rounds (uncontended cost), ms.
        seg_ms: Median of the seg part alone within the same rounds, ms.
        qc_ms: Median of the QC part alone within the same rounds, ms.
        flops: Floating-point operations of seg + QC (2 per multiply-accumulate), one frame.
        macs: Multiply-accumulates of seg + QC.
        params: Parameters of seg + QC.
    """

    latency_ms: float
    latency_p95_ms: float
    latency_min_ms: float
    seg_ms: float
    qc_ms: float
    flops: int
    macs: int
    params: int

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def pair_onnx(seg: nn.Module, qc: nn.Module, resolution: int) -> tuple[bytes, bytes]:
    """ONNX bytes of ``SegmentationWithUncertainty(seg)`` and of ``qc`` at ``resolution`` (timing only)."""
    seg_full = SegmentationWithUncertainty(seg).eval()
    image = torch.zeros(1, 3, resolution, resolution)
    with torch.no_grad():
        probs, unc = seg_full(image)
    return export_onnx_bytes(seg_full, image), export_onnx_bytes(qc.eval(), (image, probs, unc))


def pair_flops(seg: nn.Module, qc: nn.Module, resolution: int) -> tuple[int, int]:
    """FLOPs (torch's counter, 2 per MAC) and parameters of seg + QC at ``resolution``."""
    seg_full = SegmentationWithUncertainty(seg).eval()
    image = torch.zeros(1, 3, resolution, resolution)
    with torch.no_grad():
        probs, unc = seg_full(image)
    flops = count_flops(seg_full, [image]) + count_flops(qc.eval(), [image, probs, unc])
    return flops, count_params(seg) + count_params(qc)


def measure_rows(rows: Mapping[str, tuple[nn.Module, nn.Module]], frame: np.ndarray, *, resolution: int,
                 warmup: int, repeats: int, intra_op_threads: int | None = None, seed: int = 0) -> dict[str, RowCost]:
    """Latency and FLOPs of every row, interleaved in one process.

    Args:
        rows: name -> (seg logits net, QC net), in eval mode.
        frame: One preprocessed input ``(1, 3, resolution, resolution)`` float32 (a real frame).
        resolution: Input side for latency and FLOPs.
        warmup: Untimed framework runs per row.
        repeats: Timed rounds.
        intra_op_threads: onnxruntime intra-op threads (None: the app's default).
        seed: Seed of the round-order shuffles.
    """
    if frame.shape != (1, 3, resolution, resolution):
        raise ValueError(f"latency frame has shape {frame.shape}, expected (1, 3, {resolution}, {resolution})")
    names = list(rows)
    sessions = {}
    for n in names:
        seg_bytes, qc_bytes = pair_onnx(*rows[n], resolution)
        sessions[n] = (deployed_session(seg_bytes, intra_op_threads=intra_op_threads),
                       deployed_session(qc_bytes, intra_op_threads=intra_op_threads))

    def run(n: str) -> tuple[float, float]:
        seg_s, qc_s = sessions[n]
        t0 = time.perf_counter_ns()
        probs, unc = seg_s.run(None, {seg_s.get_inputs()[0].name: frame})
        t1 = time.perf_counter_ns()
        qc_names = [i.name for i in qc_s.get_inputs()]
        qc_s.run(None, dict(zip(qc_names, (frame, probs, unc))))
        t2 = time.perf_counter_ns()
        return (t1 - t0) / 1e6, (t2 - t1) / 1e6

    for n in names:
        for _ in range(warmup):
            run(n)
    rng = np.random.default_rng(seed)
    seg_t = {n: [] for n in names}
    qc_t = {n: [] for n in names}
    with gc_paused():
        for _ in range(repeats):
            for i in rng.permutation(len(names)):
                s, q = run(names[i])
                seg_t[names[i]].append(s)
                qc_t[names[i]].append(q)
    out = {}
    for n in names:
        threads = sessions[n][0].get_session_options().intra_op_num_threads
        total = stats_from_samples([s + q for s, q in zip(seg_t[n], qc_t[n])], threads=threads,
                                   runtime=runtime_name(sessions[n][0]))
        flops, params = pair_flops(*rows[n], resolution)
        best = float(min(s + q for s, q in zip(seg_t[n], qc_t[n])))
        out[n] = RowCost(latency_ms=total.p50_ms, latency_p95_ms=total.p95_ms, latency_min_ms=best,
                         seg_ms=float(np.median(seg_t[n])),
                         qc_ms=float(np.median(qc_t[n])), flops=flops, macs=flops // 2, params=params)
        log.info("%s: %.2f ms median, %.2f best (seg %.2f + QC %.2f), %.0f MFLOPs", n, out[n].latency_ms,
                 best, out[n].seg_ms, out[n].qc_ms, flops / 1e6)
    return out


def machine_line(intra_op_threads: int | None) -> str:
    """Which machine and runtime the latencies come from (for the report)."""
    import onnxruntime as ort

    from app.engine.runtime import default_threads

    hw = hardware_fingerprint()
    threads = intra_op_threads or default_threads()
    return (f"{hw['cpu']} ({hw['logical_cores']} logical cores, {hw['machine']}), onnxruntime {ort.__version__} "
            f"CPUExecutionProvider, {threads} intra-op threads, batch 1, one process")
