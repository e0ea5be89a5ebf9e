"""Train and export a set of baselines for one preset: data -> training -> export -> cards.

Resumable: every training stage checkpoints under ``work_dir/<baseline>/`` and a rerun skips
finished stages (exports are redone: they are cheap and measure latency afresh).

``data`` (``--data``, a ``search.data.DataSpec``) trains on a dataset folder instead of the phantom:
the same patient fractions, by patient, the dataset's official test set as test, labels renumbered
to the baseline's classes (echo: myocardium; cine: ACDC RV/MYO/LV). Only the baselines whose
modality the dataset gives run by default; checkpoints go under ``work_dir/data-<hash>/`` so a
change of data never resumes another dataset's training.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import torch

from app.cards import ModelCard
from app.data.case import Case, DataError
from search.baselines.presets import BaselinePreset
from search.baselines.registry import BaselineSpec, get_baseline
from search.baselines.shipping import ship_cine, ship_echo_pair
from search.baselines.training import default_augmentation, train_cine, train_echo_pair
from search.data import (CINE_ACDC, ECHO_MYOCARDIUM, DataSpec, Need, describe_split, keep_frames, members_of_cases,
                         open_dataset, protocol_cases, split_by_patient)
from search.train import precision
from search.train.clips import fit_case
from search.train.data import phantom_cases, split_patients
from search.train.datasets import CineClipDataset, EchoFrameDataset
from search.train.restarts import CLIPS_SCORED, RestartPolicy

log = logging.getLogger(__name__)


@dataclass
class BaselineResult:
    """What one baseline produced: its cards and the INT8 decision, or why it could not run."""

    name: str
    cards: list[ModelCard] = field(default_factory=list)
    int8: str | None = None
    error: str | None = None


def _data_info(modality: str, preset: BaselinePreset, split: dict[str, list], data: DataSpec | None = None) -> dict:
    if data is not None and not data.is_phantom:  # hashes and counts only: no case id in the card
        parts = {name: [c.case_id for c in cases] for name, cases in split.items()}
        members = members_of_cases([c for cases in split.values() for c in cases])
        words = describe_split(members, parts.get("test", ()), f"baselines {modality} {preset.name} fractions",
                               preset.seed)
        return data.card_info(parts, split=words, seed=preset.seed, preset=preset.name)
    render = preset.echo_render if modality == "echo" else preset.cine_render
    return {
        "source": f"phantom-{modality} (app.data.phantom), rendered with {render}",
        "seed": preset.seed,
        "patients": {name: len(cases) for name, cases in split.items()},
        "split": {name: [c.case_id for c in cases] for name, cases in split.items()},
        "preset": preset.name,
    }


def dataset_split(data: DataSpec, need: Need, method: str, fractions: dict[str, float], seed: int,
                  transform: Callable[[Case], Case]) -> dict[str, list[Case]]:
    """A dataset's cases split by patient in ``fractions`` (official test set as test), read for ``need``."""
    return protocol_cases(open_dataset(data), need, method,
                          lambda members: split_by_patient(members, fractions, seed, where=data.root), transform)


def training_curves(pair) -> dict:
    """The learning curves a card carries: mean training loss per epoch of each network."""
    curves = {"seg_epochs": len(pair.seg_losses), "seg_loss": [round(float(v), 4) for v in pair.seg_losses],
              "qc_epochs": len(pair.qc_losses), "qc_loss": [round(float(v), 5) for v in pair.qc_losses]}
    if getattr(pair, "seg_training", None):
        curves["seg_attempts"] = pair.seg_training
    return curves


def run_echo(spec: BaselineSpec, preset: BaselinePreset, out_dir: Path, work_dir: Path,
             progress: Callable | None = None, data: DataSpec | None = None) -> BaselineResult:
    if data is None or data.is_phantom:
        cases = phantom_cases("echo", preset.echo_cases, preset.seed, **preset.echo_render)
        split = split_patients(cases, preset.echo_split, preset.seed)
    else:
        frames = int(preset.echo_render.get("n_frames", 30))
        split = dataset_split(data, ECHO_MYOCARDIUM, f"baseline {spec.name}", preset.echo_split, preset.seed,
                              lambda case: keep_frames(case, frames))
    aug = default_augmentation()
    size = preset.echo_input
    s1 = EchoFrameDataset(split["s1"], size, augment=aug, seed=preset.seed, frame_step=preset.echo_frame_step,
                          crop=preset.echo_seg_crop)
    s2 = EchoFrameDataset(split["s2"], size, augment=aug, seed=preset.seed + 1, frame_step=preset.echo_frame_step)
    test = EchoFrameDataset(split["test"], size)
    pair = train_echo_pair(spec, s1, s2, preset.seg_train, preset.qc_train, work_dir / spec.name, progress,
                           RestartPolicy(max_restarts=preset.seg_restarts))
    calibration = EchoFrameDataset(split["s1"], size, frame_step=max(1, preset.echo_frame_step * 2))
    info = {**_data_info("echo", preset, split, data), "training": training_curves(pair)}
    cards, decision = ship_echo_pair(spec, pair, test, calibration, out_dir, info,
                                     quantize=preset.quantize, latency_repeats=preset.latency_repeats)
    return BaselineResult(spec.name, cards, decision.reason if decision else None)


