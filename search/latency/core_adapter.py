"""The search-space side of the latency tools, written against ``search.core``.

The profiler needs "build the op of this key"; ``python -m search profile`` needs "every key the
supernets of a space can contain under a preset"; ``python -m search latency-check`` needs "random
discrete networks of a space, built, with the keys of the ops they contain". This module answers
the first from the core's ops and the other two from the table of search spaces
(``search.latency.spaces``) that each method fills, so ``search.latency`` never imports a method.
Call ``search.methods.spaces.register_all()`` (the CLIs do) before asking for a method's space.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterator, Sequence

from torch import nn

from search.latency.keys import OpKey
from search.latency.spaces import SupernetConfig, get_space

if TYPE_CHECKING:
    from search.latency.check import SampledNetwork


def module_for_key(key: OpKey) -> nn.Module:
    """The op a key describes, freshly initialised: input ``(1, c_in, *key.shape)``. The U-net skeleton
    space's keys (``skel_*``: whole blocks, pools, up-convs, heads) are built by its own builder."""
    from search.core.ops import op_from_key
    from search.core.supernets.unet_skeleton import BLOCK_OP_PREFIX, build_block_for_key

    return build_block_for_key(key) if key.op.startswith(BLOCK_OP_PREFIX) else op_from_key(key)


def _keyed_whole(model: nn.Module) -> list[nn.Module]:
    """Submodules that list their own table keys for an input size (``latency_keys(size)``: a U-net skeleton
    network, ``search.core.derived.unet_skeleton.SkeletonUNet``, or the 2D U-net baseline it equals), outermost
    only."""
    from search.core.ops import CandidateOp

    found: list[nn.Module] = []
    inside: set[int] = set()
    for module in model.modules():
        if id(module) in inside or isinstance(module, CandidateOp) or not callable(getattr(module, "latency_keys", None)):
            continue
        found.append(module)
        inside.update(id(m) for m in module.modules())
    return found


def op_instances(model: nn.Module, example_input, call=None) -> list[OpKey]:
    """One key per op *call* in a forward of ``model`` (repeats kept; ``zero`` ops excluded).

    Unlike ``search.core.latency_sites.collect_latency_keys`` (a set, for the profiler), this is the
    multiset a network's predicted latency sums over. Only outermost ops count: an op nested inside
    another (e.g. the 1x1 projection inside a pooling op whose channels change) is part of the outer
    op's entry. A network that lists its own keys (``latency_keys(size)``: the U-net skeleton space,
    whose entries are whole blocks) gives them for the input it gets.

    Args:
        model: A derived network (or any module built from ``CandidateOp``s).
        example_input: ``(1, C, H, W)`` or ``(1, C, T, H, W)`` tensor.
        call: Optional ``call(model, x)`` when the forward needs more than ``model(x)``.
    """
    import torch

    from search.core.ops import FREE_OPS, CandidateOp

    outermost = []
    nested: set[int] = set()
    whole = _keyed_whole(model)
    for w in whole:
        nested.update(id(m) for m in w.modules())
    for module in model.modules():
        if isinstance(module, CandidateOp) and id(module) not in nested:
            outermost.append(module)
            nested.update(id(m) for m in module.modules() if m is not module)
    keys: list[OpKey] = []

    def hook(module, args):
        x = args[0][0] if isinstance(args[0], (list, tuple)) else args[0]
        if module.op_name not in FREE_OPS:
            keys.append(module.latency_key(tuple(x.shape[2:])))

    def whole_hook(module, args):  # None: a network of no table (a 3D U-net baseline)
        keys.extend(module.latency_keys(tuple(args[0].shape[2:])) or [])

    handles = [m.register_forward_pre_hook(hook) for m in outermost]
    handles += [m.register_forward_pre_hook(whole_hook) for m in whole]
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

    Raises:
        ValueError: ``space`` is not registered (the message lists the registered ones).
    """
    return get_space(space).supernets(preset)


def preset_keys(space: str, preset: str) -> set[OpKey]:
    """Every table key the supernets of ``space`` can contain under ``preset`` (``zero`` excluded)."""
    from search.core.latency_sites import collect_latency_keys

    keys: set[OpKey] = set()
    for build, shape in supernet_configs(space, preset):
        supernet = build()
        lister = getattr(supernet, "latency_keys", None)  # a supernet that lists its own (the skeleton space)
        keys |= set(lister(tuple(shape[1:]))) if callable(lister) else collect_latency_keys(supernet, shape)
    return keys


# ---- random discrete architectures (for ``latency-check``) ---------------------------------------


def random_genotype(space: str, preset: str, rng):
    """A random discrete architecture of ``space`` shaped like the preset's supernet."""
    return get_space(space).random_genotype(preset, rng)


