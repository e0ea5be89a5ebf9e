"""The search-space side of the latency tools, written against ``search.core``.

The profiler needs "build the op of this key"; ``python -m search profile`` needs "every key the
supernets of a space can contain under a preset"; ``python -m search latency-check`` needs "random
discrete networks of a space, built, with the keys of the ops they contain". This module answers
the three from the core's ops, supernets, genotypes and derived networks, so the rest of
``search.latency`` never depends on how a space is built.
"""

from __future__ import annotations

from typing import Callable, Iterator

from torch import nn

from search.latency.keys import OpKey

SPACES = ("segqc", "msnas", "rtdnas")

#: ``(module factory, input shape without batch)``: one supernet configuration a preset uses.
SupernetConfig = tuple[Callable[[], nn.Module], tuple[int, ...]]


def module_for_key(key: OpKey) -> nn.Module:
    """The op a key describes, freshly initialised: input ``(1, c_in, *key.shape)``."""
    from search.core.ops import op_from_key

    return op_from_key(key)


def op_instances(model: nn.Module, example_input, call=None) -> list[OpKey]:
    """One key per op *call* in a forward of ``model`` (repeats kept; ``zero`` ops excluded).

    Unlike ``search.core.latency_sites.collect_latency_keys`` (a set, for the profiler), this is the
    multiset a network's predicted latency sums over. Only outermost ops count: an op nested inside
    another (e.g. the 1x1 projection inside a pooling op whose channels change) is part of the outer
    op's entry.

    Args:
        model: A derived network (or any module built from ``CandidateOp``s).
        example_input: ``(1, C, H, W)`` or ``(1, C, T, H, W)`` tensor.
        call: Optional ``call(model, x)`` when the forward needs more than ``model(x)``.
    """
    import torch

    from search.core.ops import FREE_OPS, CandidateOp

    outermost = []
    nested: set[int] = set()
    for module in model.modules():
        if isinstance(module, CandidateOp) and id(module) not in nested:
            outermost.append(module)
            nested.update(id(m) for m in module.modules() if m is not module)
    keys: list[OpKey] = []

    def hook(module, args):
        x = args[0][0] if isinstance(args[0], (list, tuple)) else args[0]
        if module.op_name not in FREE_OPS:
            keys.append(module.latency_key(tuple(x.shape[2:])))

    handles = [m.register_forward_pre_hook(hook) for m in outermost]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            (call or (lambda m, t: m(t)))(model, example_input)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return keys


def supernet_configs(space: str, preset: str) -> list[SupernetConfig]:
    """Every supernet the method of ``space`` builds under ``preset``, with its input shape.

    segqc: the segmentation U and the QC net at the search resolution (``data.resolution``).
    msnas / rtdnas: the layer x scale supernet at the search clip ``(1, T, H, W)``.
    """
    if space == "segqc":
        return [(build, shape) for build, shape, _ in _segqc_parts(preset)]
    if space in ("msnas", "rtdnas"):
        return _multiscale_configs(space, preset)
    raise ValueError(f"unknown search space {space!r}; choose from {', '.join(SPACES)}")


def preset_keys(space: str, preset: str) -> set[OpKey]:
    """Every table key the supernets of ``space`` can contain under ``preset`` (``zero`` excluded)."""
    from search.core.latency_sites import collect_latency_keys

    keys: set[OpKey] = set()
    for build, shape in supernet_configs(space, preset):
        keys |= collect_latency_keys(build(), shape)
    return keys


def _segqc_parts(preset: str):
    from search.core.supernets.nasunet import NasUnetConfig, NasUnetSupernet
    from search.core.supernets.qcnet import QcNetConfig, QcSupernet
    from search.methods.segqc_hw.config import preset as segqc_preset

    cfg = segqc_preset(preset)
    r, sp = cfg.data.resolution, cfg.space
    seg_cfg = NasUnetConfig(init_filters=sp.seg_init_filters, depth=sp.seg_depth, n_nodes=sp.nodes)
    qc_cfg = QcNetConfig(init_filters=sp.qc_init_filters, n_stages=sp.qc_stages, n_nodes=sp.nodes,
                         num_classes=seg_cfg.num_classes)
    return [
        (lambda: NasUnetSupernet(seg_cfg), (seg_cfg.in_channels, r, r), seg_cfg),
        (lambda: QcSupernet(qc_cfg), (qc_cfg.in_channels, r, r), qc_cfg),
    ]


