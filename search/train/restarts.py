"""Restart a segmentation training that collapsed, keep the best attempt: no row ships or drops by luck.

On the small phantom sets a seg net trained from scratch now and then falls into the background-only
optimum (CE + soft Dice, a thin structure, 14-50 epochs): in one whole run 3 of 13 contrast-echo retrains
at 96x96 ended near Dice .15-.24 while the same network with another training seed reached .6-.7
(``docs/bench/size_table_contrast_lambda001_collapse.md``). One training per row then ranks a genotype, or a
baseline, by that luck.

:func:`fit_with_restarts` trains as ``search.train.loop.fit`` does, then scores the net on its own *training*
patients (the dataset without augmentation or crops, at most ``RestartPolicy.max_frames`` frames, so no
held-out patient takes part). A class below ``RestartPolicy.floor`` (issue 16: no class below Dice .3) marks
the attempt *collapsed*; the net is then re-initialised (PyTorch's default initialisation, as at construction,
under another seed), trained again with that seed's data order and augmentation, to its own checkpoint, up to
``max_restarts`` times. The attempt with the best training Dice is kept (the first that does not collapse
ends the loop), and every attempt is recorded, so a report can say a row needed one.

Attempt 0 is exactly ``fit`` with the caller's seed and checkpoint, so a training that does not collapse
gives the same weights as before. Every attempt resumes from its checkpoint like ``fit``.
"""

from __future__ import annotations

import copy
import logging
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset, Subset

from search import distributed
from search.train.evaluate import evaluate_segmentation, torch_seg_predictor
from search.train.restart_report import CLASS_FLOOR
from search.train.loop import LossFn, TrainConfig, fit

log = logging.getLogger(__name__)

CLIPS_SCORED = 16  # cine clips of T frames each: the collapse check needs far fewer of them than of echo frames
SEED_STRIDE = 7919  # attempt k trains with seed + k * SEED_STRIDE (a prime: no overlap with the callers' seed * 10 + j)


@dataclass(frozen=True)
class RestartPolicy:
    """When a training counts as collapsed and how often it is tried again.

    Attributes:
        floor: A foreground class whose Dice on the training frames is below this collapsed the training.
        max_restarts: Trainings after the first one at most (0: record the verdict, never restart).
        max_frames: Training frames scored per attempt (evenly strided over the dataset).
    """

    floor: float = CLASS_FLOOR
    max_restarts: int = 2
    max_frames: int = 64

    def __post_init__(self) -> None:
        if not 0.0 <= self.floor < 1.0:
            raise ValueError(f"restart floor must be in [0, 1), got {self.floor:g}")
        if self.max_restarts < 0 or self.max_frames < 1:
            raise ValueError(f"max_restarts must be >= 0 and max_frames >= 1, got {self.max_restarts} and "
                             f"{self.max_frames}")


@dataclass
class RestartedTraining:
    """What :func:`fit_with_restarts` did.

    Attributes:
        losses: Per-epoch mean losses of the attempt kept.
        attempts: One record per attempt, in order: ``{"attempt", "seed", "checkpoint", "train_dice",
            "train_dice_per_class", "collapsed"}``.
        kept: Index of the attempt whose weights the net holds.
    """

    losses: list[float]
    attempts: list[dict] = field(default_factory=list)
    kept: int = 0

    @property
    def collapsed(self) -> bool:
        """Whether even the attempt kept is below the floor."""
        return bool(self.attempts and self.attempts[self.kept]["collapsed"])

    def record(self) -> dict:
        """The JSON a row or card carries: attempts, which one was kept, and whether it still collapsed."""
        return {"attempts": self.attempts, "kept": self.kept, "collapsed": self.collapsed}


def attempt_seed(seed: int, attempt: int) -> int:
    """The training seed of attempt ``attempt`` (attempt 0: ``seed`` itself)."""
    return seed + attempt * SEED_STRIDE


def attempt_checkpoint(checkpoint: Path | None, attempt: int) -> Path | None:
    """``seg.pt`` for attempt 0, ``seg.restart<k>.pt`` for attempt k."""
    if checkpoint is None or attempt == 0:
        return checkpoint
    checkpoint = Path(checkpoint)
    return checkpoint.with_name(f"{checkpoint.stem}.restart{attempt}{checkpoint.suffix}")


def restart_checkpoints(checkpoint: Path) -> tuple[Path, ...]:
    """The restart checkpoints beside ``checkpoint`` that exist now (scratch a stale rerun must remove too)."""
    checkpoint = Path(checkpoint)
    return tuple(sorted(checkpoint.parent.glob(f"{checkpoint.stem}.restart*{checkpoint.suffix}")))


def reinitialise(net: nn.Module, seed: int) -> None:
    """Every parameter of ``net`` drawn again from PyTorch's default initialisation under ``seed``.

    Each module's own ``reset_parameters`` (what its constructor calls; BatchNorm also clears its running
    statistics) runs in ``modules()`` order, on a CPU copy (a GPU draws from another generator), whose weights
    are then loaded into ``net``; the global random state is restored afterwards. A parameter held by a module
    without ``reset_parameters`` would keep its trained value, so such a net is refused before anything is
    touched.
    """
    orphans = [f"{name}.{p_name}" if name else p_name for name, m in net.named_modules()
               if not hasattr(m, "reset_parameters") for p_name, _ in m.named_parameters(recurse=False)]
    if orphans:
        raise ValueError(f"cannot re-initialise {type(net).__name__}: {', '.join(orphans[:4])} belong to modules "
                         "without reset_parameters")
    fresh = copy.deepcopy(net).cpu()  # drawn on the CPU whatever the net's device: the same weights everywhere
    with torch.random.fork_rng(devices=[]):  # the caller's random state is left as it was
        torch.manual_seed(seed)
        for module in fresh.modules():
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()
    net.load_state_dict(fresh.state_dict())


