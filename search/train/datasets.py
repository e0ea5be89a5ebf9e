"""torch Datasets over lists of ``app.data.case.Case``: echo frames and cine clips.

Images go through ``app.engine.preprocess`` (the function the scanner pipeline uses) with the same
input spec the exported card will carry, so training and deployment prepare inputs identically;
labels are resized to the same grid with nearest-neighbour interpolation. Augmentation (a random
affine) happens on the resized image before normalisation, so zscore statistics see the warped clip
as the network will. Frames without ground truth are marked ``IGNORE_INDEX`` in the labels.
"""

from __future__ import annotations

from typing import Any, Sequence

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from app.data.case import Case, DataError
from app.engine.preprocess import normalise, preprocess
from search.train.augment import AffineAugmentation, warp_planes

IGNORE_INDEX = 255
ECHO_NORMALISATION = {"kind": "scale", "scale": 1.0 / 255.0}
CINE_NORMALISATION = {"kind": "zscore"}


def input_spec(shape: Sequence[int], normalisation: dict[str, Any]) -> dict[str, Any]:
    """The ``input`` part of a card (what ``preprocess`` reads)."""
    return {"input": {"shape": [int(s) for s in shape], "normalisation": dict(normalisation)}}


def resize_labels(labels: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour resize of ``(H0, W0)`` or ``(T, H0, W0)`` uint8 label maps."""
    planes = labels.reshape(-1, *labels.shape[-2:])
    out = np.stack([cv2.resize(p, (width, height), interpolation=cv2.INTER_NEAREST) for p in planes])
    return out.reshape(*labels.shape[:-2], height, width)


class EchoFrameDataset(Dataset):
    """The labelled frames of echo cases, one sample per frame.

    Sample: ``(image (C, H, W) float32 normalised, labels (H, W) int64)``.

    Args:
        cases: Echo cases with labels.
        size: Model grid ``(H, W)``.
        channels: 3 (RGB) or 1 (grey).
        augment: Random affine, or None for evaluation.
        seed: Seeds the augmentation generator.
        frame_step: Use every ``frame_step``-th labelled frame of a case (neighbouring frames of a
            sequence are nearly identical; striding saves training time).
        crop: Random crop ``(h, w)`` of the model-grid frame (training only: a fully convolutional
            net trains on crops at a fraction of the cost and is deployed on the whole grid).
    """

    def __init__(self, cases: Sequence[Case], size: tuple[int, int] = (256, 256), channels: int = 3,
                 augment: AffineAugmentation | None = None, seed: int = 0, frame_step: int = 1,
                 crop: tuple[int, int] | None = None):
        self.cases = list(cases)
        self.crop = crop
        self.size = size
        self.spec = input_spec((1, channels, *size), ECHO_NORMALISATION)
        self.augment = augment
        self.rng = np.random.default_rng(seed)
        self.index: list[tuple[int, int]] = []
        for ci, case in enumerate(self.cases):
            if case.modality != "echo":
                raise DataError(case.source or case.case_id, f"EchoFrameDataset got a {case.modality} case")
            if case.labels is None:
                raise DataError(case.source or case.case_id, "echo case has no labels to train or evaluate on")
            frames = case.labelled_frames or tuple(range(case.n_frames))
            self.index.extend((ci, t) for t in frames[::frame_step])

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        ci, t = self.index[i]
        case = self.cases[ci]
        h, w = self.size
        raw_spec = {"input": {"shape": self.spec["input"]["shape"], "normalisation": {}}}
        image = preprocess(case.frames[t], raw_spec)[0]  # (C, H, W) float32, 0..255
        labels = resize_labels(case.labels[t], h, w)
        if self.augment is not None:
            matrix = self.augment.sample(h, w, self.rng)
            image = warp_planes(image, matrix, labels=False)
            labels = warp_planes(labels, matrix, labels=True)
        if self.crop is not None:
            ch, cw = self.crop
            top, left = int(self.rng.integers(0, h - ch + 1)), int(self.rng.integers(0, w - cw + 1))
            image, labels = image[:, top:top + ch, left:left + cw], labels[top:top + ch, left:left + cw]
        image = normalise(np.ascontiguousarray(image), ECHO_NORMALISATION)
        return torch.from_numpy(image), torch.from_numpy(np.ascontiguousarray(labels).astype(np.int64))


class CineClipDataset(Dataset):
    """Clips of T consecutive frames of one short-axis slice (time wraps around: cine is periodic).

    Sample: ``(clip (1, T, H, W) float32 zscored per clip, labels (T, H, W) int64)``; frames with no
    ground truth are all ``IGNORE_INDEX``.

    Args:
        cases: Cine cases with labels, frames ``(T0, Z, H0, W0)``.
        clip_length: T.
        size: Model grid ``(H, W)``.
        stride: Frames between the starts of consecutive clips of a slice.
        augment: Random affine (the same for every frame of a clip), or None.
        seed: Seeds the augmentation generator.
        require_label: Keep only clips with at least one labelled frame.
        per_frame_norm: zscore each frame on its own (for per-frame 2D models, whose deployed
            preprocessing normalises one frame at a time) instead of the whole clip.
    """

    def __init__(self, cases: Sequence[Case], clip_length: int = 20, size: tuple[int, int] = (128, 112),
                 stride: int | None = None, augment: AffineAugmentation | None = None, seed: int = 0,
                 require_label: bool = True, per_frame_norm: bool = False):
        self.cases = list(cases)
        self.per_frame_norm = per_frame_norm
        self.clip_length = clip_length
        self.size = size
        self.augment = augment
        self.rng = np.random.default_rng(seed)
        stride = stride or clip_length
        self.index: list[tuple[int, int, int]] = []
        for ci, case in enumerate(self.cases):
            where = case.source or case.case_id
            if case.modality != "cine":
                raise DataError(where, f"CineClipDataset got a {case.modality} case")
            if case.labels is None:
                raise DataError(where, "cine case has no labels to train or evaluate on")
            labelled = set(case.labelled_frames or range(case.n_frames))
            for z in range(case.n_slices):
                for t0 in range(0, case.n_frames, stride):
                    window = {(t0 + k) % case.n_frames for k in range(clip_length)}
                    if require_label and not window & labelled:
                        continue
                    self.index.append((ci, z, t0))

    def __len__(self) -> int:
        return len(self.index)

    def frame_indices(self, i: int) -> np.ndarray:
        """Indices along T of the frames of clip ``i`` (wrapping around)."""
        ci, _, t0 = self.index[i]
        return (t0 + np.arange(self.clip_length)) % self.cases[ci].n_frames

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        ci, z, _ = self.index[i]
        return self.window(ci, z, self.frame_indices(i), augment=self.augment is not None)

    def slices(self) -> list[tuple[int, int]]:
        """The ``(case, slice)`` pairs the clips come from, in index order (each once)."""
        return list(dict.fromkeys((ci, z) for ci, z, _ in self.index))

    def labelled_frames(self, ci: int) -> list[int]:
        """Indices along T of the frames of case ``ci`` that have ground truth."""
        case = self.cases[ci]
        return sorted(set(case.labelled_frames or range(case.n_frames)))

    def window(self, ci: int, z: int, ts, *, augment: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """The sample of frames ``ts`` (indices along T, ``clip_length`` of them, repeats allowed) of
        slice ``z`` of case ``ci``, prepared as every clip of this dataset (``augment``: with a random
        affine from the dataset's generator)."""
        case = self.cases[ci]
        h, w = self.size
        ts = np.asarray(ts)
        if len(ts) != self.clip_length:
            raise ValueError(f"a window has {self.clip_length} frames, got {len(ts)}")
        raw_spec = {"input": {"shape": [1, 1, self.clip_length, h, w], "normalisation": {}}}
        clip = preprocess(case.frames[ts, z], raw_spec)[0]  # (1, T, H, W)
        labels = resize_labels(case.labels[ts, z], h, w)  # uint8
        labelled = set(case.labelled_frames or range(case.n_frames))
        for k, t in enumerate(ts):
            if int(t) not in labelled:
                labels[k] = IGNORE_INDEX
        if augment and self.augment is not None:
            matrix = self.augment.sample(h, w, self.rng)
            clip = warp_planes(clip, matrix, labels=False)
            labels = warp_planes(labels, matrix, labels=True)
        clip = np.ascontiguousarray(clip)
        if self.per_frame_norm:
            for k in range(clip.shape[1]):
                clip[:, k] = normalise(clip[:, k].copy(), CINE_NORMALISATION)
        else:
            clip = normalise(clip, CINE_NORMALISATION)
        return torch.from_numpy(clip), torch.from_numpy(labels.astype(np.int64))
