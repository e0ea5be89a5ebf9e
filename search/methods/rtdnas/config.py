"""Typed configuration of the ``rtdnas`` method (RT-DNAS) and its presets ``smoke`` / ``default`` / ``paper``.

Data, clip geometry, widths, retraining and latency measurement reuse msnas-hw's config types and the
same values as msnas-hw's presets (20 x 64 x 48 clips, every width halved, C = 8 at scale 0 for the
paper's 16), so the rows of both methods compare on the same patients, clips and machine. What is
RT-DNAS's own:

* the space: the MS-NAS grid with **10 layers** x 4 scales, cells of 3 nodes relaxed by
  **input-operation pairs**, partial channels k = 4 (3/4 of the channels bypass each mixed op);
* the loss (eq. 2) ``L = L_a * (L_t / L_ub) + lambda * exp((L_t - L_ub) / tau)`` -- see
  ``search.methods.rtdnas.search`` for why L_t is scaled this way;
* the weight optimiser: SGD, momentum 0.9, lr 0.01 -> 0.001 (cosine), weight decay 3e-4;
* L_ub = 50 ms; constraint rounds: if the derived network misses 50 ms / 22 FPS when measured,
  L_ub is lowered in proportion and the search runs again (at most ``max_rounds``);
* the genetic path selection (``ga.GaConfig``: pool 10, population 20, 100 generations) and the
  N_l values of Table 1 (3, 5, 7) and of the Table 2 sweep;
* the random-architecture cloud of Fig. 2.

Default-preset deviations (2 shared CPU cores): as msnas-hw, the supernet is searched on proxy clips
(4 x 32 x 24, batch 1) for 40 + 40 steps with an architecture lr of 3e-2 (few steps), the Table 1 / 2
networks are retrained for 250 steps of 2 clips (as msnas-hw's rows); the cloud's 30 random networks are
timed untrained (latency only: a rug under Fig. 2) and the 4 slowest of them that meet the budget are retrained
with the full schedule (Dice comparable to the searched rows).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from app.realtime import REALTIME
# PICK_PATHS and PickConfig live with the cine rows (msnas-hw shares them); re-exported here for rtdnas' users
from search.train.cine_config import (PICK_PATHS, DataConfig, MeasureConfig, PickConfig,  # noqa: F401
                                      RetrainConfig, SupernetConfig, check_sampler, drop_default_retrain_options,
                                      drop_default_search_options)
from search.methods.rtdnas.ga import GaConfig

PRESETS = ("smoke", "default", "paper")
LATENCY_LOSSES = ("product", "penalty")
"""Forms of the architecture loss (``search.rtdnas_loss``): the paper's product first."""


@dataclass(frozen=True)
class RtSearchConfig:
    """One differentiable RT-DNAS search.

    Attributes:
        warmup_steps: Weight-only steps on the weight set.
        search_steps: Alternating (weight step, architecture step) pairs.
        batch_size: Clips per step.
        weight_lr: SGD lr at the start (cosine to ``weight_lr_min``).
        weight_lr_min: SGD lr at the end.
        momentum: SGD momentum.
        weight_decay: SGD weight decay.
        arch_lr: Adam lr of the architecture logits (DARTS: 3e-4).
        arch_betas: Adam betas (DARTS).
        arch_weight_decay: Adam weight decay of the architecture logits (DARTS).
        latency_ub_ms: L_ub of the first round (the paper: 50 ms).
        penalty_lambda: lambda of the exponential penalty ("large" in the paper).
        penalty_tau_ms: Temperature of the penalty's exponent, ms (the paper's ``exp(L_t - L_ub)``
            in ms is tau = 1).
        proxy_clip: ``(T, H, W)`` the supernet is searched on (None: the training clip).
        sampler: ``"darts"`` (the paper: every candidate) or ``"gdas"`` (one sampled (input, op) pair per cell
            node, straight-through; ``search.train.cine_config.SearchConfig``).
        gdas_tau: GDAS temperature, start -> end over the architecture steps.
        latency_loss: ``"product"`` (the paper's eq. 2, ``L_a * L_t / L_ub + penalty``) or ``"penalty"``
            (``L_a + penalty``: latency charged only near and past L_ub; ``search.rtdnas_loss``).
        free_op_dropout: P-DARTS' dropout on the weight-free candidates' outputs during the search (0: off).
        skip_edge_dropout: The same on the grid's skip edges (0: off).
    """

    warmup_steps: int = 160
    search_steps: int = 160
    batch_size: int = 2
    weight_lr: float = 0.01
    weight_lr_min: float = 0.001
    momentum: float = 0.9
    weight_decay: float = 3e-4
    arch_lr: float = 3e-4
    arch_betas: tuple[float, float] = (0.5, 0.999)
    arch_weight_decay: float = 1e-3
    latency_ub_ms: float = REALTIME.p95_ms
    penalty_lambda: float = 1.0
    penalty_tau_ms: float = 5.0
    proxy_clip: tuple[int, int, int] | None = None
    sampler: str = "darts"
    gdas_tau: tuple[float, float] = (10.0, 0.1)
    latency_loss: str = "product"
    free_op_dropout: float = 0.0
    skip_edge_dropout: float = 0.0

    def __post_init__(self) -> None:
        check_sampler(self.sampler, self.gdas_tau, self.free_op_dropout, self.skip_edge_dropout)
        if self.latency_loss not in LATENCY_LOSSES:
            raise ValueError(f"latency_loss must be one of {LATENCY_LOSSES} (the first is the paper's), "
                             f"got {self.latency_loss!r}")


