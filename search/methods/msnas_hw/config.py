"""Typed configuration of the ``msnas-hw`` method and its three presets.

A preset is a value of ``MsnasHwConfig`` (not a subclass): ``smoke`` (end to end in well under a
minute, used by the tests), ``default`` (sized for a quiet 2-core CPU, about an hour for the
whole Table 2: two searches, seven retrainings, evaluation, export, latency) and ``paper`` (the
schedule of the paper, for a GPU). Parsed once at the CLI edge and passed down; nothing below reads
argparse.

Why the default preset looks the way it does (2 shared CPU cores, about an hour for everything):
    * Training clips of 20 x 64 x 48 instead of 20 x 128 x 112: every frame is kept (the temporal
      context is what the 3D nets are about) but each frame is resized by the deployed preprocess
      (``app.engine.preprocess``) to 64 x 48, about 4.7x fewer voxels. 48 (not 56) so that the
      U-net 2D (D5) still pools four times without remainders.
    * Every network is half as wide as its paper configuration (``width_divisor`` 2): U-net 2D
      (D5, IF32) for (D5, IF64), ..., supernet C = 8 at scale 0 for C = 16. Architectures (depth,
      searched cells and paths) are unchanged; so are the loss, lambda, the 1:1 split, PC k = 4,
      L = 8 x 4 scales and the warm-up-then-alternate schedule.
    * Latency is measured twice: the trained (shipped) model at its own input, and the paper-sized
      architecture (full widths) at the paper's 20 x 128 x 112 clip. Weights do not change the cost,
      so the second column compares with the paper's Table 2 even though its Dice comes from the
      half-width twin.
    * The supernet (still L = 8 x 4 scales, C = 8) is searched on a proxy task: clips of 4 x 32 x 24,
      batch 1. A supernet step at 20 x 64 x 48 costs minutes here (thousands of small 3D ops,
      memory-bound on CPU); the derived cells and paths do not depend on the input size.
    * Short schedules counted in optimiser steps (search: 40 weight-only + 120 alternating steps;
      retraining: 250 steps of 2 clips per row) instead of the paper's 30 + 30 search epochs over
      ACDC. With ~100x fewer architecture steps the architecture learning rate is 3e-2 instead of
      DARTS' 3e-4: Adam moves a logit by at most ~lr per step, so 120 steps at 3e-2 allow ~3.6
      (a clear preference); a first run with 40 steps at 6e-3 left beta at 0.39 vs uniform 0.33.
    * lambda = 1e-3 instead of the paper's 1e-4 (LAT in ms in both). Measured at the end of a
      40-step search: |d(1e-4 LAT)/d arch| = 9e-4 against |d CE / d arch| = 0.02-0.05 per batch, so
      at 1e-4 the latency gradient is ~5% of the cross-entropy noise and over ~100 steps cannot
      steer the search (the paper's thousands of steps average the noise away). At 1e-3 it is ~50%.
      The paper preset keeps 1e-4.
    * One torch thread: on this shared 2-core machine two OpenMP threads under load were 10x
      slower than one (spin-waiting), measured while sizing this preset.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from search.train.cine_config import (
    ROW_KINDS,
    CineRowsConfig,
    DataConfig,
    MeasureConfig,
    PickConfig,
    RetrainConfig,
    RowSpec,
    SearchConfig,
    SearchRun,
    SupernetConfig,
)

PRESETS = ("smoke", "default", "paper")

__all__ = [
    "PRESETS", "ROW_KINDS", "CineRowsConfig", "DataConfig", "MeasureConfig", "MsnasHwConfig", "PickConfig",
    "RetrainConfig", "RowSpec", "SearchConfig", "SearchRun", "SupernetConfig", "paper_rows", "preset",
]


def paper_rows() -> tuple[RowSpec, ...]:
    """The seven rows of the paper's Table 2, in its order."""
    return (
        RowSpec("U-net 2D (D5, IF64)", "unet2d_d5_if64", "unet2d", depth=5, initial_filters=64),
        RowSpec("U-net 2D (D3, IF16)", "unet2d_d3_if16", "unet2d", depth=3, initial_filters=16),
        RowSpec("U-net 3D (D4, IF32)", "unet3d_d4_if32", "unet3d", depth=4, initial_filters=32),
        RowSpec("U-net 3D (D3, IF16)", "unet3d_d3_if16", "unet3d", depth=3, initial_filters=16),
        RowSpec("MS-NAS 3D (n=4)", "msnas_n4", "msnas", n_paths=4, latency_aware=False, search="msnas"),
        RowSpec("ours (n=2)", "ours_n2", "msnas", n_paths=2, latency_aware=True, search="hw_n2"),
        RowSpec("ours (n=1)", "ours_n1", "msnas", n_paths=1, latency_aware=True, search="hw_n1"),
    )


