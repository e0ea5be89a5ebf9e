"""The one export function: PyTorch network -> checked, optimised ONNX + its model card.

``export_model`` does, in order:

1. eval mode; ``torch.onnx.export`` with named inputs and outputs. On torch 2.13 we use the
   torch.export-based exporter (``dynamo=True``, the default since 2.9, opset 20): the legacy
   TorchScript exporter still works but is deprecated and warns on every call; both produce the
   same operator graph and the same onnxruntime latency for our networks.
2. ``onnx.checker.check_model(full_check=True)`` on the exported graph.
3. onnxruntime offline graph optimisation at the *basic* level (constant folding, BN folding into
   conv, redundant-node removal: standard ONNX ops only, so the file stays portable; the
   hardware-specific levels are applied at load time by ``app.engine.runtime.create_session``),
   saved as one self-contained file (no external weights), checked again.
4. Numerical parity with PyTorch on real inputs (phantom frames or clips the caller passes):
   every output's max absolute difference must be <= ``atol`` (default 1e-4; float32 networks
   differ by ~1e-6 in practice), else ``ExportError``.
5. Metrics measured on the exported file itself (the caller's ``evaluate``: Dice, QC MAE, ...),
   latency (``search.latency.measure``), FLOPs and parameters (PyTorch's flop counter).
6. The exported module's state dict, written beside the file as ``<id>.pt``
   (``search.export.weights``: what ``search.build_from_card(card, weights=True)`` loads back).
7. The card, written beside the file and read back through ``app.cards`` (hash + input shape).
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from app.cards import ModelCard, sha256_of
from app.engine.runtime import create_session
from search.export.card_writer import CardContent, build_card, write_card
from search.export.flops import count_flops, count_params
from search.export.latency import card_latency
from search.export.weights import WEIGHTS_FORMAT, save_weights

log = logging.getLogger(__name__)

PARITY_ATOL = 1e-4
OPSET = 20

Feeds = Mapping[str, np.ndarray]
Evaluator = Callable[[Path], dict[str, Any]]


class ExportError(RuntimeError):
    """An export that failed a check; the message names the model and the problem."""

    def __init__(self, model_id: str, problem: str):
        self.model_id = model_id
        self.problem = problem
        super().__init__(f"export of {model_id}: {problem}")


def _to_onnx(module: nn.Module, example: Sequence[torch.Tensor], input_names: list[str], output_names: list[str],
             path: Path) -> None:
    """torch.onnx.export (torch.export-based), quiet, into ``path`` (weights may go to a .data file)."""
    # The exporter reports its stages on stdout, and torch's own pytree code warns about its own
    # deprecated internals (not ours to fix): keep both out of logs and test output.
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*LeafSpec.*", category=FutureWarning)
        torch.onnx.export(module, tuple(example), str(path), input_names=input_names, output_names=output_names,
                          dynamo=True, opset_version=OPSET, verbose=False, external_data=True)


def _optimise_basic(model_bytes: bytes, path: Path) -> None:
    """onnxruntime basic-level offline optimisation of ``model_bytes`` into ``path``."""
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    so.optimized_model_filepath = str(path)
    so.log_severity_level = 3
    ort.InferenceSession(model_bytes, sess_options=so, providers=["CPUExecutionProvider"])


def onnx_bytes(module: nn.Module, example: Sequence[torch.Tensor], input_names: list[str],
               output_names: list[str], model_id: str = "model") -> bytes:
    """Export, check and optimise ``module``; returns the self-contained ONNX model bytes."""
    module.eval()
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.onnx"
        with torch.no_grad():
            _to_onnx(module, example, input_names, output_names, raw)
        proto = onnx.load(str(raw))  # pulls in external weights
        try:
            onnx.checker.check_model(proto, full_check=True)
        except onnx.checker.ValidationError as exc:
            raise ExportError(model_id, f"onnx.checker rejected the exported graph: {exc}") from None
        optimised = Path(tmp) / "opt.onnx"
        _optimise_basic(proto.SerializeToString(), optimised)
        final = onnx.load(str(optimised))
        onnx.checker.check_model(final)
        return final.SerializeToString()


def check_parity(module: nn.Module, model: Path | bytes, feeds_list: Sequence[Feeds], output_names: list[str],
                 input_names: list[str], *, atol: float = PARITY_ATOL, model_id: str = "model") -> float:
    """Max absolute difference between PyTorch and onnxruntime over ``feeds_list``; raises beyond ``atol``."""
    session = create_session(model)
    worst = 0.0
    module.eval()
    for feeds in feeds_list:
        with torch.no_grad():
            ref = module(*[torch.from_numpy(np.ascontiguousarray(feeds[n])) for n in input_names])
        ref = ref if isinstance(ref, (tuple, list)) else (ref,)
        got = session.run(output_names, dict(feeds))
        for name, r, g in zip(output_names, ref, got):
            r = r.numpy()
            if r.shape != g.shape:
                raise ExportError(model_id, f"output {name!r} has shape {g.shape} in ONNX but {r.shape} in PyTorch")
            diff = float(np.max(np.abs(r - g))) if r.size else 0.0
            if not np.isfinite(diff) or diff > atol:
                raise ExportError(model_id, f"output {name!r} differs from PyTorch by {diff:.3g} > tolerance {atol:g}")
            worst = max(worst, diff)
    return worst


def _weights_info(path: Path) -> dict[str, Any]:
    """The card's record of the weights file beside the ONNX file."""
    return {"file": path.name, "format": WEIGHTS_FORMAT, "sha256": sha256_of(path)}


