"""QC samples made by the app's own pipeline stages from phantom cine patients.

For every sampled frame ``t`` of slice ``z`` the clip is the cycle's last ``T`` frames ending at
``t`` (a looping cine after its first cycle, as the viewer and ``replay`` see it), run through the
frozen segmentation model exactly as ``app.engine.stages.SegStage`` runs it; a per-frame model
(input ``(1, 1, H, W)``) gets frame ``t`` alone. A streaming model
(card ``streaming``) is stepped through every frame of the slice in order, twice round the cycle
from a reset state, and sampled on the second round (the same looping cine, its state carried as
the pipeline carries it). The sample keeps the
QC inputs (newest frame's model input, probabilities, uncertainty) and the target: the mean Dice
over the foreground classes of the mask the app draws (``mask_at`` at the source resolution)
against the phantom's labels, as ``app.engine.pipeline`` computes the true Dice.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.cards import ModelCard
from app.data.case import Case
from app.data.datasets import phantom_dataset
from app.data.splits import patient_split
from app.engine.models import load_model
from app.engine.preprocess import preprocess
from app.engine.stages import SegStage, mask_at
from app.engine.types import Frame
from app.metrics import mean_dice
from search.methods.cine_qc.config import CineQcConfig

log = logging.getLogger(__name__)

SAMPLES_VERSION = 1


@dataclass
class Samples:
    """QC samples of a set of patients (float16 inputs to keep memory small).

    Attributes:
        image: ``(N, 1, h, w)`` newest-frame model input.
        probs: ``(N, K, h, w)`` class probabilities.
        uncertainty: ``(N, 1, h, w)``.
        dice: ``(N,)`` true Dice of the app's mask.
        case: ``(N,)`` index into ``case_ids``.
        quality_bin: ``(N,)`` the patient's quality bin.
        case_ids: Patient ids.
    """

    image: np.ndarray
    probs: np.ndarray
    uncertainty: np.ndarray
    dice: np.ndarray
    case: np.ndarray
    quality_bin: np.ndarray
    case_ids: list[str]

    def __len__(self) -> int:
        return int(self.dice.shape[0])

    def feeds(self, i: int) -> dict[str, np.ndarray]:
        """Sample ``i`` as float32 QC feeds with batch 1."""
        return {"image": self.image[i : i + 1].astype(np.float32), "probs": self.probs[i : i + 1].astype(np.float32),
                "uncertainty": self.uncertainty[i : i + 1].astype(np.float32)}


def qc_split(cases: list[Case], cfg: CineQcConfig) -> dict[str, list[Case]]:
    """Patients split by patient, stratified by quality bin, deterministic for ``cfg.seed``."""
    by_id = {c.case_id: c for c in cases}
    strata = {c.case_id: c.quality_bin or "unknown" for c in cases}
    parts = patient_split(by_id, cfg.fractions, cfg.seed, strata)
    return {name: [by_id[i] for i in ids] for name, ids in parts.items()}


def case_list_hash(ids: list[str]) -> str:
    """Short hash of a sorted case list (the card names the data without listing patients)."""
    return hashlib.sha256("\n".join(sorted(ids)).encode()).hexdigest()[:16]


def case_samples(case: Case, stage: SegStage, cfg: CineQcConfig) -> dict[str, np.ndarray]:
    """The QC samples of one patient (see the module docstring)."""
    card = stage.card
    frames, labels = case.frames, case.labels
    n_t, n_z, height, width = frames.shape
    length = stage.clip_length
    foreground = tuple(c for c in card.classes if c != 0)
    slices = range(n_z) if cfg.slices is None else [z for z in cfg.slices if z < n_z]
    out: dict[str, list] = {"image": [], "probs": [], "uncertainty": [], "dice": []}

    def keep(seg, t: int, z: int) -> None:
        value = mean_dice(mask_at(seg.probs, height, width), labels[t, z], foreground)
        if np.isnan(value):
            return
        out["image"].append(seg.qc_image[0].astype(np.float16))
        out["probs"].append(seg.probs[0].astype(np.float16))
        out["uncertainty"].append(seg.uncertainty[0].astype(np.float16))
        out["dice"].append(np.float32(value))

    for z in slices:
        if stage.is_streaming:
            stage.reset_stream()
            for k in range(2 * n_t):
                t = k % n_t
                frame = Frame(index=k, image=frames[t, z], t_arrival=0, meta={"slice": z, "case": case.case_id})
                x = stage.prepare(frame, None)
                if k < n_t or t % cfg.frame_stride:
                    stage.advance(frame, x)
                else:
                    keep(stage.segment(x, frame), t, z)
            continue
        for t in range(0, n_t, cfg.frame_stride):
            if not stage.is_clip_model:  # a per-frame model: the frame alone, as the pipeline feeds it
                keep(stage.segment(preprocess(frames[t, z], card)), t, z)
                continue
            clip = frames[[(t - length + 1 + k) % n_t for k in range(length)], z]
            keep(stage.segment(preprocess(clip, card)), t, z)
    return {k: np.stack(v) for k, v in out.items()}


def make_samples(cases: list[Case], seg_card: ModelCard, cfg: CineQcConfig, cache: Path | None = None,
                 threads: int = 1) -> Samples:
    """Samples of ``cases`` through ``seg_card``'s model; per-patient results cached under ``cache``."""
    model = load_model(seg_card, intra_op_threads=threads)
    stage = SegStage(model)
    if seg_card.modality != "cine":
        raise ValueError(f"{seg_card.id}: cine QC needs a cine segmentation model, got a {seg_card.modality} one")
    parts, case_index, bins = [], [], []
    for i, case in enumerate(cases):
        path = None
        if cache is not None:
            key = json.dumps({"v": SAMPLES_VERSION, "seg": seg_card.raw.get("onnx_sha256"), "case": case.case_id,
                              "slices": cfg.slices, "stride": cfg.frame_stride}, sort_keys=True)
            path = cache / f"{case.case_id}-{hashlib.sha256(key.encode()).hexdigest()[:10]}.npz"
        if path is not None and path.exists():
            with np.load(path) as f:
                got = {k: f[k] for k in f.files}
        else:
            got = case_samples(case, stage, cfg)
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(".tmp.npz")
                np.savez(tmp, **got)
                tmp.replace(path)
        log.info("%s: %d samples, true Dice %.3f +- %.3f (%s)", case.case_id, len(got["dice"]),
                 float(np.mean(got["dice"])), float(np.std(got["dice"])), case.quality_bin)
        parts.append(got)
        case_index.append(np.full(len(got["dice"]), i, dtype=np.int32))
        bins.append(np.full(len(got["dice"]), case.quality_bin or "unknown"))
    cat = {k: np.concatenate([p[k] for p in parts]) for k in ("image", "probs", "uncertainty", "dice")}
    return Samples(image=cat["image"], probs=cat["probs"], uncertainty=cat["uncertainty"], dice=cat["dice"],
                   case=np.concatenate(case_index), quality_bin=np.concatenate(bins),
                   case_ids=[c.case_id for c in cases])


def qc_cases(cfg: CineQcConfig) -> list[Case]:
    """The phantom patients of the run (rendered once, cached by ``app.data.datasets``)."""
    return phantom_dataset("cine", cfg.n_cases, cfg.phantom_seed)
