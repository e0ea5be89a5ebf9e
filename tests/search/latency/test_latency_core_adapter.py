"""The profiler's key enumeration covers every op the sampled derived networks run (smoke preset),
and the latency tools read the search spaces the methods register."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from search.latency import core_adapter, spaces
from search.methods.spaces import SPACE_NAMES, register_all

register_all()


@pytest.mark.parametrize("space", SPACE_NAMES)
def test_preset_keys_cover_sampled_networks(space: str) -> None:
    torch.set_num_threads(1)
    needed = core_adapter.preset_keys(space, "smoke")
    assert needed and all(k.op != "zero" for k in needed)
    nets = list(core_adapter.sample_networks(space, "smoke", 3, seed=0))
    assert [n.index for n in nets] == [0, 1, 2]
    for net in nets:
        assert net.keys, "a network without table ops"
        assert set(net.keys) <= needed, sorted(set(net.keys) - needed)
        assert net.genotype is not None
    again = list(core_adapter.sample_networks(space, "smoke", 3, seed=0))
    assert [n.genotype for n in again] == [n.genotype for n in nets]  # seeded


def test_every_method_space_is_registered_with_a_fixed_stream() -> None:
    assert SPACE_NAMES == ("segqc", "msnas", "rtdnas", "skeleton")
    assert [spaces.get_space(n).stream for n in SPACE_NAMES] == [0, 1, 2, 3]
    assert set(SPACE_NAMES) <= set(spaces.space_names())


def test_unknown_space_is_an_error_naming_the_registered_ones() -> None:
    with pytest.raises(ValueError, match="nosuch.*segqc"):
        core_adapter.supernet_configs("nosuch", "smoke")


def test_a_registered_space_is_what_the_profiler_reads() -> None:
    """A fourth method only registers its space: the adapter builds its supernets and networks."""
    from search.core.ops import build_op

    class Genotype(list):
        def to_dict(self) -> list:
            return list(self)

    def supernets(preset: str):
        return [(lambda: nn.Sequential(build_op("conv", 2, 2, 2), build_op("sep_conv", 2, 2, 2)), (2, 8, 8))]

    def random_genotype(preset: str, rng):
        return Genotype(["conv"] * int(rng.integers(1, 3)))

    def build_network(preset: str, genotype, seed: int):
        torch.manual_seed(seed)
        return nn.Sequential(*[build_op(op, 2, 2, 2) for op in genotype]), (2, 8, 8)

    entry = spaces.register_space("toy", supernets=supernets, random_genotype=random_genotype,
                                  build_network=build_network)
    try:
        assert entry.stream > max(spaces.get_space(n).stream for n in SPACE_NAMES)
        assert {k.op for k in core_adapter.preset_keys("toy", "smoke")} == {"conv", "sep_conv"}
        nets = list(core_adapter.sample_networks("toy", "smoke", 2, seed=0))
        assert all(n.keys and {k.op for k in n.keys} == {"conv"} for n in nets)
    finally:
        spaces.unregister_space("toy")
    assert "toy" not in spaces.space_names()


def test_space_names_must_be_usable_on_the_command_line() -> None:
    with pytest.raises(ValueError, match="without commas"):
        spaces.register_space("a,b", supernets=list, random_genotype=list, build_network=list)


def test_sparse_share_draws_sparse_paths_and_zero_keeps_the_old_networks():
    from search.core.genotypes import MultiscaleGenotype
    from search.latency.core_adapter import sampled_modules

    def skips(share):
        out = []
        for _, genotype, _, _ in sampled_modules("rtdnas", "smoke", 12, 0, sparse_share=share):
            assert isinstance(genotype, MultiscaleGenotype)
            steps = [k for p in genotype.paths for k in p.kinds]
            out.append((genotype.to_dict(), sum(k == "skip" for k in steps) / len(steps)))
        return out

    plain, again, sparse = skips(0.0), skips(0.0), skips(1.0)
    assert [g for g, _ in plain] == [g for g, _ in again]  # deterministic
    # every network sparse: far more skips than uniform walks (~1/4 to 1/3 of the steps)
    assert sum(f for _, f in sparse) / len(sparse) > 0.5 > sum(f for _, f in plain) / len(plain)
    with pytest.raises(ValueError, match="sparse_share"):
        next(sampled_modules("rtdnas", "smoke", 1, 0, sparse_share=1.5))


def test_sparse_segqc_networks_are_cheap_cells_and_zero_keeps_the_old_networks():
    """segqc has no paths: a sparse draw makes each cell edge's op weight-free with its skip probability (the
    hardware-aware search ships pools and identities), so the calibration sees networks as cheap as the shipped."""
    from search.core.op_names import PARAMETER_FREE_OPS
    from search.core.sampling import random_cell, sample_random_genotype
    from search.latency.core_adapter import sampled_modules

    def free_share(share):
        out = []
        for _, genotype, _, _ in sampled_modules("segqc", "smoke", 10, 0, sparse_share=share):
            ops = [e.op for cell in (genotype.seg.down, genotype.seg.up, genotype.qc.contracting,
                                     genotype.qc.nonscaling) for e in cell.edges]
            out.append((genotype.to_dict(), sum(op in PARAMETER_FREE_OPS for op in ops) / len(ops)))
        return out

    plain, again, sparse = free_share(0.0), free_share(0.0), free_share(1.0)
    assert [g for g, _ in plain] == [g for g, _ in again]
    assert sum(f for _, f in sparse) / len(sparse) > 0.5 > sum(f for _, f in plain) / len(plain)
    # without free_prob the draws are those of before (same generator calls)
    g1 = sample_random_genotype("segqc", np.random.default_rng(4))
    g2 = sample_random_genotype("segqc", np.random.default_rng(4), skip_prob=None)
    assert g1 == g2
    from search.core.supernets.nasunet import cell_specs

    down, _ = cell_specs(3, False, False)
    always = random_cell(down, np.random.default_rng(0), free_prob=1.0)
    assert all(e.op in PARAMETER_FREE_OPS for e in always.edges)