def export_model(module: nn.Module, content: CardContent, out_dir: Path | str, parity_feeds: Sequence[Feeds], *,
                 evaluate: Evaluator | None = None, atol: float = PARITY_ATOL, latency_repeats: int = 50) -> ModelCard:
    """Export ``module`` as ``<out_dir>/<id>.onnx`` with its verified card ``<id>.json``.

    Args:
        module: Network whose ``forward`` takes the card's inputs in order and returns its outputs
            in order (e.g. ``SegmentationWithUncertainty(unet)`` -> ``(probs, uncertainty)``).
        content: What the card says beyond measurements.
        out_dir: Destination folder (created).
        parity_feeds: Real preprocessed inputs (input name -> array of the card's shape); the first
            is also the latency input. At least one.
        evaluate: ``evaluate(onnx_path) -> metrics`` measured on the exported file (Dice per
            class, QC MAE, ...), merged into the card's ``metrics``.
        atol: Parity tolerance (max absolute difference of any output).
        latency_repeats: Timed runs for the latency figures.

    Returns:
        The verified ``ModelCard``.
    """
    if not parity_feeds:
        raise ExportError(content.model_id, "needs at least one real input for the parity check")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    input_names = [t.name for t in content.inputs]
    output_names = [t.name for t in content.outputs]
    for t in content.inputs:
        got = tuple(parity_feeds[0][t.name].shape)
        if got != tuple(t.shape):
            raise ExportError(content.model_id, f"parity input {t.name!r} has shape {got}, the card says {t.shape}")
    example = [torch.from_numpy(np.ascontiguousarray(parity_feeds[0][n])) for n in input_names]
    module = module.eval()
    data = onnx_bytes(module, example, input_names, output_names, content.model_id)
    onnx_path = out_dir / f"{content.model_id}.onnx"
    onnx_path.write_bytes(data)
    max_diff = check_parity(module, onnx_path, parity_feeds, output_names, input_names, atol=atol, model_id=content.model_id)
    log.info("%s: exported, parity max |diff| %.2e over %d inputs", content.model_id, max_diff, len(parity_feeds))
    metrics: dict[str, Any] = dict(evaluate(onnx_path)) if evaluate is not None else {}
    _, latency = card_latency(onnx_path, parity_feeds[0], repeats=latency_repeats)
    flops = count_flops(module, example)
    metrics.update(latency)
    metrics.update({"flops": flops, "macs": flops // 2, "params": count_params(module)})
    export_info = {
        "exporter": f"torch {torch.__version__} torch.onnx.export(dynamo=True), opset {OPSET}",
        "checked": "onnx.checker full_check; onnxruntime basic graph optimisation saved offline",
        "parity": {"max_abs_diff": max_diff, "tolerance": atol, "inputs": len(parity_feeds)},
        "weights": _weights_info(save_weights(module, out_dir / f"{content.model_id}.pt", content.model_id)),
    }
    card = build_card(content, onnx_path=onnx_path, metrics=metrics, export=export_info)
    return write_card(card, out_dir / f"{content.model_id}.json")
