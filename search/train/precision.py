"""Training arithmetic: float32, or bfloat16 autocast on CPUs that compute it natively.

Training steps (``search.train.loop.fit``, the searches' weight and architecture steps, the cine QC)
run their forward pass and loss under ``autocast()``. With ``bf16`` that is PyTorch's CPU autocast to
bfloat16: convolutions and matrix products in bfloat16, the weights, the optimiser and the losses in
float32 (no loss scaling is needed: bfloat16 has float32's range). On a CPU with AMX or AVX512-BF16
this halves a U-net training step (``bench/precision_bench.py``); elsewhere PyTorch emulates bfloat16
and it is slower than float32, so ``auto`` takes bfloat16 only where the CPU has it. Evaluation,
export and the shipped ONNX models stay float32 whatever the training precision.

The setting is process-wide, like ``torch.set_num_threads``: a command sets it from ``--precision``
(``use``), and ``tag`` adds it to a run's configuration so that a run folder never resumes under the
other precision. float32 adds nothing, so every run folder written before this setting still resumes.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch

MODES = ("fp32", "bf16", "auto")
HELP = ("training arithmetic: fp32, bf16 (autocast: convolutions in bfloat16, weights and losses in float32) or "
        "auto (bf16 where the CPU computes it natively: AMX or AVX512-BF16, else fp32)")

_mode = "fp32"


def native_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AMX tiles or AVX512-BF16)."""
    cpu = getattr(torch, "cpu", None)
    checks = (getattr(cpu, "_is_amx_tile_supported", None), getattr(cpu, "_is_avx512_bf16_supported", None))
    return any(bool(check()) for check in checks if check is not None)


def resolve(mode: str) -> str:
    """``mode`` as ``fp32`` or ``bf16`` (``auto``: bf16 where ``native_bf16()``); ValueError for anything else."""
    if mode not in MODES:
        raise ValueError(f"unknown precision {mode!r}; known: {', '.join(MODES)}")
    if mode == "auto":
        return "bf16" if native_bf16() else "fp32"
    return mode


def use(mode: str) -> str:
    """Train in ``mode`` from now on in this process; returns the resolved mode (``fp32`` or ``bf16``)."""
    global _mode
    _mode = resolve(mode)
    return _mode


def current() -> str:
    """The resolved training precision of this process (``fp32`` unless a command set it)."""
    return _mode


def autocast() -> contextlib.AbstractContextManager:
    """The context a training step's forward pass and loss run in (a no-op under fp32)."""
    if _mode == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def tag(config: Any) -> Any:
    """``config`` (a run's configuration dict) with ``"precision"`` when it is not fp32; anything else as it is."""
    if _mode == "fp32" or not isinstance(config, dict):
        return config
    return {**config, "precision": _mode}


def add_argument(parser, default: str = "fp32") -> None:
    """``--precision {fp32,bf16,auto}`` on ``parser``."""
    parser.add_argument("--precision", choices=MODES, default=default, help=f"{HELP} (default {default})")


__all__ = ["HELP", "MODES", "add_argument", "autocast", "current", "native_bf16", "resolve", "tag", "use"]