@dataclass(frozen=True)
class RoundsConfig:
    """Automatic re-search when the measured network misses the constraints.

    Attributes:
        max_rounds: Searches at most (round 1 at ``RtSearchConfig.latency_ub_ms``).
        check_paths: N_l of the network whose measured latency / throughput decides the round.
        shrink_margin: Next L_ub = L_ub * (budget / measured) * this (< 1 leaves a margin).
        min_ub_ms: L_ub is never lowered below this.
    """

    max_rounds: int = 2
    check_paths: int = 1
    shrink_margin: float = 0.9
    min_ub_ms: float = 2.0


@dataclass(frozen=True)
class CloudConfig:
    """Randomly sampled architectures behind Fig. 2.

    Attributes:
        n_archs: Architectures sampled (the issue: >= 30).
        train_steps: Steps each is trained before its Dice is taken (0: latency only, no Dice).
        max_paths: N_l is drawn uniformly from 1..max_paths.
        full_train: This many cloud networks that meet the budget when measured (the slowest of them:
            the most capacity within it) are also retrained with the full ``retrain`` schedule, so that
            the searched networks are compared with random ones of equal training.
    """

    n_archs: int = 30
    train_steps: int = 20
    max_paths: int = 8
    full_train: int = 0


@dataclass(frozen=True)
class RtdnasConfig:
    """Everything one ``python -m search rtdnas`` run does.

    Attributes:
        preset: Preset name.
        seed: Master seed.
        width_divisor: Trained networks are this many times narrower than paper size.
        threads: torch threads for training.
        data, supernet, retrain, measure: As msnas-hw (``supernet.layers`` = 10 here).
        search: The differentiable search.
        rounds: Constraint rounds.
        ga: Genetic path selection.
        table1_paths: N_l of Table 1 (top-weight vs GA).
        sweep_paths: N_l of the Table 2 sweep (GA-selected, from the final round).
        cloud: The Fig. 2 cloud.
        cell_max_free_ops: At most this many weight-free ops (identity, max pool) per derived cell
            (P-DARTS' cap, ``search.core.decode``; issue 16: seed 0 of the default preset derived cells of
            identities and pools only, 2.4 k parameters, Dice .66 against seed 1's .83). None: the argmax
            pairs as they are (the paper). The search ignores it; the derived cells of every round follow it.
        pick: The final round's argmax cells, or the best of several candidates on validation patients.
    """

    preset: str = "default"
    seed: int = 0
    width_divisor: int = 2
    threads: int = 1
    data: DataConfig = field(default_factory=DataConfig)
    supernet: SupernetConfig = field(default_factory=lambda: SupernetConfig(layers=10))
    search: RtSearchConfig = field(default_factory=RtSearchConfig)
    rounds: RoundsConfig = field(default_factory=RoundsConfig)
    ga: GaConfig = field(default_factory=GaConfig)
    retrain: RetrainConfig = field(default_factory=RetrainConfig)
    measure: MeasureConfig = field(default_factory=MeasureConfig)
    table1_paths: tuple[int, ...] = (3, 5, 7)
    sweep_paths: tuple[int, ...] = (1, 2)
    cloud: CloudConfig = field(default_factory=CloudConfig)
    cell_max_free_ops: int | None = None
    pick: PickConfig = field(default_factory=PickConfig)

    def __post_init__(self) -> None:
        if self.pick.n_paths is not None and not 1 <= self.pick.n_paths <= self.ga.pool_size:
            raise ValueError(f"pick.n_paths = {self.pick.n_paths} outside 1..pool size {self.ga.pool_size}")
        if self.cell_max_free_ops is not None and self.cell_max_free_ops < 0:
            raise ValueError(f"cell_max_free_ops must be >= 0 or None, got {self.cell_max_free_ops}")
        for n in (*self.table1_paths, *self.sweep_paths, self.rounds.check_paths):
            if not 1 <= n <= self.ga.pool_size:
                raise ValueError(f"N_l = {n} outside 1..pool size {self.ga.pool_size}")

    @property
    def pick_paths(self) -> int:
        """N_l of the candidates' networks when picking cells (``pick.n_paths``, else Table 1's largest)."""
        return self.pick.n_paths or max(self.table1_paths)

    @property
    def trained_channels(self) -> int:
        return max(self.supernet.pc_k, self.supernet.channels // self.width_divisor)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict; ``data.source`` only when it is not the phantom (phantom configs are unchanged), and
        then as ``search.privacy.recorded_source`` (kind and a hash of the folder: run folders never name it)."""
        from search.privacy import recorded_config

        doc = asdict(self)
        drop_default_search_options(doc["search"])
        drop_default_retrain_options(doc["retrain"])
        if doc["cell_max_free_ops"] is None:  # configs (and run folders) made before the cap are unchanged
            del doc["cell_max_free_ops"]
        if self.pick.candidates == 1:  # nor are those made before the pick (one candidate: no pick at all)
            del doc["pick"]
        elif self.pick.paths == "heaviest":  # nor those of a pick before sampled gene pools
            del doc["pick"]["paths"]
        return recorded_config(doc)


def preset(name: str, *, seed: int | None = None) -> RtdnasConfig:
    """The named preset, optionally with another master seed.

    Raises:
        ValueError: unknown preset name.
    """
    if name == "smoke":
        cfg = RtdnasConfig(
            preset="smoke", width_divisor=4, threads=1,
            data=DataConfig(n_patients=5, n_test=1, clip_length=4, height=32, width=32, render_frames=8,
                            render_slices=2, render_shape=(64, 64)),
            supernet=SupernetConfig(layers=4, scales=3, channels=16),
            search=RtSearchConfig(warmup_steps=2, search_steps=2, batch_size=1, arch_lr=6e-3, proxy_clip=(2, 32, 32)),
            rounds=RoundsConfig(max_rounds=2),
            ga=GaConfig(pool_size=6, population=8, generations=10),
            retrain=RetrainConfig(steps=2, batch_size=1, eval_every=2),
            measure=MeasureConfig(warmup=1, repeats=2, measure_paper_size=False, useful_dice=0.0),
            table1_paths=(2, 3), sweep_paths=(1,),
            cloud=CloudConfig(n_archs=3, train_steps=0, max_paths=3, full_train=1),
        )
    elif name == "default":
        # Sized to finish in ~70 min on 2 CPU cores shared with two other long searches (load 8-10):
        # arch lr 3e-2 (as msnas-hw's default) so that 40 Adam steps can move a logit by up to ~1.2 (at 6e-3 the
        # architecture barely leaves uniform); retraining 250 steps of 2 clips as msnas-hw's rows (Table 2 compares
        # equal training). Cloud: 30 random nets timed untrained (10 training steps + evaluation took ~100 s a net
        # and left Dice 0: no information), and the 4 slowest that meet the budget retrained with the full schedule.
        cfg = RtdnasConfig(
            preset="default",
            search=RtSearchConfig(warmup_steps=40, search_steps=40, batch_size=1, arch_lr=3e-2, proxy_clip=(4, 32, 24)),
            retrain=RetrainConfig(steps=250, batch_size=2, eval_every=50, seg_restarts=2),
            measure=MeasureConfig(warmup=2, repeats=7, measure_paper_size=False),
            cloud=CloudConfig(n_archs=30, train_steps=0, max_paths=8, full_train=4),
        )
    elif name == "paper":
        cfg = RtdnasConfig(
            preset="paper", width_divisor=1, threads=2,
            data=DataConfig(n_patients=100, n_test=20, n_val=10, clip_length=20, height=128, width=112),
            search=RtSearchConfig(warmup_steps=20 * 500, search_steps=20 * 500, batch_size=2, penalty_tau_ms=1.0,
                                  penalty_lambda=10.0),
            rounds=RoundsConfig(max_rounds=4),
            retrain=RetrainConfig(steps=60 * 500, batch_size=2, eval_every=500, seg_restarts=2),
            measure=MeasureConfig(warmup=10, repeats=50),
            sweep_paths=(6, 7, 8),
            cloud=CloudConfig(n_archs=50, train_steps=2000, max_paths=8, full_train=5),
        )
    else:
        raise ValueError(f"unknown preset {name!r}; choose one of {PRESETS}")
    return replace(cfg, seed=cfg.seed if seed is None else seed)
