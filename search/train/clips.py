"""Phantom cine patients, the split by patient, the clip datasets, and the clip-probability interface.

Shared by the cine methods (msnas-hw, rtdnas). Patients come from the cine phantom
(``app.data.phantom.cine``), deterministic per (seed, index), cached on disk inside the run folder.
The split is by patient, never by frame or clip: test patients are held out of everything until the
final evaluation; the training patients are split 1:1 into the weight set and the architecture set
of the searches (the msnas-hw paper, Sec. 4.2) and are all used for retraining.

The deployed cine interface is ``clip (1, 1, T, H, W) -> probs (1, K, T, H, W)``:
:class:`ClipProbabilities` wraps a logits network into it, and :func:`onnx_clip_predictor` runs an
exported one for ``search.train.evaluate.evaluate_segmentation``.
"""

from __future__ import annotations

import logging
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from app.data.case import Case, DataError
from search.train.augment import AffineAugmentation
from search.train.cine_config import DataConfig
from search.train.datasets import CineClipDataset

log = logging.getLogger(__name__)

TRAIN_AUGMENTATION = AffineAugmentation(max_shift=0.06, max_rotation_deg=10.0, scale_range=(0.92, 1.08))


def render_case(cfg: DataConfig, index: int) -> Case:
    """One phantom cine patient ``(T, Z, H, W)`` with ACDC labels on every frame."""
    from app.data.phantom.cine import render_cine_case

    return render_cine_case(cfg.seed, index, n_frames=cfg.render_frames, n_slices=cfg.render_slices,
                            shape=tuple(cfg.render_shape))


def load_cases(cfg: DataConfig, cache: Path | None = None) -> list[Case]:
    """Render (or read from ``cache``) the run's phantom patients, in index order."""
    cases = []
    for index in range(cfg.n_patients):
        tag = f"{cfg.seed}_{cfg.render_frames}x{cfg.render_slices}x{cfg.render_shape[0]}x{cfg.render_shape[1]}"
        path = None if cache is None else Path(cache) / f"case_{tag}_{index:03d}.pkl"
        if path is not None and path.is_file():
            try:
                with open(path, "rb") as fh:
                    cases.append(pickle.load(fh))
                continue
            except (pickle.UnpicklingError, EOFError) as exc:
                raise DataError(path, f"cached phantom case is unreadable ({exc}); delete it to re-render") from None
        case = render_case(cfg, index).validate()
        if case.modality != "cine" or case.labels is None:
            raise DataError(case.source or case.case_id, "the cine phantom returned a case without cine labels")
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            with open(tmp, "wb") as fh:
                pickle.dump(case, fh, protocol=pickle.HIGHEST_PROTOCOL)
            tmp.replace(path)
        cases.append(case)
    return cases


@dataclass(frozen=True)
class PatientSplit:
    """Case ids of each set (disjoint).

    Attributes:
        test: Held out until the final evaluation.
        val: Held out of retraining (unused when empty).
        weight: Search: trains the supernet weights.
        arch: Search: trains the architecture parameters.
    """

    test: tuple[str, ...]
    val: tuple[str, ...]
    weight: tuple[str, ...]
    arch: tuple[str, ...]

    @property
    def train(self) -> tuple[str, ...]:
        """Retraining patients: the weight and architecture sets together."""
        return tuple(sorted(self.weight + self.arch))

    @classmethod
    def make(cls, case_ids: Sequence[str], cfg: DataConfig) -> "PatientSplit":
        """Seeded random split: ``n_test`` test, ``n_val`` val, the rest alternately weight / arch."""
        ids = sorted(case_ids)
        if len(set(ids)) != len(ids):
            raise ValueError("case ids must be unique to split by patient")
        order = np.random.default_rng(cfg.seed).permutation(len(ids))
        shuffled = [ids[i] for i in order]
        test = tuple(sorted(shuffled[: cfg.n_test]))
        val = tuple(sorted(shuffled[cfg.n_test: cfg.n_test + cfg.n_val]))
        rest = shuffled[cfg.n_test + cfg.n_val:]
        if len(rest) < 2:
            raise ValueError(f"only {len(rest)} training patients; the search needs a weight and an architecture set")
        return cls(test, val, tuple(sorted(rest[0::2])), tuple(sorted(rest[1::2])))

    def to_dict(self) -> dict[str, Any]:
        return {"test": list(self.test), "val": list(self.val), "weight": list(self.weight), "arch": list(self.arch)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "PatientSplit":
        return cls(*(tuple(d[k]) for k in ("test", "val", "weight", "arch")))


def clip_dataset(cases: Sequence[Case], cfg: DataConfig, *, train: bool, seed: int,
                 clip: tuple[int, int, int] | None = None) -> CineClipDataset:
    """Clips of ``cfg.clip_length`` frames at ``cfg.height x cfg.width`` (or ``clip = (T, H, W)``).

    Training: clips start every half clip (overlapping) and get a random affine (the same for all
    frames of a clip). Evaluation: non-overlapping clips covering every frame, no augmentation.
    """
    t, h, w = clip or (cfg.clip_length, cfg.height, cfg.width)
    stride = max(1, t // 2) if train else t
    return CineClipDataset(cases, clip_length=t, size=(h, w), stride=stride,
                           augment=TRAIN_AUGMENTATION if train else None, seed=seed)


class ClipProbabilities(nn.Module):
    """Deployed cine interface: ``clip (1, 1, T, H, W)`` -> ``probs (1, K, T, H, W)`` (softmax)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.net(clip), dim=1)


def onnx_clip_predictor(path: Path | str) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """A predictor over an exported :class:`ClipProbabilities` ONNX file (input ``clip``, output ``probs``).

    Returns ``(probs, zero uncertainty)`` as ``evaluate_segmentation`` expects; the session uses the
    app's settings (``app.engine.runtime.create_session``).
    """
    from app.engine.runtime import create_session

    session = create_session(Path(path))

    def predict(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        probs = session.run(["probs"], {"clip": x.astype(np.float32)})[0]
        return probs, np.zeros_like(probs[:, :1])

    return predict
