"""The handcrafted baselines of the papers' tables, as config entries (no subclasses).

Table II of the segqc-hw paper (Zeng et al. 2021, arXiv:2109.06909): U-net(8)+ResNet18 and
U-net(16)+ResNet18 (echo, 256x256, QC on the same inputs). Table 2 of the msnas-hw paper (Zeng et
al., ICCAD 2020, arXiv:2008.07071): U-net 2D (D5, IF64), 2D (D3, IF16), 3D (D4, IF32), 3D (D3,
IF16) on 20x128x112 cine clips (2D nets run frame by frame).
"""

from __future__ import annotations

from dataclasses import dataclass

from search.baselines.resnet_qc import ResNetQcConfig
from search.baselines.unet import UNetConfig

ECHO_CLASSES = {0: "background", 1: "myocardium"}
CINE_CLASSES = {0: "background", 1: "RV", 2: "MYO", 3: "LV"}


@dataclass(frozen=True)
class BaselineSpec:
    """One handcrafted network (and its QC partner for echo).

    Attributes:
        name: Registry key; model ids derive from it.
        modality: ``"echo"`` or ``"cine"``.
        unet: The segmentation U-net (2D per frame, or 3D per clip).
        qc: The QC network (echo only), or None.
        paper_row: The row label of the paper's table it reproduces.
    """

    name: str
    modality: str
    unet: UNetConfig
    qc: ResNetQcConfig | None
    paper_row: str

    @property
    def seg_id(self) -> str:
        return f"baseline-{self.name}-seg" if self.qc is not None else f"baseline-{self.name}"

    @property
    def qc_id(self) -> str | None:
        return f"baseline-{self.name}-qc" if self.qc is not None else None

    @property
    def per_frame(self) -> bool:
        """A 2D network run on every frame of a cine clip (exported with ``clip_length`` 1)."""
        return self.modality == "cine" and self.unet.dims == 2

    @property
    def classes(self) -> dict[int, str]:
        return ECHO_CLASSES if self.modality == "echo" else CINE_CLASSES


def _echo(name: str, filters: int, row: str) -> BaselineSpec:
    return BaselineSpec(name, "echo", UNetConfig(dims=2, in_channels=3, n_classes=2, depth=5, initial_filters=filters),
                        ResNetQcConfig(image_channels=3, n_classes=2, width=16), row)


def _cine(name: str, dims: int, depth: int, filters: int, row: str, clip_length: int = 20) -> BaselineSpec:
    cfg = UNetConfig(dims=dims, in_channels=1, n_classes=4, depth=depth, initial_filters=filters,
                     clip_length=clip_length if dims == 3 else 1)
    return BaselineSpec(name, "cine", cfg, None, row)


BASELINES: dict[str, BaselineSpec] = {
    s.name: s
    for s in (
        _echo("unet8-resnet18", 8, "U-net(8)+Resnet18"),
        _echo("unet16-resnet18", 16, "U-net(16)+Resnet18"),
        _cine("unet2d-d5-if64", 2, 5, 64, "U-net 2D (D5, IF=64)"),
        _cine("unet2d-d3-if16", 2, 3, 16, "U-net 2D (D3, IF=16)"),
        _cine("unet3d-d4-if32", 3, 4, 32, "U-net 3D (D4, IF=32)"),
        _cine("unet3d-d3-if16", 3, 3, 16, "U-net 3D (D3, IF=16)"),
    )
}


def get_baseline(name: str) -> BaselineSpec:
    """The registry entry ``name``; a clear error listing the known names otherwise."""
    try:
        return BASELINES[name]
    except KeyError:
        raise KeyError(f"unknown baseline {name!r}; known: {', '.join(BASELINES)}") from None