def cine_test_dataset(spec: BaselineSpec | None, preset: BaselinePreset, cases: list[Case], *,
                      per_frame: bool | None = None) -> CineClipDataset:
    """The clips a cine baseline's card Dice is measured on: ``cases``' clips, at most
    ``preset.max_test_clips`` of them, evenly strided (``search.report.newest_frame`` rebuilds it from a card).
    ``per_frame`` (default: the spec's) zscores each frame alone, as a per-frame model's input is."""
    per_frame = spec.per_frame if per_frame is None else per_frame
    test = CineClipDataset(cases, preset.clip_length, preset.cine_input, per_frame_norm=per_frame)
    if len(test) > preset.max_test_clips:
        test.index = test.index[:: max(1, len(test.index) // preset.max_test_clips)][: preset.max_test_clips]
    return test


def cine_split(preset: BaselinePreset, data: DataSpec | None = None, who: str = "baseline") -> dict[str, list[Case]]:
    """The cine patients of ``preset`` split train / test (the phantom's, or ``data``'s by patient)."""
    if data is None or data.is_phantom:
        cases = phantom_cases("cine", preset.cine_cases, preset.seed, **preset.cine_render)
        return split_patients(cases, preset.cine_split, preset.seed)
    shape = tuple(preset.cine_input)
    return dataset_split(data, CINE_ACDC, who, preset.cine_split, preset.seed, lambda case: fit_case(case, shape))


def cine_train_dataset(preset: BaselinePreset, cases: list[Case], per_frame: bool) -> CineClipDataset:
    """The augmented training clips of the cine baselines (half-overlapping ``preset.clip_length``-frame clips)."""
    T = preset.clip_length
    return CineClipDataset(cases, T, preset.cine_input, stride=max(1, T // 2), augment=default_augmentation(),
                           seed=preset.seed, per_frame_norm=per_frame)


def cine_card_data(preset: BaselinePreset, split: dict[str, list[Case]], data: DataSpec | None,
                   losses: Sequence[float], attempts: dict | None = None) -> dict:
    """A cine card's ``data``: the split, and the learning curve (mean loss per epoch) of ``preset.cine_train``
    (with ``attempts``, the restart record of a training that collapsed, ``search.train.restarts``)."""
    cfg = preset.cine_train
    training = {"epochs": len(losses), "steps_per_epoch": cfg.steps_per_epoch, "batch_size": cfg.batch_size,
                "lr": cfg.lr, "loss": [round(float(v), 4) for v in losses]}
    if attempts:
        training["seg_attempts"] = attempts
    return {**_data_info("cine", preset, split, data), "training": training}


def run_cine(spec: BaselineSpec, preset: BaselinePreset, out_dir: Path, work_dir: Path,
             progress: Callable | None = None, data: DataSpec | None = None) -> BaselineResult:
    split = cine_split(preset, data, f"baseline {spec.name}")
    T = preset.clip_length
    train = cine_train_dataset(preset, split["train"], spec.per_frame)
    test = cine_test_dataset(spec, preset, split["test"])
    unet, trained = train_cine(spec, train, preset.cine_train, work_dir / spec.name, progress,
                               RestartPolicy(max_restarts=preset.seg_restarts, max_frames=CLIPS_SCORED))
    calibration = CineClipDataset(split["train"], T, preset.cine_input, per_frame_norm=spec.per_frame)
    info = cine_card_data(preset, split, data, trained.losses, trained.record())
    cards, decision = ship_cine(spec, unet, test, calibration, out_dir, info,
                                clip_length=T, quantize=preset.quantize, latency_repeats=preset.latency_repeats)
    return BaselineResult(spec.name, cards, decision.reason if decision else None)


def data_work_dir(work_dir: Path, data: DataSpec | None) -> Path:
    """Checkpoints of a dataset run: ``work_dir/data-<hash of the spec>`` (the phantom: ``work_dir``)."""
    if data is None or data.is_phantom:
        return Path(work_dir)
    return Path(work_dir) / f"data-{hashlib.sha256(data.text.encode()).hexdigest()[:10]}"


def run_baselines(preset: BaselinePreset, out_dir: Path, work_dir: Path, names: Sequence[str] | None = None,
                  progress: Callable | None = None, data: DataSpec | None = None) -> list[BaselineResult]:
    """Train and export ``names`` (default: the preset's) into ``out_dir``.

    A baseline whose data is unavailable (e.g. no cine phantom yet, or a dataset that cannot give
    its classes) is reported with its error and the others still run. With a dataset (``data``),
    the default names are the preset's baselines of the modalities it gives.
    """
    torch.set_num_threads(preset.threads)
    if names is None and data is not None and not data.is_phantom:
        given = open_dataset(data).modalities
        names = [n for n in preset.baselines if get_baseline(n).modality in given]
        left = [n for n in preset.baselines if n not in names]
        if left:
            log.info("baselines %s skipped: %s gives no %s data", ", ".join(left), data.dataset_name,
                     "/".join(sorted({get_baseline(n).modality for n in left})))
    work = data_work_dir(work_dir, data)
    if precision.current() != "fp32":  # checkpoints of bf16 training never resume an fp32 one, nor the reverse
        work = work / precision.current()
    results = []
    for name in names or preset.baselines:
        spec = get_baseline(name)
        runner = run_echo if spec.modality == "echo" else run_cine
        try:
            results.append(runner(spec, preset, Path(out_dir), work, progress, data))
        except ImportError as exc:
            log.error("%s: skipped, its data is not available: %s", name, exc)
            results.append(BaselineResult(name, error=f"data not available: {exc}"))
        except DataError as exc:
            log.error("%s: not built: %s", name, exc)
            results.append(BaselineResult(name, error=str(exc)))
    return results
