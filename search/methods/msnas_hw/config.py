"""Typed configuration of the ``msnas-hw`` method and its three presets.

A preset is a value of ``MsnasHwConfig`` (not a subclass): ``smoke`` (end to end in well under a
minute, used by the tests), ``default`` (sized for a quiet 2-core CPU, about an hour for the
whole Table 2: two searches, seven retrainings, evaluation, export, latency) and ``paper`` (the
schedule of seed 001, for a GPU). Parsed once at the CLI edge and passed down; nothing below reads
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

from dataclasses import asdict, dataclass, field, replace
from typing import Any

PRESETS = ("smoke", "default", "paper")
ROW_KINDS = ("unet2d", "unet3d", "msnas")


@dataclass(frozen=True)
class DataConfig:
    """Which phantom patients, and the clip geometry.

    Attributes:
        n_patients: Phantom cine patients rendered (each a stack of short-axis slices over time).
        n_test: Held-out patients, used only for the final evaluation.
        n_val: Patients held out of retraining to pick the best checkpoint (0: last checkpoint).
        clip_length: Frames T per clip (the paper: 20).
        height: Clip height after the deployed resize (the paper: 128).
        width: Clip width after the deployed resize (the paper: 112).
        seed: Seed of the phantom renderer and of the patient split.
        render_frames: Frames per cardiac cycle rendered per patient.
        render_slices: Short-axis slices rendered per patient (base to apex).
        render_shape: ``(H, W)`` the phantom is rendered at (the clips are resized from it).
    """

    n_patients: int = 16
    n_test: int = 4
    n_val: int = 0
    clip_length: int = 20
    height: int = 64
    width: int = 48
    seed: int = 2020
    render_frames: int = 20
    render_slices: int = 8
    render_shape: tuple[int, int] = (128, 112)

    def __post_init__(self) -> None:
        if self.n_patients - self.n_test - self.n_val < 2:
            raise ValueError("need at least 2 training patients (one weight, one architecture)")
        if self.height % 16 or self.width % 16:
            raise ValueError(f"clip height/width must be divisible by 16 (U-net 2D D5), got {self.height}x{self.width}")


@dataclass(frozen=True)
class SupernetConfig:
    """The layer x scale search space (paper: L = 8, 4 scales, M = 3 nodes, k = 4).

    Attributes:
        layers: Layers L of the network-level DAG.
        scales: Scales; scale s has resolution / 2^s.
        channels: Channels at scale 0 of the paper-sized network (doubled per scale).
        nodes: Intermediate nodes M per cell.
        pc_k: Partial-channel divisor: 1/k of the channels go through each mixed op.
    """

    layers: int = 8
    scales: int = 4
    channels: int = 16
    nodes: int = 3
    pc_k: int = 4


@dataclass(frozen=True)
class SearchConfig:
    """One differentiable search (first-order DARTS schedule).

    Attributes:
        warmup_steps: Weight-only steps on the weight set (paper: 30 epochs).
        search_steps: Alternating (weight step, architecture step) pairs (paper: 30 epochs).
        batch_size: Clips per step.
        weight_lr: Adam learning rate of the supernet weights (cosine to 0).
        weight_decay: Weight decay of the supernet weights.
        arch_lr: Adam learning rate of alpha, gamma, beta (DARTS: 3e-4).
        arch_betas: Adam betas of the architecture optimiser (DARTS: (0.5, 0.999)).
        arch_weight_decay: Weight decay of the architecture parameters (DARTS: 1e-3).
        latency_lambda: lambda of ``CE + lambda * LAT`` with LAT in milliseconds (paper: 1e-4).
        gumbel_tau: Temperature of the Gumbel-softmax samples in the latency term.
        proxy_clip: ``(T, H, W)`` of the clips the supernet is searched on (a proxy task, as DARTS
            searches on small inputs); None: the training clip. The derived cells and paths do not
            depend on the input size.
    """

    warmup_steps: int = 160
    search_steps: int = 160
    batch_size: int = 2
    weight_lr: float = 3e-3
    weight_decay: float = 3e-4
    arch_lr: float = 3e-4
    arch_betas: tuple[float, float] = (0.5, 0.999)
    arch_weight_decay: float = 1e-3
    latency_lambda: float = 1e-4
    gumbel_tau: float = 1.0
    proxy_clip: tuple[int, int, int] | None = None


@dataclass(frozen=True)
class RetrainConfig:
    """Training every Table 2 row from scratch on all training patients.

    Attributes:
        steps: Optimiser steps per row.
        batch_size: Clips per step.
        lr: Adam learning rate (cosine to 0).
        weight_decay: Adam weight decay.
        eval_every: Steps between checkpoints (and validation when ``DataConfig.n_val`` > 0).
    """

    steps: int = 240
    batch_size: int = 2
    lr: float = 3e-3
    weight_decay: float = 1e-4
    eval_every: int = 60


@dataclass(frozen=True)
class RowSpec:
    """One row of Table 2.

    Attributes:
        name: Row label as in the paper (``"U-net 3D (D3, IF16)"``).
        key: Short identifier used for files (``"unet3d_d3_if16"``).
        kind: ``"unet2d"``, ``"unet3d"`` or ``"msnas"`` (a searched fused multi-path network).
        depth: U-net depth D (unused for ``msnas``).
        initial_filters: U-net initial filters IF at paper size (unused for ``msnas``).
        n_paths: ``msnas``: paths fused (and the n of the top-n latency term).
        latency_aware: ``msnas``: whether the search had the latency term (False: MS-NAS).
        search: ``msnas``: which search the row decodes from (rows may share one).
    """

    name: str
    key: str
    kind: str
    depth: int = 0
    initial_filters: int = 0
    n_paths: int = 0
    latency_aware: bool = False
    search: str = ""

    def __post_init__(self) -> None:
        if self.kind not in ROW_KINDS:
            raise ValueError(f"row kind must be one of {ROW_KINDS}, got {self.kind!r}")


@dataclass(frozen=True)
class SearchRun:
    """One search of the run: its latency setting and the n of its top-n latency term.

    Attributes:
        key: Identifier rows refer to (``RowSpec.search``).
        latency_aware: Whether ``lambda * LAT`` is in the loss (False: plain MS-NAS 3D).
        n_paths: n of the top-n longest paths whose latency is penalised.
    """

    key: str
    latency_aware: bool
    n_paths: int


@dataclass(frozen=True)
class MeasureConfig:
    """Latency measurement with onnxruntime (deployed session settings, one process).

    Attributes:
        warmup: Discarded runs per model.
        repeats: Timed runs per model (interleaved round-robin across the rows).
        paper_shape: The paper's clip ``(T, H, W)``; paper-sized architectures are timed at it.
        measure_paper_size: Whether to time the paper-sized architectures at ``paper_shape``.
        realtime_latency_ms: Latency budget (the paper: 50 ms).
        realtime_fps: Throughput budget (the paper: 22 FPS).
        useful_dice: Smallest mean Dice worth shipping (the paper's weakest row: 0.690).
    """

    warmup: int = 2
    repeats: int = 7
    paper_shape: tuple[int, int, int] = (20, 128, 112)
    measure_paper_size: bool = True
    realtime_latency_ms: float = 50.0
    realtime_fps: float = 22.0
    useful_dice: float = 0.70


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
class MsnasHwConfig:
    """Everything one ``python -m search msnas-hw`` run does.

    Attributes:
        preset: Name of the preset this config came from.
        seed: Master seed (torch generators, Gumbel noise, batch order).
        width_divisor: Every trained network is this many times narrower than its paper size.
        threads: torch intra-op threads for training.
        data, supernet, search, retrain, measure: See the classes.
        searches: The searches to run (rows decode from them by key).
        rows: Table 2 rows, in the paper's order.
    """

    preset: str = "default"
    seed: int = 0
    width_divisor: int = 2
    threads: int = 2
    data: DataConfig = field(default_factory=DataConfig)
    supernet: SupernetConfig = field(default_factory=SupernetConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    retrain: RetrainConfig = field(default_factory=RetrainConfig)
    measure: MeasureConfig = field(default_factory=MeasureConfig)
    searches: tuple[SearchRun, ...] = (
        SearchRun("msnas", latency_aware=False, n_paths=4),
        SearchRun("hw_n2", latency_aware=True, n_paths=2),
    )
    rows: tuple[RowSpec, ...] = field(default_factory=paper_rows)

    def __post_init__(self) -> None:
        known = {s.key for s in self.searches}
        for row in self.rows:
            if row.kind == "msnas" and row.search not in known:
                raise ValueError(f"row {row.name!r} decodes search {row.search!r}, which is not configured ({sorted(known)})")
        if self.width_divisor < 1:
            raise ValueError(f"width_divisor must be >= 1, got {self.width_divisor}")

    @property
    def trained_channels(self) -> int:
        """Supernet / derived-network channels at scale 0 of the trained networks."""
        return max(self.supernet.pc_k, self.supernet.channels // self.width_divisor)

    def trained_filters(self, row: RowSpec) -> int:
        """U-net initial filters of a row's trained network."""
        return max(2, row.initial_filters // self.width_divisor)

    def search_for(self, row: RowSpec) -> SearchRun:
        return next(s for s in self.searches if s.key == row.search)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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
            retrain=RetrainConfig(steps=250, batch_size=2, eval_every=50),
            rows=_default_rows_sharing_search(),
        )
    elif name == "paper":
        cfg = MsnasHwConfig(
            preset="paper",
            width_divisor=1,
            data=DataConfig(n_patients=100, n_test=20, n_val=10, clip_length=20, height=128, width=112),
            search=SearchConfig(warmup_steps=30 * 500, search_steps=30 * 500, batch_size=2),
            retrain=RetrainConfig(steps=60 * 500, batch_size=2, eval_every=500),
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