def build_network(space: str, preset: str, genotype, seed: int = 0) -> tuple[nn.Module, tuple[int, ...]]:
    """The derived network of ``genotype`` (as the method deploys it) and its input shape without batch."""
    return get_space(space).build_network(preset, genotype, seed)


def input_shape_at(shape: Sequence[int], size: Sequence[int] | None = None) -> tuple[int, ...]:
    """A space's input shape without batch, ``(C, H, W)`` or ``(C, T, H, W)``, at another ``size``.

    Args:
        shape: The space's input shape under a preset.
        size: ``(H, W)`` for an image space, ``(T, H, W)`` for a clip space (the networks are fully
            convolutional: at another size they run the same ops on other shapes); ``None`` keeps
            the preset's.

    Raises:
        ValueError: ``size`` has the wrong number of dimensions or a non-positive one.
    """
    shape = tuple(int(s) for s in shape)
    if size is None:
        return shape
    dims = tuple(int(s) for s in size)
    if len(dims) != len(shape) - 1 or any(d < 1 for d in dims):
        wanted = "(T, H, W)" if len(shape) == 4 else "(H, W)"
        raise ValueError(f"size {list(dims)} does not fit input shape {list(shape)}: need {wanted}, positive")
    return (shape[0], *dims)


#: Skip probability range of a sparse sample (``sampled_modules(sparse_share=...)``): the shipped cine
#: networks keep 6-9 skips in 10 steps per path.
SPARSE_SKIP_PROB = (0.5, 0.95)


def sampled_modules(space: str, preset: str, n: int, seed: int, size: Sequence[int] | None = None,
                    sparse_share: float = 0.0) -> Iterator[tuple[int, Any, nn.Module, tuple[int, ...]]]:
    """``(i, genotype, network, input shape without batch)`` of ``n`` random discrete networks of ``space``.

    Deterministic in ``seed`` and the space's stream (architectures from ``np.random.default_rng``,
    weights from torch seeds): the clip check and the per-frame check sample the same networks, and
    so does a check at another ``size`` (``input_shape_at``: only the input shape changes).
    ``sparse_share``: each network is, with this probability, drawn sparse (a skip probability uniform in
    ``SPARSE_SKIP_PROB``, ``sampling.sample_random_genotype``: multi-scale paths of mostly skips, segqc cells of
    mostly weight-free ops): the searches ship such networks, cheaper than any uniform draw, and a calibration
    fitted without them extrapolates.
    0 draws exactly the networks it drew before the option existed.
    """
    import numpy as np

    if not 0.0 <= sparse_share <= 1.0:
        raise ValueError(f"sparse_share must lie in [0, 1], got {sparse_share}")
    entry = get_space(space)
    rng = np.random.default_rng([seed, entry.stream])
    for i in range(n):
        skip_prob = None
        if sparse_share and rng.random() < sparse_share:
            skip_prob = float(rng.uniform(*SPARSE_SKIP_PROB))
        # a space registered without sparse sampling is only asked for it when a sparse draw needs it
        genotype = (entry.random_genotype(preset, rng) if skip_prob is None
                    else entry.random_genotype(preset, rng, skip_prob=skip_prob))
        module, shape = entry.build_network(preset, genotype, seed + i)
        yield i, genotype, module, input_shape_at(shape, size)


def sample_networks(space: str, preset: str, n: int, seed: int, size: Sequence[int] | None = None,
                    sparse_share: float = 0.0) -> Iterator["SampledNetwork"]:
    """``n`` random discrete networks of ``space`` under ``preset`` (``sampled_modules``, ``sparse_share`` as
    there), built, with their op instances and a random input drawn from a torch generator seeded with
    ``seed``; inputs of ``size`` (``(H, W)`` or ``(T, H, W)``, ``input_shape_at``) instead of the preset's
    when given."""
    import torch

    from search.latency.check import SampledNetwork

    gen = torch.Generator().manual_seed(seed)
    for i, genotype, module, shape in sampled_modules(space, preset, n, seed, size, sparse_share):
        x = torch.randn((1, *shape), generator=gen)
        yield SampledNetwork(space, i, module.eval(), x, op_instances(module, x), genotype=genotype.to_dict())