def clean_view(dataset: Dataset) -> Dataset:
    """``dataset`` without augmentation or random crops (a shallow copy; the original is untouched)."""
    view = copy.copy(dataset)
    for attr in ("augment", "crop"):
        if hasattr(view, attr):
            setattr(view, attr, None)
    return view


def training_dice(net: nn.Module, dataset: Dataset, max_frames: int) -> dict[int, float]:
    """Dice per foreground class of ``net`` (a logits net) on at most ``max_frames`` evenly strided samples of
    ``dataset``'s clean view (the number of classes is the net's output channels). Leaves ``net`` in eval mode."""
    view = clean_view(dataset)
    n = len(view)
    if not n:
        return {}
    picks = sorted({int(i) for i in np.linspace(0, n - 1, num=min(n, max_frames))})
    predict = torch_seg_predictor(net)  # eval mode, the net's device
    n_classes = predict(view[picks[0]][0].numpy()[None])[0].shape[1]  # the net's output channels
    return evaluate_segmentation(predict, Subset(view, picks), n_classes).per_class


def _mean(per_class: dict[int, float]) -> float | None:
    defined = [v for v in per_class.values() if not math.isnan(v)]
    return round(float(np.mean(defined)), 4) if defined else None


def _worst(per_class: dict[int, float]) -> float:
    defined = [v for v in per_class.values() if not math.isnan(v)]
    return min(defined) if defined else float("nan")


def fit_with_restarts(model: nn.Module, loss_fn: LossFn, dataset: Dataset, cfg: TrainConfig, *,
                      checkpoint: Path | None = None, net: nn.Module | None = None,
                      parameters: Iterable[nn.Parameter] | None = None, policy: RestartPolicy = RestartPolicy(),
                      progress: Callable[[int, int, float], None] | None = None, name: str = "") -> RestartedTraining:
    """``fit(model, ...)``, tried again from a fresh initialisation while the net collapsed (module docstring).

    Args:
        model: What ``fit`` trains (the seg net, or a wrapper around it such as a student beside its teacher).
        loss_fn, dataset, cfg, checkpoint, progress: As for ``fit``; attempt k > 0 uses ``cfg.seed``'s
            ``attempt_seed``, a dataset generator seeded with it, and ``attempt_checkpoint(checkpoint, k)``.
        net: The logits network that is scored and re-initialised (default: ``model``).
        parameters: What to optimise (default: all of ``model``'s trainable parameters); kept across attempts
            (re-initialisation is in place).
        policy: Floor, restarts and frames scored.
        name: The row's name in log lines.

    Returns:
        The attempt kept (its losses; ``net`` holds its weights, in eval mode) and every attempt's record.
    """
    net = model if net is None else net
    params = list(parameters) if parameters is not None else None
    result: RestartedTraining | None = None
    best_state: dict | None = None
    best_score = -math.inf
    attempts: list[dict] = []
    for k in range(policy.max_restarts + 1):
        seed = attempt_seed(cfg.seed, k)
        if k > 0:
            reinitialise(net, seed)
            if getattr(dataset, "rng", None) is not None:
                dataset.rng = np.random.default_rng(seed)
                dataset.__dict__.pop("_rank_stream", None)  # under torchrun each rank moves the new one to its stream
        path = attempt_checkpoint(checkpoint, k)
        losses = fit(model, loss_fn, dataset, replace(cfg, seed=seed), checkpoint=path, parameters=params,
                     progress=progress)
        # rank 0 scores and decides for every rank (under torchrun the ranks must take the same branch)
        per_class = distributed.share_from_main(training_dice(net, dataset, policy.max_frames)
                                                if distributed.is_main() else None)
        worst = _worst(per_class)
        collapsed = not (worst >= policy.floor)  # NaN (no labelled frame) counts as collapsed
        attempts.append({"attempt": k, "seed": seed, "checkpoint": path.name if path is not None else None,
                         "train_dice": _mean(per_class),
                         "train_dice_per_class": {str(c): round(v, 4) for c, v in per_class.items()},
                         "collapsed": collapsed})
        score = -math.inf if math.isnan(worst) else worst
        if result is None or score > best_score:
            result, best_score = RestartedTraining(losses, attempts, kept=k), score
            best_state = copy.deepcopy(net.state_dict()) if policy.max_restarts > 0 else None
        if not collapsed:
            break
        if k < policy.max_restarts:
            log.warning("%s: training collapsed (lowest class Dice %.3f on its training frames, floor %.2f); "
                        "restart %d of %d with seed %d", name or "seg net", worst, policy.floor, k + 1,
                        policy.max_restarts, attempt_seed(cfg.seed, k + 1))
    assert result is not None
    if best_state is not None and result.kept != len(attempts) - 1:
        net.load_state_dict(best_state)
    result.attempts = attempts
    if result.collapsed:
        log.warning("%s: every training collapsed (%d attempts); kept attempt %d", name or "seg net",
                    len(attempts), result.kept)
    net.eval()
    return result
