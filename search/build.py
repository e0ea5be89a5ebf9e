"""Rebuild a model card's PyTorch network: ``build_from_card(card)``.

The card's typed ``architecture`` (``search.export.architecture``) names a builder kind, its
arguments and its genotype; ``BUILDERS`` maps each kind to the function that builds the bare network
(``builder(genotype=..., **args)``), and the ``interface`` wrapper gives it the exported outputs, so
the module returned takes the card's inputs and returns its outputs, in order, like the ONNX file.

Weights, with ``weights=True``:

* ``models/<id>.pt``, written beside the ONNX file by the export function
  (``search.export.weights``): the exported module's own state dict;
* otherwise recovered from the ONNX file's initializers (``recover_state_dict``). The exporter folded
  every BatchNorm into the convolution before it (onnxruntime's basic optimisation), so the
  original BatchNorm parameters are gone; what can be rebuilt exactly is an *equivalent* state dict:
  the folded convolution weights, and each folded BatchNorm set to identity statistics carrying the
  folded bias. In eval mode it computes what the ONNX file computes (checked to 1e-4 by the tests);
  it is not the training checkpoint, and fine-tuning from it starts with reset BatchNorm statistics.

Builders are imported lazily, so importing this module (and ``search``) stays cheap.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

from search.export.architecture import Architecture, ArchitectureError

if TYPE_CHECKING:
    from torch import nn

BN_TYPES = ("BatchNorm1d", "BatchNorm2d", "BatchNorm3d")


class WeightRecoveryError(RuntimeError):
    """The ONNX initializers do not map one-to-one onto the rebuilt network's parameters."""


def _unet(*, genotype: Any = None, **args: Any) -> "nn.Module":
    from search.baselines.unet import UNet, UNetConfig

    return UNet(UNetConfig(**args))


def _resnet_qc(*, genotype: Any = None, **args: Any) -> "nn.Module":
    from search.baselines.resnet_qc import ResNetQc, ResNetQcConfig

    return ResNetQc(ResNetQcConfig(**args))


def _unet_skeleton(*, genotype: Any = None, in_channels: int, n_classes: int, spec: str) -> "nn.Module":
    from search.core.derived.unet_skeleton import SkeletonUNet, UNetSkeleton

    return SkeletonUNet(UNetSkeleton.parse(spec), in_channels, n_classes)


def _nasunet(*, genotype: Mapping[str, Any], **args: Any) -> "nn.Module":
    from search.core.derived.nasunet import DerivedNasUnet
    from search.core.genotypes import NasUnetGenotype
    from search.core.supernets.nasunet import NasUnetConfig
    from search.methods.segqc_hw.networks import SegLogits

    return SegLogits(DerivedNasUnet(NasUnetGenotype.from_dict(dict(genotype)), NasUnetConfig(**args)))


def _qcnet(*, genotype: Mapping[str, Any], **args: Any) -> "nn.Module":
    from search.core.derived.qcnet import DerivedQcNet
    from search.core.genotypes import QcGenotype
    from search.core.supernets.qcnet import QcNetConfig
    from search.methods.segqc_hw.networks import QcOnParts

    return QcOnParts(DerivedQcNet(QcGenotype.from_dict(dict(genotype)), QcNetConfig(**args)))


def _multiscale(*, genotype: Mapping[str, Any], **args: Any) -> "nn.Module":
    from search.core.derived.multiscale import FusedMultiscaleNet
    from search.core.genotypes import MultiscaleGenotype
    from search.core.supernets.multiscale import MultiscaleConfig

    return FusedMultiscaleNet(MultiscaleGenotype.from_dict(dict(genotype)), MultiscaleConfig(**args))


def _cine_qc(*, genotype: Any = None, **args: Any) -> "nn.Module":
    from search.methods.cine_qc.network import CineQcNet

    return CineQcNet(**args)


BUILDERS: dict[str, Callable[..., Any]] = {
    "unet": _unet,
    "resnet_qc": _resnet_qc,
    "nasunet": _nasunet,
    "qcnet": _qcnet,
    "multiscale": _multiscale,
    "cine_qc": _cine_qc,
    "unet_skeleton": _unet_skeleton,
}
"""Architecture kind -> ``builder(genotype=..., **args)`` returning the bare network."""


def _wrap(net: "nn.Module", interface: str) -> "nn.Module":
    """The exported interface around a bare network."""
    if interface == "probs_uncertainty":
        from search.train.seg_outputs import SegmentationWithUncertainty

        return SegmentationWithUncertainty(net)
    if interface == "probs":
        from search.train.clips import ClipProbabilities

        return ClipProbabilities(net)
    if interface == "streaming_probs":
        from search.export.streaming import StreamingNetwork
        from search.train.clips import ClipProbabilities

        return StreamingNetwork(ClipProbabilities(net))
    return net


def build_architecture(arch: Architecture, *, seed: int = 0) -> "nn.Module":
    """A freshly initialised (seeded) network of ``arch``, wrapped in its interface, in eval mode."""
    import torch

    if arch.kind not in BUILDERS:
        raise ArchitectureError(f"no builder for architecture kind {arch.kind!r}; known: {', '.join(BUILDERS)}")
    args = asdict(arch.args)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = BUILDERS[arch.kind](genotype=arch.genotype, **args)
    return _wrap(net, arch.interface).eval()