@dataclass(frozen=True)
class MsnasHwConfig(CineRowsConfig):
    """Everything one ``python -m search msnas-hw`` run does (``CineRowsConfig`` with Table 2's rows).

    Attributes:
        rows: Table 2 rows, in the paper's order (``with_pick`` appends ours n=1 picked).
        pick: The candidate pick of the picked row (``with_pick``; off: ``candidates = 1``, the paper). Its
            candidates are ours n=1's argmax cells on its top path and ``K - 1`` cell sets drawn from the search's
            distribution (``search.core.decode.sample_cell``, edge then op) on the top path (``paths``
            ``"heaviest"``), on a path drawn from the path distribution (``"sampled"``,
            ``search.core.decode.sample_paths``) or both (2K - 1 candidates); ``n_paths`` is not used (one path).
        pick_latency_ratio: A candidate is trained only when its lookup-table latency is at most this share
            of MS-NAS n=4's (the paper's target for ours n=1 vs MS-NAS: 0.3x), or at most the argmax's own when
            the search's argmax is slower than that (``experiment.BOUND_RULE``).
    """

    rows: tuple[RowSpec, ...] = field(default_factory=paper_rows)
    pick: PickConfig = field(default_factory=PickConfig)
    pick_latency_ratio: float = 0.3

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 < self.pick_latency_ratio:
            raise ValueError(f"pick_latency_ratio must be > 0, got {self.pick_latency_ratio}")
        picked = [r for r in self.rows if r.picked]
        if picked and self.pick.candidates < 2:
            raise ValueError(f"row {picked[0].key!r} is picked, but the pick is off (candidates = 1)")
        if any(r.kind != "msnas" or r.n_paths != 1 or not r.latency_aware for r in picked):
            raise ValueError("only a latency-aware one-path searched row (ours n=1) can be picked")

    def with_pick(self, pick: PickConfig) -> "MsnasHwConfig":
        """This configuration with ``pick`` and the row ``ours (n=1, picked)`` (key ``ours_n1_pick``) after the
        others: it decodes the same search as ours n=1, so Table 2 holds the argmax and the pick side by side."""
        base = next(r for r in self.rows if r.key == "ours_n1")
        rows = tuple(r for r in self.rows if not r.picked) + (
            replace(base, name="ours (n=1, picked)", key="ours_n1_pick", picked=True),)
        return replace(self, pick=pick, rows=rows)

    def to_dict(self) -> dict:
        """``CineRowsConfig.to_dict``; the pick only when it is on (configs without it are unchanged)."""
        doc = super().to_dict()
        if self.pick.candidates == 1:
            doc.pop("pick", None)
            doc.pop("pick_latency_ratio", None)
        return doc


def _default_rows_sharing_search() -> tuple[RowSpec, ...]:
    """Default preset: ours n=1 and n=2 decode the one latency-aware search (n = 2 in its term)."""
    rows = list(paper_rows())
    rows[-1] = replace(rows[-1], search="hw_n2")
    return tuple(rows)


def preset(name: str, *, seed: int | None = None) -> MsnasHwConfig:
    """The named preset, optionally with another master seed.

    Raises:
        ValueError: unknown preset name.
    """
    if name == "smoke":
        cfg = MsnasHwConfig(
            preset="smoke",
            width_divisor=4,
            threads=1,
            data=DataConfig(n_patients=5, n_test=1, clip_length=4, height=32, width=32, render_frames=8,
                            render_slices=2, render_shape=(64, 64)),
            supernet=SupernetConfig(layers=3, scales=3, channels=16),
            search=SearchConfig(warmup_steps=2, search_steps=2, batch_size=1, proxy_clip=(2, 32, 32)),
            retrain=RetrainConfig(steps=2, batch_size=1, eval_every=2),
            measure=MeasureConfig(warmup=1, repeats=2, measure_paper_size=False, useful_dice=0.0),
            rows=_default_rows_sharing_search(),
        )
    elif name == "default":
        cfg = MsnasHwConfig(
            preset="default",
            threads=1,
            search=SearchConfig(warmup_steps=40, search_steps=120, batch_size=1, arch_lr=3e-2, latency_lambda=1e-3,
                                proxy_clip=(4, 32, 24)),
            retrain=RetrainConfig(steps=250, batch_size=2, eval_every=50, seg_restarts=2),
            rows=_default_rows_sharing_search(),
        )
    elif name == "paper":
        cfg = MsnasHwConfig(
            preset="paper",
            width_divisor=1,
            data=DataConfig(n_patients=100, n_test=20, n_val=10, clip_length=20, height=128, width=112),
            search=SearchConfig(warmup_steps=30 * 500, search_steps=30 * 500, batch_size=2),
            retrain=RetrainConfig(steps=60 * 500, batch_size=2, eval_every=500, seg_restarts=2),
            measure=MeasureConfig(warmup=10, repeats=50),
            searches=(
                SearchRun("msnas", latency_aware=False, n_paths=4),
                SearchRun("hw_n2", latency_aware=True, n_paths=2),
                SearchRun("hw_n1", latency_aware=True, n_paths=1),
            ),
        )
    else:
        raise ValueError(f"unknown preset {name!r}; choose one of {PRESETS}")
    return replace(cfg, seed=cfg.seed if seed is None else seed)
