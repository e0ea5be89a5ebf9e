"""Serialise a module to in-memory ONNX for timing (not for shipping).

The shipped-model export (``search.export``) checks parity and writes a model card; the profiler and
the table check only need the graph onnxruntime will run, thousands of times, fast. They use
PyTorch's TorchScript-based exporter (about 0.1 s per op here, against several seconds for the
dynamo exporter). onnxruntime folds BatchNorm into Conv and fuses Conv+ReLU at
``ORT_ENABLE_ALL`` either way, so both exporters give the same kernels for these ops.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from typing import Sequence

import torch
from torch import nn

log = logging.getLogger(__name__)

OPSET = 17


def export_onnx_bytes(module: nn.Module, example_inputs: torch.Tensor | Sequence[torch.Tensor], *,
                      opset: int = OPSET) -> bytes:
    """Export ``module`` in eval mode to ONNX bytes with static shapes.

    Args:
        module: Any module; exported with its current weights, in eval mode (BatchNorm uses
            running statistics, as deployed). Its training flag is restored afterwards.
        example_inputs: One tensor (e.g. ``(1, C, H, W)`` or ``(1, C, T, H, W)``) or a sequence of
            tensors; the exported graph takes inputs named ``input0``, ``input1``, ...
        opset: ONNX opset.

    Returns:
        The serialised ``onnx.ModelProto``.
    """
    inputs = (example_inputs,) if isinstance(example_inputs, torch.Tensor) else tuple(example_inputs)
    was_training = module.training
    module.eval()
    buf = io.BytesIO()
    try:
        with torch.no_grad(), warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            # The TorchScript exporter is deprecated in favour of dynamo (slow here); it still works.
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", FutureWarning)
            warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
            torch.onnx.export(
                module, inputs, buf,
                input_names=[f"input{i}" for i in range(len(inputs))],
                opset_version=opset,
                do_constant_folding=True,
                dynamo=False,
            )
    finally:
        module.train(was_training)
    return buf.getvalue()


def count_onnx_nodes(model: bytes) -> int:
    """Number of nodes in the exported graph (before onnxruntime's own fusions)."""
    import onnx

    return len(onnx.load_from_string(model).graph.node)