def _read_card(card: Any) -> tuple[dict[str, Any], Path | None]:
    """``(raw card dict, card path or None)`` from a ``ModelCard``, a dict or a path."""
    if isinstance(card, (str, Path)):
        path = Path(card)
        try:
            return json.loads(path.read_text()), path
        except (OSError, json.JSONDecodeError) as exc:
            raise ArchitectureError(f"{path}: not a readable model card ({exc})") from None
    raw = getattr(card, "raw", None)
    if isinstance(raw, Mapping):
        return dict(raw), Path(card.card_path)
    if isinstance(card, Mapping):
        return dict(card), None
    raise TypeError(f"expected a ModelCard, a card dict or a card path, got {type(card).__name__}")


def card_architecture(card: Any) -> Architecture:
    """The typed architecture of a card (``ArchitectureError`` names the card and the problem)."""
    raw, path = _read_card(card)
    where = str(path) if path else str(raw.get("id", "card"))
    if raw.get("architecture") is None:
        raise ArchitectureError(f"{where}: the card has no architecture")
    try:
        return Architecture.from_json(raw["architecture"])
    except ArchitectureError as exc:
        raise ArchitectureError(f"{where}: architecture: {exc}") from None


def weights_path(raw: Mapping[str, Any], card_path: Path) -> Path:
    """The weights file of a card: the one its ``export.weights`` names, else ``<id>.pt`` beside it."""
    named = ((raw.get("export") or {}).get("weights") or {}).get("file")
    return Path(card_path).with_name(named or f"{raw['id']}.pt")


def build_from_card(card: Any, *, weights: bool = False, seed: int = 0) -> "nn.Module":
    """The PyTorch network a model card describes.

    Args:
        card: A ``app.cards.ModelCard``, a card dict, or the path of a card JSON file.
        weights: Load the card's weights: ``<id>.pt`` beside the card if present, else recovered from
            the ONNX file's initializers (see the module docstring); needs a card with a path. An
            INT8 card's network is its float model's (``quantization.float_model``), with its weights.
        seed: Seeds the initialisation of a network built without weights.

    Returns:
        A ``torch.nn.Module`` in eval mode whose ``forward`` takes the card's inputs in order and
        returns its outputs in order (a tuple when there are several).
    """
    module = build_architecture(card_architecture(card), seed=seed)
    if not weights:
        return module
    raw, path = _read_card(card)
    if path is None:
        raise ValueError(f"{raw.get('id', 'card')}: weights=True needs a card read from a file")
    float_model = (raw.get("quantization") or {}).get("float_model")
    if float_model:
        raw, path = _read_card(path.with_name(f"{float_model}.json"))
    pt = weights_path(raw, path)
    if pt.is_file():
        from search.export.weights import load_weights

        module.load_state_dict(load_weights(pt))
    else:
        module.load_state_dict(recover_state_dict(module, path.with_suffix(".onnx")))
    return module.eval()


def _next_module_name(name: str) -> str | None:
    """``a.b.3`` -> ``a.b.4`` (the module after it in its ``nn.Sequential``), else None."""
    head, _, last = name.rpartition(".")
    return f"{head}.{int(last) + 1}" if last.isdigit() else None


def recover_state_dict(module: "nn.Module", onnx_path: Path) -> dict[str, Any]:
    """An eval-equivalent state dict for ``module`` from the initializers of a BN-folded ONNX file.

    Every parameter and buffer must be accounted for: found under its own name with its shape, or a
    BatchNorm folded into the convolution before it (its conv's bias input is ``<weight>_bias``),
    which becomes identity statistics carrying the folded bias. Anything else raises
    ``WeightRecoveryError`` (nothing is guessed).
    """
    import onnx
    import torch
    from onnx import numpy_helper

    graph = onnx.load(str(onnx_path)).graph
    init = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    sd = module.state_dict()
    modules = dict(module.named_modules())
    out: dict[str, torch.Tensor] = {}
    for key, value in sd.items():
        if key in init and tuple(init[key].shape) == tuple(value.shape):
            out[key] = torch.from_numpy(init[key].copy()).to(value.dtype)
    for node in graph.node:
        if node.op_type not in ("Conv", "ConvTranspose") or len(node.input) < 3:
            continue
        weight, bias = node.input[1], node.input[2]
        if bias in sd or bias != f"{weight}_bias" or bias not in init:
            continue
        conv = weight[: -len(".weight")]
        bn = _next_module_name(conv)
        if bn is None or type(modules.get(bn)).__name__ not in BN_TYPES:
            raise WeightRecoveryError(f"{onnx_path.name}: folded bias {bias!r} has no BatchNorm after {conv!r}")
        eps = float(modules[bn].eps)
        folded = torch.from_numpy(init[bias].copy())
        out[f"{bn}.weight"] = torch.ones_like(folded)
        out[f"{bn}.bias"] = folded
        out[f"{bn}.running_mean"] = torch.zeros_like(folded)
        out[f"{bn}.running_var"] = torch.full_like(folded, 1.0 - eps)
        if f"{conv}.bias" in sd:
            out[f"{conv}.bias"] = torch.zeros_like(sd[f"{conv}.bias"])
    for key, value in sd.items():
        if key.endswith("num_batches_tracked"):
            out[key] = torch.zeros_like(value)
    missing = [k for k in sd if k not in out]
    if missing:
        raise WeightRecoveryError(f"{onnx_path.name}: {len(missing)} tensor(s) of the rebuilt network are not in "
                                  f"the ONNX initializers, e.g. {', '.join(missing[:3])}")
    return out
