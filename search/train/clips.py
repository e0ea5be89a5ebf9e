"""Phantom cine patients, the split by patient, the clip datasets, and the clip-probability interface.

Shared by the cine methods (msnas-hw, rtdnas). Patients come from the cine phantom
(``app.data.phantom.cine``), deterministic per (seed, index), cached on disk inside the run folder.
The split is by patient, never by frame or clip: test patients are held out of everything until the
final evaluation; the training patients are split 1:1 into the weight set and the architecture set
of the searches (the msnas-hw paper, Sec. 4.2) and are all used for retraining.

The deployed cine interface is ``clip (1, 1, T, H, W) -> probs (1, K, T, H, W)``:
:class:`ClipProbabilities` wraps a logits network into it, and :func:`onnx_clip_predictor` runs an
exported one for ``search.train.evaluate.evaluate_segmentation``.

With ``--data KIND:DIR`` (``DataConfig.source``) the patients come from a dataset folder through
``search.data`` instead: cine cases with their labels renumbered to ACDC's (1 RV, 2 MYO, 3 LV),
resized to ``render_shape`` as they are read (memory stays that of the phantom run), split by
:meth:`PatientSplit.for_cases` with the dataset's official test set as test where it has one.
"""

from __future__ import annotations

import logging
import pickle
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import cv2
import numpy as np
import torch
from torch import nn

from app.data.case import Case, DataError
from search.data.spec import PHANTOM
from search.train.augment import AffineAugmentation
from search.train.cine_config import DataConfig
from search.train.datasets import CineClipDataset, resize_labels

log = logging.getLogger(__name__)

TRAIN_AUGMENTATION = AffineAugmentation(max_shift=0.06, max_rotation_deg=10.0, scale_range=(0.92, 1.08))


def render_case(cfg: DataConfig, index: int) -> Case:
    """One phantom cine patient ``(T, Z, H, W)`` with ACDC labels on every frame."""
    from app.data.phantom.cine import render_cine_case

    return render_cine_case(cfg.seed, index, n_frames=cfg.render_frames, n_slices=cfg.render_slices,
                            shape=tuple(cfg.render_shape))


def fit_case(case: Case, shape: tuple[int, int]) -> Case:
    """``case`` (cine ``(T, Z, H0, W0)``) resized to ``shape``: images bilinear, labels nearest."""
    h, w = int(shape[0]), int(shape[1])
    if case.frames.shape[-2:] == (h, w):
        return case
    t, z = case.frames.shape[:2]
    planes = case.frames.reshape(-1, *case.frames.shape[-2:]).astype(np.float32)
    frames = np.stack([cv2.resize(p, (w, h), interpolation=cv2.INTER_LINEAR) for p in planes]).reshape(t, z, h, w)
    labels = None if case.labels is None else resize_labels(case.labels, h, w)
    sy, sx = case.frames.shape[-2] / h, case.frames.shape[-1] / w
    return replace(case, frames=frames, labels=labels,
                   spacing_mm=(case.spacing_mm[0] * sy, case.spacing_mm[1] * sx)).validate()


def load_dataset_cases(cfg: DataConfig) -> list[Case]:
    """The labelled cine patients of ``cfg.source``'s folder, ACDC labels, resized to ``render_shape``.

    Raises:
        DataError: the dataset gives no cine MR with RV, MYO and LV labels.
    """
    from search.data import CINE_ACDC, check_need, load_for, open_dataset, parse_data_spec, refs_for

    index = open_dataset(parse_data_spec(cfg.source))
    check_need(index, CINE_ACDC, "the cine methods (msnas-hw, rtdnas)")
    shape = tuple(cfg.render_shape)
    return [load_for(ref, CINE_ACDC, "the cine methods", lambda c: fit_case(c, shape))
            for ref in refs_for(index, CINE_ACDC)]


