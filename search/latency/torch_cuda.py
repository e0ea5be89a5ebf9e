"""Optional: time the same ops with PyTorch on a CUDA GPU (the papers' GPU figures), into its own table.

Never used by the tests or the deployed app (the scanner runs onnxruntime on its CPU); it exists so
a GPU workstation can produce a table comparable to the papers' GTX 1080 numbers. Entries are the
median of CUDA-event-timed forwards at batch 1, in ms; the table's meta says ``runtime: torch``.
"""

from __future__ import annotations

import datetime as _dt
import logging
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from search.latency.keys import OpKey
from search.latency.lut import LatencyTable, hardware_fingerprint

log = logging.getLogger(__name__)


def time_module_cuda(module: nn.Module, example: torch.Tensor, *, warmup: int = 10, repeats: int = 50) -> float:
    """Median ms of ``module(example)`` on the current CUDA device, timed with CUDA events.

    Args:
        module: Any module (moved to CUDA, eval mode).
        example: Input tensor, e.g. ``(1, C, H, W)`` (moved to CUDA).
    """
    device = torch.device("cuda")
    module = module.to(device).eval()
    x = example.to(device)
    with torch.inference_mode():
        for _ in range(warmup):
            module(x)
        torch.cuda.synchronize()
        times = []
        for _ in range(repeats):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            module(x)
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
    return float(np.median(times))


def profile_torch_cuda(keys: Sequence[OpKey], path: Path | str, *, warmup: int = 10, repeats: int = 50,
                       build: Callable[[OpKey], nn.Module] | None = None) -> int:
    """Fill (or top up) a torch-CUDA latency table at ``path``; returns the number of ops measured.

    Raises:
        RuntimeError: CUDA is not available.
    """
    if not torch.cuda.is_available():
        raise RuntimeError("--torch-cuda: PyTorch sees no CUDA device on this machine")
    if build is None:
        from search.latency.core_adapter import module_for_key as build
    path = Path(path)
    table = LatencyTable.load(path) if path.exists() else LatencyTable(path=str(path))
    device_name = torch.cuda.get_device_name()
    if table.entries and table.meta.get("device") not in (None, device_name):
        raise ValueError(f"{path}: entries were measured on {table.meta.get('device')!r}, this GPU is {device_name!r}")
    table.meta.update({
        "runtime": "torch", "runtime_version": torch.__version__, "provider": "CUDA", "device": device_name,
        "hardware": hardware_fingerprint(), "warmup": warmup, "repeats": repeats, "batch": 1,
        "statistic": "median ms of a CUDA-event-timed forward on the op alone",
    })
    table.meta.setdefault("created", _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    todo = table.missing(keys)
    gen = torch.Generator().manual_seed(0)
    for i, key in enumerate(todo):
        x = torch.randn((1, key.c_in, *key.shape), generator=gen)
        table.set(key, time_module_cuda(build(key), x, warmup=warmup, repeats=repeats))
        if (i + 1) % 16 == 0:
            table.save(path)
    table.save(path)
    log.info("torch CUDA table %s: %d measured on %s", path, len(todo), device_name)
    return len(todo)
