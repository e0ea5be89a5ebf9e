"""``python -m search.distributed.bench``: wall time of segqc-hw's joint search on 1 or N ranks.

Run it plainly (one process) and under ``torchrun --standalone --nproc_per_node N`` with the same
``--out`` and compare the ``seconds`` of the JSON lines it appends to ``<out>/bench.jsonl``. The
workload is the ``default`` preset's search (96x96 frames, global batch 8, the default supernets,
one warm-up epoch and one alternating epoch) on ``--patients`` S1 and S2 patients each (4 frames
per patient), so one step costs what it costs in the default preset. The first run (one process)
generates the phantom patients and the latency table under ``--out``; ``--lut`` copies an existing
table there first. The 1-minute load average is recorded before and after: on a machine shared
with other jobs the ratio of two wall times means little, and the record says so.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import time
from dataclasses import replace
from pathlib import Path

import torch

from search import distributed

log = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m search.distributed.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="bench folder (data, LUT, bench.jsonl)")
    parser.add_argument("--patients", type=int, default=8, help="S1 and S2 patients each (4 frames each)")
    parser.add_argument("--lut", type=Path, default=None, help="a segqc-hw default-preset lut.json to start from")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads per rank")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    distributed.init_from_env()
    torch.set_num_threads(args.threads)

    from search.methods.segqc_hw.config import preset
    from search.methods.segqc_hw.data import frame_dataset, load_protocol
    from search.methods.segqc_hw.joint_search import run_joint_search
    from search.methods.segqc_hw.latency_model import ensure_table
    from search.methods.segqc_hw.search import build_supernets, qc_config, seg_config

    base = preset("default")
    cfg = replace(base, data=replace(base.data, n_s1=args.patients, n_s2=args.patients, n_test=1, n_qc_val=1),
                  search=replace(base.search, warmup_epochs=1, alternate_epochs=1))
    lut = args.out / "latency" / "lut.json"
    with distributed.main_first():
        if distributed.is_main() and args.lut is not None and not lut.is_file():
            lut.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(args.lut, lut)
        cases = load_protocol(cfg.data, args.out / "data")
        latency = ensure_table(cfg, lut, seg_config(cfg), qc_config(cfg))
    seed = cfg.search.seeds[0]
    seg, qc = build_supernets(cfg, seed)
    s1 = frame_dataset(cases["s1"], cfg.data.resolution, cfg.data.augment, seed=seed * 10 + 3)
    s2 = frame_dataset(cases["s2"], cfg.data.resolution, cfg.data.augment, seed=seed * 10 + 4)
    load_before = os.getloadavg()[0]
    distributed.barrier()
    t0 = time.perf_counter()
    state = run_joint_search(seg, qc, latency.bind(seg.net, qc.net), s1, s2, cfg.search, seed=seed)
    distributed.barrier()
    seconds = time.perf_counter() - t0
    if distributed.is_main():
        record = {
            "world": distributed.world_size(), "backend": distributed.backend() if distributed.is_distributed() else None,
            "seconds": round(seconds, 2), "epochs": len(state.history), "frames": {"s1": len(s1), "s2": len(s2)},
            "global_batch": cfg.search.batch_size, "per_rank_batch": distributed.split_batch(cfg.search.batch_size),
            "threads_per_rank": args.threads, "load_1min_before": load_before, "load_1min_after": os.getloadavg()[0],
            "cpus": os.cpu_count(), "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
            "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        with open(args.out / "bench.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        print(json.dumps(record))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
