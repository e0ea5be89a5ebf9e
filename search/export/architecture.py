"""The typed ``architecture`` of a model card: what the network is, enough to rebuild it.

A card's ``architecture`` is ``{"kind", "args", "genotype", "interface", "about"}``:

* ``kind`` names the builder (``search.build.BUILDERS``): ``unet`` (2D or 3D U-net baselines),
  ``resnet_qc`` (the ResNet18-style QC baseline), ``nasunet`` and ``qcnet`` (the segqc-hw pair, each
  with its genotype), ``multiscale`` (the fused layer x scale nets of msnas-hw and rtdnas, with their
  genotype), ``cine_qc`` (the cine QC network) and ``unet_skeleton`` (the segqc-hw skeleton space's seg net,
  its architecture in the ``spec`` argument).
* ``args`` are the builder's arguments, one frozen dataclass per kind below (every field explicit in
  the card, so a card does not depend on a default that may change), except the flags a kind lists in
  ``OPTIONAL_FLAGS``, written only when not at their default (``multiscale``'s ``causal``, ``nasunet``'s
  ``stem_convs``: cards from before the option stay canonical, and a card without it is the network it
  always was).
* ``genotype`` is the searched architecture as plain JSON (the card's top-level ``genotype``), or
  null for handcrafted networks; kinds that need one say so (``GENOTYPE``).
* ``interface`` is the wrapper that gives the exported graph its outputs: ``probs_uncertainty``
  (softmax + normalised entropy, ``search.train.seg_outputs.SegmentationWithUncertainty``),
  ``probs`` (softmax only, the cine clip models), ``streaming_probs`` (a causal clip model run one
  frame at a time: ``(frame, state_0, ...) -> (probs, state_out_0, ...)``,
  ``search.export.streaming.StreamingNetwork`` around ``probs``) or ``none`` (the network's own
  outputs: QC).
* ``about`` keeps descriptive facts that do not change the network (the paper row, how the paths
  were selected, ...).

Parsing is strict: an unknown kind, an unknown or missing argument, a wrong type or a genotype of the
wrong kind is one ``ArchitectureError`` naming the card field and the problem. ``from_legacy``
converts the untyped dicts the method exporters pass (``{"unet": {...}}``, the msnas-hw row dict, ...)
so every export writes the typed form. This module imports no torch at import time (validating a
genotype does, through ``search.core.genotypes``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping, Sequence

INTERFACES = ("probs_uncertainty", "probs", "streaming_probs", "none")


class ArchitectureError(ValueError):
    """A card's ``architecture`` that is missing, malformed or names an unknown builder."""


@dataclass(frozen=True)
class UNetArgs:
    """``search.baselines.unet.UNetConfig``: a U-net in 2D (per frame) or 3D (per clip)."""

    KIND: ClassVar[str] = "unet"
    GENOTYPE: ClassVar[str | None] = None
    dims: int
    in_channels: int
    n_classes: int
    depth: int
    initial_filters: int
    clip_length: int = 1

    def check(self) -> None:
        _require(self.dims in (2, 3), f"dims must be 2 or 3, got {self.dims}")


@dataclass(frozen=True)
class ResNetQcArgs:
    """``search.baselines.resnet_qc.ResNetQcConfig``: the ResNet18-style QC network."""

    KIND: ClassVar[str] = "resnet_qc"
    GENOTYPE: ClassVar[str | None] = None
    image_channels: int
    n_classes: int
    width: int
    blocks: tuple[int, ...] = (2, 2, 2, 2)

    def check(self) -> None:
        _require(len(self.blocks) > 0, "blocks must list at least one stage")


@dataclass(frozen=True)
class NasUnetArgs:
    """``search.core.supernets.nasunet.NasUnetConfig`` of the derived segqc-hw segmentation net."""

    KIND: ClassVar[str] = "nasunet"
    GENOTYPE: ClassVar[str | None] = "nasunet"
    OPTIONAL_FLAGS: ClassVar[tuple[str, ...]] = ("stem_convs",)
    in_channels: int
    num_classes: int
    init_filters: int
    depth: int
    n_nodes: int
    dims: int = 2
    stem_convs: int = 1

    def check(self) -> None:
        _require(self.dims in (2, 3), f"dims must be 2 or 3, got {self.dims}")


@dataclass(frozen=True)
class QcNetArgs:
    """``search.core.supernets.qcnet.QcNetConfig`` of the derived segqc-hw QC net."""

    KIND: ClassVar[str] = "qcnet"
    GENOTYPE: ClassVar[str | None] = "qc"
    image_channels: int
    num_classes: int
    init_filters: int
    n_stages: int
    n_nodes: int
    dims: int = 2

    def check(self) -> None:
        _require(self.dims in (2, 3), f"dims must be 2 or 3, got {self.dims}")


