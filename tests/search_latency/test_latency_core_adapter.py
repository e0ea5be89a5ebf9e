"""The profiler's key enumeration covers every op the sampled derived networks run (smoke preset)."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("search.core.sampling")

from search.latency import core_adapter  # noqa: E402


@pytest.mark.parametrize("space", ["segqc", "msnas", "rtdnas"])
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


def test_unknown_space_is_an_error() -> None:
    with pytest.raises(ValueError, match="nosuch"):
        core_adapter.supernet_configs("nosuch", "smoke")
