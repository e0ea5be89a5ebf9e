"""Typed configuration of the ``segqc-hw`` method and its three presets.

A preset is a value of ``SegQcConfig`` (not a subclass): ``smoke`` (end to end in well under a minute,
used by the tests), ``default`` (sized for a quiet 2-core CPU, about 30-45 minutes for the whole
Table II: two searches, four retrainings, evaluation, export, latency) and ``paper`` (the schedule of
the paper, for a GPU). Parsed once at the CLI edge and passed down; nothing below reads argparse.

Why the default preset looks the way it does (2 CPU cores, shared with other jobs when it was run):
    * 96x96 training resolution instead of the paper's 256x256: one supernet seg + QC training step
      on 8 frames costs ~1.0 s here at 96x96 against ~1.8 s at 128x128 (measured, 2 threads); the
      phantom myocardium (8-15 px thick at 256) is still 3-6 px thick. Latency and FLOPs for
      Table II are *still measured at 256x256* on the same derived architectures (weights do not
      change the cost), so the latency columns compare with the paper; the shipped models run at the
      resolution they were trained at.
    * 4 labelled frames per patient, spread over the cycle (paper: 30) over the same 40/40/20 patient
      protocol: the patients, not the frames, carry the variation in quality that the QC network
      must learn. Of S2, 10 patients validate during retraining (paper: "60 train, the rest validate").
    * 2 warm-up + 4 alternating search epochs (paper: 40 + 40), one search seed (paper: five). With
      ten times fewer architecture steps, the architecture learning rate is ten times DARTS' (3e-3)
      so the alphas can move about as far as in the paper's schedule (Adam steps are ~lr each).
    * Retraining: 14 seg epochs on S1 and 8 QC epochs on S2 (train part) with the seg net frozen.
    * The DARTS mixture (``sampler = "darts"``), which the shipped pairs were searched with.
      ``--sampler gdas`` (one sampled candidate per edge, issue 16) makes a search iteration 3.6x
      cheaper (``bench/search_step_bench.py``, B-mode, 96x96, batch 8), but measured on B-mode with
      336 architecture steps at arch lr 1e-2 (``--search-epochs 2 16`` and ``12 16``) the alphas'
      entropy still fell only 2.3 % and 1.5 % (DARTS: 0.6 % over 84 steps): during the search the
      supernet predicts background (CE ~0.4, QC MSE 0.0000 against a constant Dice target), so the
      architecture gradient carries no signal. Cheaper steps alone do not make this search converge,
      so the default keeps the sampler its shipped models came from.
    * One extra hardware-aware search with lambda2 = 0.01 (ten times the paper's), reported beside
      Table II: with a tenth of the paper's architecture steps, the paper's weight barely moves the
      expected latency (28.1 -> 27.9 ms over the alternating epochs of the first default run).
    Measured here with the two cores shared with other searches (load average 3-9): about an hour of
    running (three searches of 12-16 min, five retrainings of 1-4 min, Table II + export ~2 min) plus
    ~12 min of phantom rendering and latency-table profiling on the first run.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from search.train.restarts import RestartPolicy

PRESETS = ("smoke", "default", "paper")


@dataclass(frozen=True)
class AugmentConfig:
    """Random affine augmentation (the paper: translation, rotation, scale).

    Attributes:
        max_shift: Largest translation as a fraction of the image side.
        max_rotation_deg: Largest rotation in degrees (either direction).
        scale_range: Smallest and largest isotropic scale factor.
    """

    max_shift: float = 0.08
    max_rotation_deg: float = 12.0
    scale_range: tuple[float, float] = (0.9, 1.1)


@dataclass(frozen=True)
class DataConfig:
    """Which phantom patients, how many frames, at what resolution.

    Attributes:
        n_s1: Patients that train the segmentation net during the search (S1).
        n_s2: Patients that train the QC net during the search, seg net frozen (S2).
        n_test: Held-out patients, never seen before the final evaluation.
        frames_per_case: Labelled frames sampled from each patient's sequence.
        resolution: Side of the square network input (pixels).
        phantom_seed: Seed of the phantom dataset (patients are deterministic per seed).
        n_qc_val: Patients of S2 kept for validation during retraining (the rest of S2 trains QC).
        source: The ``--data`` spec (``search.data``): ``"phantom"`` or ``"KIND:DIR"``; with a dataset the
            counts above give the proportions of its patients.
        task: ``"contrast"`` (contrast echo, myocardium: the paper's task) or ``"bmode"`` (B-mode apical
            four-chamber echo, LV / MYO / LA: 4 classes); see ``search.methods.segqc_hw.tasks``. It
            decides the phantom variant, the labels, the model ids and the run folders.
    """

    n_s1: int = 40
    n_s2: int = 40
    n_test: int = 20
    frames_per_case: int = 30
    resolution: int = 256
    phantom_seed: int = 0
    n_qc_val: int = 20
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    source: str = "phantom"
    task: str = "contrast"

    def __post_init__(self):
        from search.methods.segqc_hw.tasks import echo_task

        echo_task(self.task)  # ValueError naming the tasks


@dataclass(frozen=True)
class SpaceConfig:
    """Search spaces of the two supernets (the segqc-hw paper, Sec. III-B/C).

    Attributes:
        seg_init_filters: Channels after the segmentation stem (paper: 4).
        seg_depth: Number of Down cells (= number of Up cells) in the U.
        qc_init_filters: Channels after the QC stem (paper: 8).
        qc_stages: Number of (Contracting, Non-scaling) cell pairs in the QC net.
        nodes: Intermediate nodes per cell (paper: 3).
        droppable_inputs: The segmentation cells' input edges may also be ``zero`` (not in the paper; see
            ``search.core.supernets.nasunet``): with 2 nodes and 8 initial filters a residual U-net(8) is then a
            point of the space, so a search can find the handcrafted baseline or something cheaper.
        keep_prev: With ``droppable_inputs``, only the prev-prev input may be dropped: every cell reads the level
            next to it (``--droppable-inputs prev-prev``; without it an Up cell may read only its skip).
        stem_convs: 3x3 conv-BN-ReLU layers of the segmentation stem, all at full resolution (paper: 1; a U-net's
            first level has 2, and the stem's output is also the last Up cell's skip).
        seg_space: Which segmentation space is searched (issue 16). ``"cells"``: the paper's NAS-Unet cells (every
            field above). ``"skeleton"``: the U-net skeleton space (``search.core.supernets.unet_skeleton``): per
            level a width from ``skeleton_widths`` and a block from ``skeleton_blocks`` (dense or separable 3x3
            convs, one or two per block), FBNet-style with FBNetV2 channel masks; ``seg_init_filters``,
            ``seg_depth``, ``droppable_inputs``, ``keep_prev`` and ``stem_convs`` are then unused. The QC net is
            the paper's cell space either way (``qc_*``, ``nodes``).
        skeleton_widths: Candidate widths per level of the skeleton space, full resolution first (default: up to
            U-net(16)'s first four levels, down to half of them).
        skeleton_blocks: Candidate block tokens (op letter + convs: ``c2`` is U-net's block). Dense only by
            default: with the separable ``s2``/``s1`` too, the GDAS warm-up of the supernet collapses to
            background (``bench/skeleton_warmup.py``: Dice(S1) .126 at epoch 4, .009 at epoch 8; dense only: .460
            and rising), and the probe's separable U-nets lost .04-.09 Dice at equal latency.
        input_stride: 2: the skeleton U runs at half resolution behind a stride-2 entry conv and its logits are
            upsampled x2 (the hand-designed probe ``/2:16c2-32c2-64c2-128c2`` reached U-net(16)'s contrast Dice
            at 0.27x its latency, ``docs/bench/size_table_contrast_skeletons_e50.md``); 1: full resolution.
            A choice of the run, not searched.
    """

    seg_init_filters: int = 4
    seg_depth: int = 4
    qc_init_filters: int = 8
    qc_stages: int = 4
    nodes: int = 3
    droppable_inputs: bool = False
    keep_prev: bool = False
    stem_convs: int = 1
    seg_space: str = "cells"
    skeleton_widths: tuple[tuple[int, ...], ...] = ((8, 12, 16), (16, 24, 32), (32, 48, 64), (64, 96, 128))
    skeleton_blocks: tuple[str, ...] = ("c2", "c1")
    input_stride: int = 2

    def __post_init__(self):
        if self.stem_convs < 1:
            raise ValueError(f"stem_convs must be at least 1, got {self.stem_convs}")
        if self.seg_space not in SEG_SPACES:
            raise ValueError(f"unknown segmentation space {self.seg_space!r}; choose one of {', '.join(SEG_SPACES)}")
        object.__setattr__(self, "skeleton_widths", tuple(tuple(int(w) for w in ws) for ws in self.skeleton_widths))
        object.__setattr__(self, "skeleton_blocks", tuple(self.skeleton_blocks))
        if self.seg_space == "skeleton":
            self.skeleton_choices(2)  # ValueError on widths, blocks or stride the space cannot hold

    def skeleton_choices(self, n_classes: int):
        """The skeleton space (``search.core.supernets.unet_skeleton.SkeletonChoices``) for ``n_classes`` classes."""
        from search.core.supernets.unet_skeleton import SkeletonChoices

        return SkeletonChoices(self.skeleton_widths, self.skeleton_blocks, self.input_stride, n_classes=n_classes)


SEG_SPACES = ("cells", "skeleton")
"""``SpaceConfig.seg_space`` choices."""


SKELETON_FIELDS = ("seg_space", "skeleton_widths", "skeleton_blocks", "input_stride")
"""``SpaceConfig`` fields of the skeleton space (left out of a cell-space run's recorded config)."""
CELL_SEG_FIELDS = ("seg_init_filters", "seg_depth", "droppable_inputs", "keep_prev", "stem_convs")
"""``SpaceConfig`` fields only the cell space's U reads (left out of a skeleton run's recorded config)."""

INPUT_COSTS = ("always", "by_use")
"""``SearchConfig.input_cost`` choices."""


@dataclass(frozen=True)
class SearchConfig:
    """The joint first-order search.

    Attributes:
        warmup_epochs: Epochs that update weights only.
        alternate_epochs: Epochs that alternate one weight step and one architecture step.
        batch_size: Images per step.
        weight_lr: Adam learning rate of the network weights.
        weight_decay: Weight decay of the network weights.
        arch_lr: Adam learning rate of the architecture parameters (DARTS: 3e-4).
        arch_betas: Adam betas of the architecture parameters (DARTS: 0.5, 0.999).
        arch_weight_decay: Weight decay of the architecture parameters (DARTS: 1e-3).
        lambda1: Weight of the QC mean-squared error (paper: 1).
        lambda2: Weight of the expected latency in ms (paper: 0.001; 0 = no latency term).
        gumbel_tau: Gumbel-softmax temperature for the latency expectation (either sampler).
        sampler: How the forward passes of the search weigh each edge's candidates (issue 16).
            ``"darts"``: every candidate runs, summed with ``softmax(alpha)`` (DARTS / the paper; the
            cost of a step grows with the number of candidates). ``"gdas"``: per edge one candidate
            drawn by a hard Gumbel-softmax sample runs, straight-through so the alphas still get a
            gradient (GDAS, Dong & Yang 2019), in every step of the search (weight steps, architecture
            steps, the S2 QC steps). The latency term is the same Gumbel-softmax expectation as with
            ``"darts"``; the derived genotype is the argmax of the alphas either way.
        gdas_tau: ``(start, end)`` temperature of the GDAS samples, annealed linearly over the
            architecture steps (GDAS: 10 -> 0.1). Unused with ``"darts"``.
        seg_dice_weight: Soft-Dice term added to eq. 3's segmentation CE. 0 in the ``paper`` preset
            (eq. 3 exactly). 1 in the short presets: the myocardium is ~3% of the pixels and with a
            few epochs plain CE collapses to background (measured, default preset: after 2 warm-up
            epochs CE 0.12 with every frame's predicted and true Dice 0, so the QC target is constant
            and the architecture gradient carries no segmentation signal).
        warmup_min_dice: The warm-up goes on past ``warmup_epochs`` until the supernet's mean Dice on
            its S1 training batches (the epoch's mean of the QC target) reaches this, at most
            ``warmup_max_epochs`` warm-up epochs in all (issue 16: with the default preset's 2 warm-up
            epochs the B-mode supernet still predicted background everywhere, Dice 0 on every frame, so
            the QC target was constant and the architecture steps followed noise). 0 = a fixed warm-up.
        warmup_max_epochs: Cap on the warm-up epochs when ``warmup_min_dice`` > 0 (a supernet that never
            gets there is searched anyway and its record says so: ``warmup_reached_dice`` false).
        input_cost: How the latency term prices the fixed alignment of a cell input that may be dropped
            (``SpaceConfig.droppable_inputs``). ``"always"``: as if always read (a derived cell that drops
            the input does not build it, so the search under-sees the saving). ``"by_use"``: by the
            probability that some edge reads it, ``1 - prod_e w_e[zero]``
            (``estimators.AdditiveLatency(inputs_by_use=True)``). The same in the paper's space.
        latency_budget_ms: > 0: the latency term charges only the expected latency (seg + QC, lookup-table ms at
            the profiled input) above this budget, ``lambda2 * max(0, LAT - budget)``, so a search pushes latency
            down to the budget and, under it, chooses by accuracy alone (a constrained search, as RT-DNAS's
            ``L_ub``, instead of a price on every millisecond). 0 (default): eq. 3's ``lambda2 * LAT``. Unused
            without a latency term (``lambda2`` 0).
        sandwich: The sandwich rule (slimmable networks, Yu & Huang 2019; BigNAS, Yu et al. 2020) in every S1
            weight step (warm-up included) of the skeleton space: besides the sampled network, the seg supernet's
            widest and narrowest networks (every level at its largest / smallest candidate width, blocks as
            sampled) add their segmentation loss (CE + soft Dice) to the step, so the shared weights of the wide
            candidates are trained as well as the narrow ones' when the architecture step compares them (issue
            16: without it the searches stopped at the narrowest widths the latency term allowed). Two more seg
            forward and backward passes per weight step; the skeleton space only; not under torchrun.
        seeds: Search seeds; the derived pair with the best validation score is kept (paper: 5).
        sensitivity_lambda2: Extra hardware-aware searches with these latency weights, derived,
            retrained, scored and measured like the Table II rows and reported beside them (not a
            row of the paper's table): they show what the latency term does when it weighs more.
    """

    warmup_epochs: int = 40
    alternate_epochs: int = 40
    batch_size: int = 8
    weight_lr: float = 1e-3
    weight_decay: float = 1e-4
    arch_lr: float = 3e-4
    arch_betas: tuple[float, float] = (0.5, 0.999)
    arch_weight_decay: float = 1e-3
    lambda1: float = 1.0
    lambda2: float = 0.001
    gumbel_tau: float = 1.0
    seg_dice_weight: float = 0.0
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    sensitivity_lambda2: tuple[float, ...] = ()
    sampler: str = "darts"
    gdas_tau: tuple[float, float] = (10.0, 0.1)
    warmup_min_dice: float = 0.0
    warmup_max_epochs: int = 0
    input_cost: str = "always"
    latency_budget_ms: float = 0.0
    sandwich: bool = False

    def __post_init__(self):
        from search.core.mixed import SAMPLERS, TauSchedule

        if not 0.0 <= self.warmup_min_dice < 1.0:
            raise ValueError(f"warmup_min_dice must lie in [0, 1), got {self.warmup_min_dice}")
        if self.warmup_min_dice and self.warmup_max_epochs < self.warmup_epochs:
            raise ValueError(f"warmup_max_epochs ({self.warmup_max_epochs}) must be at least warmup_epochs "
                             f"({self.warmup_epochs}) when warmup_min_dice is set")

        if self.latency_budget_ms < 0:
            raise ValueError(f"latency_budget_ms must be >= 0 (0: no budget), got {self.latency_budget_ms:g}")
        if self.input_cost not in INPUT_COSTS:
            raise ValueError(f"unknown input cost {self.input_cost!r}; choose one of {', '.join(INPUT_COSTS)}")
        if self.sampler not in SAMPLERS:
            raise ValueError(f"unknown search sampler {self.sampler!r}; choose one of {', '.join(SAMPLERS)}")
        TauSchedule(*self.gdas_tau)  # ValueError on a temperature <= 0


@dataclass(frozen=True)
class RetrainConfig:
    """Training of a derived (or handcrafted) seg + QC pair from scratch.

    Attributes:
        seg_epochs: Epochs of the segmentation net on S1.
        qc_epochs: Epochs of the QC net on S2 (minus validation) with the seg net frozen.
        batch_size: Images per step.
        lr: Adam learning rate.
        weight_decay: Adam weight decay.
        seg_restarts: Trainings of a seg net from a fresh initialisation after the first one, while its lowest
            class Dice on its own training frames stays below ``restart_floor`` (a collapse to background; the
            best attempt is kept, ``search.train.restarts``). 0: the verdict is recorded, nothing is retrained.
        restart_floor: That Dice floor.
    """

    seg_epochs: int = 100
    qc_epochs: int = 60
    batch_size: int = 8
    lr: float = 1e-3
    weight_decay: float = 1e-4
    seg_restarts: int = 2
    restart_floor: float = 0.3

    def restart_policy(self) -> RestartPolicy:
        """The seg net's restart rule (``search.train.restarts.RestartPolicy``)."""
        from search.train.restarts import RestartPolicy

        return RestartPolicy(floor=self.restart_floor, max_restarts=self.seg_restarts)


@dataclass(frozen=True)
class MeasureConfig:
    """How Table II's latency is measured (onnxruntime CPU, one process, all rows interleaved).

    Attributes:
        resolution: Input side for latency and FLOPs (paper: 256).
        warmup_runs: Untimed runs per model before timing.
        timed_runs: Timed end-to-end (seg + QC) runs per row.
        intra_op_threads: onnxruntime intra-op threads (None = the app's default).
        lut_warmup: Untimed runs per op when profiling the latency lookup table.
        lut_repeats: Timed runs per op (the table entry is their median).
    """

    resolution: int = 256
    warmup_runs: int = 5
    timed_runs: int = 100
    intra_op_threads: int | None = None
    lut_warmup: int = 10
    lut_repeats: int = 50


@dataclass(frozen=True)
class SegQcConfig:
    """Everything one ``python -m search segqc-hw`` run needs.

    Attributes:
        preset: Name of the preset this config came from.
        seed: Master seed (data order, augmentation, initialisation of the retrained nets).
        baseline_seg_filters: Initial filters of the handcrafted U-nets (paper: 8 and 16).
        export: Whether to write the winning pair into ``models/``.
        threads: torch intra-op threads during training. The default preset uses 1: on 2 cores shared
            with other jobs, two OpenMP threads spin-wait on each other whenever one is descheduled,
            and a supernet forward pass measured 8-22 s with 2 threads against 1.2 s with 1 (96x96,
            batch 8, load average ~7).
    """

    preset: str = "paper"
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    space: SpaceConfig = field(default_factory=SpaceConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    retrain: RetrainConfig = field(default_factory=RetrainConfig)
    measure: MeasureConfig = field(default_factory=MeasureConfig)
    baseline_seg_filters: tuple[int, ...] = (8, 16)
    export: bool = True
    threads: int = 2

    @property
    def task(self):
        """The echo task (``search.methods.segqc_hw.tasks.EchoTask``) of ``data.task``."""
        from search.methods.segqc_hw.tasks import echo_task

        return echo_task(self.data.task)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (tuples become lists); ``data.source`` only when it is not the phantom and
        ``data.task`` only when it is not contrast (so contrast configs, their hashes and run records stay
        what they were before B-mode existed); ``search.sampler`` and ``search.gdas_tau`` only with the GDAS
        sampler (so DARTS configs keep the hashes they had before the sampler existed), and the warm-up's Dice
        rule only when it is on (``warmup_min_dice`` > 0), and ``space.droppable_inputs`` / ``keep_prev`` only when on, for the
        same reason. A dataset's
        ``data.source`` is ``search.privacy.recorded_source`` (kind and a hash of the folder: run folders
        never name it)."""
        from search.privacy import recorded_config

        doc = recorded_config(asdict(self))
        if doc["data"].get("task") == "contrast":
            doc = {**doc, "data": {k: v for k, v in doc["data"].items() if k != "task"}}
        if doc["search"].get("sampler") == "darts":
            doc = {**doc, "search": {k: v for k, v in doc["search"].items() if k not in ("sampler", "gdas_tau")}}
        if not doc["search"].get("warmup_min_dice"):
            doc = {**doc, "search": {k: v for k, v in doc["search"].items()
                                     if k not in ("warmup_min_dice", "warmup_max_epochs")}}
        if doc["search"].get("input_cost", "always") == "always":
            doc = {**doc, "search": {k: v for k, v in doc["search"].items() if k != "input_cost"}}
        if not doc["search"].get("latency_budget_ms"):
            doc = {**doc, "search": {k: v for k, v in doc["search"].items() if k != "latency_budget_ms"}}
        if not doc["search"].get("sandwich"):
            doc = {**doc, "search": {k: v for k, v in doc["search"].items() if k != "sandwich"}}
        doc = {**doc, "space": {k: v for k, v in doc["space"].items()
                                if (k not in ("droppable_inputs", "keep_prev") or v) and (k != "stem_convs" or v != 1)}}
        if doc["space"]["seg_space"] == "cells":  # the cell space's configs and hashes stay what they were
            doc = {**doc, "space": {k: v for k, v in doc["space"].items() if k not in SKELETON_FIELDS}}
        else:  # what the cell space's U would read is not part of a skeleton run
            doc = {**doc, "space": {k: v for k, v in doc["space"].items() if k not in CELL_SEG_FIELDS}}
        return doc


def preset(name: str, *, seed: int | None = None, task: str = "contrast") -> SegQcConfig:
    """Return the named preset, optionally with another master seed or for the B-mode task.

    Args:
        name: One of ``PRESETS``.
        seed: Overrides the master seed (and shifts the search seeds by the same amount).
        task: ``"contrast"`` or ``"bmode"`` (``DataConfig.task``); the sizes are the same for both.
    """
    if name == "paper":
        cfg = SegQcConfig(preset="paper")
    elif name == "default":
        cfg = SegQcConfig(
            preset="default",
            data=DataConfig(frames_per_case=4, resolution=96, n_qc_val=10),
            space=SpaceConfig(seg_depth=4, qc_stages=4),
            search=SearchConfig(warmup_epochs=2, alternate_epochs=4, batch_size=8, arch_lr=3e-3, seg_dice_weight=1.0,
                                seeds=(0,), sensitivity_lambda2=(0.01,)),
            retrain=RetrainConfig(seg_epochs=14, qc_epochs=8, batch_size=8),
            measure=MeasureConfig(resolution=256, warmup_runs=5, timed_runs=60, lut_warmup=5, lut_repeats=30),
            threads=1,
        )
    elif name == "smoke":
        cfg = SegQcConfig(
            preset="smoke",
            data=DataConfig(n_s1=2, n_s2=2, n_test=2, frames_per_case=2, resolution=32, n_qc_val=1),
            space=SpaceConfig(seg_depth=2, qc_stages=2),
            search=SearchConfig(warmup_epochs=1, alternate_epochs=1, batch_size=2, seg_dice_weight=1.0, seeds=(0,),
                                sensitivity_lambda2=(0.01,)),
            retrain=RetrainConfig(seg_epochs=1, qc_epochs=1, batch_size=2, seg_restarts=0),
            measure=MeasureConfig(resolution=64, warmup_runs=1, timed_runs=3, lut_warmup=1, lut_repeats=3),
            export=True,
            threads=1,
        )
    else:
        raise ValueError(f"unknown segqc-hw preset {name!r}; choose one of {', '.join(PRESETS)}")
    if seed is not None and seed != cfg.seed:
        shift = seed - cfg.seed
        cfg = replace(cfg, seed=seed, search=replace(cfg.search, seeds=tuple(s + shift for s in cfg.search.seeds)))
    if task != cfg.data.task:
        cfg = replace(cfg, data=replace(cfg.data, task=task))
    return cfg
