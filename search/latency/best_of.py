"""Best-of-N latency tables: each op's entry is the minimum of interleaved runs, not their median.

Why (measured while segqc-hw's table was built; ``search.methods.segqc_hw.latency_model``): the 2 cores of
this machine are shared with other jobs. Under that load the median of an op's runs measures the load, not
the op: a first table profiled with medians had a 4->4-channel separable conv at 256x256 at 78 ms and the 1x1
seg head at 61 ms, 30-100x their real cost, because onnxruntime's two threads wait for each other whenever
one is descheduled. The minimum over interleaved runs is the cost of the op when it gets the cores, which is
what a dedicated scanner PC gives it. Ops are still built, exported and run exactly as
``search.latency.profiler`` does (same builder, ``core_adapter.module_for_key``, which also builds the U-net
skeleton space's ``skel_*`` keys; same exporter and session settings).

Used by segqc-hw's table and by the cine skeleton search's.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

import torch

from search.latency.core_adapter import module_for_key
from search.latency.keys import OpKey
from search.latency.lut import LatencyTable
from search.latency.profiler import ProfileSettings, table_conditions

log = logging.getLogger(__name__)

#: How an entry of a best-of-N table is computed (see ``profile_best_of``).
STATISTIC = ("minimum ms of `repeats` interleaved session.run calls on the op alone (best of N: the "
             "uncontended cost; the machine is shared), minus meta.session_overhead_ms")


def profile_best_of(table: LatencyTable, keys: list[OpKey], settings: ProfileSettings, path: Path) -> None:
    """Measure ``keys`` into ``table`` as best-of-N (see the module docstring); saves after every group."""
    import time

    import numpy as np

    from search.latency.measure import (deployed_session, gc_paused, make_feeds, measure_interleaved,
                                        session_overhead_model)
    from search.latency.onnx_bytes import export_onnx_bytes
    build = module_for_key
    meta = table.meta
    if not table.entries:
        meta.update(table_conditions(settings))
        overhead = measure_interleaved({"o": session_overhead_model()}, warmup=20, repeats=200,
                                       intra_op_threads=settings.intra_op_threads)["o"]
        meta["session_overhead_ms"] = overhead.p50_ms
    meta["statistic"] = STATISTIC
    overhead_ms = float(meta["session_overhead_ms"])
    rng = np.random.default_rng(settings.seed)
    torch.manual_seed(settings.seed)
    for start in range(0, len(keys), settings.group_size):
        group = keys[start:start + settings.group_size]
        sessions, feeds = [], []
        for key in group:
            x = torch.randn(1, key.c_in, *key.shape)
            sess = deployed_session(export_onnx_bytes(build(key), x), intra_op_threads=settings.intra_op_threads)
            sessions.append(sess)
            feeds.append(make_feeds(sess, tuple(x.shape), seed=settings.seed))
        for sess, f in zip(sessions, feeds):
            for _ in range(settings.warmup):
                sess.run(None, f)
        best = [float("inf")] * len(group)
        with gc_paused():
            for _ in range(settings.repeats):
                for i in rng.permutation(len(group)):
                    t0 = time.perf_counter_ns()
                    sessions[i].run(None, feeds[i])
                    best[i] = min(best[i], (time.perf_counter_ns() - t0) / 1e6)
        for key, ms in zip(group, best):
            table.set(key, max(0.0, ms - overhead_ms))
        table.save(path)
        log.info("latency table: %d/%d op signatures measured", min(start + len(group), len(keys)), len(keys))


def best_of_profiler(settings: ProfileSettings, path: Path) -> Callable[[LatencyTable, list[OpKey]], None]:
    """The ``profile`` a latency-table stage (``search.train.stages.latency_table_stage``) takes: refuse a table
    measured with another statistic, then measure the missing keys best-of-N into it."""
    def profile(table: LatencyTable, missing: list[OpKey]) -> None:
        check_statistic(table, path)
        profile_best_of(table, missing, settings, path)

    return profile


def check_statistic(table: LatencyTable, path: Path) -> None:
    """Refuse a table whose entries were measured with another statistic than ``STATISTIC``."""
    if table.entries and table.meta.get("statistic") != STATISTIC:
        raise ValueError(f"{path}: entries were measured with another statistic ({table.meta.get('statistic')!r}); "
                         "delete the table to profile it again")
