"""Presets of the cine skeleton search: config values, not code paths.

The data, the split, the retraining schedule and the export settings are a cine baselines preset's
(``search.baselines.presets``), named by ``baselines``: the searched network is retrained exactly as the
per-frame U-net 2D baseline is (same patients, clips, augmentation, steps, batch and learning rate), so
the two compare at the same training budget and input size.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from search.train.cine_config import SearchConfig


@dataclass(frozen=True)
class CineSkeletonConfig:
    """One cine skeleton search.

    Attributes:
        preset: Preset name.
        baselines: The baselines preset whose cine data, split, training schedule and export settings are used.
        widths: Candidate widths per level, full resolution first (depth = number of levels).
        blocks: Candidate block tokens (``c2``: U-net's two dense 3x3 convs, ``c1``: one; ``s``: separable).
        reference: The handcrafted network of the space the latency term is relative to (spec string): the
            per-frame U-net 2D (D3, IF16) baseline, ``16c2-32c2-64c2``.
        search: The bilevel search schedule (``sampler`` gdas: one sampled block and width per level per pass).
        relative_lambda: Weight of the latency term ``relative_lambda * LAT / LAT(reference)`` (LAT: the
            expected per-frame latency from this machine's table); ``search.latency_lambda`` is derived from it.
        search_clip_length: Frames per search clip (clips of ``search.batch_size`` patients' slices).
        lut_warmup, lut_repeats: Runs per op signature when profiling the table (best of ``lut_repeats``).
        threads: torch and onnxruntime threads (the app's deployment threads on this 2-core machine).
        seed: Seeds the weight / architecture split of the training patients, the supernet and the search.
        model_id: The shipped card's id.
    """

    preset: str
    baselines: str
    widths: tuple[tuple[int, ...], ...]
    blocks: tuple[str, ...]
    search: SearchConfig
    relative_lambda: float
    search_clip_length: int
    lut_warmup: int
    lut_repeats: int
    reference: str = "16c2-32c2-64c2"
    threads: int = 2
    seed: int = 0
    model_id: str = "cine-skeleton-hw"
    split: dict = field(default_factory=lambda: {"weight": 0.5, "arch": 0.5})


PRESETS: dict[str, CineSkeletonConfig] = {
    "smoke": CineSkeletonConfig(
        preset="smoke", baselines="smoke", widths=((4, 8), (8, 16)), blocks=("c2", "c1"),
        search=SearchConfig(warmup_steps=2, search_steps=3, batch_size=2, weight_lr=3e-3, arch_lr=3e-2,
                            sampler="gdas", gdas_tau=(5.0, 1.0)),
        relative_lambda=0.1, search_clip_length=2, lut_warmup=1, lut_repeats=3, reference="8c2-16c2", threads=1),
    # U-net's own block, widths searched, a light latency term: the configuration shipped (issue 16, 2026-12-07,
    # docs/bench/cine_skeleton): 16c2-16c2-48c2, .009 below the U-net 2D on 20 fresh patients at 0.80x its time.
    # With c1 offered too the supernet picks one conv per block even without a latency term (lambda 0), and
    # those networks retrain .05-.10 worse: one-shot weight sharing favours the block that trains fastest.
    "default": CineSkeletonConfig(
        preset="default", baselines="default",
        widths=((8, 12, 16, 24), (16, 24, 32, 48), (32, 48, 64, 96)), blocks=("c2",),
        search=SearchConfig(warmup_steps=200, search_steps=400, batch_size=2, weight_lr=3e-3, arch_lr=1e-2,
                            sampler="gdas", gdas_tau=(5.0, 0.5)),
        relative_lambda=0.03, search_clip_length=4, lut_warmup=10, lut_repeats=60),
    "paper": CineSkeletonConfig(  # the baselines' paper preset (100 patients); twice the default's steps
        preset="paper", baselines="paper",
        widths=((8, 12, 16, 24), (16, 24, 32, 48), (32, 48, 64, 96)), blocks=("c2",),
        search=SearchConfig(warmup_steps=400, search_steps=800, batch_size=4, weight_lr=3e-3, arch_lr=1e-2,
                            sampler="gdas", gdas_tau=(5.0, 0.5)),
        relative_lambda=0.03, search_clip_length=4, lut_warmup=10, lut_repeats=100, threads=4),
}


def preset(name: str, **overrides) -> CineSkeletonConfig:
    """The preset ``name`` with ``overrides`` (fields left None are not overridden; ``search_steps`` sets the search
    schedule's); a clear error for an unknown one."""
    try:
        cfg = PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown cine-skeleton preset {name!r}; known: {', '.join(PRESETS)}") from None
    search_steps = overrides.pop("search_steps", None)
    cfg = replace(cfg, **{k: v for k, v in overrides.items() if v is not None})
    if search_steps is not None:
        cfg = replace(cfg, search=replace(cfg.search, search_steps=int(search_steps)))
    choices_of(cfg)  # ValueError on blocks or widths the skeleton space cannot hold
    return cfg


def choices_of(cfg: CineSkeletonConfig):
    """The searched space (``SkeletonChoices``): the config's widths and blocks, full resolution, one channel in,
    the cine classes (``search.baselines.registry.CINE_CLASSES``)."""
    from search.baselines.registry import CINE_CLASSES
    from search.core.supernets.unet_skeleton import SkeletonChoices

    return SkeletonChoices(cfg.widths, cfg.blocks, 1, in_channels=1, n_classes=len(CINE_CLASSES))