def _multiscale_config(space: str, preset: str):
    """``(MultiscaleConfig, (C, T, H, W))`` of the supernet a multi-scale method searches under ``preset``.

    msnas: ``search.methods.msnas_hw.config`` (trained widths, training clip). rtdnas: its own config
    module when present; otherwise the msnas preset's clip and widths with RT-DNAS's 10 layers and
    input-op-pair relaxation (seed 002: "the MS-NAS two-level space above; 10 layers").
    """
    import importlib

    from search.core.supernets.multiscale import MultiscaleConfig
    from search.methods.msnas_hw.config import preset as msnas_preset

    cfg = msnas_preset(preset)
    sn, data = cfg.supernet, cfg.data
    shape = (1, data.clip_length, data.height, data.width)
    ms = MultiscaleConfig(base_channels=cfg.trained_channels, n_layers=sn.layers, n_scales=sn.scales,
                          n_nodes=sn.nodes, relaxation="edge_op", pc_k=sn.pc_k)
    if space == "msnas":
        return ms, shape
    try:
        rt = importlib.import_module("search.methods.rtdnas.config").preset(preset)
    except ModuleNotFoundError:
        from dataclasses import replace

        return replace(ms, n_layers=10 if preset != "smoke" else ms.n_layers, relaxation="input_op_pair"), shape
    return _rtdnas_from_config(rt), _rtdnas_shape(rt)


def _rtdnas_from_config(rt):
    from search.core.supernets.multiscale import MultiscaleConfig

    sn = rt.supernet
    return MultiscaleConfig(base_channels=getattr(rt, "trained_channels", sn.channels), n_layers=sn.layers,
                            n_scales=sn.scales, n_nodes=sn.nodes, relaxation="input_op_pair", pc_k=sn.pc_k)


def _rtdnas_shape(rt) -> tuple[int, ...]:
    return (1, rt.data.clip_length, rt.data.height, rt.data.width)


def _multiscale_configs(space: str, preset: str) -> list[SupernetConfig]:
    from search.core.supernets.multiscale import MultiscaleSupernet

    ms, shape = _multiscale_config(space, preset)
    return [(lambda: MultiscaleSupernet(ms), shape)]


# ---- random discrete architectures (for ``latency-check``) ---------------------------------------


def random_genotype(space: str, preset: str, rng):
    """A random discrete architecture of ``space`` shaped like the preset's supernet.

    ``search.core.sampling.sample_random_genotype`` with the preset's grid and node count: a
    ``SegQcGenotype`` (segqc) or a ``MultiscaleGenotype`` with 1-4 (msnas) or 1-8 (rtdnas) paths.
    """
    from search.core.sampling import sample_random_genotype

    if space == "segqc":
        return sample_random_genotype(space, rng, n_nodes=_segqc_parts(preset)[0][2].n_nodes)
    ms, _ = _multiscale_config(space, preset)
    return sample_random_genotype(space, rng, n_layers=ms.n_layers, n_scales=ms.n_scales, n_nodes=ms.n_nodes)


def build_network(space: str, preset: str, genotype, seed: int = 0) -> tuple[nn.Module, tuple[int, ...]]:
    """The derived network of ``genotype`` and its input shape without batch.

    segqc: seg + QC in one graph (``DerivedSegQc``: the deployed data flow). msnas / rtdnas: the
    fused multi-path network.
    """
    if space == "segqc":
        from search.core.derived.nasunet import DerivedNasUnet
        from search.core.derived.qcnet import DerivedQcNet, DerivedSegQc

        (_, seg_shape, seg_cfg), (_, _, qc_cfg) = _segqc_parts(preset)
        module = DerivedSegQc(DerivedNasUnet(genotype.seg, seg_cfg, seed=seed), DerivedQcNet(genotype.qc, qc_cfg, seed=seed))
        return module, seg_shape
    from search.core.derived.multiscale import FusedMultiscaleNet

    ms, shape = _multiscale_config(space, preset)
    return FusedMultiscaleNet(genotype, ms, seed=seed), shape


def sample_networks(space: str, preset: str, n: int, seed: int) -> Iterator["SampledNetwork"]:
    """``n`` random discrete networks of ``space`` under ``preset``, built, with their op instances.

    Deterministic in ``seed`` (architectures from ``np.random.default_rng``, weights from torch seeds).
    """
    import numpy as np
    import torch

    from search.latency.check import SampledNetwork

    if space not in SPACES:
        raise ValueError(f"unknown search space {space!r}; choose from {', '.join(SPACES)}")
    rng = np.random.default_rng([seed, SPACES.index(space)])
    gen = torch.Generator().manual_seed(seed)
    for i in range(n):
        genotype = random_genotype(space, preset, rng)
        module, shape = build_network(space, preset, genotype, seed=seed + i)
        x = torch.randn((1, *shape), generator=gen)
        yield SampledNetwork(space, i, module.eval(), x, op_instances(module, x), genotype=genotype.to_dict())
