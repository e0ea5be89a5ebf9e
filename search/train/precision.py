"""Training arithmetic: float32, or bfloat16 autocast on CPUs that compute it natively.

Training steps (``search.train.loop.fit``, the searches' weight and architecture steps, the cine QC)
run their forward pass and loss under ``autocast()``. With ``bf16`` that is PyTorch's CPU autocast to
bfloat16: convolutions and matrix products in bfloat16, the weights, the optimiser and the losses in
float32 (no loss scaling is needed: bfloat16 has float32's range). On a CPU with AMX or AVX512-BF16
this halves a U-net training step (``bench/precision_bench.py``); elsewhere PyTorch emulates bfloat16
and it is slower than float32, so ``auto`` takes bfloat16 only where the CPU has it. Evaluation,
export and the shipped ONNX models stay float32 whatever the training precision.

The setting is process-wide, like ``torch.set_num_threads``: every training command sets it from
``--precision`` (``use_args``). Without the flag a command takes its own default: ``auto`` where its networks
train faster in bf16 (plain convolutions: the baselines, the cine QC, the cine skeleton, fine-tuning), fp32
where they do not (the searches' cell-based networks, many small operations: measured slower in bf16 in the
chain), and fp32 for the smoke preset everywhere; ``python -m search`` leaves each stage its own default unless
given ``--precision``, so a method's own command and the chain train a run folder alike. ``tag`` adds it to a run's configuration and to the
hashes its stages are skipped by, so that a finished stage is not reused under the other precision (fp32 adds
nothing: every run folder written before this setting still resumes). A checkpoint written mid-stage (``fit``'s
per-epoch one, the bilevel search's, segqc-hw's joint search's) carries its precision (``stamp``), and resuming
it under the other one stops with ``PrecisionMismatch`` (``check_resume``) instead of finishing a stage in two
arithmetics; checkpoints written before the stamp resume as before. ``auto`` looks at the CPU; under
``--device cuda`` bf16 autocasts the GPU's operations too.

Importing this module does not import torch (command parsers read ``MODES`` and ``add_argument``).
"""

from __future__ import annotations

import contextlib
from typing import Any

MODES = ("fp32", "bf16", "auto")
HELP = ("training arithmetic: fp32, bf16 (autocast: convolutions in bfloat16, weights and losses in float32) or "
        "auto (bf16 where the CPU computes it natively: AMX or AVX512-BF16, else fp32)")

_mode = "fp32"


class PrecisionMismatch(ValueError):
    """A checkpoint interrupted mid-stage was written under the other training precision than this run's."""


def native_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AMX tiles or AVX512-BF16)."""
    import torch

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


def default_for(preset: str | None, default: str = "auto") -> str:
    """A command's precision when ``--precision`` is not given: fp32 for the smoke preset (tests, the same
    arithmetic on every machine), else the command's own ``default``."""
    return "fp32" if preset == "smoke" else default


def use_args(args: Any, preset: str | None) -> str:
    """``use`` the ``--precision`` of a command's parsed ``args`` (``add_argument``), or the command's default
    for ``preset`` when the flag is not given; returns the resolved mode."""
    mode = getattr(args, "precision", None)
    return use(mode or default_for(preset, getattr(args, "precision_default", "auto")))


def current() -> str:
    """The resolved training precision of this process (``fp32`` unless a command set it)."""
    return _mode


def autocast() -> contextlib.AbstractContextManager:
    """The context a training step's forward pass and loss run in (a no-op under fp32)."""
    if _mode != "bf16":
        return contextlib.nullcontext()
    import torch

    stack = contextlib.ExitStack()
    stack.enter_context(torch.autocast("cpu", dtype=torch.bfloat16))
    if torch.cuda.is_available():  # --device cuda: the GPU's operations too
        stack.enter_context(torch.autocast("cuda", dtype=torch.bfloat16))
    return stack


def tag(config: Any) -> Any:
    """``config`` (a run's configuration dict) with ``"precision"`` when it is not fp32; anything else as it is."""
    if _mode == "fp32" or not isinstance(config, dict):
        return config
    return {**config, "precision": _mode}


def untag(config: Any) -> Any:
    """``config`` without the ``"precision"`` that ``tag`` added (what the config dataclass is rebuilt from)."""
    if not isinstance(config, dict) or "precision" not in config:
        return config
    return {k: v for k, v in config.items() if k != "precision"}


def stamp(state: dict) -> dict:
    """A mid-stage checkpoint's ``state`` with the resolved precision it was trained in (``check_resume``)."""
    return {**state, "precision": _mode}


def check_resume(state: Any, path: Any) -> None:
    """Refuse to resume the checkpoint ``path`` (its loaded ``state``) when it was trained in the other precision:
    a ``PrecisionMismatch`` that names the file and both ways on. A checkpoint without a stamp (written before
    it) resumes."""
    recorded = state.get("precision") if isinstance(state, dict) else None
    if recorded is None or recorded == _mode:
        return
    raise PrecisionMismatch(f"{path}: this checkpoint was trained in {recorded} up to where it stopped, and this run "
                            f"trains in {_mode}; resume it with --precision {recorded}, or delete it to train that "
                            f"stage again from its start in {_mode}")


def add_argument(parser, default: str = "auto", why: str = "") -> None:
    """``--precision {fp32,bf16,auto}`` on ``parser``: not given, the command's ``default`` (``why``: the reason,
    for the help), fp32 for the smoke preset."""
    if default not in MODES:
        raise ValueError(f"unknown precision {default!r}; known: {', '.join(MODES)}")
    parser.add_argument("--precision", choices=MODES, default=None,
                        help=f"{HELP} (default: {default}{why}; fp32 for the smoke preset)")
    parser.set_defaults(precision_default=default)


__all__ = ["HELP", "MODES", "PrecisionMismatch", "add_argument", "autocast", "check_resume", "current", "default_for",
           "native_bf16", "resolve", "stamp", "tag", "untag", "use", "use_args"]
