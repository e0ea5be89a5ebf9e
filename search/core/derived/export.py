"""Export a derived network to ONNX and check it: eval mode, named I/O, onnx.checker, parity with torch.

Uses the TorchScript-based exporter (``torch.onnx.export(..., dynamo=False)``): on torch 2.13 it
exports these small conv nets in well under a second and needs no extra packages, while the dynamo
exporter takes several seconds per model (see notes/search-core.md for the measurement).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

log = logging.getLogger(__name__)


def export_onnx(
    model: nn.Module,
    input_shape: Sequence[int],
    path: Path | str,
    input_name: str = "image",
    output_names: Sequence[str] = ("logits",),
    opset: int = 17,
    check_parity: bool = True,
    atol: float = 1e-4,
    seed: int = 0,
) -> Path:
    """Write ``model`` as ONNX for a fixed batch-1 input and verify it.

    Args:
        model: A derived network (put in eval mode here).
        input_shape: Full input shape including the batch axis, e.g. ``(1, 3, 256, 256)``.
        path: Output ``.onnx`` file.
        input_name, output_names: Graph I/O names.
        opset: ONNX opset.
        check_parity: Run onnxruntime (CPU) on a seeded random input and compare with torch.
        atol: Parity tolerance (absolute, plus the same relative).
        seed: Seeds the parity input.

    Returns:
        ``path``.

    Raises:
        ValueError: onnxruntime's outputs differ from torch's.
    """
    import onnx

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    x = torch.randn(tuple(input_shape), generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        torch.onnx.export(
            model, (x,), str(path), input_names=[input_name], output_names=list(output_names),
            opset_version=opset, dynamo=False,
        )
    onnx.checker.check_model(onnx.load(str(path)))
    if check_parity:
        import onnxruntime as ort

        with torch.no_grad():
            ref = model(x)
        ref = [ref] if isinstance(ref, torch.Tensor) else list(ref)
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        got = sess.run(None, {input_name: x.numpy()})
        for name, r, g in zip(output_names, ref, got):
            if not np.allclose(r.numpy(), g, atol=atol, rtol=atol):
                err = float(np.abs(r.numpy() - g).max())
                raise ValueError(f"{path}: ONNX output {name!r} differs from torch by up to {err:.3g}")
    log.info("exported %s", path)
    return path