@dataclass(frozen=True)
class MultiscaleArgs:
    """``search.core.supernets.multiscale.MultiscaleConfig`` of a fused msnas-hw / rtdnas net."""

    KIND: ClassVar[str] = "multiscale"
    GENOTYPE: ClassVar[str | None] = "multiscale"
    OPTIONAL_FLAGS: ClassVar[tuple[str, ...]] = ("causal",)
    in_channels: int
    num_classes: int
    base_channels: int
    n_layers: int
    n_scales: int
    n_nodes: int
    dims: int = 3
    causal: bool = False  # causal time: streams one frame at a time (search.export.streaming)

    def check(self) -> None:
        _require(self.dims in (2, 3), f"dims must be 2 or 3, got {self.dims}")


@dataclass(frozen=True)
class CineQcArgs:
    """``search.methods.cine_qc.network.CineQcNet``: the cine QC network."""

    KIND: ClassVar[str] = "cine_qc"
    GENOTYPE: ClassVar[str | None] = None
    n_classes: int
    width: int

    def check(self) -> None:
        return None


@dataclass(frozen=True)
class UNetSkeletonArgs:
    """``search.core.derived.unet_skeleton.SkeletonUNet``: a U-net of per-level width, block and input stride,
    written as its spec (``/2:16c2-32c2-64c1-128s2``); the segqc-hw skeleton space's searched seg net."""

    KIND: ClassVar[str] = "unet_skeleton"
    GENOTYPE: ClassVar[str | None] = None
    in_channels: int
    n_classes: int
    spec: str

    def check(self) -> None:
        from search.core.derived.unet_skeleton import UNetSkeleton

        try:
            UNetSkeleton.parse(self.spec)
        except ValueError as exc:
            raise ArchitectureError(str(exc)) from None


ArchArgs = UNetArgs | ResNetQcArgs | NasUnetArgs | QcNetArgs | MultiscaleArgs | CineQcArgs | UNetSkeletonArgs
ARGS_TYPES: dict[str, type] = {c.KIND: c for c in (UNetArgs, ResNetQcArgs, NasUnetArgs, QcNetArgs, MultiscaleArgs,
                                                  CineQcArgs, UNetSkeletonArgs)}


def _require(ok: bool, problem: str) -> None:
    if not ok:
        raise ArchitectureError(problem)


def _typed_value(name: str, annotation: str, value: Any) -> Any:
    """``value`` checked against a field annotation (``int``, ``bool``, ``str`` or ``tuple[int, ...]``)."""
    if annotation == "str":
        _require(isinstance(value, str) and value.strip() != "", f"argument {name!r} must be a non-empty string, "
                 f"got {value!r}")
        return value
    if annotation == "bool":
        _require(isinstance(value, bool), f"argument {name!r} must be true or false, got {value!r}")
        return value
    if annotation == "int":
        _require(isinstance(value, int) and not isinstance(value, bool) and value > 0,
                 f"argument {name!r} must be a positive integer, got {value!r}")
        return value
    _require(isinstance(value, (list, tuple)) and all(isinstance(v, int) and v > 0 for v in value),
             f"argument {name!r} must be a list of positive integers, got {value!r}")
    return tuple(value)


def parse_args(kind: str, args: Mapping[str, Any]) -> ArchArgs:
    """The typed arguments of ``kind`` from plain JSON; strict about names and types."""
    if kind not in ARGS_TYPES:
        raise ArchitectureError(f"unknown architecture kind {kind!r}; known: {', '.join(sorted(ARGS_TYPES))}")
    cls = ARGS_TYPES[kind]
    _require(isinstance(args, Mapping), f"{kind}: args must be an object, got {type(args).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(args) - set(fields))
    _require(not unknown, f"{kind}: unknown argument(s) {', '.join(unknown)}; known: {', '.join(fields)}")
    missing = [n for n, f in fields.items() if n not in args and f.default is dataclasses.MISSING]
    _require(not missing, f"{kind}: missing argument(s) {', '.join(missing)}")
    typed = cls(**{n: _typed_value(n, str(fields[n].type), v) for n, v in args.items()})
    typed.check()
    return typed


def _check_genotype(kind: str, genotype: Any) -> None:
    """The genotype a kind needs, parsed by its ``search.core.genotypes`` class (or absent)."""
    wanted = ARGS_TYPES[kind].GENOTYPE
    if wanted is None:
        _require(genotype is None, f"{kind}: a handcrafted network takes no genotype")
        return
    _require(isinstance(genotype, Mapping), f"{kind}: needs its {wanted!r} genotype (an object), got {genotype!r}")
    from search.core.genotypes import GENOTYPE_KINDS, GenotypeError

    tag = genotype.get("kind", wanted)
    _require(tag == wanted, f"{kind}: needs a {wanted!r} genotype, got kind {tag!r}")
    try:
        GENOTYPE_KINDS[wanted].from_dict(dict(genotype))
    except (GenotypeError, KeyError, TypeError, ValueError) as exc:
        raise ArchitectureError(f"{kind}: bad genotype ({exc})") from None


@dataclass(frozen=True)
class Architecture:
    """A card's typed ``architecture`` (see the module docstring).

    Attributes:
        args: The builder's arguments; ``args.KIND`` is the kind.
        genotype: Plain-JSON genotype, or None for handcrafted networks.
        interface: One of ``INTERFACES``.
        about: Descriptive facts that do not change the network.
    """

    args: ArchArgs
    genotype: dict[str, Any] | None = None
    interface: str = "none"
    about: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _require(self.interface in INTERFACES,
                 f"unknown interface {self.interface!r}; known: {', '.join(INTERFACES)}")
        _check_genotype(self.kind, self.genotype)

    @property
    def kind(self) -> str:
        return self.args.KIND

    def to_json(self) -> dict[str, Any]:
        """The card's ``architecture`` value (plain JSON, fixed key order)."""
        flags = getattr(self.args, "OPTIONAL_FLAGS", ())
        defaults = {f.name: f.default for f in dataclasses.fields(self.args)}
        args = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self.args).items()
                if not (k in flags and v == defaults[k])}
        return {"kind": self.kind, "args": args, "genotype": self.genotype, "interface": self.interface,
                "about": dict(self.about)}

    @classmethod
    def from_json(cls, data: Any) -> "Architecture":
        """Parse a card's ``architecture`` value; ``ArchitectureError`` says what is wrong."""
        _require(isinstance(data, Mapping), f"must be an object with kind and args, got {type(data).__name__}")
        _require("kind" in data and "args" in data,
                 f"needs 'kind' and 'args' (got keys {', '.join(sorted(data)) or 'none'}): an untyped "
                 "architecture from before the typed schema")
        unknown = sorted(set(data) - {"kind", "args", "genotype", "interface", "about"})
        _require(not unknown, f"unknown key(s) {', '.join(unknown)}")
        about = data.get("about") or {}
        _require(isinstance(about, Mapping), "about must be an object")
        return cls(parse_args(str(data["kind"]), data["args"]), data.get("genotype"),
                   str(data.get("interface", "none")), dict(about))