def load_cases(cfg: DataConfig, cache: Path | None = None) -> list[Case]:
    """Render (or read from ``cache``) the run's phantom patients, in index order; with a dataset
    (``cfg.source``), read its cases instead (``load_dataset_cases``, not cached)."""
    if getattr(cfg, "source", PHANTOM) != PHANTOM:
        return load_dataset_cases(cfg)
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

    def pick_patients(self) -> tuple[tuple[str, ...], tuple[str, ...], str]:
        """``(trained on, scored on, what the scored ones are)`` for a pick's short trainings: every training patient
        and the validation ones when the split has them, else the weight and the architecture sets; never the
        test patients (the rtdnas and msnas-hw picks)."""
        if self.val:
            return self.train, self.val, "validation"
        return self.weight, self.arch, "architecture"

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

    @classmethod
    def for_cases(cls, cases: Sequence[Case], cfg: DataConfig) -> "PatientSplit":
        """The split of the run's cases: :meth:`make` for the phantom; for a dataset, by patient with
        its official test set as test (else ``n_test / n_patients`` of them) and ``n_val`` in proportion."""
        if getattr(cfg, "source", PHANTOM) == PHANTOM:
            return cls.make([c.case_id for c in cases], cfg)
        from search.data import cine_parts, members_of_cases

        parts = cine_parts(members_of_cases(cases), test_fraction=cfg.n_test / cfg.n_patients,
                           val_fraction=cfg.n_val / max(1, cfg.n_patients - cfg.n_test), seed=cfg.seed,
                           where=cfg.source.partition(":")[2] or cfg.source)
        return cls(*(tuple(parts[k]) for k in ("test", "val", "weight", "arch")))

    def to_dict(self) -> dict[str, Any]:
        return {"test": list(self.test), "val": list(self.val), "weight": list(self.weight), "arch": list(self.arch)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "PatientSplit":
        return cls(*(tuple(d[k]) for k in ("test", "val", "weight", "arch")))


def card_data(cfg: DataConfig, split: PatientSplit, preset: str, cases: Sequence[Case] = ()) -> dict[str, Any]:
    """The cine cards' ``data`` field: the phantom's description (patient ids are phantom indices), or
    for a dataset its name, split, case-list hashes and counts (no case id).

    Args:
        cfg: The run's data config.
        split: The patient split.
        preset: Preset name.
        cases: The run's cases (tells whether the test part is the official test set).
    """
    if getattr(cfg, "source", PHANTOM) == PHANTOM:
        return {"source": "phantom-cine (app.data.phantom)", "seed": cfg.seed,
                "split": {"train": list(split.train), "test": list(split.test)}, "preset": preset}
    from search.data import describe_split, members_of_cases, parse_data_spec

    parts = {"train": list(split.train), "val": list(split.val), "test": list(split.test)}
    words = describe_split(members_of_cases(cases), split.test, "cine test / validation / weight + arch", cfg.seed)
    return parse_data_spec(cfg.source).card_info(parts, split=words, seed=cfg.seed, preset=preset,
                                                 labels="ACDC 1 RV, 2 MYO, 3 LV")


def clip_dataset(cases: Sequence[Case], cfg: DataConfig, *, train: bool, seed: int,
                 clip: tuple[int, int, int] | None = None, per_frame_norm: bool = False) -> CineClipDataset:
    """Clips of ``cfg.clip_length`` frames at ``cfg.height x cfg.width`` (or ``clip = (T, H, W)``).

    Training: clips start every half clip (overlapping) and get a random affine (the same for all
    frames of a clip). Evaluation: non-overlapping clips covering every frame, no augmentation.
    ``per_frame_norm``: z-score each frame on its own (streaming models see one frame at a time).
    """
    t, h, w = clip or (cfg.clip_length, cfg.height, cfg.width)
    stride = max(1, t // 2) if train else t
    return CineClipDataset(cases, clip_length=t, size=(h, w), stride=stride,
                           augment=TRAIN_AUGMENTATION if train else None, seed=seed, per_frame_norm=per_frame_norm)


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
