"""Presets of the cine QC training: patients, samples per patient, training schedule."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class CineQcConfig:
    """One cine QC run.

    Attributes:
        preset: ``smoke`` (seconds, for tests) or ``default`` (minutes on a 2-core CPU).
        seg_model: Id of the shipped cine segmentation model the QC scores.
        phantom_seed: Dataset seed of the QC patients; no split of any shipped cine model uses it.
        n_cases: Phantom patients rendered.
        fractions: Patient split (by patient, stratified by quality bin): QC training, validation
            (early stopping), test (the card's figures).
        slices: Short-axis slices used per patient (None: all).
        frame_stride: Every ``frame_stride``-th frame of the cycle becomes a sample.
        epochs: Training epochs (best validation MAE kept).
        batch: Mini-batch size.
        lr: Adam learning rate.
        weight_decay: Adam weight decay.
        width: Channels of the first QC convolution.
        seed: Seed of the split, the initialisation and the data order.
    """

    preset: str = "default"
    seg_model: str = "cine-rtdnas-ga-n7"
    phantom_seed: int = 3030
    n_cases: int = 80
    fractions: dict = field(default_factory=lambda: {"train": 0.5, "val": 0.125, "test": 0.375})
    slices: tuple[int, ...] | None = None
    frame_stride: int = 2
    epochs: int = 40
    batch: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4
    width: int = 16
    seed: int = 0

    def to_json(self) -> dict:
        return asdict(self)


PRESETS = {
    "default": CineQcConfig(),
    "smoke": CineQcConfig(preset="smoke", n_cases=6, fractions={"train": 0.5, "val": 0.17, "test": 0.33},
                          slices=(2, 5), frame_stride=5, epochs=2, batch=16),
}


def preset(name: str, **overrides) -> CineQcConfig:
    """The named preset with ``overrides`` applied (unknown preset: ValueError naming the known ones)."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; known: {', '.join(sorted(PRESETS))}")
    values = PRESETS[name].to_json()
    values.update({k: v for k, v in overrides.items() if v is not None})
    if values.get("slices") is not None:
        values["slices"] = tuple(values["slices"])
    return CineQcConfig(**values)