def interface_for(output_names: Sequence[str]) -> str:
    """The interface a network exported with these outputs has (``probs`` + ``uncertainty``, ...)."""
    names = list(output_names)
    if names == ["probs", "uncertainty"]:
        return "probs_uncertainty"
    if names == ["probs"]:
        return "probs"
    if len(names) > 1 and names[0] == "probs" and all(n.startswith("state_out_") for n in names[1:]):
        return "streaming_probs"
    return "none"


def from_legacy(old: Mapping[str, Any], *, genotype: Mapping[str, Any] | None, input_shape: Sequence[int],
                n_classes: int, output_names: Sequence[str]) -> Architecture:
    """The typed form of an untyped ``architecture`` dict (what the exporters pass before they build one).

    Args:
        old: ``{"unet": {...}}``, ``{"resnet_qc": {...}}``, ``{"nasunet": {...}}``, ``{"qcnet": {...}}``,
            ``{"cine_qc": {...}}``, or the msnas-hw / rtdnas row dict (``channels_scale0``, ``layers``,
            ``scales``, ...).
        genotype: The card's genotype (plain JSON) or None.
        input_shape: The first input's shape (channels and dims come from it).
        n_classes: Segmentation classes (the card's ``classes``).
        output_names: The exported outputs, in order (gives the interface).
    """
    interface = interface_for(output_names)
    genotype = dict(genotype) if genotype is not None else None
    channels, dims = int(input_shape[1]), len(input_shape) - 2
    if len(old) == 1:
        (key, args), = old.items()
        if key in ("unet", "resnet_qc", "cine_qc"):
            return Architecture(parse_args(key, args), None, interface)
        if key == "unet_skeleton":
            full = {"in_channels": channels, "n_classes": n_classes, **args}
            return Architecture(parse_args("unet_skeleton", full), None, interface)
        if key == "nasunet":
            full = {"in_channels": channels, "num_classes": n_classes, "dims": dims, **args}
            return Architecture(parse_args("nasunet", full), genotype, interface)
        if key == "qcnet":
            full = {"image_channels": channels, "num_classes": n_classes, "dims": dims, **args}
            return Architecture(parse_args("qcnet", full), genotype, interface)
    if "channels_scale0" in old and genotype is not None:
        cells = genotype.get("cells") or {}
        n_nodes = {int(c.get("n_nodes", 0)) for c in cells.values()} if isinstance(cells, Mapping) else set()
        _require(len(n_nodes) == 1, f"multiscale: cells disagree on n_nodes ({sorted(n_nodes)})")
        args = {"in_channels": channels, "num_classes": n_classes, "base_channels": old["channels_scale0"],
                "n_layers": old["layers"], "n_scales": old["scales"], "n_nodes": n_nodes.pop(), "dims": dims}
        if old.get("causal"):
            args["causal"] = True
        about = {k: v for k, v in old.items() if k not in ("channels_scale0", "layers", "scales", "causal")}
        return Architecture(parse_args("multiscale", args), genotype, interface, about)
    raise ArchitectureError(f"cannot tell which network {dict(old)!r} describes; write a typed architecture "
                            "(search.export.architecture.Architecture)")
