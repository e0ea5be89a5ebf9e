"""The patients of the segqc-hw protocol: S1 / S2 / test phantom echo cases, trimmed and cached.

The task (``DataConfig.task``, ``search.methods.segqc_hw.tasks``) picks the phantom variant and the
labels: contrast echo with the myocardium (the paper's), or B-mode apical four-chamber echo with the
CAMUS classes 1 LV, 2 MYO, 3 LA.

The segqc-hw paper's protocol: 100 patients, ~30 frames each, split by patient into S1 (40, trains the
segmentation net), S2 (40, trains the QC net on segmentations of images the seg net never saw) and
test (20, held out). Each case keeps only ``frames_per_case`` labelled frames spread over its cycle
(the patients, not the frames, carry the variation in acquisition quality), and the trimmed cases
are cached as ``.npz`` so a resumed run does not render the phantoms again. Images are prepared by
``search.train.datasets.EchoFrameDataset`` (deployment preprocessing, random affine augmentation).

The cache never names a dataset file: a dataset case is stored with its anonymous id, patient and
official part only (its ``source``, the file it was read from, is left out: file names can carry
patient ids), and ``cases_key.json`` holds the spec as ``search.privacy.recorded_source`` (the kind
and a hash of the folder).

With ``--data KIND:DIR`` (``DataConfig.source``) the patients come from a dataset folder instead
(``dataset_protocol``, through ``search.data``): the same proportions, by patient, the dataset's
official test set as test, labels renumbered to the task's classes (the myocardium; or LV, MYO and LA,
which EchoNet-Dynamic's LV tracings cannot give: one ``DataError``).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader

from app.data.case import Case, DataError
from search.methods.segqc_hw.config import AugmentConfig, DataConfig
from search.methods.segqc_hw.tasks import echo_task
from search.train.augment import AffineAugmentation
from search.train.datasets import ECHO_NORMALISATION, EchoFrameDataset

log = logging.getLogger(__name__)

SPLITS = ("s1", "s2_train", "s2_val", "test")
MIN_STRATIFIED = 30  # patients needed before the split is stratified by quality bin
RENDER_FRAMES = 30  # frames rendered per patient (the paper samples ~30 per sequence)
CasesFor = Callable[[DataConfig], dict[str, list[Case]]]
SPLIT_META = ("patient", "official_split")  # what a trimmed dataset case keeps of its meta (anonymous)
GENERATED_SOURCES = ("phantom-", "synthetic-")  # generated cases' sources (``phantom-echo-<variant>``): no file


def stored_source(case: Case) -> str | None:
    """What the cache keeps of ``case.source``: a generator's name; never a dataset's file path."""
    return case.source if (case.source or "").startswith(GENERATED_SOURCES) else None


def input_spec(resolution: int) -> dict:
    """The ``input`` block of the exported cards (what training preprocessing used too)."""
    return {"name": "image", "shape": [1, 3, resolution, resolution], "layout": "NCHW", "dtype": "float32",
            "normalisation": dict(ECHO_NORMALISATION)}


def pick_frames(case: Case, count: int) -> list[int]:
    """``count`` labelled frames evenly spread over the sequence (deterministic)."""
    labelled = list(case.labelled_frames) or list(range(case.n_frames))
    if count >= len(labelled):
        return labelled
    pos = np.linspace(0, len(labelled) - 1, count).round().astype(int)
    return [labelled[i] for i in pos]


def trim_case(case: Case, count: int) -> Case:
    """A copy of ``case`` holding only ``count`` labelled frames (all of them labelled).

    Raises:
        DataError: the case is not a labelled echo case.
    """
    where = case.source or case.case_id
    if case.modality != "echo":
        raise DataError(where, f"segqc-hw trains on echo, got a {case.modality} case")
    if case.labels is None:
        raise DataError(where, "segqc-hw needs labelled frames, this case has none")
    keep = pick_frames(case, count)
    return Case(case_id=case.case_id, modality="echo", frames=np.ascontiguousarray(case.frames[keep]),
                labels=np.ascontiguousarray(case.labels[keep]), label_map=dict(case.label_map),
                spacing_mm=case.spacing_mm, frame_rate=case.frame_rate, labelled_frames=tuple(range(len(keep))),
                quality=case.quality, quality_bin=case.quality_bin, source=case.source,
                meta={k: case.meta[k] for k in SPLIT_META if k in case.meta})


def _save(cases: Sequence[Case], path: Path) -> None:
    arrays = {}
    meta = []
    for i, c in enumerate(cases):
        arrays[f"frames_{i}"] = c.frames
        arrays[f"labels_{i}"] = c.labels
        meta.append({"case_id": c.case_id, "quality": c.quality, "quality_bin": c.quality_bin, "source": stored_source(c),
                     "spacing_mm": list(c.spacing_mm), "frame_rate": c.frame_rate,
                     "label_map": {str(k): v for k, v in c.label_map.items()}})
        if c.meta:  # a dataset case's anonymous patient and official part (phantom cases have none)
            meta[-1]["meta"] = {k: c.meta[k] for k in SPLIT_META if k in c.meta}
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    tmp = path.with_name(path.stem + ".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    tmp.replace(path)


def _load(path: Path) -> list[Case]:
    with np.load(path) as z:
        meta = json.loads(z["meta"].tobytes().decode())
        return [Case(case_id=m["case_id"], modality="echo", frames=z[f"frames_{i}"], labels=z[f"labels_{i}"],
                     label_map={int(k): v for k, v in m["label_map"].items()}, spacing_mm=tuple(m["spacing_mm"]),
                     frame_rate=m["frame_rate"], labelled_frames=tuple(range(z[f"frames_{i}"].shape[0])),
                     quality=m["quality"], quality_bin=m["quality_bin"], source=m["source"], meta=m.get("meta", {}))
                for i, m in enumerate(meta)]


def phantom_protocol(cfg: DataConfig) -> dict[str, list[Case]]:
    """Render (or read from the shared phantom cache) the task's echo patients (contrast or B-mode) and split them.

    Patients are split by ``app.data.splits`` (stratified by acquisition-quality bin, so every part
    spans good, medium and poor acquisitions): S1 / S2 / test in the config's proportions (40 / 40 / 20
    is exactly ``segqc_protocol``), then S2 into its QC-training and validation parts.
    """
    from app.data.datasets import phantom_dataset
    from app.data.splits import patient_split, segqc_protocol

    n = cfg.n_s1 + cfg.n_s2 + cfg.n_test
    task = echo_task(cfg.task)
    cases = phantom_dataset("echo", n, seed=cfg.phantom_seed, n_frames=RENDER_FRAMES, variant=task.variant)
    for case in cases[:1]:  # the variant's labels are the task's (contrast: myocardium; bmode: CAMUS)
        if dict(case.label_map) != dict(task.classes):
            raise DataError(case.source or case.case_id, f"phantom labels {case.label_map} are not the "
                            f"{task.name} task's {dict(task.classes)}")
    by_id = {c.case_id: c for c in cases}
    # Stratify by quality bin only when every bin is large enough to be split in these proportions.
    strata = {c.case_id: c.quality_bin or "" for c in cases} if n >= MIN_STRATIFIED else None
    if (cfg.n_s1, cfg.n_s2, cfg.n_test) == (40, 40, 20):
        parts = segqc_protocol(by_id, cfg.phantom_seed, strata)
    else:
        parts = patient_split(by_id, {"s1": cfg.n_s1 / n, "s2": cfg.n_s2 / n, "test": cfg.n_test / n},
                              cfg.phantom_seed, strata)
    s2 = parts["s2"]
    val_fraction = min(1.0, cfg.n_qc_val / max(1, len(s2)))
    s2_parts = patient_split(s2, {"s2_val": val_fraction, "s2_train": 1.0 - val_fraction}, cfg.phantom_seed + 1,
                             {i: strata[i] for i in s2} if strata is not None else None)
    out = {"s1": parts["s1"], "s2_train": s2_parts["s2_train"], "s2_val": s2_parts["s2_val"], "test": parts["test"]}
    empty = [k for k, ids in out.items() if not ids]
    if empty:
        raise DataError(f"phantom-echo ({task.variant}) seed {cfg.phantom_seed}", f"protocol parts {empty} got no patients from "
                        f"{n} cases (s1 {cfg.n_s1}, s2 {cfg.n_s2} incl. {cfg.n_qc_val} validation, test {cfg.n_test})")
    return {k: [by_id[i] for i in ids] for k, ids in out.items()}


def dataset_protocol(cfg: DataConfig) -> dict[str, list[Case]]:
    """The protocol on the dataset of ``cfg.source`` (``--data KIND:DIR``): S1 / S2 / test by patient
    in the proportions ``n_s1 : n_s2 : n_test`` (the dataset's official test set as test where it has
    one), S2 into QC training and validation, seed ``phantom_seed``; labels renumbered to the task's
    classes: the myocardium (CAMUS 2 MYO -> 1), or for B-mode all three CAMUS classes as they are.
    Cases are trimmed as they are read, so memory stays bounded.

    Raises:
        DataError: the dataset lacks a class of the task (EchoNet's LV tracings have no MYO, nor LA) or
            is not echo.
    """
    from search.data import open_dataset, parse_data_spec, protocol_cases, segqc_parts

    spec = parse_data_spec(cfg.source)
    task = echo_task(cfg.task)
    parts = protocol_cases(open_dataset(spec), task.need, task.method_label,
                           lambda members: segqc_parts(members, n_s1=cfg.n_s1, n_s2=cfg.n_s2, n_test=cfg.n_test,
                                                       n_qc_val=cfg.n_qc_val, seed=cfg.phantom_seed,
                                                       where=spec.root),
                           transform=lambda case: trim_case(case, cfg.frames_per_case))
    return {k: parts[k] for k in SPLITS}


def protocol_for(cfg: DataConfig) -> CasesFor:
    """The phantom protocol, or the dataset protocol when ``cfg.source`` names a dataset."""
    return phantom_protocol if getattr(cfg, "source", "phantom") == "phantom" else dataset_protocol


def card_data(cfg: DataConfig, cases: dict[str, list[Case]], preset: str) -> dict:
    """The cards' ``data`` field: the phantom's description, or the dataset's hashes and counts."""
    split = {"s1_seg_train": len(cases["s1"]), "s2_qc_train": len(cases["s2_train"]),
             "s2_validation": len(cases["s2_val"]), "test": len(cases["test"]),
             "frames_per_patient": cfg.frames_per_case}
    task = echo_task(getattr(cfg, "task", "contrast"))
    if getattr(cfg, "source", "phantom") == "phantom":
        return {"source": f"phantom-echo (app.data.phantom.echo, {task.variant})", "seed": cfg.phantom_seed,
                "split": split, "preset": preset}
    from search.data import describe_split, members_of_cases, parse_data_spec

    parts = {k: [c.case_id for c in cases[k]] for k in SPLITS}
    members = members_of_cases([c for k in SPLITS for c in cases[k]])
    words = describe_split(members, parts["test"], f"segqc-hw S1/S2/test ({cfg.n_s1}:{cfg.n_s2}:{cfg.n_test})",
                           cfg.phantom_seed)
    return parse_data_spec(cfg.source).card_info(parts, split=words, seed=cfg.phantom_seed, preset=preset,
                                                 frames_per_patient=cfg.frames_per_case, labels=task.label_words)


def load_protocol(cfg: DataConfig, cache_dir: Path, cases_for: CasesFor | None = None) -> dict[str, list[Case]]:
    """S1 / S2 (train, val) / test cases with ``frames_per_case`` frames each, cached in ``cache_dir``.

    Args:
        cfg: Which patients and how many frames (``cfg.source``: the ``--data`` spec).
        cache_dir: Folder of the cache (one ``.npz`` per split plus the key it was made for).
        cases_for: Returns the full cases of every part in ``SPLITS`` (default: ``protocol_for(cfg)``).

    Returns:
        ``{"s1", "s2_train", "s2_val", "test"}`` -> cases, and ``"s2"`` = s2_train + s2_val.
    """
    cases_for = cases_for or protocol_for(cfg)
    cache_dir.mkdir(parents=True, exist_ok=True)
    key = {"n_s1": cfg.n_s1, "n_s2": cfg.n_s2, "n_test": cfg.n_test, "n_qc_val": cfg.n_qc_val,
           "frames": cfg.frames_per_case, "seed": cfg.phantom_seed, "render_frames": RENDER_FRAMES}
    if getattr(cfg, "source", "phantom") != "phantom":  # the phantom's key stays as it was (its caches too)
        from search.privacy import recorded_source

        key["source"] = recorded_source(cfg.source)  # the kind and a hash of the folder, never its name
    if getattr(cfg, "task", "contrast") != "contrast":  # so does the contrast task's
        key["task"] = cfg.task
    stamp = cache_dir / "cases_key.json"
    paths = {s: cache_dir / f"cases_{s}.npz" for s in SPLITS}
    if stamp.is_file() and json.loads(stamp.read_text()) == key and all(p.is_file() for p in paths.values()):
        log.info("data: cached cases in %s", cache_dir)
        out = read_cached(cache_dir)
    else:
        full = cases_for(cfg)
        out = {}
        for split in SPLITS:
            out[split] = [trim_case(c, cfg.frames_per_case) for c in full[split]]
            _save(out[split], paths[split])
            bins = sorted(c.quality_bin or "" for c in out[split])
            log.info("data: %s = %d patients x %d frames (quality bins %s)", split, len(out[split]),
                     cfg.frames_per_case, {b: bins.count(b) for b in set(bins)})
        stamp.write_text(json.dumps(key))
    out["s2"] = out["s2_train"] + out["s2_val"]
    return out


def read_cached(cache_dir: Path) -> dict[str, list[Case]]:
    """The parts in ``SPLITS`` as a run cached them in ``cache_dir`` (its ``data/``), read as they are: no key
    check, nothing rendered or opened (e.g. a bench retraining a finished run's networks on its patients).

    Raises:
        FileNotFoundError: a part's ``cases_<part>.npz`` is not there.
    """
    return {s: _load(cache_dir / f"cases_{s}.npz") for s in SPLITS}


def frame_dataset(cases: Sequence[Case], resolution: int, augment: AugmentConfig | None, seed: int) -> EchoFrameDataset:
    """Every frame of ``cases`` at ``resolution``, augmented when ``augment`` is given."""
    aug = None if augment is None else AffineAugmentation(augment.max_shift, augment.max_rotation_deg,
                                                          tuple(augment.scale_range))
    return EchoFrameDataset(cases, size=(resolution, resolution), channels=3, augment=aug, seed=seed)


def loader(dataset: EchoFrameDataset, batch_size: int, seed: int) -> DataLoader:
    """Shuffled batches (seeded); a final batch of one image is dropped (batch norm needs two)."""
    gen = torch.Generator().manual_seed(seed)
    drop = len(dataset) % batch_size == 1
    return DataLoader(dataset, batch_size=batch_size, shuffle=True, generator=gen, drop_last=drop)


def frame_meta(cases: Sequence[Case]) -> list[dict]:
    """Per frame of ``cases`` (dataset order): patient index, quality and its bin."""
    return [{"patient": p, "quality": c.quality, "quality_bin": c.quality_bin or ""}
            for p, c in enumerate(cases) for _ in range(c.n_frames)]

