"""Train and export a set of baselines for one preset: data -> training -> export -> cards.

Resumable: every training stage checkpoints under ``work_dir/<baseline>/`` and a rerun skips
finished stages (exports are redone: they are cheap and measure latency afresh).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import torch

from app.cards import ModelCard
from search.baselines.presets import BaselinePreset
from search.baselines.registry import BaselineSpec, get_baseline
from search.baselines.shipping import ship_cine, ship_echo_pair
from search.baselines.training import default_augmentation, train_cine, train_echo_pair
from search.train.data import phantom_cases, split_patients
from search.train.datasets import CineClipDataset, EchoFrameDataset

log = logging.getLogger(__name__)


@dataclass
class BaselineResult:
    """What one baseline produced: its cards and the INT8 decision, or why it could not run."""

    name: str
    cards: list[ModelCard] = field(default_factory=list)
    int8: str | None = None
    error: str | None = None


def _data_info(modality: str, preset: BaselinePreset, split: dict[str, list]) -> dict:
    render = preset.echo_render if modality == "echo" else preset.cine_render
    return {
        "source": f"phantom-{modality} (app.data.phantom), rendered with {render}",
        "seed": preset.seed,
        "patients": {name: len(cases) for name, cases in split.items()},
        "split": {name: [c.case_id for c in cases] for name, cases in split.items()},
        "preset": preset.name,
    }


def run_echo(spec: BaselineSpec, preset: BaselinePreset, out_dir: Path, work_dir: Path,
             progress: Callable | None = None) -> BaselineResult:
    cases = phantom_cases("echo", preset.echo_cases, preset.seed, **preset.echo_render)
    split = split_patients(cases, preset.echo_split, preset.seed)
    aug = default_augmentation()
    size = preset.echo_input
    s1 = EchoFrameDataset(split["s1"], size, augment=aug, seed=preset.seed, frame_step=preset.echo_frame_step,
                          crop=preset.echo_seg_crop)
    s2 = EchoFrameDataset(split["s2"], size, augment=aug, seed=preset.seed + 1, frame_step=preset.echo_frame_step)
    test = EchoFrameDataset(split["test"], size)
    pair = train_echo_pair(spec, s1, s2, preset.seg_train, preset.qc_train, work_dir / spec.name, progress)
    calibration = EchoFrameDataset(split["s1"], size, frame_step=max(1, preset.echo_frame_step * 2))
    cards, decision = ship_echo_pair(spec, pair, test, calibration, out_dir, _data_info("echo", preset, split),
                                     quantize=preset.quantize, latency_repeats=preset.latency_repeats)
    return BaselineResult(spec.name, cards, decision.reason if decision else None)


def run_cine(spec: BaselineSpec, preset: BaselinePreset, out_dir: Path, work_dir: Path,
             progress: Callable | None = None) -> BaselineResult:
    cases = phantom_cases("cine", preset.cine_cases, preset.seed, **preset.cine_render)
    split = split_patients(cases, preset.cine_split, preset.seed)
    T = preset.clip_length
    train = CineClipDataset(split["train"], T, preset.cine_input, stride=max(1, T // 2), augment=default_augmentation(),
                            seed=preset.seed, per_frame_norm=spec.per_frame)
    test = CineClipDataset(split["test"], T, preset.cine_input, per_frame_norm=spec.per_frame)
    if len(test) > preset.max_test_clips:
        test.index = test.index[:: max(1, len(test.index) // preset.max_test_clips)][: preset.max_test_clips]
    unet, _ = train_cine(spec, train, preset.cine_train, work_dir / spec.name, progress)
    calibration = CineClipDataset(split["train"], T, preset.cine_input, per_frame_norm=spec.per_frame)
    cards, decision = ship_cine(spec, unet, test, calibration, out_dir, _data_info("cine", preset, split),
                                clip_length=T, quantize=preset.quantize, latency_repeats=preset.latency_repeats)
    return BaselineResult(spec.name, cards, decision.reason if decision else None)


def run_baselines(preset: BaselinePreset, out_dir: Path, work_dir: Path, names: Sequence[str] | None = None,
                  progress: Callable | None = None) -> list[BaselineResult]:
    """Train and export ``names`` (default: the preset's) into ``out_dir``.

    A baseline whose data is unavailable (e.g. no cine phantom yet) is reported with its error and
    the others still run.
    """
    torch.set_num_threads(preset.threads)
    results = []
    for name in names or preset.baselines:
        spec = get_baseline(name)
        runner = run_echo if spec.modality == "echo" else run_cine
        try:
            results.append(runner(spec, preset, Path(out_dir), Path(work_dir), progress))
        except ImportError as exc:
            log.error("%s: skipped, its data is not available: %s", name, exc)
            results.append(BaselineResult(name, error=f"data not available: {exc}"))
    return results
