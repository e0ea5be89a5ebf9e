"""Configuration shared by the cine methods that fill one table of rows (msnas-hw and rtdnas).

Both methods train, search and time networks on the same phantom cine clips, with the same layer x
scale supernet, first-order bilevel search, retraining schedule and latency measurement, so their
rows compare on the same patients, clips and machine. The value types live here (the train layer);
each method's ``config`` module builds its presets from them and re-exports the names it uses.
See ``search.methods.msnas_hw.config`` for why the presets look the way they do.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any, Sequence, TypeVar

from app.realtime import REALTIME
from search.train.restart_report import CLASS_FLOOR

ROW_KINDS = ("unet2d", "unet3d", "msnas")
_Config = TypeVar("_Config", bound="CineRowsConfig")
_Cells = TypeVar("_Cells")


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
        render_shape: ``(H, W)`` the phantom is rendered at (the clips are resized from it); dataset
            cases are resized to it as they are read.
        source: The ``--data`` spec (``search.data``): ``"phantom"`` or ``"KIND:DIR"``; with a dataset,
            ``n_test`` and ``n_val`` give the proportions of its patients.
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
    source: str = "phantom"

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
        sampler: ``"darts"`` (every candidate of every cell edge, softmax-weighted: the papers) or ``"gdas"``
            (issue 16: each cell node runs one sampled (input, op) pair, hard straight-through Gumbel-softmax,
            ``search.core.mixed``; the layer x scale edges stay a softmax mixture). Warm-up and architecture
            steps sample alike.
        gdas_tau: GDAS temperature, annealed linearly from the first to the second value over the
            architecture steps (GDAS: 10 -> 0.1); the warm-up uses the first.
        free_op_dropout: Dropout rate on the outputs of the weight-free candidates (identity, pools) in every
            training-mode pass of the search, warm-up included (P-DARTS' op-level dropout; 0: off, the papers).
        skip_edge_dropout: The same on the layer x scale grid's skip edges (a path step without a cell).
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
    sampler: str = "darts"
    gdas_tau: tuple[float, float] = (10.0, 0.1)
    free_op_dropout: float = 0.0
    skip_edge_dropout: float = 0.0

    def __post_init__(self) -> None:
        check_sampler(self.sampler, self.gdas_tau, self.free_op_dropout, self.skip_edge_dropout)


SAMPLERS = ("darts", "gdas")


def check_sampler(sampler: str, gdas_tau: Sequence[float], free_op_dropout: float = 0.0,
                  skip_edge_dropout: float = 0.0) -> None:
    """Raise ``ValueError`` for an unknown sampler, a non-positive GDAS temperature or a dropout rate outside [0, 1)."""
    for name, rate in (("free_op_dropout", free_op_dropout), ("skip_edge_dropout", skip_edge_dropout)):
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"{name} must be in [0, 1), got {rate}")
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
    if len(gdas_tau) != 2 or not all(t > 0 for t in gdas_tau):
        raise ValueError(f"gdas_tau must be two temperatures > 0 (start, end), got {tuple(gdas_tau)}")


#: Search options added for issue 16 and their "off" values (rtdnas' ``latency_loss`` among them).
OFF_SEARCH_OPTIONS = {"free_op_dropout": 0.0, "skip_edge_dropout": 0.0, "latency_loss": "product"}


def drop_default_search_options(search: dict[str, Any]) -> dict[str, Any]:
    """A search config's dict without the options added for issue 16 where they are off (DARTS sampling, the
    paper's loss, no op-level dropout): configs, hashes and run folders made before them stay valid."""
    if search.get("sampler", "darts") == "darts":
        search.pop("sampler", None)
        search.pop("gdas_tau", None)
    for name, off in OFF_SEARCH_OPTIONS.items():
        if name in search and search[name] == off:
            del search[name]
    return search


RESTART_KEYS = ("seg_restarts", "restart_floor")
"""``RetrainConfig`` fields added with the collapse restarts (issue 16), left out of a config's dict while off."""


def drop_default_retrain_options(retrain: dict[str, Any]) -> dict[str, Any]:
    """A retraining config's dict without the restart fields when restarts are off: configs, hashes and run
    folders made before them stay valid."""
    if not retrain.get("seg_restarts"):
        for key in RESTART_KEYS:
            retrain.pop(key, None)
    return retrain


def stage_config(doc: dict[str, Any]) -> dict[str, Any]:
    """What a cine run's stages are hashed by (``search.train.stages.StageRunner``): its recorded config without the
    restart fields. A row that did not collapse is the same training with or without the rule, so a run folder
    made before the restarts (or with another restart count) keeps its searches and finished rows; only rows
    trained from then on follow the rule (``predates_restarts``)."""
    retrain = doc.get("retrain")
    if not isinstance(retrain, dict):
        return doc
    return {**doc, "retrain": {k: v for k, v in retrain.items() if k not in RESTART_KEYS}}


def predates_restarts(old: Any, new: dict[str, Any]) -> bool:
    """Whether a run folder's ``config.json`` (``old``) is ``new`` as it was recorded before the collapse restarts:
    the same configuration but for ``new``'s restart fields. Such a folder resumes: its finished rows keep their
    one training, the rows trained from then on follow the rule."""
    from search.privacy import same_config

    if not isinstance(old, dict) or not isinstance(old.get("retrain"), dict) or not isinstance(new.get("retrain"), dict):
        return False
    if not new["retrain"].get("seg_restarts") or any(key in old["retrain"] for key in RESTART_KEYS):
        return False  # restarts off: nothing to migrate; fields recorded: not from before the rule
    return same_config(old, stage_config(new))


@dataclass(frozen=True)
class RetrainConfig:
    """Training every Table 2 row from scratch on all training patients.

    Attributes:
        steps: Optimiser steps per row.
        batch_size: Clips per step.
        lr: Adam learning rate (cosine to 0).
        weight_decay: Adam weight decay.
        eval_every: Steps between checkpoints (and validation when ``DataConfig.n_val`` > 0).
        seg_restarts: Trainings of a row from a fresh initialisation after one that collapsed (a class below
            ``restart_floor`` Dice on its own training clips; ``search.train.restarts``); 0: one training, as
            before the rule (and then neither field is recorded: ``drop_default_retrain_options``).
        restart_floor: The class Dice below which a training collapsed.
    """

    steps: int = 240
    batch_size: int = 2
    lr: float = 3e-3
    weight_decay: float = 1e-4
    eval_every: int = 60
    seg_restarts: int = 0
    restart_floor: float = CLASS_FLOOR

    def __post_init__(self) -> None:
        if self.seg_restarts < 0 or not 0.0 <= self.restart_floor < 1.0:
            raise ValueError(f"seg_restarts must be >= 0 and restart_floor in [0, 1), got {self.seg_restarts} and "
                             f"{self.restart_floor:g}")

    @property
    def steps_per_epoch(self) -> int:
        """Steps between checkpoints (one loss point of the learning curve each)."""
        return max(1, min(self.eval_every, self.steps))

    @property
    def epochs(self) -> int:
        """Checkpoints of the schedule: ``epochs * steps_per_epoch`` steps are trained (``steps`` rounded down)."""
        return max(1, self.steps // self.steps_per_epoch)

    def with_steps(self, steps: int) -> RetrainConfig:
        """This schedule with ``steps`` optimiser steps; ``eval_every`` kept unless it exceeds ``steps``.

        Raises:
            ValueError: ``steps`` < 1.
        """
        if steps < 1:
            raise ValueError(f"retrain steps must be >= 1, got {steps}")
        return replace(self, steps=steps, eval_every=min(self.eval_every, steps))

    def proxy(self, steps: int) -> RetrainConfig:
        """A short proxy training of ``steps`` steps (a pick candidate, a cloud network): ``with_steps`` and one
        training each, never restarted, because a collapse at that budget is part of what the proxy measures
        (and restarts would triple its cost)."""
        return replace(self.with_steps(steps), seg_restarts=0)


PICK_PATHS = ("heaviest", "sampled", "both")
"""Gene pools of the pick's drawn candidates (``PickConfig.paths``): the round's heaviest paths first."""


@dataclass(frozen=True)
class PickConfig:
    """Which searched cells the final networks use: the argmax, or the best of several candidates on validation.

    Shared by rtdnas (``RtdnasConfig.pick``, described here) and msnas-hw (``MsnasHwConfig.pick``: the candidates
    are ours n=1's argmax and drawn cells on its top path or a drawn path, ``n_paths`` unused; its config says how).

    Off by default (``candidates = 1``: the argmax cells, the paper). With ``candidates = K`` > 1 the final round's
    argmax cells and ``K - 1`` cell sets drawn from its architecture distribution (``search.core.decode.sample_cell``,
    distinct, ``cell_max_free_ops`` applied) each become the GA network of ``n_paths`` paths; every one within the
    round's L_ub by the lookup table is trained ``train_steps`` steps on the weight patients and scored (mean Dice)
    on the architecture patients, which that training did not see; the test patients are never used. The best
    one's cells go on to the derivation (Table 1, the sweep, the shipped network). Issue 16: the 40-step search
    barely moves the architecture weights, so its argmax is close to one random draw of the space, and the Dice of
    the final network varied .07 over search seeds, almost all of it from the cells.

    ``paths = "sampled"`` draws each candidate's gene pool too (``GenePool.sampled``: ``ga.pool_size`` distinct paths
    drawn from the round's beta, where the default keeps the heaviest paths of the round for every candidate), and
    its network takes as many of them (up to N_l) as fit L_ub: the heaviest paths of every default search stay at
    full resolution (``skip`` has p ~ .5 there), and on one seed in six all of them did (Dice .41), which no choice
    of cells repairs. ``"both"`` tries every cell draw on both: the argmax, the K - 1 draws on the heaviest paths,
    then the same K - 1 draws on drawn pools (2K - 1 candidates; the same networks as the two other settings make).
    Candidate 0 stays the argmax cells on the heaviest paths; the cell draws are the same in every setting (the
    pools come from another generator).

    Attributes:
        candidates: Candidates compared (1: off).
        train_steps: Short training of each candidate (steps of the retraining schedule).
        n_paths: N_l of every candidate's GA network (None: the largest N_l of Table 1).
        paths: Gene pool of the drawn candidates: ``"heaviest"`` (the round's, as the paper), ``"sampled"`` or
            ``"both"``.
    """

    candidates: int = 1
    train_steps: int = 100
    n_paths: int | None = None
    paths: str = "heaviest"

    def __post_init__(self) -> None:
        if self.candidates < 1 or self.train_steps < 1:
            raise ValueError(f"pick needs candidates >= 1 and train_steps >= 1, got {self.candidates}, "
                             f"{self.train_steps}")
        if self.paths not in PICK_PATHS:
            raise ValueError(f"pick.paths must be one of {PICK_PATHS}, got {self.paths!r}")

    def plan(self, cell_sets: Sequence[_Cells]) -> list[tuple[str, _Cells, bool]]:
        """``(source, cells, draw_path)`` of every candidate, in order, from ``cell_sets`` (the argmax cells first,
        then the distinct draws): the argmax on the top path / heaviest pool, each draw on it (``"heaviest"``), on a
        drawn path or pool (``"sampled"``), or both (``"both"``: the drawn-path ones after, 2K - 1 candidates)."""
        cells = [("argmax", cell_sets[0])] + [("sampled", c) for c in cell_sets[1:]]
        plan = [(source, c, i > 0 and self.paths == "sampled") for i, (source, c) in enumerate(cells)]
        if self.paths == "both":
            plan += [(source, c, True) for source, c in cells[1:]]
        return plan


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
        picked: ``msnas``: its cells (and path) are the candidate pick's (``PickConfig``), not the search's argmax.
    """

    name: str
    key: str
    kind: str
    depth: int = 0
    initial_filters: int = 0
    n_paths: int = 0
    latency_aware: bool = False
    search: str = ""
    picked: bool = False

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
        realtime_latency_ms: p95 latency budget, drawn in the reports (``app.realtime.REALTIME``: 50 ms).
        realtime_fps: Throughput budget, likewise (22 FPS).
        useful_dice: Smallest mean Dice worth shipping (the paper's weakest row: 0.690).
    """

    warmup: int = 2
    repeats: int = 7
    paper_shape: tuple[int, int, int] = (20, 128, 112)
    measure_paper_size: bool = True
    realtime_latency_ms: float = REALTIME.p95_ms
    realtime_fps: float = REALTIME.fps
    useful_dice: float = 0.70


@dataclass(frozen=True)
class CineRowsConfig:
    """A table of cine rows trained, searched and timed on the same phantom clips (msnas-hw, rtdnas).

    Attributes:
        preset: Name of the preset this config came from.
        seed: Master seed (torch generators, Gumbel noise, batch order).
        width_divisor: Every trained network is this many times narrower than its paper size.
        threads: torch intra-op threads for training.
        data, supernet, search, retrain, measure: See the classes.
        searches: The searches to run (rows decode from them by key).
        rows: The rows of the table, in order.
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
    rows: tuple[RowSpec, ...] = ()

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

    def rows_named(self, keys: Sequence[str]) -> tuple[RowSpec, ...]:
        """The rows of ``keys`` (in the given order, each once).

        Raises:
            ValueError: one line naming the unknown keys and the table's keys.
        """
        by_key = {r.key: r for r in self.rows}
        unknown = [k for k in keys if k not in by_key]
        if unknown:
            raise ValueError(f"unknown row {', '.join(map(repr, unknown))}; the rows are {', '.join(by_key)}")
        return tuple(by_key[k] for k in dict.fromkeys(keys))

    def with_retrain_steps(self: _Config, steps: int) -> _Config:
        """This configuration with ``steps`` retraining steps per row (``RetrainConfig.with_steps``)."""
        return replace(self, retrain=self.retrain.with_steps(steps))

    def to_dict(self) -> dict[str, Any]:
        """Plain dict; ``data.source`` only when it is not the phantom (phantom configs are unchanged), and
        then as ``search.privacy.recorded_source`` (kind and a hash of the folder: run folders never name it)."""
        from search.privacy import recorded_config

        doc = asdict(self)
        drop_default_search_options(doc["search"])
        drop_default_retrain_options(doc["retrain"])
        for row in doc["rows"]:  # only a picked row says so: configs without one are unchanged
            if not row["picked"]:
                del row["picked"]
        return recorded_config(doc)
